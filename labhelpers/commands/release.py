"""``python -m labhelpers release``: write student notebooks (solutions stubbed, outputs cleared)."""
from __future__ import annotations

NAME = "release"
HELP = "write student versions of the labs: solution blocks become NotImplementedError stubs, outputs cleared"


def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, help="folder for the student notebooks, e.g. student/")
    parser.add_argument("--force", action="store_true", help="overwrite student notebooks that exist in --out")
    parser.add_argument("--only", choices=["lab3", "lab4"], action="append", default=None,
                        help="release only this lab (repeatable; default both)")


def run(args) -> int:
    from ..nbtools import release

    for path in release.release(args.out, labs=args.only, force=args.force):
        print(f"wrote {path}")
    return 0
