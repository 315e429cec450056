"""Train many small JSC-Three-Linear networks at once (Lab 4's architecture searches).

Training many three-layer MLPs one after another pays per-step overhead (autograd, a dozen small
kernels per layer, the optimizer) once per network. Here the networks are put into *buckets*; each
bucket stacks its networks' weights into ``(K, out, in)`` tensors, padded with zeros to the bucket's
largest hidden widths, and runs one ``torch.bmm`` per layer for all K, forward and backward written
out by hand. :func:`plan_buckets` trades padding waste against the number of buckets. The input is
shared: the input BatchNorm statistics are computed once per step for all networks.

Why the results equal separate training (``labhelpers.training.train`` with the same settings):

* each network is initialised exactly as ``models.build("jsc-three-linear", hidden=...)`` after
  ``torch.manual_seed(its seed)``;
* all networks see the same batches in the same order (one generator seeded with ``settings.seed``);
* the total loss is the *sum* of per-network mean losses, so each network's gradient is the
  gradient of its own mean loss; Adam is elementwise, so one Adam over the stacked tensors takes
  the same steps as one Adam per network;
* padded units start at exactly zero (weights and bias) and stay there: their pre-activation is
  exactly 0, ReLU's gradient at 0 is 0, so their gradient is 0 and Adam's update ``0 / (0 + eps)``
  is 0. They add exact zeros to the sums of the real units;
* BatchNorm uses the batch statistics of the (shared) input in training and the running statistics
  (momentum 0.1, unbiased variance) in evaluation, as ``nn.BatchNorm1d`` does.

What differs is only float rounding: ``bmm`` sums in another order than ``nn.Linear``'s
``addmm``. The test suite bounds the effect (tests/training/test_batched.py states the tolerance).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .. import models, validate
from ..data import JSC, batches
from ..numerics import num_threads, seed_everything, train_dtype
from .loop import check_loss
from .settings import TrainSettings, subsample

N_IN, N_OUT = models.N_FEATURES, models.N_CLASSES
EVAL_CHUNK = 8192
# Cost model for bucketing, in multiply-accumulates per row and network: one more bucket costs about
# as much time as this much padded work. Tuned on this machine (1 thread, batch 512): 25 networks of
# widths 16..80 take 7.8 ms per step with 3000 (9 buckets), 9.1 ms with 0 (25 exact buckets) and
# 11.9 ms with 20000 (2 buckets); 256 networks of widths 8..128 take 92 ms (78 buckets).
BUCKET_OVERHEAD_MACS = 3_000


@dataclass
class Trained:
    """Result of :func:`train_many`: one row per network, per-epoch history, optional modules."""

    table: pd.DataFrame
    history: pd.DataFrame
    models: list[nn.Module] = field(default_factory=list, repr=False)


# ----------------------------------------------------------------------------- specs and buckets

def _spec_list(hidden, seeds, settings: TrainSettings) -> list[tuple[int, int, int]]:
    """(h1, h2, init seed) per network; ``seeds`` is one int for all, one per network, or None (``n_seeds``)."""
    hidden = [models.check_hidden(h) for h in hidden]
    if not hidden:
        raise ValueError("hidden=[]: give at least one pair of hidden widths, e.g. [(16, 16)]")
    if seeds is None:
        seeds, hidden = settings.init_seeds(len(hidden)), hidden * settings.n_seeds
    elif settings.n_seeds != 1:
        raise ValueError(f"n_seeds={settings.n_seeds} with explicit seeds: give seeds (one per network) or "
                         "n_seeds, not both")
    seeds = [seeds] * len(hidden) if isinstance(seeds, int) else list(seeds)
    if len(seeds) != len(hidden):
        raise ValueError(f"seeds has {len(seeds)} entries for {len(hidden)} networks; give one per network or one int")
    for s in seeds:
        validate.non_negative_int("seed", s)
    return [(h1, h2, s) for (h1, h2), s in zip(hidden, seeds)]


def _macs(h1: int, h2: int) -> int:
    return N_IN * h1 + h1 * h2 + h2 * N_OUT


def plan_buckets(hidden: list[tuple[int, int]], overhead_macs: int = BUCKET_OVERHEAD_MACS) -> list[list[int]]:
    """Split networks into buckets that minimise padded work + per-bucket overhead.

    Identical architectures always share a bucket. The distinct ones are sorted by (h1, h2) and cut
    into contiguous runs by dynamic programming, where a bucket of K networks costs
    ``overhead_macs + K * macs(max h1, max h2)``. Returns lists of network indices.
    """
    archs = sorted(set(map(tuple, hidden)))
    members = {a: [i for i, h in enumerate(hidden) if tuple(h) == a] for a in archs}
    n = len(archs)
    best = [0.0] + [float("inf")] * n  # best[j]: cost of the first j distinct architectures
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        m1 = m2 = count = 0
        for i in range(j, 0, -1):  # bucket = archs[i-1 .. j-1]
            m1, m2 = max(m1, archs[i - 1][0]), max(m2, archs[i - 1][1])
            count += len(members[archs[i - 1]])
            cost = best[i - 1] + overhead_macs + count * _macs(m1, m2)
            if cost < best[j]:
                best[j], cut[j] = cost, i - 1
    buckets, j = [], n
    while j > 0:
        buckets.append([i for a in archs[cut[j]:j] for i in members[a]])
        j = cut[j]
    return buckets[::-1]


# ----------------------------------------------------------------------------- stacked networks

def _shapes(k: int, h1: int, h2: int) -> dict[str, tuple[int, int, int]]:
    """Feature-major shapes: weights (K, out, in) like ``nn.Linear.weight``, biases (K, out, 1)."""
    return {"gamma": (k, N_IN, 1), "beta": (k, N_IN, 1), "w1": (k, h1, N_IN), "b1": (k, h1, 1),
            "w2": (k, h2, h1), "b2": (k, h2, 1), "w3": (k, N_OUT, h2), "b3": (k, N_OUT, 1)}


def _numel(shape) -> int:
    return int(np.prod(shape))


class _Bucket:
    """K networks with hidden widths padded to (H1, H2), as views into one flat parameter vector.

    Activations are feature-major, (K, features, rows), so the logits come out as (K, 5, rows): the
    layout in which ``log_softmax`` over 5 classes is fast (5x faster than (K * rows, 5)). Forward and
    backward are written out by hand (no autograd): the gradients land directly in views of one flat
    gradient vector, so a single Adam steps all networks of all buckets at once.
    """

    def __init__(self, specs: list[tuple[int, int, int]], final_relu: bool, flat: torch.Tensor,
                 grad: torch.Tensor, offset: int):
        self.specs, self.final_relu = specs, final_relu
        self.h1, self.h2 = max(s[0] for s in specs), max(s[1] for s in specs)
        self.p, self.g = {}, {}
        for name, shape in _shapes(len(specs), self.h1, self.h2).items():
            n = _numel(shape)
            self.p[name] = flat[offset:offset + n].view(shape)
            self.g[name] = grad[offset:offset + n].view(shape)
            offset += n
        self.end = offset
        for i, (h1, h2, seed) in enumerate(specs):
            self._load(i, _init_model(h1, h2, seed, final_relu))

    @staticmethod
    def size(specs) -> int:
        h1, h2 = max(s[0] for s in specs), max(s[1] for s in specs)
        return sum(_numel(shape) for shape in _shapes(len(specs), h1, h2).values())

    @torch.no_grad()
    def _load(self, i: int, model: nn.Module) -> None:
        bn, l1, l2, l3 = (model.seq_blocks[j] for j in (0, 2, 4, 6))
        h1, h2 = l1.out_features, l2.out_features
        self.p["gamma"][i, :, 0] = bn.weight
        self.p["beta"][i, :, 0] = bn.bias
        self.p["w1"][i, :h1, :] = l1.weight
        self.p["b1"][i, :h1, 0] = l1.bias
        self.p["w2"][i, :h2, :h1] = l2.weight
        self.p["b2"][i, :h2, 0] = l2.bias
        self.p["w3"][i, :, :h2] = l3.weight
        self.p["b3"][i, :, 0] = l3.bias

    def forward(self, x_t: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """Logits (K, 5, B) from normalised, transposed inputs (16, B), and what backward needs."""
        p = self.p
        a0 = torch.addcmul(p["beta"], x_t, p["gamma"]).relu_()  # BatchNorm's affine part, then ReLU
        # bmm then add, not baddbmm: baddbmm with a broadcast bias takes a slow path on CPU
        # (10 ms instead of 0.06 ms for 25 x 512 x 16 x 16).
        a1 = torch.bmm(p["w1"], a0).add_(p["b1"]).relu_()
        a2 = torch.bmm(p["w2"], a1).add_(p["b2"]).relu_()
        out = torch.bmm(p["w3"], a2).add_(p["b3"])
        if self.final_relu:
            out = out.relu_()
        return out, (x_t, a0, a1, a2, out)

    def backward(self, cache: tuple, d_out: torch.Tensor) -> None:
        """Write d loss / d parameters into ``self.g``, given d loss / d logits (K, 5, B)."""
        x_t, a0, a1, a2, out = cache
        p, g = self.p, self.g
        d = _relu_grad(d_out, out) if self.final_relu else d_out
        for w, b, a_in in (("w3", "b3", a2), ("w2", "b2", a1), ("w1", "b1", a0)):
            torch.bmm(d, a_in.transpose(1, 2), out=g[w])
            torch.sum(d, dim=2, keepdim=True, out=g[b])
            d = _relu_grad(torch.bmm(p[w].transpose(1, 2), d), a_in)
        torch.sum(d * x_t, dim=2, keepdim=True, out=g["gamma"])
        torch.sum(d, dim=2, keepdim=True, out=g["beta"])

    @torch.no_grad()
    def to_model(self, i: int, norm: "_InputNorm") -> nn.Module:
        """Network i of the bucket as a plain JSC-Three-Linear module (eval mode)."""
        h1, h2, _ = self.specs[i]
        model = models.build("jsc-three-linear", hidden=[h1, h2], final_relu=self.final_relu)
        bn, l1, l2, l3 = (model.seq_blocks[j] for j in (0, 2, 4, 6))
        p = self.p
        bn.weight.copy_(p["gamma"][i, :, 0]), bn.bias.copy_(p["beta"][i, :, 0])
        bn.running_mean.copy_(norm.mean), bn.running_var.copy_(norm.var), bn.num_batches_tracked.fill_(norm.tracked)
        l1.weight.copy_(p["w1"][i, :h1, :]), l1.bias.copy_(p["b1"][i, :h1, 0])
        l2.weight.copy_(p["w2"][i, :h2, :h1]), l2.bias.copy_(p["b2"][i, :h2, 0])
        l3.weight.copy_(p["w3"][i, :, :h2]), l3.bias.copy_(p["b3"][i, :, 0])
        return model.eval()


def _init_model(h1: int, h2: int, seed: int, final_relu: bool) -> nn.Module:
    torch.manual_seed(seed)
    return models.build("jsc-three-linear", hidden=[h1, h2], final_relu=final_relu)


def _relu_grad(d: torch.Tensor, activation: torch.Tensor) -> torch.Tensor:
    """ReLU backward as autograd computes it: pass d where the ReLU output is > 0, else 0."""
    return torch.ops.aten.threshold_backward(d, activation, 0)


def _loss_and_grad(logits: torch.Tensor, onehot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-network mean cross-entropy (K,) and its gradient w.r.t. the (K, 5, B) logits.

    ``onehot`` is the (5, B) one-hot target. The gradient is (softmax - onehot) / B, the same
    numbers autograd gives for ``F.cross_entropy(..., reduction="mean")``.
    """
    b = logits.shape[2]
    logp = torch.log_softmax(logits, dim=1)
    losses = -(logp * onehot).sum(dim=1).mean(dim=1)
    return losses, logp.exp_().sub_(onehot).div_(b)


