"""Running trials in one process, crash-safe: budgets in COMPLETE trials, failures recorded, lost points retried.

* each trial is written to the storage when it finishes, so a killed worker loses only its running trial;
* that trial is failed and its point re-queued once by Optuna's ``fail_stale_trials``, which every worker
  runs before each trial (see :mod:`.storage` for how a journal file answers it);
* the loop is Optuna's ``study.optimize`` (fail stale trials, ask, evaluate, tell) written out
  (:func:`_run_trial`), so that one heartbeat thread serves all trials of a run
  (:class:`labhelpers.search.liveness.Heartbeats`) and a journal file gets a trial in three appends
  (:mod:`.journal`); Optuna's thread per trial and its deep copies of every finished trial cost more
  than the bookkeeping itself;
* a trial whose evaluation raises is recorded FAIL with ``user_attrs["error"]``, and the run goes on,
  unless ``max_failures`` trials of one worker in a row did not complete (:class:`TooManyFailures`);
* exhaustive samplers on several workers: a worker evaluates a point only if it still has no COMPLETE
  trial and no RUNNING trial with a lower number (:func:`claim`), and waits at the end until every point
  has finished (taking over the points of trials found lost meanwhile).
"""
from __future__ import annotations

import contextlib
import sys
import time

import optuna
from optuna.study._tell import _tell_with_warning  # what study.optimize tells with (Study.tell warns, deep-copies)
from optuna.trial import TrialState

from .. import validate
from .budget import by_point, point_key
from .liveness import ERROR_ATTR, SKIPPED_ATTR, Heartbeats, fail_dead_trials, quiet_optuna, worker_id
from .storage import attrs_with_state, stamp, stamping

MAX_FAILURES = 20     # this many trials in a row FAIL (or are skipped) in one worker: stop with an error
POLL_S = 1.0          # a worker with nothing to start checks this often for lost trials
FINISHED = (TrialState.COMPLETE, TrialState.FAIL)
_LOG = optuna.logging.get_logger("optuna.study")  # failed trials are logged where study.optimize logs them


def prepare(study: optuna.Study, points: list[dict] | None) -> int:
    """Before the workers of a run start: fail lost trials, and (exhaustive samplers) re-queue once each
    point whose trials all failed. Returns the number of points re-queued."""
    fail_dead_trials(study)
    if points is None:
        return 0
    trials = by_point(study)
    again = [p for p in points
             if (states := {t.state for t in trials.get(point_key(p), [])}) and states <= {TrialState.FAIL}]
    for point in again:
        study.enqueue_trial(point, user_attrs={"requeued": True})
    return len(again)


class TooManyFailures(ValueError):
    """Raised by :func:`optimize` when ``max_failures`` trials in a row did not complete."""


def optimize(study: optuna.Study, trial_fn, *, budget: int, points: list[dict] | None = None,
             callbacks=(), poll_s: float = POLL_S, max_failures: int = MAX_FAILURES) -> None:
    """Run trials in this process until the study's budget is met (see the module doc).

    ``points`` given (exhaustive samplers): until every point has a finished trial and no trial is
    queued; while every unfinished point is running in other workers, wait (and fail lost trials).
    Otherwise: until the study has ``budget`` COMPLETE trials, running at most as many trials as were
    missing when this worker started (so failing trials cannot loop forever; re-run to fill the gap).
    A trial that another worker failed meanwhile as lost (this process was stopped or hung) is dropped.
    """
    validate.positive_int("max_failures", max_failures)
    fn = recorded(trial_fn)
    callbacks = [_failure_cap(max_failures), *callbacks]
    fail_dead_trials(study)
    if points is None:
        allowed = budget - _n_complete(study)
        while allowed > 0:
            before = fn.started
            taken_over = _optimize_some(study, fn, allowed, callbacks, done=lambda: _n_complete(study) >= budget)
            allowed -= fn.started - before
            if not taken_over:
                return
        return
    while True:
        free, running = _open_points(study, points)
        todo = free + len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        if todo:
            _optimize_some(study, fn, todo, callbacks)
        elif running:  # the rest runs elsewhere: wait for it to finish, or to be found lost and re-queued
            time.sleep(poll_s)
            fail_dead_trials(study)
        else:
            return


