"""Scale-out search: one Optuna study, many worker processes, on Optuna's own storages, crash-safe.

Storage (``--storage``, chosen by :func:`labhelpers.search.make_storage`):

* default: a journal file in the run folder, ``runs/search/<study>/journal.log`` (Optuna's
  ``JournalFileBackend``): the fast local file, safe for several processes on one machine;
* ``sqlite:///study.db``: a local file for one process (Optuna's FAQ: SQLite locks under parallel writers);
* ``postgresql://user:password@host:5432/db`` (or ``mysql://``): one server, workers on any machines.

Workers: ``python -m labhelpers search --config c.toml --workers N`` starts N worker processes on one
study (each one is the same command with ``--workers 1``). The same command on another machine, against
the same PostgreSQL ``--storage``, adds workers there; give it ``--worker-index`` past the first
machine's workers (e.g. 4 after ``--workers 4``), since a worker's sampler seed is ``seed + worker index``
(except for the grid sampler: its workers share one seed, so that they agree on the order of the grid).

Crash safety:

* each trial is written to the storage when it finishes, so a killed worker loses only its running trial;
* that trial is marked FAIL and its point re-queued once (Optuna's ``RetryHeartbeatStaleTrialCallback``,
  skipped when the point already has a complete, running or queued trial) by the next trial of any
  worker: on RDB storages through Optuna's heartbeat (every ``heartbeat_s`` seconds, stale after
  ``GRACE_HEARTBEATS`` missed beats); on a journal file, which has no heartbeat in Optuna 5.0, when the
  worker process recorded on the trial (host, pid, start time) no longer runs on this machine, or when the
  trial's own heartbeat (a system attr that a thread of its worker rewrites every ``heartbeat_s`` seconds)
  is ``GRACE_HEARTBEATS`` beats old: a hung or stopped (SIGSTOP) worker is lost even though its pid lives.
  If it wakes up later, its result is dropped (the trial stays FAIL) and it goes on with other points;
* a worker killed while sampling leaves a trial holding only some of the parameters. The exhaustive
  samplers (:mod:`labhelpers.search`'s wrappers of Optuna's brute-force and grid samplers) ignore such
  trials, so their point is drawn again; Optuna's own BruteForceSampler would raise ``param_name mismatch``
  on every later trial. Such a partial point is never re-queued;
* a trial whose evaluation raises is recorded FAIL with ``user_attrs["error"]``, and the run goes on,
  unless ``MAX_FAILURES`` (``--max-failures``) trials of one worker in a row did not complete: then the
  worker stops with a one-line error (:class:`TooManyFailures`) instead of failing forever;
* budgets count COMPLETE trials only, so re-running the same command finishes the budget.

Exhaustive samplers (brute-force, grid) across N workers, the guarantee:

* coverage: a run that ends without a killed worker leaves every point with a finished trial: COMPLETE,
  or FAIL with the error its evaluation raised (the next run re-queues such points once, before its
  workers start). No point is skipped by an early stop: the sampler may stop a worker while other
  workers still run the last points (Optuna's BruteForceSampler does), but the worker then waits until
  every point has finished, and takes over the point of any trial found lost meanwhile;
* duplicates: a worker evaluates a point only if, once it has drawn it, the point has no COMPLETE trial
  and no RUNNING trial with a lower number (:func:`claim`; otherwise the trial is PRUNED, with
  ``user_attrs["skipped"]``, and nothing is evaluated), and it is recorded COMPLETE only if that check
  still passes after the evaluation (otherwise PRUNED, metrics kept). So a point is evaluated twice only
  when two workers draw it at the same moment (the later trial checks before the earlier one has recorded
  its draw), and completed twice only if the earlier one records its draw between the later one's second
  check and its end: a point has at most N COMPLETE trials (N workers at a time), and in practice one. FAIL trials do not block a point: lost trials and failed
  points are re-queued as described above. :func:`coverage` counts every trial of every point.

Parallel runs are not trial-order deterministic: trial numbers and which worker evaluates what vary
between runs. For brute force, the set of evaluated points and the metrics of each point do not.
"""
from __future__ import annotations

import contextlib
import copy
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd
from optuna.storages.journal import JournalStorage
from optuna.trial import TrialState
from tqdm.auto import tqdm

from . import search

