"""Spaces: named parameters with sorted choices, a fixed part, and ``to_config(params)`` for the evaluator.

A space's parameters are only its real choices (two or more values). What a config fixes (single-choice
settings, the quantize pass's ``by``, training settings) is the space's :attr:`Space.fixed` part: plain
data stored with a study's context, so that resuming with other fixed settings is refused.
"""
from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import optuna


@dataclass
class Space:
    """Named parameters with sorted choices, the fixed part, and ``to_config(params) -> config``."""

    choices: dict[str, list]
    to_config: Callable[[dict], Any]
    kind: str = "custom"
    fixed: dict = field(default_factory=dict)
    codes: dict[str, dict] = field(init=False, repr=False)

    def __post_init__(self):
        for name, values in self.choices.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"search space parameter {name!r} needs a non-empty list of choices, got {values!r}")
        self.codes = {name: {encode(v): v for v in values} for name, values in self.choices.items()}

    @property
    def size(self) -> int:
        """Number of distinct points."""
        return math.prod(len(v) for v in self.choices.values())

    def grid(self) -> Iterator[dict]:
        """Every point, as a params dict, in the order of the sorted choices."""
        names = list(self.choices)
        for values in itertools.product(*self.choices.values()):
            yield dict(zip(names, values))

    def optuna_grid(self) -> dict[str, list]:
        """The space with Optuna-storable (encoded) choices, as GridSampler wants it."""
        return {name: list(codes) for name, codes in self.codes.items()}

    def suggest(self, trial: optuna.Trial) -> dict:
        """Sample one point through Optuna's categorical interface (tuples travel as strings)."""
        return {name: codes[trial.suggest_categorical(name, list(codes))] for name, codes in self.codes.items()}

    def decode(self, encoded: dict) -> dict:
        return {name: self.codes[name][value] for name, value in encoded.items()}

    def encode(self, params: dict) -> dict:
        return {name: encode(value) for name, value in params.items()}


def encode(value):
    """Optuna stores None/bool/int/float/str; a (width, frac) pair becomes the string '(8, 4)'."""
    return str(tuple(value)) if isinstance(value, (tuple, list)) else value


def sorted_choices(values: list, where: str) -> list:
    """Numeric choices (or tuples of numbers) sorted ascending; duplicates are an error."""
    values = [tuple(v) if isinstance(v, list) else v for v in values]
    if len(set(map(encode, values))) != len(values):
        raise ValueError(f"{where} has duplicate choices {values}; list each choice once")

    def numeric(v):
        items = v if isinstance(v, tuple) else (v,)
        return all(isinstance(i, numbers.Real) and not isinstance(i, bool) for i in items)
    return sorted(values) if all(numeric(v) for v in values) else values


def split_fixed(values: dict[str, list]) -> tuple[dict, dict[str, list]]:
    """``(fixed, choices)``: single-choice entries as their one value, the rest as they are."""
    return ({k: v[0] for k, v in values.items() if len(v) == 1}, {k: v for k, v in values.items() if len(v) > 1})


def check_keys(table, allowed: set[str], where: str) -> None:
    """ValueError unless ``table`` is a dict whose keys are all in ``allowed`` (for TOML tables)."""
    if not isinstance(table, dict):
        raise ValueError(f"{where} must be a table, got {table!r}")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ValueError(f"{where} has unknown key(s) {unknown}; allowed: {sorted(allowed)}")
