"""Seeded, deterministic training of one network; validation through :func:`labhelpers.metrics.accuracy_loss`."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .. import metrics
from ..data import JSC, batches
from ..numerics import seed_everything
from .settings import TrainSettings, subsample


def train(model: nn.Module, data: JSC, settings: TrainSettings = TrainSettings(), *,
          progress: bool = True) -> pd.DataFrame:
    """Train in place with Adam on ``data.train``; return the per-epoch history.

    Uses ``settings``' epochs, batch_size, lr, seed (the batch order), max_train_rows and patience;
    the model is built (and initialised, with ``final_relu`` or not) by the caller. The same seed,
    model initialisation and data give identical weights. With ``patience``, training stops once the
    validation loss has not improved for that many epochs, and the weights of the best epoch are
    restored.
    """
    data = subsample(data, settings.max_train_rows)
    batch_size, patience = settings.batch_size, settings.patience
    if len(data.x_train) % batch_size == 1 and _has_batch_norm(model):
        raise ValueError(f"batch_size={batch_size} leaves a last batch of 1 of the {len(data.x_train)} training rows, "
                         f"and BatchNorm needs at least 2: choose another batch_size, e.g. {batch_size + 1}")
    generator = seed_everything(settings.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    best = (float("inf"), None, -1)
    rows = []
    bar = tqdm(range(1, settings.epochs + 1), desc="epochs", disable=not progress, leave=False)
    for epoch in bar:
        train_loss = _train_epoch(model, optimizer, data, batch_size, generator)
        val = metrics.accuracy_loss(model, data, "val")
        check_loss([train_loss, val["loss"]], epoch, settings.lr)
        rows.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val["loss"], "val_accuracy": val["accuracy"]})
        bar.set_postfix(val_acc=f"{val['accuracy']:.4f}")
        if val["loss"] < best[0]:
            best = (val["loss"], copy.deepcopy(model.state_dict()), epoch)
        elif patience is not None and epoch - best[2] >= patience:
            break
    if patience is not None and best[1] is not None:
        model.load_state_dict(best[1])
    model.eval()
    return pd.DataFrame(rows).set_index("epoch")


def _train_epoch(model, optimizer, data: JSC, batch_size: int, generator: torch.Generator) -> float:
    model.train()
    total, count = 0.0, 0
    for xb, yb in batches(data.x_train, data.y_train, batch_size, generator=generator):
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(xb)
        count += len(xb)
    return total / count


def check_loss(losses, epoch: int, lr: float, what: str = "the model") -> None:
    """ValueError if any loss is NaN/inf: a diverged run must stop, and nothing of it may be saved."""
    bad = [float(v) for v in np.ravel(losses) if not np.isfinite(v)]
    if bad:
        raise ValueError(f"training diverged: the loss of {what} became {bad[0]} in epoch {epoch} with lr={lr!r}; "
                         f"nothing was saved: use a smaller lr, e.g. 1e-3")


def _has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.BatchNorm1d) for m in model.modules())