HEARTBEAT_S = 10          # RDB storages: a running trial writes a heartbeat this often ...
GRACE_HEARTBEATS = 3      # ... and is stale (its worker is gone) after this many missed heartbeats
MAX_RETRY = 3             # a lost trial's point is re-queued at most this many times
WORKER_ATTR = "labhelpers:worker"   # journal trials' system attr: "host:pid:start" of the process evaluating it
HEARTBEAT_ATTR = "labhelpers:heartbeat"  # journal trials' system attr: [unix time of the last beat, seconds between beats]
MAX_FAILURES = 20                   # this many trials in a row FAIL (or are skipped) in one worker: stop with an error
ORPHAN_S = 60.0                     # a journal trial RUNNING this long without a WORKER_ATTR lost its worker at birth
ERROR_ATTR = "error"                # trial user attr of a trial whose evaluation raised
SKIPPED_ATTR = "skipped"            # user attr of a PRUNED trial whose point another worker had (see claim)
POLL_S = 1.0                        # a worker with nothing to start checks this often for lost trials
RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql")
FINISHED = (TrialState.COMPLETE, TrialState.FAIL)


# ============================================================================= storage

def rdb_storage(url: str, heartbeat_s: int = HEARTBEAT_S) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage (``sqlite:///x.db``, ``postgresql://...``) whose workers record heartbeats:
    a trial silent for ``GRACE_HEARTBEATS * heartbeat_s`` seconds is failed and its point re-queued."""
    check_heartbeat(heartbeat_s)
    if _scheme(url) not in RDB_SCHEMES:
        raise ValueError(f"storage {redact(url)!r} is not a database URL; use one of {[s + '://...' for s in RDB_SCHEMES]}")
    try:
        with _quiet():
            return optuna.storages.RDBStorage(with_driver(url), heartbeat_interval=heartbeat_s,
                                              grace_period=GRACE_HEARTBEATS * heartbeat_s,
                                              heartbeat_stale_trial_callback=retry_lost_trial)
    except ImportError as exc:
        raise ValueError(f"storage {redact(url)!r} needs a database driver: {exc}") from None
    except Exception as exc:  # sqlalchemy's OperationalError and friends: server down, bad password, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConnectionError(f"cannot open storage {redact(url)!r}: {first}") from None


def check_heartbeat(heartbeat_s) -> None:
    if not isinstance(heartbeat_s, int) or isinstance(heartbeat_s, bool) or heartbeat_s < 1:
        raise ValueError(f"heartbeat={heartbeat_s!r} must be a positive number of seconds, e.g. {HEARTBEAT_S}")


def check_max_failures(max_failures) -> None:
    if not isinstance(max_failures, int) or isinstance(max_failures, bool) or max_failures < 1:
        raise ValueError(f"max_failures={max_failures!r} must be a positive integer, e.g. {MAX_FAILURES}")


def with_driver(url: str) -> str:
    """``postgresql://`` (or ``postgres://``) -> ``postgresql+psycopg2://``: SQLAlchemy 2.1 would want psycopg 3,
    and the driver we pin is psycopg2. URLs that name a driver stay as they are."""
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg2://", url)


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""


def redact(url: str) -> str:
    """The URL with its password replaced by ``***`` (for messages and logs)."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def check_workers(workers: int, storage) -> None:
    """Several worker processes need a storage they can share: a journal file or a database server."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"--workers {workers!r} must be a positive integer")
    if workers == 1:
        return
    if storage == "memory":
        raise ValueError(f"--workers {workers} cannot share --storage memory; use a journal file (the default) or postgresql://")
    if isinstance(storage, str) and _scheme(storage) == "sqlite":
        raise ValueError(f"--workers {workers} with --storage {storage}: SQLite locks under parallel writers "
                         f"(Optuna FAQ); use a journal file (the default, or a path such as runs/study.log) or postgresql://")


def worker_seed(sampler: str, seed: int, worker: int) -> int:
    """The sampler seed of worker ``worker``: ``seed + worker``; grid workers share ``seed`` (one grid order)."""
    if not isinstance(worker, int) or isinstance(worker, bool) or worker < 0:
        raise ValueError(f"worker index {worker!r} must be a non-negative integer")
    return seed if sampler == "grid" else seed + worker


# ============================================================================= budgets and coverage

def budget(space: search.Space, sampler: str, n_trials: int | None) -> tuple[int, list[dict] | None]:
    """``(budget in COMPLETE trials, points)``; ``points`` (encoded params) is the whole grid when an
    exhaustive sampler covers the space, else None."""
    n = space.size if n_trials is None else n_trials
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n_trials={n!r} must be a positive integer")
    if sampler in search.EXHAUSTIVE and n >= space.size:
        return space.size, [space.encode(p) for p in space.grid()]
    return n, None


def _key(params: dict) -> tuple:
    return tuple(sorted(params.items()))


def _by_point(study: optuna.Study) -> dict[tuple, list[optuna.trial.FrozenTrial]]:
    trials = {}
    for t in study.get_trials(deepcopy=False):
        trials.setdefault(_key(t.params), []).append(t)
    return trials


def coverage(study: optuna.Study, space: search.Space) -> pd.DataFrame:
    """One row per point of ``space`` (encoded params): its trials by state (``skipped``: PRUNED by
    :func:`claim`, nothing evaluated), ``evaluations`` (COMPLETE + FAIL) and ``duplicates`` (evaluations - 1)."""
    trials = _by_point(study)
    rows = []
    for point in map(space.encode, space.grid()):
        states = [t.state for t in trials.get(_key(point), [])]
        rows.append({**point, "trials": len(states), "complete": states.count(TrialState.COMPLETE),
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
        done = {_key(t.params) for t in by[TrialState.COMPLETE]}
        missing = sum(_key(p) not in done for p in points)
    raised = [t for t in by[TrialState.FAIL] if ERROR_ATTR in t.user_attrs]
    return Status(budget, complete, missing, len(raised), len(by[TrialState.FAIL]) - len(raised),
                  len(by[TrialState.RUNNING]), len(by[TrialState.WAITING]),
                  sorted({t.user_attrs[ERROR_ATTR] for t in raised}))


# ============================================================================= crashed workers

def worker_id(pid: int | None = None) -> str:
    """``host:pid:start``: names a process uniquely on this machine (start time guards against pid reuse)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_proc_start(pid) or ''}"


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (Linux); None if there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _proc_start(pid: int) -> str | None:
    fields = _proc_stat(pid)
    return fields[19] if fields else None


