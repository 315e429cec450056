"""Metrics of a (quantized) graph: accuracy/loss, latency, size in bits, MACs/FLOPs and BOPs.

Conventions (all counts are per jet, i.e. for one input row):

* **size_bits**: every parameter and buffer, each element at its actual width. A quantized
  ``LinearInteger`` stores ``weight_width`` bits per weight and ``bias_width`` per bias; everything
  else counts its dtype's bits (float32 = 32). BatchNorm's weight, bias, running_mean and
  running_var are included; its ``num_batches_tracked`` counter is excluded, since inference never
  reads it.
* **macs / flops** (1 MAC = 2 FLOPs): Linear n->m does n*m MACs (the bias add is folded into the
  accumulation, as ``torch.utils.flop_counter.FlopCounterMode`` counts it: 2*n*m FLOPs). BatchNorm1d
  at inference is a per-feature scale and shift, folded to 1 MAC per feature. ReLU does 0 MACs and
  1 FLOP (a comparison) per element, so a graph's FLOPs are 2*MACs plus its ReLU elements.
* **bops** (bit operations of Baskin et al., used in the FastML jet-tagging quantization papers):
  a dense layer with n inputs and m outputs at activation width b_a and weight width b_w costs
  ``m*n*(b_a*b_w + b_a + b_w + log2(n))``. Float layers count 32 bits. Only dense layers are
  counted, as in those papers (BatchNorm and ReLU contribute 0).
* **mac_bitops**: the simpler ``macs * b_a * b_w`` of the dense layers, named differently on purpose.
* **latency_ms**: wall-clock time of the PyTorch forward pass on this CPU. Fake quantization adds
  work in float, so it is *not* the latency of fixed-point hardware.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.utils import benchmark

from torchmetrics.functional.classification import multiclass_accuracy

from . import data as _data, models as _models
from .data import JSC
from .graph import Graph, module_type, trace
from .numerics import num_threads
from .passes.quantize import quantize_transform_pass
from .validate import one_of, positive_int

FLOAT_BITS = 32
COST_COLUMNS = ("params", "size_bits", "macs", "flops", "bops", "mac_bitops")
SKIPPED_BUFFERS = ("num_batches_tracked",)
EVAL_BATCH = 65536
DIRECTIONS = ("maximize", "minimize")  # as Optuna and labhelpers.search spell them
COST_CACHE_SIZE = 100_000  # distinct configurations whose cost metrics an Evaluator remembers


# ----------------------------------------------------------------------------- accuracy and loss

def accuracy_loss(model: nn.Module | Graph, data: JSC, split: str = "val") -> dict[str, float]:
    """Micro accuracy and mean cross-entropy over the whole named split (``train``, ``val``, ``test``)."""
    return accuracy_loss_xy(_module(model), *data.split(split))


@torch.no_grad()
def accuracy_loss_xy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = EVAL_BATCH,
                     num_classes: int = 5) -> dict[str, float]:
    """Micro accuracy and mean cross-entropy over the whole of (x, y), in large batches.

    Accuracy is *micro* accuracy (the fraction of correctly classified jets), computed by torchmetrics'
    ``multiclass_accuracy`` over the predictions of the whole split on every call. MASE's runner uses
    macro accuracy and never resets its metric, so every trial there averages over all earlier
    trials; here nothing carries over between calls.
    """
    was_training = model.training
    model.eval()
    predictions, loss_sum = [], 0.0
    for start in range(0, len(x), batch_size):
        logits = model(x[start:start + batch_size])
        loss_sum += _cross_entropy_sum(logits, y[start:start + batch_size])
        predictions.append(logits.argmax(dim=1))  # what torchmetrics does with logits
    model.train(was_training)
    accuracy = multiclass_accuracy(torch.cat(predictions), y, num_classes=num_classes, average="micro",
                                   validate_args=False)  # argmax indices and the data's labels: valid by construction
    return {"accuracy": float(accuracy), "loss": loss_sum / len(x)}


def _cross_entropy_sum(logits: torch.Tensor, target: torch.Tensor) -> float:
    """``F.cross_entropy(logits, target, reduction="sum")``, bit for bit, about four times faster.

    torch's log-softmax along a row of 5 classes is slow; along the other axis of the transposed
    logits it computes the same values (checked equal element by element, and by
    ``benchmarks/bench_quant_eval.py --check`` on every shipped Lab 3 configuration).
    """
    log_probabilities = torch.log_softmax(logits.t().contiguous(), dim=0).t()
    return F.nll_loss(log_probabilities, target, reduction="sum").item()


def _module(model: nn.Module | Graph) -> nn.Module:
    return model.model if isinstance(model, Graph) else model


# ----------------------------------------------------------------------------- latency

def latency(model: nn.Module | Graph, x: torch.Tensor, *, threads: int = 1, min_run_time: float = 0.2,
            warmup: int = 10) -> dict[str, float]:
    """Median and interquartile range (ms) of one forward pass on ``x``, with a fixed thread count.

    Uses ``torch.utils.benchmark.Timer.blocked_autorange`` after ``warmup`` untimed calls. This is
    CPU time of PyTorch ops: fake-quantized layers are slower than float ones here, while fixed-point
    hardware would be faster. Do not read it as hardware latency.
    """
    module = _module(model)
    was_training = module.training
    module.eval()
    with torch.no_grad():
        for _ in range(warmup):
            module(x)
    timer = benchmark.Timer(stmt="with torch.no_grad(): module(x)", globals={"module": module, "x": x, "torch": torch},
                            num_threads=threads)
    m = timer.blocked_autorange(min_run_time=min_run_time)
    module.train(was_training)
    return {"latency_ms": m.median * 1e3, "latency_iqr_ms": m.iqr * 1e3}


# ----------------------------------------------------------------------------- bit widths and size

def widths(module: nn.Module) -> dict[str, int]:
    """Bit widths of a layer's input, weight and bias (float layers: 32)."""
    return {"data_in_width": getattr(module, "data_in_width", FLOAT_BITS),
            "weight_width": getattr(module, "weight_width", FLOAT_BITS),
            "bias_width": getattr(module, "bias_width", FLOAT_BITS)}


