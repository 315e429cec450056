"""Running (or resuming) one study in this process: :func:`run` for a space and an evaluator, :func:`run_config`
for a parsed TOML config."""
from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any, Callable

import optuna
from tqdm.auto import tqdm

from .. import validate
from .budget import budget as budget_of
from .config import SearchConfig, config_context, default_study_name
from .kinds import get_kind
from .liveness import HEARTBEAT_S, METRICS_ATTR, quiet_optuna
from .objective import Objective
from .samplers import sampler_seed
from .space import Space
from .storage import get_storage, params_in_one_write
from .study import SearchResult, delete_study, n_complete, open_study, results, study_context
from .trials import MAX_FAILURES, claim, optimize, prepare

DEFAULT_RUN_ROOT = Path("runs/search")


def run(space: Space, evaluate: Callable[[Any], dict], objective: Objective, *, sampler: str = "tpe",
        n_trials: int | None = None, seed: int = 0, study_name: str = "search", storage=None,
        run_root: str | Path = DEFAULT_RUN_ROOT, write: bool = True, resume: bool = True,
        progress: bool = True, worker: int = 0, requeue_failed: bool = True,
        context: dict | None = None, heartbeat_s: float = HEARTBEAT_S,
        max_failures: int = MAX_FAILURES) -> SearchResult:
    """Run (or resume) a seeded study; record every trial's metrics as its user attribute ``metrics``.

    ``n_trials`` is the total budget of the study, counted in completed trials (default: the size of
    the space). A study of the same name in the same storage is resumed: only ``n_trials`` minus its
    completed trials run (``resume=False`` deletes that study first and starts again).
    ``storage``: any spec of :func:`labhelpers.search.storage.get_storage` (default: a journal file in the
    run folder). Results go to ``run_root/study_name/`` as trials.csv, trials.json and best.json
    (``write=False`` or ``storage='memory'`` writes nothing).
    A trial whose evaluation raises is recorded as FAIL with ``user_attrs["error"]``, and the run goes
    on; ``max_failures`` trials in a row that fail stop the run with a ValueError. ``worker`` (sampler seed
    ``seed + worker``) and ``requeue_failed`` serve several workers on one study (:mod:`.workers`).
    ``context`` (plain data: dataset fingerprint, checkpoint hash...) is stored with a new study, together
    with the sampler, the objective and the space (:func:`labhelpers.search.study.study_context`); resuming a
    study whose stored context differs raises instead of mixing results of different runs.
    ``heartbeat_s``: how often a running trial records that its worker is alive.
    """
    n_trials = validate.positive_int("n_trials", space.size if n_trials is None else n_trials, validate.MAX_TRIALS)
    run_dir = validate.output_dir("run_root", run_root) / validate.safe_name("study_name", study_name)
    with quiet_optuna():
        store = get_storage(storage, run_dir, heartbeat_s=heartbeat_s)
        if not resume:
            delete_study(study_name, store)
        study = open_study(space, objective, sampler, sampler_seed(sampler, seed, worker), study_name, store,
                           study_context(space, objective, sampler, context), run_dir)
        total, points = budget_of(space, sampler, n_trials)
        if requeue_failed:
            prepare(study, points)
        _optimize(study, space, evaluate, objective, total, points, progress, max_failures)
    return results(study, space, objective, run_dir if write and storage != "memory" else None)


def _optimize(study, space, evaluate, objective, total, points, progress, max_failures) -> None:
    bar = tqdm(total=max(total - n_complete(study), 0), desc=f"{study.study_name}", disable=not progress, leave=False)

    def trial_fn(trial: optuna.Trial):
        with params_in_one_write(trial.storage):
            params = space.suggest(trial)
        if points is not None:
            claim(trial)  # several workers: skip a point that another worker has or had first
        measured = evaluate(space.to_config(params))
        trial.set_user_attr(METRICS_ATTR, {name: _plain_number(value) for name, value in measured.items()})
        values = objective.values(measured)
        if points is not None:
            claim(trial)  # again: a worker that drew the point meanwhile with a lower number wins
        return values

    try:
        optimize(study, trial_fn, budget=total, points=points, callbacks=[lambda study, trial: bar.update(1)],
                 max_failures=max_failures)
    finally:
        bar.close()


def _plain_number(value) -> int | float:
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def run_config(cfg: SearchConfig, *, checkpoint: str | None = None, dataset: str | None = None,
               **run_kwargs) -> SearchResult:
    """Build the kind's evaluator from the config and :func:`run` the study it describes."""
    evaluate = get_kind(cfg.kind).evaluator(cfg, checkpoint=checkpoint, dataset=dataset)
    kwargs = {"sampler": cfg.sampler, "n_trials": cfg.n_trials, "seed": cfg.seed,
              "study_name": default_study_name(cfg), "context": config_context(cfg, evaluate), **run_kwargs}
    return run(cfg.space, evaluate, cfg.objective, **kwargs)