def is_alive(worker: str) -> bool | None:
    """Whether the process ``worker`` (a :func:`worker_id`) still runs; None when it ran on another host."""
    host, pid, start = worker.rsplit(":", 2)
    if host != socket.gethostname():
        return None
    pid = int(pid)
    if Path("/proc/self/stat").exists():
        fields = _proc_stat(pid)
        return fields is not None and fields[0] not in ("Z", "X") and (not start or fields[19] == start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def is_lost(trial: optuna.trial.FrozenTrial, now: float | None = None) -> bool:
    """Whether a RUNNING journal trial has lost its worker: the process recorded on it (WORKER_ATTR) no
    longer runs on this machine, or its heartbeat (HEARTBEAT_ATTR) is older than GRACE_HEARTBEATS beats
    (the process is hung or stopped, here or on another host), or it never got a WORKER_ATTR although it
    started ORPHAN_S ago (its worker died between creating it and stamping it)."""
    now = time.time() if now is None else now
    worker, beat = trial.system_attrs.get(WORKER_ATTR), trial.system_attrs.get(HEARTBEAT_ATTR)
    if worker is None:
        start = trial.datetime_start.timestamp() if trial.datetime_start else now
        return now - start > ORPHAN_S
    if is_alive(worker) is False:
        return True
    return beat is not None and now - beat[0] > GRACE_HEARTBEATS * beat[1]


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Fail the RUNNING trials that lost their worker (:func:`is_lost`), and re-queue their points.

    For storages without a heartbeat of Optuna's (a journal file); RDB storages do this with Optuna's heartbeat.
    Returns the numbers of the trials this call failed (another worker may have failed them first).
    """
    storage = study._storage
    if not isinstance(storage, JournalStorage):
        return []
    now = time.time()
    dead = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if is_lost(t, now)]
    failed = []
    for t in dead:
        try:
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            failed.append(t)
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker failed it first
            pass
    for t in failed:
        retry_lost_trial(study, storage.get_trial(t._trial_id))
    return [t.number for t in failed]


def retry_lost_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Re-queue the point of a trial lost with its worker (Optuna's RetryHeartbeatStaleTrialCallback),
    unless that point already has a complete, running or queued trial, or the trial holds only some of
    the space's parameters (killed while sampling): a partial point is never queued, since the samplers
    see its point as unvisited and draw it again."""
    if not _whole_point(study, trial.params):
        return
    pending = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
    if any(t.params == trial.params and t.number != trial.number
           for t in study.get_trials(deepcopy=False, states=pending)):
        return
    trial = copy.deepcopy(trial)
    trial.system_attrs = {k: v for k, v in trial.system_attrs.items() if k not in (WORKER_ATTR, HEARTBEAT_ATTR)}
    with _quiet():
        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, trial)


def _whole_point(study: optuna.Study, params: dict) -> bool:
    """Whether ``params`` name every parameter of the study's space (stored in its context by
    labhelpers.search); without a stored space, whether they name every parameter any trial of the study has."""
    space = (study.user_attrs.get(search.CONTEXT_ATTR) or {}).get("space")
    if space is None:
        space = set().union(*(t.params for t in study.get_trials(deepcopy=False)))
    return bool(params) and set(params) == set(space)


