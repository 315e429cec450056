"""``python -m labhelpers run-labs``: execute the lab notebooks headless (papermill) into a run folder."""
from __future__ import annotations

import sys

NAME = "run-labs"
HELP = "run both lab notebooks headless with papermill; executed notebooks and figures go to runs/<timestamp>/"


def add_arguments(parser) -> None:
    parser.add_argument("--fast", action="store_true", help="set the notebooks' fast=True (small budgets, for CI)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="override a parameter (repeatable); VALUE is a Python literal or a string")
    parser.add_argument("--params-file", default=None,
                        help="YAML file of 'name: value' overrides (optional 'lab3:'/'lab4:' sections); -p wins")
    parser.add_argument("--out", default=None, help="run folder (default runs/<YYYYmmdd-HHMMSS>)")
    parser.add_argument("--force", action="store_true",
                        help="write into an --out folder whose notebooks, run.json or imgs/ files exist")
    parser.add_argument("--only", choices=["lab3", "lab4"], action="append", default=None,
                        help="run only this lab (repeatable; default both)")
    parser.add_argument("--timeout-per-cell", type=int, default=None, help="seconds per cell (default: no limit)")
    parser.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
    parser.add_argument("--in-place", action="store_true",
                        help="re-execute the committed notebooks with default parameters and store their outputs "
                             "(how notebooks/ is refreshed before a commit); no run folder")


def run(args) -> int:
    from .. import validate
    from ..nbtools import runlabs

    if args.timeout_per_cell is not None:
        validate.positive_number("--timeout-per-cell", args.timeout_per_cell, unit="seconds")
    if args.in_place:
        return _in_place(args)
    params = runlabs.read_params_file(args.params_file) if args.params_file else {}
    if args.fast:
        params["fast"] = True
    params.update({name: runlabs.parse_value(value) for name, value in args.parameter})
    run_dir, results = runlabs.run_labs(args.only, params, args.out, progress=not args.no_progress,
                                        timeout_per_cell=args.timeout_per_cell, force=args.force)
    failed = [r["error"] for r in results if r["error"]]
    for message in failed:
        print(f"error: {message}", file=sys.stderr)
    print(f"run folder: {run_dir} ({len(results) - len(failed)}/{len(results)} notebooks ran without error)")
    return 1 if failed else 0


def _in_place(args) -> int:
    from ..nbtools import cells, runlabs

    if args.fast or args.parameter or args.params_file or args.out or args.force:
        raise ValueError("--in-place: stored outputs come from default parameters; drop --fast/-p/--params-file/--out/--force")
    status = 0
    for lab in args.only or cells.LABS:
        path = cells.lab_path(lab)
        print(f"re-executing {path} in place", flush=True)
        failure = runlabs.refresh(path, args.timeout_per_cell, progress=not args.no_progress)
        if failure:
            print(f"error: {path.name}: {failure['label']} {failure['message']} (notebook left unchanged)", file=sys.stderr)
            status = 1
    return status
