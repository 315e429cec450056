"""How close the batched trainer stays to separate training over a full run (too slow for a unit test).

    python benchmarks/batched_equivalence.py [--dataset sim] [--epochs 10] [--seeds 2]

Trains the 25 per-layer architectures x ``--seeds`` init seeds with ``training.train_many`` and each
network alone with ``training.train`` (same init, same batch order), and prints the differences in
final validation and test accuracy, next to the seed-to-seed spread of the same architectures.
Float rounding (``bmm`` vs ``nn.Linear`` sums) is the only difference; training amplifies it over
the steps, so it is measured here on the real schedule (tests/training/test_batched.py bounds it on 60 steps).
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from labhelpers import data, metrics, models
from labhelpers.training import TrainSettings, train, train_many

WIDTHS = (16, 32, 48, 64, 80)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="sim", choices=["auto", "real", "sim"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=2, help="init seeds per architecture")
    args = parser.parse_args()
    torch.set_num_threads(1)
    jsc = data.load_jsc(args.dataset, verbose=False)
    hidden = [(a, b) for a in WIDTHS for b in WIDTHS] * args.seeds
    seeds = [i // 25 for i in range(len(hidden))]
    settings = TrainSettings(epochs=args.epochs, seed=0)
    result = train_many(hidden, jsc, settings, seeds=seeds, progress=False).table
    alone = {"val_accuracy": [], "test_accuracy": []}
    for h, seed in zip(hidden, seeds):
        torch.manual_seed(seed)
        model = models.build("jsc-three-linear", hidden=list(h))
        train(model, jsc, settings, progress=False)
        alone["val_accuracy"].append(metrics.accuracy_loss(model, jsc, "val")["accuracy"])
        alone["test_accuracy"].append(metrics.accuracy_loss(model, jsc, "test")["accuracy"])
    print(f"{len(hidden)} networks, {args.epochs} epochs on {len(jsc.x_train)} rows ({jsc.source}):")
    for split, values in alone.items():
        diff = 100 * np.abs(np.array(values) - result[split].to_numpy())
        print(f"  |batched - alone| {split}: mean {diff.mean():.3f}, median {np.median(diff):.3f}, "
              f"max {diff.max():.3f} percentage points; within 0.2: {(diff <= 0.2).sum()}/{len(diff)}")
    if args.seeds > 1:
        by_seed = result.pivot_table(index=["h1", "h2"], columns="seed", values="val_accuracy")
        spread = 100 * (by_seed.max(axis=1) - by_seed.min(axis=1))
        print(f"  for scale, the seed-to-seed spread of val accuracy of one architecture: "
              f"mean {spread.mean():.3f}, max {spread.max():.3f} percentage points")


if __name__ == "__main__":
    main()