# ============================================================================= running trials

def prepare(study: optuna.Study, points: list[dict] | None) -> int:
    """Before the workers of a run start: fail dead/stale trials, and (exhaustive samplers) re-queue once
    each point whose trials all failed. Returns the number of points re-queued."""
    fail_dead_trials(study)
    with _quiet():
        optuna.storages.fail_stale_trials(study)
    if points is None:
        return 0
    trials = _by_point(study)
    again = [p for p in points
             if (states := {t.state for t in trials.get(_key(p), [])}) and states <= {TrialState.FAIL}]
    for point in again:
        study.enqueue_trial(point, user_attrs={"requeued": True})
    return len(again)


class TooManyFailures(ValueError):
    """Raised by :func:`optimize` when ``max_failures`` trials in a row did not complete."""


def optimize(study: optuna.Study, trial_fn, *, budget: int, points: list[dict] | None = None,
             callbacks=(), poll_s: float = POLL_S, heartbeat_s: int = HEARTBEAT_S,
             max_failures: int = MAX_FAILURES) -> None:
    """Run trials in this process until the study's budget is met (see the module doc).

    ``points`` given (exhaustive samplers): until every point has a finished trial and no trial is
    queued; while every unfinished point is running in other workers, wait (and fail lost trials).
    Otherwise: until the study has ``budget`` COMPLETE trials, running at most as many trials as were
    missing when this worker started (so failing trials cannot loop forever; re-run to fill the gap).
    A trial that raises is recorded FAIL with ``user_attrs["error"]``; the next one starts, unless
    ``max_failures`` trials of this worker in a row failed (or were skipped): then :class:`TooManyFailures`.
    On a journal file a running trial beats every ``heartbeat_s`` seconds (HEARTBEAT_ATTR). A trial that
    another worker failed meanwhile as lost (this process was stopped or hung) is dropped, and the run goes on.
    """
    check_heartbeat(heartbeat_s)
    check_max_failures(max_failures)
    fn = _recorded(trial_fn, heartbeat_s)
    callbacks = [_failure_cap(max_failures), *callbacks, lambda study, trial: fail_dead_trials(study)]
    fail_dead_trials(study)
    if points is None:
        allowed = budget - len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        stop = optuna.study.MaxTrialsCallback(budget, states=(TrialState.COMPLETE,))
        while allowed > 0:
            before = fn.started
            taken_over = _optimize_some(study, fn, allowed, [stop, *callbacks])
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
            with _quiet():
                optuna.storages.fail_stale_trials(study)
        else:
            return


def _optimize_some(study: optuna.Study, fn, n_trials: int, callbacks) -> bool:
    """``study.optimize``; True if it stopped because this worker's trial had meanwhile been failed as lost
    by another worker (Optuna then refuses the result: "Cannot tell a FAIL trial"). The other worker has
    re-queued its point, so the result is dropped."""
    try:
        study.optimize(fn, n_trials=n_trials, catch=(Exception,), callbacks=callbacks)
    except ValueError as exc:
        if type(exc) is not ValueError or not str(exc).startswith("Cannot tell a "):
            raise
        return True
    return False


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
    trials = _by_point(study)
    states = [{t.state for t in trials.get(_key(p), [])} for p in points]
    open_ = [s for s in states if not s & set(FINISHED)]
    running = sum(TrialState.RUNNING in s for s in open_)
    return len(open_) - running, running


def claim(trial: optuna.Trial) -> None:
    """Skip this trial (raise TrialPruned) if its point already has a COMPLETE trial, or a RUNNING trial
    with a lower number: another worker evaluated it, or started it first. Call it between drawing the
    point and evaluating it (exhaustive samplers only: TPE means to repeat points)."""
    for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
        if t.params == trial.params and (t.state == TrialState.COMPLETE or t.number < trial.number):
            trial.set_user_attr(SKIPPED_ATTR, f"trial {t.number} has this point")
            raise optuna.TrialPruned(f"trial {t.number} has this point")


def _recorded(trial_fn, heartbeat_s: int = HEARTBEAT_S):
    """``trial_fn`` that stamps the trial with this process and its heartbeat (journal storages: see
    :func:`is_lost`), records the error of a raising evaluation, and counts the trials it started
    (``fn.started``)."""
    me = worker_id()

    def fn(trial: optuna.Trial):
        fn.started += 1
        beat = None
        if isinstance(trial.storage, JournalStorage):  # only the journal needs it: see fail_dead_trials
            trial.storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, me)
            beat = _Heartbeat(trial.storage, trial._trial_id, heartbeat_s)
        try:
            return trial_fn(trial)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):  # failed meanwhile as lost
                trial.set_user_attr(ERROR_ATTR, f"{type(exc).__name__}: {exc}"[:2000])
            raise
        finally:
            if beat is not None:
                beat.stop()
    fn.started = 0
    return fn


