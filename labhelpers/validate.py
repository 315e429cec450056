"""Checks of user input shared by the commands and the library, one wording per kind of mistake.

Each check returns the checked value or raises an error whose one line names the field, the bad
value and what is allowed (``ValueError``; ``FileExistsError`` for a file that would be
overwritten). The CLI prints that line as ``error: ...`` and exits with status 2.

Overwriting: every command that writes files asks :func:`refuse_overwrite` first, with the paths it
is about to write. An existing file (a committed notebook, ``data/jsc_sim.npz``, a checkpoint, a
figure in ``imgs/``) is only replaced when the user passes ``--force`` (:data:`FORCE_FLAG`).
"""
from __future__ import annotations

import json
import math
import numbers
import re
from pathlib import Path

FORCE_FLAG = "--force"
MAX_TRIALS = 1_000_000
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
SAFE_NAME_RULE = "1-100 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit"


def is_int(value) -> bool:
    """True for a real integer (``numbers.Integral``, numpy ints too), False for ``bool`` and everything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def positive_int(name: str, value, maximum: int | None = None) -> int:
    """``value`` if it is an int in ``1..maximum``; else ValueError ``name=value must be a positive integer``."""
    ok = is_int(value) and value >= 1
    if not ok or (maximum is not None and value > maximum):
        bound = f" at most {maximum}" if maximum is not None else ""
        raise ValueError(f"{name}={value!r} must be a positive integer{bound}")
    return int(value)


def non_negative_int(name: str, value, example: str = "0") -> int:
    """``value`` if it is an int >= 0; else ValueError ``name=value must be a non-negative integer, e.g. 0``."""
    if not (is_int(value) and value >= 0):
        raise ValueError(f"{name}={value!r} must be a non-negative integer, e.g. {example}")
    return int(value)


def boolean(name: str, value) -> bool:
    """``value`` if it is a bool (``true``/``false`` in TOML); else ValueError."""
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r} must be true or false")
    return value


def one_of(name: str, value, allowed, where: str = ""):
    """``value`` if it is one of ``allowed``; else ValueError listing them."""
    if value not in allowed:
        raise ValueError(f"{where}{name}={value!r} is not allowed: use one of {', '.join(map(repr, allowed))}")
    return value


def positive_number(name: str, value, unit: str = "", example: str = "") -> float:
    """``value`` if it is a finite real number > 0; else ValueError ``name=value must be a positive number``."""
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (real and math.isfinite(value) and value > 0):
        what = f"a positive number{f' of {unit}' if unit else ''}{' (not inf or nan)' if real else ''}"
        raise ValueError(f"{name}={value!r} must be {what}{f', e.g. {example}' if example else ''}")
    return float(value)


def safe_name(name: str, value) -> str:
    """``value`` if it can be one path component (no ``/``, not ``..``, not empty); else ValueError."""
    if not isinstance(value, str) or not SAFE_NAME.fullmatch(value):
        raise ValueError(f"{name}={value!r} is not allowed: use {SAFE_NAME_RULE}")
    return value


def output_file(name: str, path) -> Path:
    """``path`` as a Path if a file can be written there: not a folder, and not under a regular file."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{name} {path}: is a folder; give a file path inside it, e.g. {path / 'out'}")
    _parent_is_folder(name, path)
    return path


def output_dir(name: str, path) -> Path:
    """``path`` as a Path if it is a folder or can be created as one (no regular file on the way)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name} {path}: is a file, not a folder; give a folder path")
    _parent_is_folder(name, path)
    return path


def _parent_is_folder(name: str, path: Path) -> None:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{name} {path}: {parent} is a file, not a folder; choose a path in a folder")
            return


def would_overwrite(paths) -> list[Path]:
    """Those of ``paths`` that already exist (tracked or not): writing them would replace a file."""
    return [Path(p) for p in paths if Path(p).exists() or Path(p).is_symlink()]


def refuse_overwrite(name: str, paths, force: bool = False) -> None:
    """FileExistsError naming the first existing path among ``paths``, unless ``force``."""
    existing = [] if force else would_overwrite(paths)
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise FileExistsError(f"{name}: {existing[0]} exists{more}; pass {FORCE_FLAG} to overwrite it, "
                              f"or choose another path")


def table_made_with(what: str, path, asked: dict, *, make: str, redo: str) -> Path:
    """``path`` (a committed CSV whose ``.json`` sidecar holds its ``settings``) if it was made with ``asked``.

    FileNotFoundError ``<what>: no <path> ...; <make> or restore it from git``; ValueError naming every setting
    that differs, stored and asked values, then ``<redo>``. Lab 4's architecture table and Lab 3's synthesis
    table are loaded this way, so that a table is never silently used for settings it was not made with.
    """
    path = Path(path)
    sidecar = path.with_suffix(".json")
    if not path.is_file() or not sidecar.is_file():
        raise FileNotFoundError(f"{what}: no {path} (with {sidecar.name}); {make} or restore it from git")
    stored = json.loads(sidecar.read_text())["settings"]
    differ = sorted(k for k in set(stored) | set(asked) if stored.get(k) != asked.get(k))
    if differ:
        raise ValueError(f"{what}: {path.name} was made with other settings ({', '.join(differ)}: stored "
                         f"{[stored.get(k) for k in differ]}, asked {[asked.get(k) for k in differ]}); {redo}")
    return path
