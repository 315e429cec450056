"""Lab 4 architecture search over JSC-Three-Linear: spaces, exhaustive ground truth, uniform multipliers.

The seed report searched four independent multipliers a, b, c, d (Linear(16, 16a), Linear(16b, 16c),
Linear(16d, 5)), which builds broken networks unless b = a and d = c. Here the per-layer search is
over the two *hidden widths* (h1, h2) instead: Linear(16, h1) -> Linear(h1, h2) -> Linear(h2, 5),
always consistent. Every architecture is trained from its own fresh initialisation
(``torch.manual_seed(seed)`` then ``models.build``) on the same batch order (``seed``), so the same
architecture and seed retrain to the same numbers, alone or in a batch (see ``labhelpers.batched``).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from . import batched, models
from .data import JSC
from .passes.channels import mlp_params

BASE_HIDDEN = (16, 16)
MULTIPLIERS = (1, 2, 3, 4, 5)
PER_LAYER_WIDTHS = tuple(16 * m for m in MULTIPLIERS)  # 16, 32, 48, 64, 80: 25 architectures
LARGE_WIDTHS = tuple(range(8, 129, 8))  # 8, 16, ..., 128: 256 architectures


# ----------------------------------------------------------------------------- spaces

def grid(widths1, widths2=None) -> list[tuple[int, int]]:
    """Every (h1, h2) with h1 from ``widths1`` and h2 from ``widths2`` (default: the same widths)."""
    widths2 = widths1 if widths2 is None else widths2
    for w in (*widths1, *widths2):
        if not isinstance(w, int) or isinstance(w, bool) or w < 1:
            raise ValueError(f"width {w!r} must be a positive integer, e.g. 16")
    return [(a, b) for a in widths1 for b in widths2]


def uniform_hidden(multipliers=MULTIPLIERS, base=BASE_HIDDEN) -> list[tuple[int, int]]:
    """Hidden widths when every linear layer is widened by the same channel multiplier."""
    out = []
    for m in multipliers:
        widths = tuple(h * m for h in base)
        if not all(float(w).is_integer() and w >= 1 for w in widths):
            raise ValueError(f"channel multiplier {m!r} gives widths {widths}; choose one with whole widths, e.g. 2")
        out.append(tuple(int(w) for w in widths))
    return out


def subsample(data: JSC, max_train_rows: int | None) -> JSC:
    """``data`` with only the first ``max_train_rows`` training rows (they are already shuffled)."""
    if max_train_rows is None or max_train_rows >= len(data.x_train):
        return data
    if not isinstance(max_train_rows, int) or max_train_rows < 2:
        raise ValueError(f"max_train_rows={max_train_rows!r} must be an integer >= 2 or None (all rows)")
    return dataclasses.replace(data, x_train=data.x_train[:max_train_rows], y_train=data.y_train[:max_train_rows])


# ----------------------------------------------------------------------------- training

def ground_truth(data: JSC, hidden=None, *, epochs: int = 10, batch_size: int = 512, lr: float = 1e-3,
                 seed: int = 0, max_train_rows: int | None = None, progress: bool = True) -> pd.DataFrame:
    """Train every architecture of ``hidden`` (default: the 25 per-layer ones) and tabulate them.

    One row per architecture: h1, h2, params, then train_loss, val_loss, val_accuracy, test_loss,
    test_accuracy after the last epoch. Trained with :func:`labhelpers.batched.train_many`; with
    ``max_train_rows`` only the first rows of the training split are used (say so when you report).
    """
    hidden = grid(PER_LAYER_WIDTHS) if hidden is None else [tuple(h) for h in hidden]
    duplicates = sorted({h for h in hidden if hidden.count(h) > 1})
    if duplicates:
        raise ValueError(f"hidden lists {duplicates} more than once; give each architecture once")
    result = batched.train_many(hidden, subsample(data, max_train_rows), seeds=seed, data_seed=seed, epochs=epochs,
                                batch_size=batch_size, lr=lr, evaluate_every_epoch=False, progress=progress)
    return result.table.drop(columns="seed").reset_index(drop=True)


def uniform_search(data: JSC, multipliers=MULTIPLIERS, *, epochs: int = 10, batch_size: int = 512,
                   lr: float = 1e-3, seed: int = 0, progress: bool = True) -> batched.Trained:
    """Task 2: JSC-Three-Linear with every linear layer widened by one multiplier, trained per multiplier.

    Returns the batched trainer's result with a ``multiplier`` column in ``table`` and ``history`` and
    the trained modules in ``models`` (one per multiplier, in order).
    """
    multipliers = list(multipliers)
    result = batched.train_many(uniform_hidden(multipliers), data, seeds=seed, data_seed=seed, epochs=epochs,
                                batch_size=batch_size, lr=lr, return_models=True, progress=progress)
    result.table.insert(0, "multiplier", multipliers)
    result.history.insert(0, "multiplier", [multipliers[k] for k in result.history["network"]])
    return result


def save_checkpoints(result: batched.Trained, data: JSC, directory: str | Path, *, epochs: int, seed: int,
                     prefix: str = "jsc-three-linear-x") -> list[Path]:
    """Write each uniform-multiplier model to ``directory/<prefix><m>.pt`` with its metadata."""
    paths = []
    for model, row in zip(result.models, result.table.itertuples()):
        path = Path(directory) / f"{prefix}{row.multiplier}.pt"
        paths.append(models.save(model, path, name="jsc-three-linear", model_kwargs={"hidden": [row.h1, row.h2]},
                                 dataset=data.source, dataset_fingerprint=data.fingerprint, seed=seed,
                                 epochs_run=epochs, channel_multiplier=row.multiplier, params=row.params,
                                 val_accuracy=row.val_accuracy, test_accuracy=row.test_accuracy,
                                 test_loss=row.test_loss))
    return paths


# ----------------------------------------------------------------------------- tables

def heatmap(table: pd.DataFrame, value: str = "val_accuracy") -> pd.DataFrame:
    """``value`` as an h1 x h2 table (rows h1, columns h2)."""
    if value not in table.columns:
        raise ValueError(f"value={value!r} is not a column; choose one of {list(table.columns)}")
    return table.pivot(index="h1", columns="h2", values=value)


def params_of(hidden) -> int:
    """Trainable parameters of JSC-Three-Linear with hidden widths (h1, h2)."""
    h1, h2 = models._check_hidden(hidden)
    return mlp_params((models.N_FEATURES, h1, h2, models.N_CLASSES))