class _Heartbeat:
    """A thread that writes ``[time.time(), every_s]`` to a trial's HEARTBEAT_ATTR now and every ``every_s``
    seconds, until :meth:`stop` or until the trial is finished (failed by another worker as lost)."""

    def __init__(self, storage, trial_id: int, every_s: int):
        self._storage, self._trial_id, self._every_s = storage, trial_id, every_s
        self._stopped = threading.Event()
        self._beat()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{trial_id}", daemon=True)
        self._thread.start()

    def _beat(self) -> bool:
        try:
            self._storage.set_trial_system_attr(self._trial_id, HEARTBEAT_ATTR, [time.time(), self._every_s])
        except optuna.exceptions.UpdateFinishedTrialError:
            return False
        return True

    def _run(self) -> None:
        while not self._stopped.wait(self._every_s):
            try:
                if not self._beat():
                    return
            except Exception:  # a storage hiccup: try again at the next beat
                pass

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


# ============================================================================= several processes

@dataclass
class Launch:
    """The outcome of :func:`launch`: the study's results and each worker's exit code."""

    result: search.SearchResult
    exit_codes: dict[int, int]   # worker index -> exit code (negative: killed by that signal)

    def failures(self) -> list[str]:
        """One phrase per worker that did not exit cleanly."""
        out = []
        for index, code in self.exit_codes.items():
            if code < 0:
                out.append(f"worker {index} was killed by {signal.Signals(-code).name}")
            elif code:
                out.append(f"worker {index} exited with status {code}")
        return out


def launch(cfg: search.SearchConfig, worker_argv: list[str], *, workers: int, storage: str | None,
           study_name: str, run_root: str | Path = search.DEFAULT_RUN_ROOT, first_worker: int = 0,
           heartbeat_s: int = HEARTBEAT_S, progress: bool = True, poll_s: float = 0.5,
           checkpoint: str | None = None, dataset: str | None = None) -> Launch:
    """Start ``workers`` processes on one study and wait for them; write the run folder at the end.

    ``worker_argv`` is the command of one worker (e.g. ``python -m labhelpers search ... --workers 1``)
    without ``--worker-index``; worker k gets ``--worker-index first_worker + k``. Before they start, this
    process creates the study with its context (from the config and its evaluator, with the workers'
    ``checkpoint`` and ``dataset`` overrides), so that workers do not race to create tables and a study of
    that name made for another config is refused before any worker starts, and runs :func:`prepare`.
    """
    check_workers(workers, storage)
    run_dir = Path(run_root) / study_name
    evaluate = search.KINDS[cfg.kind].evaluator(cfg, checkpoint=checkpoint, dataset=dataset)
    context = search.study_context(cfg.space, cfg.objective, cfg.sampler, search.config_context(cfg, evaluate))
    with search._quiet_optuna():
        store = rdb_storage(storage, heartbeat_s) if storage and "://" in storage else search.make_storage(storage, run_dir)
        study = search._open_study(cfg.space, cfg.objective, cfg.sampler, cfg.seed, study_name, store,
                                   context, run_dir)
        total, points = budget(cfg.space, cfg.sampler, cfg.n_trials)
        prepare(study, points)
        procs = {first_worker + k: subprocess.Popen([*worker_argv, "--worker-index", str(first_worker + k)])
                 for k in range(workers)}
        try:
            _watch(procs, study, total, points, progress, poll_s)
        finally:
            for proc in procs.values():  # only on an interrupt of this process: don't leave workers behind
                if proc.poll() is None:
                    proc.terminate()
            codes = {k: proc.wait() for k, proc in procs.items()}
        result = search.results(study, cfg.objective, run_dir)
    return Launch(result, codes)


def _watch(procs: dict, study, total: int, points, progress: bool, poll_s: float) -> None:
    """Wait for the workers; the progress bar counts the study's COMPLETE trials towards the budget."""
    with tqdm(total=total, desc=f"{study.study_name} ({len(procs)} workers)", disable=not progress, leave=False) as bar:
        while any(p.poll() is None for p in procs.values()):
            time.sleep(poll_s)
            if progress:
                with contextlib.suppress(Exception):  # a storage hiccup must not stop the workers
                    bar.n = total - status(study, total, points).missing
                    bar.refresh()
