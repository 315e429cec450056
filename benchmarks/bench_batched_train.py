"""Benchmark: the batched trainer against a per-network loop, and the 25 per-layer architectures.

    python benchmarks/bench_batched_train.py [--dataset sim] [--repeats 3] [--seeds-per-arch 1 5] [--threads 1]

Prints, from one run:
1. seconds per epoch of ``labhelpers.training.train`` run network by network, and of
   ``labhelpers.training.train_many`` on the same networks and data (medians over ``--repeats``),
   their ratio, and how far the two disagree in validation accuracy: for the 25 per-layer
   architectures, and for 5 init seeds of each (125 networks, as when measuring seed noise);
2. the wall time of training all 25 per-layer architectures (hidden widths 16*{1..5} x 16*{1..5})
   for 10 epochs at batch 512 with the batched trainer (goal: under 3 minutes).

Measured on the 2-core lab machine, simulated JSC (64,000 training rows), quiet machine:
1 thread: 25 networks 3.19 -> 1.10 s/epoch (2.9x), 125 networks 16.1 -> 4.8 s/epoch (3.4x);
2 threads: 25 networks 3.14 -> 0.91 s/epoch (3.4x); all 25 architectures for 10 epochs: 8-10 s.
The 5x goal is not reached at these widths: the loop is already within about 3x of the arithmetic
(one network step is ~1 ms, ~0.35 ms of it matmul work), and the batched step is bound by that
arithmetic (bmm ~45% of its time, ReLU backward ~22%, padding kept small by the bucket planner).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from labhelpers import data, models
from labhelpers.training import TrainSettings, train, train_many

WIDTHS = (16, 32, 48, 64, 80)


def per_layer_architectures(seeds_per_arch: int = 1) -> list[tuple[int, int]]:
    return [(a, b) for a in WIDTHS for b in WIDTHS] * seeds_per_arch


def loop_epoch(hidden, seeds, jsc, epochs: int) -> tuple[float, list[float]]:
    """Seconds per epoch and val accuracies, training each network alone with training.train."""
    start, accuracies = time.perf_counter(), []
    for h, seed in zip(hidden, seeds):
        torch.manual_seed(seed)
        model = models.build("jsc-three-linear", hidden=list(h))
        history = train(model, jsc, TrainSettings(epochs=epochs, seed=0), progress=False)
        accuracies.append(float(history["val_accuracy"].iloc[-1]))
    return (time.perf_counter() - start) / epochs, accuracies


def batched_epoch(hidden, seeds, jsc, epochs: int) -> tuple[float, list[float]]:
    start = time.perf_counter()
    result = train_many(hidden, jsc, TrainSettings(epochs=epochs, seed=0), seeds=seeds, threads=None, progress=False)
    return (time.perf_counter() - start) / epochs, result.table["val_accuracy"].tolist()


def compare(hidden, seeds, jsc, epochs: int, repeats: int) -> None:
    """Print loop vs batched seconds per epoch (medians) for one set of networks."""
    loop_t, batched_t = [], []
    for _ in range(repeats):  # interleaved, so that load from other processes hits both alike
        t, acc_loop = loop_epoch(hidden, seeds, jsc, epochs)
        loop_t.append(t)
        t, acc_batched = batched_epoch(hidden, seeds, jsc, epochs)
        batched_t.append(t)
    diff = max(abs(a - b) for a, b in zip(acc_loop, acc_batched))
    loop_m, batched_m = statistics.median(loop_t), statistics.median(batched_t)
    print(f"   {len(hidden)} networks ({len(set(hidden))} architectures x {len(set(seeds))} init seeds), "
          f"median of {repeats}:")
    print(f"     per-network loop (training.train): {loop_m:8.2f} s/epoch")
    print(f"     batched (train_many):           {batched_m:8.2f} s/epoch")
    print(f"     speed-up:                       {loop_m / batched_m:8.2f}x (goal >= 5x)")
    print(f"     max |val accuracy difference|:  {100 * diff:8.3f} percentage points")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="sim", choices=["auto", "real", "sim"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1, help="epochs per timed comparison run")
    parser.add_argument("--seeds-per-arch", type=int, nargs="+", default=[1, 5],
                        help="part 1 runs once per value: networks per architecture (different init seeds)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both the loop and the batched trainer")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    jsc = data.load_jsc(args.dataset, verbose=False)
    print(f"data: {jsc.source} ({jsc.origin}), {len(jsc.x_train)} training rows; torch threads: {torch.get_num_threads()}")

    print("1. the same networks, one after another vs batched (hidden widths 16..80, batch 512):")
    for n in args.seeds_per_arch:
        hidden = per_layer_architectures(n)
        compare(hidden, [i // 25 for i in range(len(hidden))], jsc, args.epochs, args.repeats)

    start = time.perf_counter()
    train_many(per_layer_architectures(), jsc, TrainSettings(epochs=10, batch_size=512, seed=0), threads=None,
               progress=False)
    wall = time.perf_counter() - start
    print(f"2. all 25 per-layer architectures, 10 epochs, batch 512: {wall:.1f} s wall (goal <= 180 s)")


if __name__ == "__main__":
    main()
