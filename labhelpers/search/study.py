"""The study: created with its context (or resumed only in the same one), and its results as tables."""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from .liveness import CONTEXT_ATTR, METRICS_ATTR
from .objective import Objective
from .samplers import make_sampler
from .space import Space, encode

CONTEXT_WAIT_S = 10.0     # a study found without its context may be one being created right now: wait this long
COMPLETE = (optuna.trial.TrialState.COMPLETE,)


def study_context(space: Space, objective: Objective, sampler: str, context: dict | None = None) -> dict:
    """Everything that changes a trial's score or the meaning of "best", as plain JSON data: the sampler,
    the objective (metrics, directions, scales, scaled sum or not), the space's choices and its fixed part
    (its keys at the top level: ``by`` and ``seed`` for quantize, ``train`` and ``hidden`` for architecture),
    plus ``context``: what the kind's evaluator knows (dataset fingerprint, checkpoint hash, split...).
    Resuming a study is refused unless this is the same."""
    base = {"sampler": sampler,
            "objective": {"metrics": {k: [d, float(sc)] for k, (d, sc) in objective.metrics.items()},
                          "sum_scaled": bool(objective.sum_scaled)},
            "space": {k: [str(encode(c)) for c in v] for k, v in space.choices.items()},
            "ordinal": space.ordinal_names}
    return json.loads(json.dumps({**base, **space.fixed, **(context or {})}, sort_keys=True, default=str))


def open_study(space: Space, objective: Objective, sampler: str, seed: int, study_name: str, storage,
               context: dict | None = None, run_dir: Path | None = None) -> optuna.Study:
    """Create the study with its context, or load it and check that its stored context is ``context``.

    Creating is atomic across processes (Optuna raises DuplicatedStudyError for the second creator, on
    every storage), and the creator stores the context right after: so of two commands started at once on
    one study name, the second sees the first one's context (waiting up to CONTEXT_WAIT_S for it) and is
    refused at once if it differs."""
    sampler_obj = make_sampler(sampler, space, seed)
    try:
        study = optuna.create_study(storage=storage, sampler=sampler_obj, study_name=study_name,
                                    directions=objective.directions, load_if_exists=False)
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler_obj)
        created = False
    existing = [d.name.lower() for d in study.directions]
    if existing != objective.directions:
        raise ValueError(f"study {study_name!r} already exists with directions {existing}, not {objective.directions}; "
                         f"choose another --study-name")
    if context is not None:
        if created:
            study.set_user_attr(CONTEXT_ATTR, context)
        else:
            _check_context(study, context, run_dir)
    return study


def _check_context(study: optuna.Study, context: dict, run_dir: Path | None) -> None:
    """Refuse to resume a study whose stored context is not ``context`` (one line naming what differs)."""
    stored = _stored_context(study)
    if stored is None:  # a study made without a context (by Optuna itself, or an old labhelpers): adopt it
        study.set_user_attr(CONTEXT_ATTR, context)
        return
    if stored != context:
        changed = sorted(k for k in set(stored) | set(context) if stored.get(k) != context.get(k))
        where = f"delete {run_dir}" if run_dir is not None else "delete that study"
        raise ValueError(f"study {study.study_name!r} exists with a different {', '.join(changed)} "
                         f"(stored {_short([stored.get(k) for k in changed])}, now {_short([context.get(k) for k in changed])}); "
                         f"resuming would mix results: pass another --study-name or {where}")


def _stored_context(study: optuna.Study) -> dict | None:
    """The study's stored context; for a study just created by another process without trials yet, wait
    (up to CONTEXT_WAIT_S) for its creator to store it."""
    deadline = time.monotonic() + CONTEXT_WAIT_S
    while True:
        stored = study.user_attrs.get(CONTEXT_ATTR)
        if stored is not None or study.get_trials(deepcopy=False) or time.monotonic() > deadline:
            return stored
        time.sleep(0.05)


def _short(value, limit: int = 300) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


