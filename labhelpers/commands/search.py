"""``python -m labhelpers search``: run (or resume) a search from a TOML config (MASE's ``ch search``)."""
from __future__ import annotations

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
                        help="Optuna storage URL (sqlite:///x.db, ...), 'memory', or a journal file path "
                             "(default runs/search/<study>/journal.log)")
    parser.add_argument("--study-name", default=None, help="default <config stem>-<sampler>-seed<seed>")
    parser.add_argument("--run-root", default="runs/search", help="folder for run folders (default runs/search)")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from .. import search

    cfg = search.load_config(args.config, sampler=args.sampler, n_trials=args.n_trials, seed=args.seed,
                             study_name=args.study_name)
    result = search.run_config(cfg, checkpoint=args.checkpoint, dataset=args.dataset, storage=args.storage,
                               run_root=args.run_root, progress=not args.no_progress)
    print(f"study {result.study.study_name}: {len(result.table)} completed trials"
          + (f", results in {result.run_dir}/" if result.run_dir else ""))
    params = [c for c in cfg.space.choices if c in result.best.columns]
    print(result.best.drop_duplicates(subset=params or None).to_string())  # TPE may repeat the best point
    return 0