def _dtype_bits(t: torch.Tensor) -> int:
    info = torch.finfo(t.dtype) if t.dtype.is_floating_point else torch.iinfo(t.dtype)
    return info.bits


def tensor_bits(module: nn.Module) -> dict[str, tuple[int, int]]:
    """``{tensor name: (elements, bits per element)}`` of a module's own parameters and buffers."""
    tensors = dict(module.named_parameters(recurse=False))
    tensors.update((k, v) for k, v in module.named_buffers(recurse=False) if k not in SKIPPED_BUFFERS)
    stored = {"weight": "weight_width", "bias": "bias_width"}
    return {name: (t.numel(), getattr(module, stored.get(name, ""), None) or _dtype_bits(t))
            for name, t in tensors.items()}


def size_bits(module: nn.Module) -> int:
    """Bits to store a module's own parameters and buffers at their actual widths."""
    return sum(n * bits for n, bits in tensor_bits(module).values())


# ----------------------------------------------------------------------------- MACs, FLOPs, BOPs

def dense_bops(n: int, m: int, b_a: int, b_w: int) -> float:
    """Baskin et al. bit operations of a dense layer n -> m: ``m*n*(b_a*b_w + b_a + b_w + log2 n)``."""
    return m * n * (b_a * b_w + b_a + b_w + math.log2(n))


def _linear_costs(module: nn.Linear, elements: int) -> dict:
    n, m = module.in_features, module.out_features
    w = widths(module)
    b_a, b_w = w["data_in_width"], w["weight_width"]
    return {"macs": n * m, "flops": 2 * n * m, "bops": dense_bops(n, m, b_a, b_w), "mac_bitops": n * m * b_a * b_w, **w}


def _batch_norm_costs(module: nn.BatchNorm1d, elements: int) -> dict:
    return {"macs": elements, "flops": 2 * elements, "bops": 0.0, "mac_bitops": 0}


def _relu_costs(module: nn.Module, elements: int) -> dict:
    return {"macs": 0, "flops": elements, "bops": 0.0, "mac_bitops": 0}


_COSTS: dict[str, Callable[[nn.Module, int], dict]] = {
    "linear": _linear_costs, "batch_norm1d": _batch_norm_costs, "relu": _relu_costs,
}


