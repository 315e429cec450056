"""The space kinds, in one explicit map (as MASE's ``SEARCH_SPACE_MAP``); importing nothing registers anything.

``[search.search_space] kind = "<name>"`` picks :data:`KINDS` ``[name]``. Code outside the package (a
course's own kind, the tests' fault kind) adds one with :func:`register_kind`, called explicitly; the CLI's
``--import MODULE`` imports a module that does so.
"""
from __future__ import annotations

from typing import Callable

from . import architecture_kind, quantize_kind
from .evaluator import Kind
from .space import Space

KINDS: dict[str, Kind] = {
    "quantize": quantize_kind.KIND,
    "architecture": architecture_kind.KIND,
}


def register_kind(name: str, parse: Callable[[dict], Space], evaluator: Callable, metrics: tuple[str, ...]) -> Kind:
    """Make ``[search.search_space] kind = name`` available; returns the :class:`Kind`."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"kind name {name!r} must be a non-empty string")
    KINDS[name] = Kind(parse, evaluator, tuple(metrics))
    return KINDS[name]


def get_kind(name: str, where: str = "[search.search_space] ") -> Kind:
    """The kind called ``name``; ValueError naming the known kinds."""
    if name not in KINDS:
        raise ValueError(f"{where}kind={name!r} is unknown; choose one of {sorted(KINDS)}")
    return KINDS[name]
