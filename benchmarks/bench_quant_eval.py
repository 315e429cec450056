"""Time one quantization trial's evaluation on the full validation split, and check it against an older labhelpers.

* pass: ``quantize_transform_pass(float graph, pass_args)`` alone; evaluation: one call of
  ``labhelpers.metrics.evaluator(graph, data)(pass_args)`` (pass, accuracy and loss over the whole
  split, size/MACs/FLOPs/BOPs). Each is timed over ``--points`` configurations of the 1,000-point
  mixed-precision space (``configs/jsc_three_linear_mixed_precision.toml``), and the figure printed is
  the median over ``--repeats`` rounds of each round's median. One intra-op thread (``--threads``).
* ``--old DIR``: the same timings for the labhelpers package under ``DIR`` (e.g. commit 08a8042, made with
  ``git archive 08a8042 labhelpers data | tar -x -C DIR``, since the package looks for ``data/`` beside it), side by side. Each side runs in its
  own interpreter with its package first on ``sys.path``.
* ``--check`` (needs ``--old``): every point of the shipped Lab 3 spaces -- the by-type and by-name
  JSC-Tiny spaces and ``--sample`` random points of the mixed-precision space -- must give exactly
  equal (``==``) metric dicts in both versions; prints the count and exits 1 on any difference.
* ``--seed-style``: also time the seed's loop once (DataLoader batch 8, ``time.time()`` per batch, a
  torchmetrics forward and a cross-entropy per batch), for the ratio to ours.

    python benchmarks/bench_quant_eval.py --old /tmp/old08 --check
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIXED = "configs/jsc_three_linear_mixed_precision.toml"
CHECKED = ["configs/jsc_tiny_by_type_brute_force.toml", "configs/jsc_tiny_by_type_tpe.toml",
           "configs/jsc_tiny_by_name_brute_force.toml", "configs/jsc_tiny_by_name_tpe.toml"]


# ----------------------------------------------------------------------------- one side (runs in its own interpreter)

def _side(job: dict) -> dict:
    """Metrics of every config of every group, and pass/evaluation timings, with whichever labhelpers is importable."""
    import torch
    from labhelpers import data, graph, metrics, models
    from labhelpers.passes import quantize_transform_pass

    torch.set_num_threads(job["threads"])
    jsc = data.load_jsc(job["dataset"], verbose=False)
    out = {"labhelpers": str(Path(metrics.__file__).parent), "metrics": [], "timings": {}}
    for group in job["groups"]:
        model, _ = models.load(group["checkpoint"], expected_model=group["model"], fingerprint=jsc.fingerprint)
        g = graph.trace(model)
        evaluate = metrics.evaluator(g, jsc, threads=job["threads"])
        out["metrics"].append([evaluate(c) for c in group["configs"]])
        if group.get("time"):
            out["timings"] = {"pass_ms": _median_ms(lambda c: quantize_transform_pass(g, c), group["configs"], job["repeats"]),
                              "evaluation_ms": _median_ms(evaluate, group["configs"], job["repeats"])}
    return out


def _median_ms(fn, configs: list, repeats: int) -> float:
    """Median over rounds of the median time of one call per config (the first round is a warm-up)."""
    rounds = []
    for _ in range(repeats + 1):
        times = []
        for c in configs:
            start = time.perf_counter()
            fn(c)
            times.append(time.perf_counter() - start)
        rounds.append(statistics.median(times))
    return statistics.median(rounds[1:]) * 1e3


def _run_side(package_root: Path, job: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(package_root)}
    done = subprocess.run([sys.executable, __file__, "--side"], input=json.dumps(job), env=env, cwd=ROOT,
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"the side under {package_root} failed:\n{done.stderr}")
    return json.loads(done.stdout)


# ----------------------------------------------------------------------------- the jobs (built with this checkout)

def _group(path: str, sample: int | None, rng: random.Random, time_it: bool = False) -> dict:
    from labhelpers import search

    cfg = search.load_config(ROOT / path)
    points = list(cfg.space.grid())
    if sample is not None and sample < len(points):
        points = rng.sample(points, sample)
    return {"config": path, "model": cfg.model["name"],
            "checkpoint": cfg.model.get("checkpoint") or f"checkpoints/{cfg.model['name']}.pt",
            "configs": [cfg.space.to_config(p) for p in points], "time": time_it}


def _seed_style_ms(dataset: str, threads: int) -> float:
    """Milliseconds of the seed's evaluation loop: DataLoader(batch_size=8), time.time() per batch."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset
    from torchmetrics.classification import MulticlassAccuracy

    from labhelpers import data, graph, models
    from labhelpers.passes import quantize_transform_pass

    torch.set_num_threads(threads)
    jsc = data.load_jsc(dataset, verbose=False)
    model, _ = models.load("checkpoints/jsc-three-linear.pt", expected_model="jsc-three-linear", fingerprint=jsc.fingerprint)
    config = _group(MIXED, 1, random.Random(0))["configs"][0]
    x, y = jsc.split("val")
    start = time.perf_counter()
    q, _ = quantize_transform_pass(graph.trace(model), config)
    metric = MulticlassAccuracy(num_classes=5)
    accs, losses, latencies = [], [], []
    for xs, ys in DataLoader(TensorDataset(x, y), batch_size=8, shuffle=False):
        t0 = time.time()
        preds = q(xs)
        latencies.append(time.time() - t0)
        losses.append(F.cross_entropy(preds, ys))
        accs.append(metric(preds, ys))
    sum(accs) / len(accs), sum(losses) / len(losses)
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, default=None, help="folder holding an older labhelpers package")
    parser.add_argument("--check", action="store_true", help="require equal metrics on the shipped Lab 3 spaces")
    parser.add_argument("--sample", type=int, default=150, help="points of the mixed-precision space to check")
    parser.add_argument("--points", type=int, default=50, help="configurations per timing round")
    parser.add_argument("--dataset", default="sim", choices=["auto", "real", "sim"])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed-style", action="store_true", help="also time the seed's DataLoader loop once")
    parser.add_argument("--side", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(_side(json.load(sys.stdin))))
        return
    if args.check and args.old is None:
        parser.error("--check compares with an older labhelpers: give --old DIR")
    rng = random.Random(0)
    groups = [_group(MIXED, args.points, rng, time_it=True)]
    if args.check:
        groups += [_group(path, None, rng) for path in CHECKED] + [_group(MIXED, args.sample, rng)]
    job = {"dataset": args.dataset, "threads": args.threads, "repeats": args.repeats, "groups": groups}
    sides = {"new": _run_side(ROOT, job)}
    if args.old is not None:
        sides["old"] = _run_side(args.old.resolve(), job)
    print(f"JSC-Three-Linear, {args.dataset}/val, {args.threads} thread(s); median over {args.repeats} rounds "
          f"of the median over {args.points} mixed-precision configurations")
    for name, side in sides.items():
        t = side["timings"]
        print(f"{name:>4} ({side['labhelpers']}): pass {t['pass_ms']:6.2f} ms, evaluation {t['evaluation_ms']:6.2f} ms")
    if "old" in sides:
        old, new = sides["old"]["timings"], sides["new"]["timings"]
        print(f"old / new: pass {old['pass_ms'] / new['pass_ms']:.1f}x, evaluation {old['evaluation_ms'] / new['evaluation_ms']:.1f}x")
    if args.seed_style:
        seed = _seed_style_ms(args.dataset, args.threads)
        print(f"seed style (one run): {seed:8.1f} ms, {seed / sides['new']['timings']['evaluation_ms']:.0f}x ours")
    if args.check:
        _report_check(groups, sides["new"]["metrics"], sides["old"]["metrics"])


def _report_check(groups: list[dict], new: list, old: list) -> None:
    differ = 0
    for group, new_metrics, old_metrics in zip(groups, new, old):
        bad = [i for i, (a, b) in enumerate(zip(new_metrics, old_metrics)) if a != b]
        differ += len(bad)
        print(f"check {group['config']} ({len(new_metrics)} points): {'identical' if not bad else f'{len(bad)} differ'}")
        for i in bad[:3]:
            print(f"  {group['configs'][i]}\n  new {new_metrics[i]}\n  old {old_metrics[i]}")
    total = sum(len(m) for m in new)
    print(f"bit-identity: {total - differ} of {total} metric dicts equal (==)")
    if differ:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