def _optimize_some(study: optuna.Study, fn, n_trials: int, callbacks, done=None) -> bool:
    """Up to ``n_trials`` trials (fewer once ``done()``), one after another, as Optuna's ``study.optimize(fn,
    catch=(Exception,))`` runs them (:func:`_run_trial`), with one heartbeat thread for all of them, new
    journal trials created with their worker stamp, and ``callbacks(study, trial)`` called with the stored
    trial (Optuna deep-copies it once per callback). True if it stopped because this worker's trial had
    meanwhile been failed as lost by another worker (Optuna then refuses the result: "Cannot tell a FAIL
    trial"). The other worker has re-queued its point, so the result is dropped."""
    study._thread_local.in_optimize_loop = True  # as study.optimize: no nesting, no "use optimize" warning in ask
    try:
        with quiet_optuna(), Heartbeats(study._storage) as beats, stamping(study._storage, fn.worker):
            for _ in range(n_trials):
                if done is not None and done():
                    break
                trial_id = _run_trial(study, fn, beats)
                trial = study._storage.get_trial(trial_id)
                for callback in callbacks:
                    callback(study, trial)
    except ValueError as exc:
        if type(exc) is not ValueError or not str(exc).startswith("Cannot tell a "):
            raise
        return True
    finally:
        study._thread_local.in_optimize_loop = False
        study._storage.remove_session()
    return False


def _run_trial(study: optuna.Study, fn, beats: Heartbeats) -> int:
    """One trial as Optuna's ``_run_trial`` runs it: fail stale trials, ask, evaluate (a raise: FAIL; a
    TrialPruned: PRUNED), tell, log a failure; its user attributes are written with its final state
    (:func:`labhelpers.search.storage.attrs_with_state`). Returns its id."""
    fail_dead_trials(study)
    trial = study.ask()
    values, state, error, info = None, None, None, None
    with attrs_with_state(study._storage, trial._trial_id):
        with beats.beating(trial._trial_id):
            try:
                values = fn(trial)
            except optuna.TrialPruned:
                state = TrialState.PRUNED
            except (Exception, KeyboardInterrupt) as exc:
                state, error, info = TrialState.FAIL, exc, sys.exc_info()
        state, _, message = _tell_with_warning(study, trial, values, state, suppress_warning=True)
    if state == TrialState.FAIL:
        _LOG.warning(f"Trial {trial.number} failed with parameters: {trial.params} because of the following "
                     f"error: {repr(error) if error is not None else message}.", exc_info=info)
    if isinstance(error, KeyboardInterrupt):
        raise error
    return trial._trial_id


def _failure_cap(max_failures: int):
    """A callback that raises :class:`TooManyFailures` after ``max_failures`` trials in a row that did not
    complete (FAIL, or PRUNED: skipped), so that a broken evaluation or a broken study cannot loop forever."""
    streak = []

    def cap(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state == TrialState.COMPLETE:
            streak.clear()
            return
        streak.append(trial.user_attrs.get(ERROR_ATTR) or ("skipped: " + trial.user_attrs[SKIPPED_ATTR]
                                                           if SKIPPED_ATTR in trial.user_attrs else "no error recorded"))
        if len(streak) >= max_failures:
            raise TooManyFailures(
                f"study {study.study_name!r}: {len(streak)} trials in a row did not complete (last: {streak[-1]}); "
                f"the search stopped instead of failing forever: fix the cause (each failed trial keeps its "
                f"error in user attr {ERROR_ATTR!r}), then re-run the same command (--max-failures sets the limit)")
    return cap


def _open_points(study: optuna.Study, points: list[dict]) -> tuple[int, int]:
    """``(free, running)``: unfinished points without a RUNNING trial, and with one."""
    trials = by_point(study)
    states = [{t.state for t in trials.get(point_key(p), [])} for p in points]
    open_ = [s for s in states if not s & set(FINISHED)]
    running = sum(TrialState.RUNNING in s for s in open_)
    return len(open_) - running, running


def _n_complete(study: optuna.Study) -> int:
    """The study's COMPLETE trials, counted by its storage (a journal file keeps the count: no scan)."""
    return study._storage.get_n_trials(study._study_id, state=(TrialState.COMPLETE,))


def claim(trial: optuna.Trial) -> None:
    """Skip this trial (raise TrialPruned) if its point already has a COMPLETE trial, or a RUNNING trial
    with a lower number: another worker evaluated it, or started it first. Call it between drawing the
    point and evaluating it (exhaustive samplers only: TPE means to repeat points)."""
    for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
        if t.params == trial.params and (t.state == TrialState.COMPLETE or t.number < trial.number):
            trial.set_user_attr(SKIPPED_ATTR, f"trial {t.number} has this point")
            raise optuna.TrialPruned(f"trial {t.number} has this point")


def recorded(trial_fn):
    """``trial_fn`` (``fn.worker``: this process) that stamps the trial with this process (journal storages: see
    :func:`labhelpers.search.liveness.is_lost`), records the error of a raising evaluation, and counts the
    trials it started (``fn.started``)."""
    me = worker_id()

    def fn(trial: optuna.Trial):
        fn.started += 1
        stamp(trial.storage, trial._trial_id, me)
        try:
            return trial_fn(trial)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):  # failed meanwhile as lost
                trial.set_user_attr(ERROR_ATTR, f"{type(exc).__name__}: {exc}"[:2000])
            raise
    fn.started = 0
    fn.worker = me
    return fn
