"""``python -m labhelpers <command>``: one subcommand per module in ``labhelpers/commands/``.

A command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
Errors that users can fix (ValueError, FileNotFoundError, FileExistsError, ConnectionError) print one
line and exit with status 2; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import commands

# KeyError is not here: a missing dict key is a programming bug and must show its traceback. Code that
# looks up a user's name (a study, a kind, a sampler) turns a miss into a ValueError naming the choices.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, ConnectionError)


def _command_modules():
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}") if not info.name.startswith("_") else None
        if hasattr(module, "NAME"):  # a module without NAME holds what several commands share
            yield module


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m labhelpers", description="Helpers for the JSC search labs.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for module in _command_modules():
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except USER_ERRORS as exc:
        if args.debug:
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2


def _one_line(message) -> str:
    """The message on one line: a library message that spans lines (tabs, dumps) must not break the format."""
    return " ".join(str(message).split())


if __name__ == "__main__":
    sys.exit(main())
