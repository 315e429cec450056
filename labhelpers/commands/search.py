"""``python -m labhelpers search``: run (or resume) a search from a TOML config (MASE's ``ch search``).

``--workers N`` runs N worker processes on one study; see :mod:`labhelpers.search.workers`. Exit status: 0
when the study's budget is complete, 1 when it is not (trials failed or workers died: re-run the same
command to finish it), 2 on a bad option or config.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

NAME = "search"
HELP = "run or resume an Optuna search described by a TOML config; results go to runs/search/<study>/"


def add_arguments(parser) -> None:
    parser.add_argument("--config", required=True, help="search TOML, e.g. configs/jsc_tiny_by_type_brute_force.toml")
    parser.add_argument("--checkpoint", default=None, help="overrides [model] checkpoint")
    parser.add_argument("--dataset", default=None, choices=["auto", "real", "sim"], help="overrides [data] source")
    parser.add_argument("--sampler", default=None, help="brute-force | grid | random | tpe | nsga2 (overrides the config)")
    parser.add_argument("--n-trials", type=int, default=None, help="total trial budget of the study")
    parser.add_argument("--seed", type=int, default=None, help="sampler seed (overrides the config)")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage URL (sqlite:///x.db for one process, postgresql://user:pw@host/db for "
                             "workers on several machines), 'memory', or a journal file path "
                             "(default runs/search/<study>/journal.log, safe for several processes on one machine)")
    parser.add_argument("--study-name", default=None, help="default <config stem>-<sampler>-seed<seed>")
    parser.add_argument("--run-root", default="runs/search", help="folder for run folders (default runs/search)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes on this machine, all on one study (default 1); the same command on "
                             "another machine with the same --storage adds workers there")
    parser.add_argument("--worker-index", type=int, default=0,
                        help="index of this command's first worker; a worker's sampler seed is seed + index, so give "
                             "each machine its own range (e.g. 0 with --workers 4 here, 4 on the next machine)")
    parser.add_argument("--heartbeat", type=int, default=10,
                        help="seconds between heartbeats of a running trial (database and journal storages); a trial "
                             "silent for 3 heartbeats (its worker died or hangs) is failed and its point retried (default 10)")
    parser.add_argument("--max-failures", type=int, default=20,
                        help="stop (with an error) after this many trials in a row of one worker fail (default 20)")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import MODULE first, e.g. one that calls labhelpers.search.register_kind (repeatable)")
    parser.add_argument("--spawned", action="store_true", help=argparse.SUPPRESS)  # a worker started by --workers N


def run(args) -> int:
    from .. import search, validate

    validate.positive_number("--heartbeat", args.heartbeat, unit="seconds")
    validate.output_dir("--run-root", args.run_root)
    if args.study_name is not None:
        validate.safe_name("--study-name", args.study_name)
    if args.n_trials is not None:
        validate.positive_int("--n-trials", args.n_trials, validate.MAX_TRIALS)
    if args.storage and "://" not in args.storage and args.storage != "memory":
        validate.output_file("--storage", args.storage)
    _import(args.imports)
    cfg = search.load_config(args.config, sampler=args.sampler, n_trials=args.n_trials, seed=args.seed,
                             study_name=args.study_name)
    search.check_shared(args.workers, args.storage)
    validate.positive_int("--max-failures", args.max_failures)
    search.sampler_seed(cfg.sampler, cfg.seed, args.worker_index)  # a bad --worker-index fails here, once
    study_name = search.default_study_name(cfg)
    storage = search.resolve_spec(args.storage, Path(args.run_root) / study_name)
    if args.workers > 1:
        launched = search.launch(cfg, _worker_argv(args, study_name, storage), workers=args.workers,
                                 storage=storage, study_name=study_name, run_root=args.run_root,
                                 first_worker=args.worker_index, heartbeat_s=args.heartbeat,
                                 progress=not args.no_progress, checkpoint=args.checkpoint, dataset=args.dataset)
        return _report(cfg, launched.result, launched.failures())
    result = search.run_config(cfg, checkpoint=args.checkpoint, dataset=args.dataset, storage=storage,
                               run_root=args.run_root, progress=not args.no_progress, worker=args.worker_index,
                               requeue_failed=not args.spawned, write=not args.spawned, heartbeat_s=args.heartbeat,
                               max_failures=args.max_failures)
    return 0 if args.spawned else _report(cfg, result, [])


def _import(modules: list[str]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            raise ValueError(f"--import {name}: {exc}; is its folder on PYTHONPATH?") from None


def _worker_argv(args, study_name: str, storage: str) -> list[str]:
    """The command of one worker: this command with ``--workers 1`` and the resolved study and storage."""
    argv = [sys.executable, "-m", "labhelpers", *(["--debug"] if getattr(args, "debug", False) else []), "search",
            "--config", str(args.config), "--study-name", study_name, "--storage", storage,
            "--run-root", str(args.run_root), "--heartbeat", str(args.heartbeat), "--workers", "1",
            "--max-failures", str(args.max_failures),
            "--no-progress", "--spawned"]
    for flag, value in (("--checkpoint", args.checkpoint), ("--dataset", args.dataset), ("--sampler", args.sampler),
                        ("--n-trials", args.n_trials), ("--seed", args.seed)):
        if value is not None:
            argv += [flag, str(value)]
    for module in args.imports:
        argv += ["--import", module]
    return argv


def _report(cfg, result, problems: list[str]) -> int:
    """Print the outcome; 0 if the budget is complete and every worker exited cleanly, else 1."""
    from .. import search

    total, points = search.budget(cfg.space, cfg.sampler, cfg.n_trials)
    state = search.status(result.study, total, points)
    print(f"study {result.study.study_name}: {len(result.table)} completed trials"
          + (f", results in {result.run_dir}/" if result.run_dir else ""))
    params = [c for c in cfg.space.choices if c in result.best.columns]
    print(result.best.drop_duplicates(subset=params or None).to_string())  # TPE (and workers) may repeat the best point
    if state.failed:
        print(f"{state.failed} trial(s) raised: " + "; ".join(state.errors[:3]))
    if state.lost:
        print(f"{state.lost} trial(s) were lost with a dead worker: marked FAIL, their points retried")
    if problems:
        print("; ".join(problems))
    if not state.done:
        gap = (f"{state.missing} of {state.budget} points lack a completed trial" if points
               else f"{state.complete} of {state.budget} trials completed")
        print(f"incomplete: {gap}; re-run the same command to finish the budget", file=sys.stderr)
    return 0 if state.done and not problems else 1
