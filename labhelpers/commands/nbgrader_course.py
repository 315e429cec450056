"""``python -m labhelpers nbgrader-course``: put the labs into an nbgrader course's ``source/`` folder."""
from __future__ import annotations

NAME = "nbgrader-course"
HELP = ("write the labs as nbgrader assignments (course/source/<lab>/, nbgrader metadata, project input paths made "
        "absolute) and the course's nbgrader_config.py; then run nbgrader generate_assignment and autograde")


def add_arguments(parser) -> None:
    parser.add_argument("--course", required=True, help="the nbgrader course folder (where nbgrader runs)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="set a parameter in the source notebook (repeatable); VALUE is a Python literal or a string")
    parser.add_argument("--force", action="store_true", help="replace source notebooks that exist in the course")
    parser.add_argument("--only", choices=["lab3", "lab4"], action="append", default=None,
                        help="only this lab (repeatable; default both)")


def run(args) -> int:
    from ..nbtools import nbgrader_meta, runlabs

    params = {name: runlabs.parse_value(value) for name, value in args.parameter}
    for path in nbgrader_meta.course_source(args.course, args.only, params, force=args.force):
        print(f"wrote {path}")
    return 0
