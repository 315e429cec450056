"""Budgets and where a study stands against them: counts by state, coverage of an exhaustive space."""
from __future__ import annotations

from dataclasses import dataclass

import optuna
import pandas as pd
from optuna.trial import TrialState

from .. import validate
from .liveness import ERROR_ATTR
from .samplers import EXHAUSTIVE
from .space import Space


def budget(space: Space, sampler: str, n_trials: int | None) -> tuple[int, list[dict] | None]:
    """``(budget in COMPLETE trials, points)``; ``points`` (Optuna codes) is the whole grid when an
    exhaustive sampler covers the space, else None."""
    n = validate.positive_int("n_trials", space.size if n_trials is None else n_trials)
    if sampler in EXHAUSTIVE and n >= space.size:
        return space.size, [space.to_optuna(p) for p in space.grid()]
    return n, None


def point_key(params: dict) -> tuple:
    return tuple(sorted(params.items()))


def by_point(study: optuna.Study) -> dict[tuple, list[optuna.trial.FrozenTrial]]:
    """The study's trials grouped by their point (:func:`point_key` of their params)."""
    trials = {}
    for t in study.get_trials(deepcopy=False):
        trials.setdefault(point_key(t.params), []).append(t)
    return trials


def coverage(study: optuna.Study, space: Space) -> pd.DataFrame:
    """One row per point of ``space`` (its labels): its trials by state (``skipped``: PRUNED by
    ``claim``, nothing evaluated), ``evaluations`` (COMPLETE + FAIL) and ``duplicates`` (evaluations - 1)."""
    trials = by_point(study)
    rows = []
    for point in space.grid():
        states = [t.state for t in trials.get(point_key(space.to_optuna(point)), [])]
        rows.append({**space.encode(point), "trials": len(states), "complete": states.count(TrialState.COMPLETE),
                     "failed": states.count(TrialState.FAIL), "skipped": states.count(TrialState.PRUNED),
                     "running": states.count(TrialState.RUNNING), "waiting": states.count(TrialState.WAITING)})
    table = pd.DataFrame(rows)
    evaluations = table["complete"] + table["failed"]
    return table.assign(evaluations=evaluations, duplicates=(evaluations - 1).clip(lower=0))


@dataclass
class Status:
    """Where a study stands against its budget (counts of trials by state)."""

    budget: int
    complete: int
    missing: int         # points without a COMPLETE trial (exhaustive), or budget - complete
    failed: int          # FAIL trials whose evaluation raised (user_attrs["error"])
    lost: int            # FAIL trials without an error: their worker died
    running: int
    waiting: int
    errors: list[str]    # distinct error messages

    @property
    def done(self) -> bool:
        return self.missing == 0


def status(study: optuna.Study, budget: int, points: list[dict] | None = None) -> Status:
    """Count a study's trials against its budget (``points`` as returned by :func:`budget`)."""
    trials = study.get_trials(deepcopy=False)
    by = {s: [t for t in trials if t.state == s] for s in TrialState}
    complete = len(by[TrialState.COMPLETE])
    if points is None:
        missing = max(budget - complete, 0)
    else:
        done = {point_key(t.params) for t in by[TrialState.COMPLETE]}
        missing = sum(point_key(p) not in done for p in points)
    raised = [t for t in by[TrialState.FAIL] if ERROR_ATTR in t.user_attrs]
    return Status(budget, complete, missing, len(raised), len(by[TrialState.FAIL]) - len(raised),
                  len(by[TrialState.RUNNING]), len(by[TrialState.WAITING]),
                  sorted({t.user_attrs[ERROR_ATTR] for t in raised}))
