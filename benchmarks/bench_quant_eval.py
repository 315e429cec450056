"""Time one quantization trial's evaluation on the full validation split, ours vs the seed's way.

* ours: ``labhelpers.metrics.evaluator`` -- quantize pass on a copy of the float graph, accuracy and
  loss over the whole split in one large batch, size/MACs/FLOPs/BOPs; median of ``--repeats`` runs.
* seed style (the loop of MASE's lab 3, over the whole split): the same quantization pass, a
  ``DataLoader`` with batch size 8, ``time.time()`` around every batch's forward (autograd on, as in
  the lab), ``acc = metric(preds, ys)`` (a torchmetrics forward) and a cross-entropy per batch, both
  kept in lists and averaged at the end; timed once (it is slow).

Prints both times and their ratio. Both use one intra-op thread (``--threads``).

    python benchmarks/bench_quant_eval.py [--model jsc-tiny] [--checkpoint checkpoints/jsc-tiny.pt]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy

from labhelpers import data, graph, metrics, models
from labhelpers.passes import quantize_transform_pass

CONFIG = {"by": "type", "default": {"config": {"name": "NA"}},
          "linear": {"config": {"name": "integer", "data_in_width": 8, "data_in_frac_width": 4,
                                "weight_width": 8, "weight_frac_width": 4, "bias_width": 8, "bias_frac_width": 4}}}


def ours(evaluate, repeats: int) -> float:
    """Median seconds of one full trial evaluation."""
    evaluate(CONFIG)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        evaluate(CONFIG)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def seed_style(g, x, y) -> float:
    """Seconds of the seed's evaluation loop: DataLoader(batch_size=8), time.time() per batch."""
    start = time.perf_counter()
    q, _ = quantize_transform_pass(g, CONFIG)
    metric = MulticlassAccuracy(num_classes=5)
    accs, losses, latencies = [], [], []
    for xs, ys in DataLoader(TensorDataset(x, y), batch_size=8, shuffle=False):
        t0 = time.time()
        preds = q(xs)
        latencies.append(time.time() - t0)
        losses.append(F.cross_entropy(preds, ys))
        accs.append(metric(preds, ys))
    acc_avg, loss_avg = sum(accs) / len(accs), sum(losses) / len(losses)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="jsc-tiny")
    parser.add_argument("--checkpoint", default=None, help="default checkpoints/<model>.pt")
    parser.add_argument("--dataset", default="sim", choices=["auto", "real", "sim"])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    jsc = data.load_jsc(args.dataset, verbose=False)
    model, _ = models.load(args.checkpoint or f"checkpoints/{args.model}.pt", expected_model=args.model,
                           fingerprint=jsc.fingerprint)
    g = graph.trace(model)
    x, y = jsc.split("val")
    t_ours = ours(metrics.evaluator(g, jsc, threads=args.threads), args.repeats)
    t_seed = seed_style(g, x, y)
    print(f"{args.model} on {jsc.source}/val ({len(x)} rows), {args.threads} thread(s), 8-bit linear config")
    print(f"ours (median of {args.repeats}): {t_ours * 1e3:8.2f} ms per trial evaluation")
    print(f"seed style (one run):      {t_seed * 1e3:8.2f} ms per trial evaluation")
    print(f"ratio seed / ours:         {t_seed / t_ours:8.1f}x")


if __name__ == "__main__":
    main()