def _output_elements(graph: Graph) -> dict[str, int]:
    """Output elements per jet of every module node, read off the layers (no forward pass needed).

    Linear gives out_features, BatchNorm1d num_features; other modules (ReLU) are elementwise and
    keep the size of their input. The graph's input has the first layer's in/num features.
    """
    modules = graph.modules
    first = next(iter(modules.values()))
    n_in = getattr(first, "in_features", None) or getattr(first, "num_features")
    sizes = {}
    for node in graph.model.graph.nodes:
        if node.op == "placeholder":
            sizes[node.name] = n_in
        elif node.op == "call_module":
            m = modules[node.name]
            source = node.args[0].name if node.args and isinstance(node.args[0], fx.Node) else None
            sizes[node.name] = getattr(m, "out_features", None) or getattr(m, "num_features", None) or sizes[source]
    return {name: sizes[name] for name in modules}


def _layer_rows(graph: Graph) -> list[dict]:
    elements = _output_elements(graph)
    rows = []
    for node, module in graph.modules.items():
        kind = module_type(module)
        if kind not in _COSTS:
            raise ValueError(f"node {node!r} is a {kind}; metrics know {sorted(_COSTS)}")
        params = sum(p.numel() for p in module.parameters(recurse=False))
        rows.append({"node": node, "type": kind, "params": params, "size_bits": size_bits(module),
                     **_COSTS[kind](module, elements[node])})
    return rows


def layer_table(graph: Graph) -> pd.DataFrame:
    """Per-layer params, size_bits, macs, flops, bops, mac_bitops and widths, with a ``total`` row."""
    table = pd.DataFrame(_layer_rows(graph)).set_index("node")
    total = table[list(COST_COLUMNS)].sum()
    table.loc["total", list(COST_COLUMNS)] = total
    table.loc["total", "type"] = ""
    ints = [c for c in COST_COLUMNS if c != "bops"]
    table[ints] = table[ints].astype("int64")
    width_cols = [c for c in table.columns if c.endswith("_width")]
    table[width_cols] = table[width_cols].astype("Int64")
    return table


def costs(graph: Graph) -> dict[str, float]:
    """Total params, size_bits, macs, flops, bops and mac_bitops of a graph."""
    rows = _layer_rows(graph)
    return {c: sum(r[c] for r in rows) for c in COST_COLUMNS}


# ----------------------------------------------------------------------------- all metrics of one configuration

def measure(graph: Graph, data: JSC, split: str = "val", *, with_latency: bool = False,
            latency_batch: int = 1, cost_metrics: dict | None = None) -> dict[str, float]:
    """accuracy, loss, size_bits, macs, flops, bops, mac_bitops (+ latency_ms, latency_iqr_ms).

    ``cost_metrics``: the graph's :func:`costs` when the caller already knows them.
    """
    result = {**accuracy_loss(graph, data, split), **(cost_metrics or costs(graph))}
    if with_latency:
        result.update(latency(graph, data.split(split)[0][:latency_batch]))
    return result


@dataclass
class Evaluator:
    """``evaluate(pass_args) -> metrics``: apply ``transform`` to the float ``graph``, then :func:`measure`.

    Every call starts from the same float graph (passes never modify their input). ``threads`` fixes
    torch's intra-op threads during the call (1 by default: these layers are too small to gain from
    more, and on a shared machine extra threads wait on each other); None leaves the setting alone.
    The cost metrics depend only on the graph and ``pass_args``, so they are computed once per
    distinct ``pass_args``. ``checkpoint`` records where the graph came from.
    """
    graph: Graph
    data: JSC
    transform: Callable = quantize_transform_pass
    split: str = "val"
    with_latency: bool = False
    threads: int | None = 1
    checkpoint: str | None = None
    _costs: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        one_of("split", self.split, ("train", "val", "test"))
        if self.threads is not None:
            positive_int("threads", self.threads)

    def __call__(self, pass_args: dict) -> dict[str, float]:
        with num_threads(self.threads):
            transformed, _ = self.transform(self.graph, pass_args)
            return measure(transformed, self.data, self.split, with_latency=self.with_latency,
                           cost_metrics=self._cost_metrics(transformed, repr(pass_args)))

    def _cost_metrics(self, transformed: Graph, key: str) -> dict[str, float]:
        if key not in self._costs:
            if len(self._costs) >= COST_CACHE_SIZE:
                self._costs.clear()
            self._costs[key] = costs(transformed)
        return self._costs[key]


def evaluator(graph: Graph, data: JSC, *, transform=quantize_transform_pass, split: str = "val",
              with_latency: bool = False, threads: int | None = 1) -> Evaluator:
    """An :class:`Evaluator` of ``graph`` (float) on ``data``'s ``split``."""
    return Evaluator(graph, data, transform, split, with_latency, threads)


