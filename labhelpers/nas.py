"""Lab 4 architecture search over JSC-Three-Linear: spaces, exhaustive ground truth, uniform multipliers.

The seed report searched four independent multipliers a, b, c, d (Linear(16, 16a), Linear(16b, 16c),
Linear(16d, 5)), which builds broken networks unless b = a and d = c. Here the per-layer search is
over the two *hidden widths* (h1, h2) instead: Linear(16, h1) -> Linear(h1, h2) -> Linear(h2, 5),
always consistent. Every architecture is trained from its own fresh initialisation
(``torch.manual_seed(seed)`` then ``models.build``) on the same batch order (``seed``), so the same
architecture and seed retrain to the same numbers, alone or in a batch (see
``labhelpers.training.batched``). Training settings are one :class:`labhelpers.training.TrainSettings`.
With ``n_seeds`` an architecture is trained from the init seeds ``seed, seed + 1, ...`` and scored by
the mean: with MASE's final ReLU on the logits the seed-to-seed spread of one architecture is
larger than the differences between widths (Lab 4, task 2), so ``final_relu`` is a setting too.

The search-space kind ``"architecture"`` (every trial trains its architecture from scratch with
:func:`evaluate_architecture`) lives in ``labhelpers.search.architecture_kind``.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from torch import nn

from . import models, validate
from .data import JSC
from .training import TrainSettings, Trained, train_many

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


# ----------------------------------------------------------------------------- training

def ground_truth(data: JSC, hidden=None, settings: TrainSettings = TrainSettings(), *, costs: bool = True,
                 progress: bool = True) -> pd.DataFrame:
    """Train every architecture of ``hidden`` (default: the 25 per-layer ones) and tabulate them.

    Each architecture is trained ``settings.n_seeds`` times, from the init seeds ``seed, seed + 1, ...``,
    all on the batch order of ``settings.seed``. One row per architecture: h1, h2, then the mean over init seeds of
    train_loss, val_loss, val_accuracy, test_loss, test_accuracy after the last epoch (and with
    ``n_seeds > 1`` the standard deviations val_accuracy_std, test_accuracy_std), then (``costs``)
    params, size_bits, macs, flops, bops, mac_bitops from ``labhelpers.metrics``. Trained with
    :func:`labhelpers.training.train_many`; with ``settings.max_train_rows`` only the first rows of the
    training split are used (say so when you report).
    """
    hidden = grid(PER_LAYER_WIDTHS) if hidden is None else [tuple(h) for h in hidden]
    duplicates = sorted({h for h in hidden if hidden.count(h) > 1})
    if duplicates:
        raise ValueError(f"hidden lists {duplicates} more than once; give each architecture once")
    result = train_many(hidden, data, settings, evaluate_every_epoch=False, progress=progress)
    table = _mean_over_seeds(result.table, settings.n_seeds)
    return with_costs(table, settings.final_relu) if costs else table


def save_table(table: pd.DataFrame, path: str | Path, settings: TrainSettings, context: dict, *,
               force: bool = False) -> Path:
    """Write a ground-truth table to ``path`` (CSV, floats exact) with its settings and provenance in ``path``.json.

    ``settings``: the training settings that produced it; ``context``: the rest of what produced it
    (e.g. dataset_fingerprint, widths, dtype). Stored together, flat, as ``"settings"``;
    :func:`load_table` refuses the table when asked for other ones.
    """
    import json

    import torch

    from .numerics import platform_info

    path = Path(path)
    validate.refuse_overwrite("table", [path, path.with_suffix(".json")], force)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    meta = {"settings": _stored(settings, context), "rows": len(table), "torch": torch.__version__, "platform": platform_info()}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


def load_table(path: str | Path, settings: TrainSettings, context: dict) -> pd.DataFrame:
    """The ground-truth table saved by :func:`save_table`; ValueError if made with other ``settings`` or ``context``."""
    path = validate.table_made_with("table", path, _stored(settings, context),
                                    make="train it instead (the notebook's retrain_large = True)",
                                    redo="retrain it (retrain_large = True)")
    return pd.read_csv(path)


def _stored(settings: TrainSettings, context: dict) -> dict:
    overlap = sorted(set(context) & set(settings.to_dict()))
    if overlap:
        raise ValueError(f"context repeats the training setting(s) {overlap}; give them in settings only")
    return {**settings.to_dict(), **context}


def _mean_over_seeds(table: pd.DataFrame, n_seeds: int) -> pd.DataFrame:
    columns = ["train_loss", "val_loss", "val_accuracy", "test_loss", "test_accuracy"]
    groups = table.groupby(["h1", "h2"], sort=False)
    out = groups[columns].mean()
    if n_seeds > 1:
        out["val_accuracy_std"] = groups["val_accuracy"].std()
        out["test_accuracy_std"] = groups["test_accuracy"].std()
    return out.reset_index()


def uniform_search(data: JSC, multipliers=MULTIPLIERS, settings: TrainSettings = TrainSettings(), *,
                   progress: bool = True) -> Trained:
    """Task 2: JSC-Three-Linear with every linear layer widened by one multiplier, trained per multiplier.

    Each multiplier is trained from ``settings.n_seeds`` init seeds (``seed, seed + 1, ...``) on the batch
    order of ``settings.seed``. Returns the batched trainer's result: ``table`` and ``history`` gain columns
    ``multiplier`` and (history) ``seed``; ``models`` holds every trained module, in table order.
    """
    multipliers = list(multipliers)
    labels = multipliers * settings.n_seeds
    result = train_many(uniform_hidden(multipliers), data, settings, return_models=True, progress=progress)
    seeds = result.table["seed"].tolist()
    result.table.insert(0, "multiplier", labels)
    result.history.insert(0, "multiplier", [labels[k] for k in result.history["network"]])
    result.history.insert(1, "seed", [seeds[k] for k in result.history["network"]])
    return result


def seed_summary(table: pd.DataFrame, by: str) -> pd.DataFrame:
    """Mean and standard deviation over init seeds of val/test accuracy, per value of ``by``."""
    groups = table.groupby(by)
    out = groups[["val_accuracy", "test_accuracy"]].agg(["mean", "std"])
    out.columns = [f"{metric}_{stat}" for metric, stat in out.columns]
    return out.assign(seeds=groups.size(), params=groups["params"].first())


def save_checkpoints(result: Trained, data: JSC, directory: str | Path, settings: TrainSettings, *,
                     prefix: str = "jsc-three-linear-x") -> list[Path]:
    """Write the uniform-multiplier models of init seed ``settings.seed`` to ``directory/<prefix><m>.pt``.

    ``settings``: those :func:`uniform_search` trained with (their seed and epochs go into the metadata).
    """
    paths, seed = [], settings.seed
    for model, row in zip(result.models, result.table.itertuples()):
        if row.seed != seed:
            continue
        final_relu = isinstance(model.seq_blocks[-1], nn.ReLU)
        path = Path(directory) / f"{prefix}{row.multiplier}.pt"
        paths.append(models.save(model, path, name="jsc-three-linear",
                                 model_kwargs={"hidden": [row.h1, row.h2], "final_relu": final_relu},
                                 dataset=data.source, dataset_fingerprint=data.fingerprint, seed=seed,
                                 epochs_run=settings.epochs, channel_multiplier=row.multiplier, params=row.params,
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
    h1, h2 = models.check_hidden(hidden)
    return models.mlp_params((models.N_FEATURES, h1, h2, models.N_CLASSES))


# ----------------------------------------------------------------------------- costs

def costs_of(hidden, final_relu: bool = True) -> dict[str, float]:
    """params, size_bits, macs, flops, bops, mac_bitops of float JSC-Three-Linear (``labhelpers.metrics``).

    ``final_relu``: the network as trained, with or without the ReLU on the logits (its 5 comparisons
    count as FLOPs).
    """
    from . import graph, metrics

    return metrics.costs(graph.trace(models.build("jsc-three-linear", hidden=list(hidden), final_relu=final_relu)))


def with_costs(table: pd.DataFrame, final_relu: bool = True) -> pd.DataFrame:
    """``table`` (with h1, h2 columns) plus the cost columns of every architecture (see :func:`costs_of`)."""
    rows = pd.DataFrame([costs_of(h, final_relu) for h in zip(table["h1"], table["h2"])], index=table.index)
    return pd.concat([table.drop(columns=[c for c in rows.columns if c in table.columns]), rows], axis=1)


# ----------------------------------------------------------------------------- search kind "architecture"

ARCHITECTURE_METRICS = ("accuracy", "loss", "params", "size_bits", "macs", "flops", "bops", "mac_bitops")


def evaluate_architecture(hidden, data: JSC, settings: TrainSettings = TrainSettings(), *,
                          split: str = "val") -> dict[str, float]:
    """Train one architecture from scratch (``n_seeds`` seeded inits) and measure it.

    Returns accuracy and loss on ``split`` (means over the init seeds) and the costs. The same
    arguments always give the same numbers, equal to the architecture's row of :func:`ground_truth`.
    """
    if split not in ("val", "test"):
        raise ValueError(f"split={split!r}: trials are scored on 'val' (or 'test'), not on the training rows")
    table = ground_truth(data, [tuple(hidden)], settings, progress=False)
    measured = {"accuracy": table[f"{split}_accuracy"], "loss": table[f"{split}_loss"],
                **{c: table[c] for c in ARCHITECTURE_METRICS if c not in ("accuracy", "loss")}}
    return {name: column.iloc[0].item() for name, column in measured.items()}
