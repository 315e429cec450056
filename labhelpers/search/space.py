"""Spaces: named parameters with sorted choices, a fixed part, and ``to_config(params)`` for the evaluator.

A space's parameters are only its real choices (two or more values). What a config fixes (single-choice
settings, the quantize pass's ``by``, training settings) is the space's :attr:`Space.fixed` part: plain
data stored with a study's context, so that resuming with other fixed settings is refused.

A parameter's choices are written three ways:

- the *value* the evaluator gets (``16``, ``(8, 4)``);
- its *label* (:meth:`Space.encode`): plain data for tables, CSV files and study contexts (``16``, ``'(8, 4)'``);
- its *Optuna code* (:meth:`Space.to_optuna`): what a trial stores. An **ordinal** parameter, one whose choices
  are all numbers or all tuples of numbers (widths, bit formats), is ``suggest_int`` over the rank of its
  choice in ascending order, so that TPE (and NSGA-II) see 8 < 16 < 32 as ordered, not as unrelated
  categories. Any other parameter (strings, booleans, mixed) is ``suggest_categorical`` over its labels.
  ``Space(..., ordinal=False)`` (or :meth:`Space.categorical`) makes every parameter categorical.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import optuna


@dataclass
class Space:
    """Named parameters with their choices, the fixed part, and ``to_config(params) -> config``."""

    choices: dict[str, list]
    to_config: Callable[[dict], Any]
    kind: str = "custom"
    fixed: dict = field(default_factory=dict)
    ordinal: bool = True
    codes: dict[str, dict] = field(init=False, repr=False)

    def __post_init__(self):
        for name, values in self.choices.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"search space parameter {name!r} needs a non-empty list of choices, got {values!r}")
            if len(set(map(encode, values))) != len(values):
                raise ValueError(f"search space parameter {name!r} has duplicate choices {values}; list each once")
        self._labels = {name: {encode(v): v for v in values} for name, values in self.choices.items()}
        self._ordinal = [name for name, values in self.choices.items() if self.ordinal and _orderable(values)]
        # Optuna code -> value: the rank in ascending order for ordinal parameters, else the label
        self.codes = {name: dict(enumerate(sorted(values))) if name in self.ordinal_names else dict(self._labels[name])
                      for name, values in self.choices.items()}
        self._to_code = {name: {encode(v): c for c, v in codes.items()} for name, codes in self.codes.items()}

    @property
    def ordinal_names(self) -> list[str]:
        """The parameters sampled as ordered integers (all choices numeric); the rest are categorical."""
        return list(self._ordinal)

    def categorical(self) -> "Space":
        """This space with every parameter categorical (Optuna's unordered encoding), for comparison."""
        return dataclasses.replace(self, ordinal=False)

    @property
    def size(self) -> int:
        """Number of distinct points."""
        return math.prod(len(v) for v in self.choices.values())

    def grid(self) -> Iterator[dict]:
        """Every point, as a params dict, in the order of the choices."""
        names = list(self.choices)
        for values in itertools.product(*self.choices.values()):
            yield dict(zip(names, values))

    def optuna_grid(self) -> dict[str, list]:
        """The space in Optuna codes, as GridSampler wants it."""
        return {name: list(codes) for name, codes in self.codes.items()}

    def suggest_param(self, trial: optuna.Trial, name: str):
        """Sample parameter ``name`` of ``trial``; returns its value."""
        codes = self.codes[name]
        if name in self._ordinal:
            return codes[trial.suggest_int(name, 0, len(codes) - 1)]
        return codes[trial.suggest_categorical(name, list(codes))]

    def suggest(self, trial: optuna.Trial) -> dict:
        """Sample one point (ordinal parameters as ranks, the others as categorical labels); returns values."""
        return {name: self.suggest_param(trial, name) for name in self.choices}

    def decode(self, labels: dict) -> dict:
        """Values from labels (:meth:`encode`'s output, e.g. a row of a trials table)."""
        return {name: self._labels[name][label] for name, label in labels.items()}

    def encode(self, params: dict) -> dict:
        """Labels from values: plain data for tables (a tuple becomes the string ``'(8, 4)'``)."""
        return {name: encode(value) for name, value in params.items()}

    def to_optuna(self, params: dict) -> dict:
        """Optuna codes from values: what a trial of this space stores (``enqueue_trial``, a sampler's answer)."""
        return {name: self._to_code[name][encode(value)] for name, value in params.items()}

    def from_optuna(self, stored: dict) -> dict:
        """Values from a trial's stored params (``trial.params``)."""
        return {name: self.codes[name][code] for name, code in stored.items()}


def _numeric(value) -> bool:
    items = value if isinstance(value, (tuple, list)) else (value,)
    return bool(items) and all(isinstance(i, numbers.Real) and not isinstance(i, bool) for i in items)


def _orderable(values: list) -> bool:
    """All numbers, or all tuples of numbers of one length: choices with a natural ascending order."""
    if not all(map(_numeric, values)):
        return False
    shapes = {len(v) if isinstance(v, (tuple, list)) else None for v in values}
    return len(shapes) == 1


def encode(value):
    """Optuna stores None/bool/int/float/str; a (width, frac) pair becomes the string '(8, 4)'."""
    return str(tuple(value)) if isinstance(value, (tuple, list)) else value


def sorted_choices(values: list, where: str) -> list:
    """Numeric choices (or tuples of numbers) sorted ascending; duplicates are an error."""
    values = [tuple(v) if isinstance(v, list) else v for v in values]
    if len(set(map(encode, values))) != len(values):
        raise ValueError(f"{where} has duplicate choices {values}; list each choice once")
    return sorted(values) if _orderable(values) else values


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
