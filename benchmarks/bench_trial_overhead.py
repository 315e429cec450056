"""Per-trial cost of a search against the bare evaluation it runs (issue #10's goal: at most 1.5x).

In one run, medians over ``--repeats``, for ``configs/jsc_three_linear_mixed_precision.toml``:

1. the bare evaluation: the kind's evaluator (``search.get_kind(cfg.kind).evaluator(cfg)``) called directly
   on ``--n-trials`` random points of the space;
2. the quantize pass alone (``quantize_transform_pass`` on the float graph) on the same points;
3. the CLI path per trial: ``search.run_config`` (what ``python -m labhelpers search --config ...
   --sampler random --n-trials N`` runs, without the process start-up) on the default storage, a journal
   file in a fresh run folder; its time includes the one-off set-up (loading data and checkpoint, tracing);
4. the same study with that set-up done once beforehand (``search.run`` with the kind's evaluator and the
   arguments ``run_config`` passes): the per-trial cost a long search converges to;
5. that study on Optuna's in-memory storage (``--storage memory``): what the journal file costs.

Prints milliseconds per trial and the ratios to the bare evaluation.

Measured on the 2-core machine, otherwise idle (``--n-trials 1000 --repeats 3``, one run): bare evaluation
2.93 ms, CLI path 4.36 ms (1.49x), study per trial 4.39 ms (1.50x), memory storage 3.58 ms (1.22x); with
``--n-trials 300 --repeats 5``: 3.03, 5.23 (1.72x: the one-off set-up of about 0.1-0.3 s weighs more over
fewer trials), 4.53 (1.49x), 3.54 ms (1.17x). While the machine was busy, six runs in a row gave 1.32-1.56x
for the study on the journal. Before the
journal was written in three appends per trial with one heartbeat thread per run: 2.74 ms, 7.04 ms (2.57x),
6.32 ms (2.30x), 3.51 ms (1.28x).

    python benchmarks/bench_trial_overhead.py [--n-trials 200] [--repeats 3]
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from labhelpers import data, graph, models, search  # noqa: E402
from labhelpers.passes import quantize_transform_pass  # noqa: E402

CONFIG = ROOT / "configs" / "jsc_three_linear_mixed_precision.toml"


def _points(space: search.Space, n: int, seed: int) -> list:
    rng = random.Random(seed)
    return [space.to_config({name: rng.choice(values) for name, values in space.choices.items()}) for _ in range(n)]


def _per_call_ms(fn, configs) -> float:
    start = time.perf_counter()
    for config in configs:
        fn(config)
    return 1000 * (time.perf_counter() - start) / len(configs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=200, help="trials (and evaluations) per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    cfg = search.load_config(CONFIG, sampler="random", n_trials=args.n_trials)
    evaluate = search.get_kind(cfg.kind).evaluator(cfg)
    jsc = data.load_jsc(cfg.data.get("source", "auto"), cfg.data.get("path"), verbose=False)
    model, _ = models.load(cfg.model["checkpoint"], expected_model=cfg.model["name"], fingerprint=jsc.fingerprint)
    float_graph = graph.trace(model)
    configs = _points(cfg.space, args.n_trials, seed=0)
    evaluate(configs[0])  # warm-up (allocations, lazy imports)

    times = {"bare evaluation": [], "quantize pass alone": [], "CLI path (run_config)": [], "study per trial": [],
             "study, memory storage": []}
    for repeat in range(args.repeats):
        times["bare evaluation"].append(_per_call_ms(evaluate, configs))
        times["quantize pass alone"].append(_per_call_ms(lambda c: quantize_transform_pass(float_graph, c), configs))
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            result = search.run_config(cfg, run_root=Path(tmp) / "runs", progress=False, seed=repeat)
            seconds = time.perf_counter() - start
        assert len(result.table) == args.n_trials, len(result.table)
        times["CLI path (run_config)"].append(1000 * seconds / args.n_trials)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            result = search.run(cfg.space, evaluate, cfg.objective, sampler=cfg.sampler, n_trials=args.n_trials,
                                seed=repeat, study_name=search.default_study_name(cfg), run_root=Path(tmp) / "runs",
                                context=search.config_context(cfg, evaluate), progress=False)
            seconds = time.perf_counter() - start
        assert len(result.table) == args.n_trials, len(result.table)
        times["study per trial"].append(1000 * seconds / args.n_trials)
        start = time.perf_counter()
        result = search.run(cfg.space, evaluate, cfg.objective, sampler=cfg.sampler, n_trials=args.n_trials,
                            seed=repeat, study_name=search.default_study_name(cfg), storage="memory",
                            context=search.config_context(cfg, evaluate), progress=False)
        times["study, memory storage"].append(1000 * (time.perf_counter() - start) / args.n_trials)

    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"{CONFIG.name}: {args.n_trials} random trials, median of {args.repeats} repeats (ms per trial)")
    for name, value in medians.items():
        print(f"  {name:24s} {value:7.2f}")
    for name in ("CLI path (run_config)", "study per trial", "study, memory storage"):
        print(f"  ratio {name} / bare evaluation: {medians[name] / medians['bare evaluation']:.2f} (goal <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