def load_checkpoint(model: str, checkpoint: str | None = None, *, dataset: str = "sim",
                    data_path: str | None = None) -> tuple[nn.Module, str, JSC]:
    """``(model, checkpoint path, data)``: a trained model (default ``checkpoints/<model>.pt``) and the data it fits."""
    one_of("model", model, sorted(_models.MODELS))
    checkpoint = checkpoint or f"checkpoints/{model}.pt"
    jsc = _data.load_jsc(dataset, data_path, verbose=False)
    loaded, _ = _models.load(checkpoint, expected_model=model, fingerprint=jsc.fingerprint)
    return loaded, checkpoint, jsc


def load_evaluator(model: str, checkpoint: str | None = None, *, dataset: str = "sim", data_path: str | None = None,
                   split: str = "val", transform=quantize_transform_pass, with_latency: bool = False,
                   threads: int | None = 1) -> Evaluator:
    """Checkpoint -> float graph -> :class:`Evaluator`: the one composition the CLI, search and notebooks share."""
    loaded, checkpoint, jsc = load_checkpoint(model, checkpoint, dataset=dataset, data_path=data_path)
    return Evaluator(trace(loaded), jsc, transform, split, with_latency, threads, checkpoint)


# ----------------------------------------------------------------------------- combining metrics

def weighted_sum(metrics: dict[str, float], weights: dict[str, float]) -> float:
    """``sum(weights[k] * metrics[k])``: give costs negative weights to maximise the result."""
    missing = sorted(set(weights) - set(metrics))
    if missing:
        raise ValueError(f"weights name metrics {missing} that are not measured; available: {sorted(metrics)}")
    return float(sum(w * metrics[k] for k, w in weights.items()))


def pareto_front(table: pd.DataFrame, objectives: dict[str, str]) -> pd.DataFrame:
    """Rows of ``table`` that no other row dominates; ``objectives`` maps column -> 'maximize' or 'minimize'.

    Returned sorted by the first objective. Ties (equal on every objective) are all kept.
    """
    for column, direction in objectives.items():
        one_of(f"objectives[{column!r}]", direction, DIRECTIONS)
    missing = sorted(set(objectives) - set(table.columns))
    if missing:
        raise ValueError(f"objectives {missing} are not columns of the table; columns: {list(table.columns)}")
    costs_ = np.stack([table[k].to_numpy(float) * (-1 if d == "maximize" else 1) for k, d in objectives.items()], axis=1)
    dominated = np.zeros(len(table), dtype=bool)
    for i in range(len(table)):
        no_worse = (costs_ <= costs_[i]).all(axis=1)
        better = (costs_ < costs_[i]).any(axis=1)
        dominated[i] = (no_worse & better).any()
    first = next(iter(objectives))
    return table[~dominated].sort_values(first, ascending=objectives[first] == "minimize")


# ----------------------------------------------------------------------------- is a difference real?

def binomial_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n`` (e.g. replays out of ``n`` that reached the optimum).

    Unlike ``p +- z*sqrt(p(1-p)/n)`` it stays inside [0, 1] and is not empty at k = 0 or k = n:
    20 of 20 gives (0.839, 1.0) at 95 %.
    """
    if not (0 <= k <= n and n > 0):
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p, z2 = k / n, z * z / n
    centre, half = (p + z2 / 2) / (1 + z2), z * math.sqrt(p * (1 - p) / n + z2 / (4 * n)) / (1 + z2)
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar(correct_a, correct_b) -> dict[str, float]:
    """Exact McNemar test of two classifiers scored on the same rows (booleans: row classified correctly).

    Only the discordant rows count: ``a_only`` (A right, B wrong) and ``b_only``. Under "equally accurate"
    each discordant row is a fair coin, so the two-sided p-value is the exact binomial tail
    ``min(1, 2 * P(X <= min(a_only, b_only)))`` with X ~ Binomial(a_only + b_only, 1/2).
    """
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"correct_a and correct_b must score the same rows, got shapes {a.shape} and {b.shape}")
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    n = a_only + b_only
    tail = sum(math.comb(n, i) for i in range(min(a_only, b_only) + 1)) / 2 ** n
    return {"a_only": a_only, "b_only": b_only, "p_value": min(1.0, 2 * tail)}