def delete_study(study_name: str, storage) -> None:
    """Delete the study if it exists."""
    try:
        optuna.delete_study(study_name=study_name, storage=storage)
    except KeyError:  # Optuna's way of saying "no such study yet"
        pass


def n_complete(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=COMPLETE))


def metrics_of(trial: optuna.trial.FrozenTrial) -> dict:
    """A trial's user attributes with its metrics spread out: the ``metrics`` dict that a trial stores in
    one write, or (studies of labhelpers before it) one user attribute per metric."""
    attrs = dict(trial.user_attrs)
    metrics = attrs.pop(METRICS_ATTR, {})
    return {**attrs, **metrics}


@dataclass
class SearchResult:
    """A finished (or resumed) study: ``table`` has one row per trial; ``best`` the best trial(s)."""

    study: optuna.Study
    table: pd.DataFrame
    best: pd.DataFrame
    run_dir: Path | None


def results(study: optuna.Study, space: Space, objective: Objective, run_dir: str | Path | None = None) -> SearchResult:
    """The study's trials table and best trial(s); written to ``run_dir`` (trials.csv/json, best.json) if given."""
    # best first: other workers may add trials meanwhile, and every best trial is then in the table
    best_numbers = best_trial_numbers(study.get_trials(deepcopy=False, states=COMPLETE), study.directions)
    table = trials_table(study, space, objective)
    best = table.loc[best_numbers] if len(table) else table
    if run_dir is not None:
        _write(Path(run_dir), table, best)
    return SearchResult(study, table, best, Path(run_dir) if run_dir is not None else None)


def best_trial_numbers(trials: list[optuna.trial.FrozenTrial], directions) -> list[int]:
    """The numbers of the COMPLETE trials that no other dominates (no worse in every value, better in one):
    ``study.best_trials`` (ties all kept; one objective: every trial with the best value), without its deep
    copy of every trial of the study."""
    trials = [t for t in trials if t.state in COMPLETE]
    if not trials:
        return []
    signs = np.array([-1.0 if d == optuna.study.StudyDirection.MAXIMIZE else 1.0 for d in directions])
    loss = np.array([t.values for t in trials], dtype=float) * signs
    if loss.shape[1] == 1:
        return [t.number for t, value in zip(trials, loss[:, 0]) if value == loss[:, 0].min()]
    front: list[int] = []  # in lexicographic order a trial can be dominated only by one before it, on the front
    for i in np.lexsort(loss.T[::-1]):
        ahead = loss[front]
        if not ((ahead <= loss[i]).all(axis=1) & (ahead < loss[i]).any(axis=1)).any():
            front.append(i)
    return [trials[i].number for i in sorted(front)]


def trials_table(study: optuna.Study, space: Space, objective: Objective) -> pd.DataFrame:
    """One row per completed trial: parameters (as labels), every recorded metric, and ``score`` for a scaled sum."""
    rows = []
    for t in study.get_trials(deepcopy=False, states=COMPLETE):
        score = {"score": t.values[0]} if objective.sum_scaled else {}
        rows.append({"trial": t.number, **space.encode(space.from_optuna(t.params)), **metrics_of(t), **score})
    return pd.DataFrame(rows).set_index("trial") if rows else pd.DataFrame()


def _write(run_dir: Path, table: pd.DataFrame, best: pd.DataFrame) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(run_dir / "trials.csv")
    (run_dir / "trials.json").write_text(_json_records(table))
    (run_dir / "best.json").write_text(_json_records(best))


def _json_records(frame: pd.DataFrame) -> str:
    """Rows as JSON with every float exact (``repr``; pandas' ``to_json`` keeps 10 digits, so a best trial read
    back from best.json could compare below its own row in trials.csv); NaN becomes null. (``to_dict`` gives
    Python scalars, numpy ones included.)"""
    rows = frame.reset_index().to_dict("records") if len(frame) else []
    plain = [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()} for row in rows]
    return json.dumps(plain, indent=1) + "\n"
