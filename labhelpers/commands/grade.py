"""``python -m labhelpers grade``: check an executed student notebook and print a per-task report."""
from __future__ import annotations

import json

NAME = "grade"
HELP = ("grade an executed lab notebook against the reference: ran in order, no errors, self-checks passed, "
        "outputs reproduce (within declared tolerances), locked cells unchanged; re-run jailed with bubblewrap")


def add_arguments(parser) -> None:
    parser.add_argument("submission", help="the student's executed .ipynb")
    parser.add_argument("--lab", choices=["3", "4"], default=None, help="which lab (default: from the file name)")
    parser.add_argument("--reference", default=None,
                        help="executed reference notebook whose self-check cells count (default: notebooks/ lab)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--timeout-per-cell", type=int, default=300,
                        help="seconds each cell may take when re-executed (default 300)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar during re-execution")
    parser.add_argument("--no-isolation", action="store_true",
                        help="re-run without the bubblewrap jail (only for work you trust)")


def run(args) -> int:
    from .. import validate
    from ..nbtools import grade

    validate.positive_number("--timeout-per-cell", args.timeout_per_cell, unit="seconds")
    report = grade.grade(args.submission, lab=args.lab, reference=args.reference,
                         timeout_per_cell=args.timeout_per_cell, progress=not args.no_progress,
                         isolate=not args.no_isolation)
    print(json.dumps(report, indent=2) if args.json else grade.format_report(report))
    return 0 if report["passed"] else 1