class _InputNorm:
    """The shared input BatchNorm1d(16) statistics (every network sees the same input batches)."""

    def __init__(self, dtype: torch.dtype = torch.float32, eps: float = 1e-5, momentum: float = 0.1):
        self.eps, self.momentum, self.dtype = eps, momentum, dtype
        self.mean, self.var, self.tracked = torch.zeros(N_IN, dtype=dtype), torch.ones(N_IN, dtype=dtype), 0

    def train_step(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise with the batch statistics, update the running ones; returns (16, B)."""
        x = x.to(self.dtype)
        var, mean = torch.var_mean(x, dim=0, correction=0)
        n = len(x)
        self.mean.mul_(1 - self.momentum).add_(mean, alpha=self.momentum)
        self.var.mul_(1 - self.momentum).add_(var * (n / max(n - 1, 1)), alpha=self.momentum)
        self.tracked += 1
        return ((x - mean) * torch.rsqrt(var + self.eps)).T

    def eval(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.dtype)
        return ((x - self.mean) * torch.rsqrt(self.var + self.eps)).T


# ----------------------------------------------------------------------------- training

def train_many(hidden, data: JSC, settings: TrainSettings = TrainSettings(), *, seeds=None,
               return_models: bool = False, evaluate_every_epoch: bool = True,
               overhead_macs: int = BUCKET_OVERHEAD_MACS, threads: int | None = 1, dtype: torch.dtype | None = None,
               progress: bool = True) -> Trained:
    """Train JSC-Three-Linear networks with the given hidden widths together, with Adam.

    ``hidden``: a list of (h1, h2). ``settings``: epochs, batch_size, lr, final_relu, max_train_rows,
    and ``seed``, which fixes the batch order. Init seeds: by default every architecture is trained
    from ``settings.seed, seed + 1, ...`` (``n_seeds`` networks each; the table lists all of ``hidden``
    per init seed); ``seeds`` gives instead one int for all networks or one per network (then
    ``n_seeds`` must be 1). ``patience`` is not supported (every network runs every epoch).
    Network k ends with the weights ``training.train`` would give ``models.build(...)`` initialised
    after ``torch.manual_seed(seeds[k])`` and trained with the same settings (up to float rounding).

    ``threads`` fixes torch's intra-op threads while training (None: leave the setting alone). One
    thread is the default: on a shared 2-core machine a second thread that has to wait for a busy
    core made a 25-network step 30x slower (1.26 s instead of 39 ms), while on an idle machine it
    gains less than 2x.

    ``dtype`` is the precision of training and evaluation (default ``numerics.train_dtype()``,
    float64: the accuracies then do not move between numeric paths, see ``labhelpers.numerics``).
    The returned modules are float32, as the checkpoints are.

    Returns :class:`Trained`: ``table`` has one row per network (h1, h2, seed, params, train_loss and
    val/test accuracy and loss after the last epoch), ``history`` one row per network and epoch.
    """
    with num_threads(threads):
        return _train_many(hidden, data, settings, seeds, return_models, evaluate_every_epoch, overhead_macs,
                           dtype or train_dtype(), progress)


def _train_many(hidden, data, settings: TrainSettings, seeds, return_models, evaluate_every_epoch, overhead_macs,
                dtype, progress) -> Trained:
    specs = _spec_list(hidden, seeds, settings)
    if settings.patience is not None:
        raise ValueError(f"patience={settings.patience!r}: the batched trainer runs every epoch; leave patience None")
    epochs, batch_size, lr = settings.epochs, settings.batch_size, settings.lr
    data = subsample(data, settings.max_train_rows)
    generator = seed_everything(settings.seed)
    buckets, flat = _build_buckets(specs, settings.final_relu, overhead_macs, dtype)
    norm = _InputNorm(dtype)
    optimizer = torch.optim.Adam([flat], lr=lr)
    history = []
    bar = tqdm(range(1, epochs + 1), desc=f"epochs ({len(specs)} networks)", disable=not progress, leave=False)
    for epoch in bar:
        train_loss = _train_epoch(buckets, norm, optimizer, data, batch_size, generator, len(specs))
        for k in np.flatnonzero(~np.isfinite(train_loss))[:1]:
            check_loss(train_loss[k], epoch, lr, f"network hidden={specs[k][:2]} seed={specs[k][2]}")
        if evaluate_every_epoch or epoch == epochs:
            val = _evaluate(buckets, norm, *data.split("val"), len(specs))
            history.append(pd.DataFrame({"network": range(len(specs)), "epoch": epoch, "train_loss": train_loss,
                                         "val_loss": val["loss"], "val_accuracy": val["accuracy"]}))
    test = _evaluate(buckets, norm, *data.split("test"), len(specs))
    history = pd.concat(history, ignore_index=True)
    table = _table(specs, history[history["epoch"] == history["epoch"].max()], test)
    nets = _unstack(buckets, norm, len(specs)) if return_models else []
    return Trained(table=table, history=history, models=nets)


def _build_buckets(specs, final_relu: bool, overhead_macs: int, dtype: torch.dtype = torch.float32):
    """Buckets as views into one flat parameter tensor (of ``dtype``) whose ``.grad`` the buckets fill in."""
    groups = plan_buckets([s[:2] for s in specs], overhead_macs)
    total = sum(_Bucket.size([specs[i] for i in idx]) for idx in groups)
    flat = torch.zeros(total, dtype=dtype, requires_grad=True)
    flat.grad = torch.zeros(total, dtype=dtype)
    buckets, offset = [], 0
    with torch.no_grad():
        for idx in groups:
            bucket = _Bucket([specs[i] for i in idx], final_relu, flat, flat.grad, offset)
            buckets.append((idx, bucket))
            offset = bucket.end
    return buckets, flat


@torch.no_grad()
def _train_epoch(buckets, norm, optimizer, data: JSC, batch_size: int, generator, n: int) -> np.ndarray:
    totals, count = np.zeros(n), 0
    for xb, yb in batches(data.x_train, data.y_train, batch_size, generator=generator):
        x_t = norm.train_step(xb)
        onehot = F.one_hot(yb, N_OUT).T.to(norm.dtype)
        for idx, bucket in buckets:  # every bucket overwrites its whole slice of flat.grad
            logits, cache = bucket.forward(x_t)
            losses, d_logits = _loss_and_grad(logits, onehot)
            bucket.backward(cache, d_logits)
            totals[idx] += losses.numpy().astype(np.float64) * len(xb)
        optimizer.step()
        count += len(xb)
    return totals / count


@torch.no_grad()
def _evaluate(buckets, norm, x: torch.Tensor, y: torch.Tensor, n: int) -> dict[str, np.ndarray]:
    """Micro accuracy and mean cross-entropy per network over all of (x, y), in eval mode."""
    correct, loss = np.zeros(n), np.zeros(n)
    for start in range(0, len(x), EVAL_CHUNK):
        xb, yb = x[start:start + EVAL_CHUNK], y[start:start + EVAL_CHUNK]
        x_t = norm.eval(xb)
        for idx, bucket in buckets:
            logits, _ = bucket.forward(x_t)
            ce = F.cross_entropy(logits, yb.expand(len(logits), -1), reduction="none")
            loss[idx] += ce.double().sum(dim=1).numpy()
            correct[idx] += (logits.argmax(dim=1) == yb).sum(dim=1).numpy()
    return {"accuracy": correct / len(x), "loss": loss / len(x)}


def _table(specs, last: pd.DataFrame, test: dict) -> pd.DataFrame:
    table = pd.DataFrame([{"h1": h1, "h2": h2, "seed": s, "params": models.mlp_params((N_IN, h1, h2, N_OUT))}
                          for h1, h2, s in specs])
    last = last.set_index("network").sort_index()
    for col in ("train_loss", "val_loss", "val_accuracy"):
        table[col] = last[col].to_numpy()
    table["test_loss"], table["test_accuracy"] = test["loss"], test["accuracy"]
    return table.rename_axis("network")


def _unstack(buckets, norm, n: int) -> list[nn.Module]:
    nets: list = [None] * n
    for idx, b in buckets:
        for i, net in enumerate(idx):
            nets[net] = b.to_model(i, norm)
    return nets
