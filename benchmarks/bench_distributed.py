"""Study overhead of the crash-safe trial loop, and wall time with several worker processes.

1. Overhead, one process: brute force over a 5^4 = 625-point space with a trivial evaluator, on a
   journal file: plain ``study.optimize`` with metrics as user attrs (Lab 3's loop before) vs
   ``labhelpers.search.run`` (a worker stamp per trial, Optuna's stale-trial check before each trial, error
   recording, the coverage loop). Median of ``--repeats``; prints seconds per trial and the ratio.
2. Scale-out: ``python -m labhelpers search --workers N`` on a 16-point grid whose evaluation sleeps
   ``--sleep`` seconds (standing in for training), N = 1, 2, 4, on a journal file: wall time, trials
   run and duplicates. Sleeping evaluations do not need a free core, so this shows the coordination
   overhead, not the machine's core count.

    python benchmarks/bench_distributed.py [--repeats 3] [--sleep 0.5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from optuna.storages.journal import JournalFileBackend, JournalStorage

from labhelpers import search

ROOT = Path(__file__).resolve().parent.parent
SPACE = search.Space({name: [0, 1, 2, 3, 4] for name in "abcd"}, to_config=lambda p: p, kind="bench")
OBJECTIVE = search.Objective({"value": ("maximize", 1.0)})


def evaluate(config: dict) -> dict:
    return {"value": float(sum(config.values()))}


def plain(folder: Path) -> float:
    storage = JournalStorage(JournalFileBackend(str(folder / "plain.log")))  # Optuna's own, no heartbeat
    study = optuna.create_study(storage=storage, sampler=search.make_sampler("brute-force", SPACE, 0),
                                direction="maximize")

    def trial_fn(trial):  # Lab 3's loop before this change: metrics as user attrs, the objective value
        value = evaluate(SPACE.suggest(trial))["value"]
        trial.set_user_attr("value", value)
        return value

    start = time.perf_counter()
    study.optimize(trial_fn)
    assert len(study.trials) == SPACE.size
    return time.perf_counter() - start


def ours(folder: Path) -> float:
    start = time.perf_counter()
    result = search.run(SPACE, evaluate, OBJECTIVE, sampler="brute-force", storage=str(folder / "ours.log"),
                        write=False, progress=False)
    assert len(result.table) == SPACE.size
    return time.perf_counter() - start


def overhead(repeats: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    times = {"plain study.optimize": [], "search.run (crash-safe)": []}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            times["plain study.optimize"].append(plain(Path(tmp)))
            times["search.run (crash-safe)"].append(ours(Path(tmp)))
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(f"one process, {SPACE.size} brute-force trials on a journal file (median of {repeats}):")
    for name, seconds in medians.items():
        print(f"  {name:26s} {seconds:6.2f} s  {1000 * seconds / SPACE.size:5.2f} ms/trial")
    print(f"  ratio {medians['search.run (crash-safe)'] / medians['plain study.optimize']:.2f}")


TOY = """[search.search_space]
kind = "fault-toy"
a = [0, 1, 2, 3]
b = [0, 1, 2, 3]
sleep_s = {sleep}
[search.strategy.setup]
sampler = "brute-force"
seed = 0
[search.strategy.metrics]
value = {{direction = "maximize"}}
"""


def scale_out(sleep: float) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests" / "_support")])}
    print(f"\n16-point grid, evaluation sleeps {sleep} s, journal file (wall time includes process start-up):")
    for workers in (1, 2, 4):
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "toy.toml"
            config.write_text(TOY.format(sleep=sleep))
            argv = [sys.executable, "-m", "labhelpers", "search", "--config", str(config), "--import", "fault_kind",
                    "--workers", str(workers), "--no-progress", "--run-root", str(Path(tmp) / "runs"), "--study-name", "s"]
            start = time.perf_counter()
            subprocess.run(argv, check=True, env=env, capture_output=True)
            seconds = time.perf_counter() - start
            study = optuna.load_study(study_name="s", storage=search.get_storage(None, Path(tmp) / "runs" / "s"))
            cover, n_trials = search.coverage(study, search.load_config(config).space), len(study.trials)
        print(f"  {workers} worker(s): {seconds:5.1f} s, {n_trials} trials, "
              f"{int(cover['duplicates'].sum())} duplicates, every point complete: {bool((cover['complete'] > 0).all())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sleep", type=float, default=0.5)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests" / "_support"))
    import fault_kind  # noqa: F401  (registers the kind so that load_config can parse the toy config)
    overhead(args.repeats)
    scale_out(args.sleep)


if __name__ == "__main__":
    main()
