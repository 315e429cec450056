"""Is a running trial's worker still alive? Process stamps, journal heartbeats, and the retry of lost points.

What labhelpers stores in Optuna, by name (a study's user attr ``context``; a trial's system attrs
``labhelpers:worker`` and ``labhelpers:heartbeat``; its user attrs ``metrics``, ``error``, ``skipped``),
and the answers to Optuna's heartbeat questions for a journal file (see :mod:`.storage`): a RUNNING trial is
lost when the process recorded on it no longer runs on this machine, when its heartbeat is
``GRACE_HEARTBEATS`` beats old (a hung or stopped worker, here or elsewhere), or when it never got a worker
stamp although it started ``ORPHAN_S`` ago. A lost trial's point is re-queued once by :class:`RetryLost`.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import os
import socket
import threading
import time
from pathlib import Path

import optuna
from optuna.storages._heartbeat import is_heartbeat_enabled  # Optuna 5 exports it only from here
from optuna.trial import TrialState

from ..numerics import quiet

CONTEXT_ATTR = "context"                 # study user attr: everything that changes a score (see study.study_context)
WORKER_ATTR = "labhelpers:worker"        # trial system attr: "host:pid:start" of the process evaluating it
HEARTBEAT_ATTR = "labhelpers:heartbeat"  # trial system attr: [unix time of the last beat, seconds between beats]
METRICS_ATTR = "metrics"                 # trial user attr: {metric name: value}, written once per trial
ERROR_ATTR = "error"                     # trial user attr of a trial whose evaluation raised
SKIPPED_ATTR = "skipped"                 # user attr of a PRUNED trial whose point another worker had (see claim)
HEARTBEAT_S = 10          # a running trial records a heartbeat this often ...
GRACE_HEARTBEATS = 3      # ... and is stale (its worker is gone) after this many missed heartbeats
MAX_RETRY = 3             # a lost trial's point is re-queued at most this many times
ORPHAN_S = 60.0           # a journal trial RUNNING this long without a WORKER_ATTR lost its worker at birth


def quiet_optuna():
    """Optuna's per-trial INFO lines and ExperimentalWarnings silenced (:func:`labhelpers.numerics.quiet`)."""
    return quiet("optuna", level=logging.WARNING, warning_categories=(optuna.exceptions.ExperimentalWarning,))


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
    """Whether a RUNNING journal trial has lost its worker (see the module doc)."""
    now = time.time() if now is None else now
    worker, beat = trial.system_attrs.get(WORKER_ATTR), trial.system_attrs.get(HEARTBEAT_ATTR)
    if worker is None:
        start = trial.datetime_start.timestamp() if trial.datetime_start else now
        return now - start > ORPHAN_S
    if is_alive(worker) is False:
        return True
    return beat is not None and now - beat[0] > GRACE_HEARTBEATS * beat[1]


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
    with quiet_optuna():
        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, trial)


def _whole_point(study: optuna.Study, params: dict) -> bool:
    """Whether ``params`` name every parameter of the study's space (stored in its context); without a
    stored space, whether they name every parameter any trial of the study has."""
    space = (study.user_attrs.get(CONTEXT_ATTR) or {}).get("space")
    if space is None:
        space = set().union(*(t.params for t in study.get_trials(deepcopy=False)))
    return bool(params) and set(params) == set(space)


class RetryLost:
    """The stale-trial callback of our storages: :func:`retry_lost_trial`, remembering the numbers of the
    trials it was called for (``numbers``), so that :func:`fail_dead_trials` can say what it failed."""

    def __init__(self):
        self.numbers: list[int] = []

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.numbers.append(trial.number)
        retry_lost_trial(study, trial)


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Optuna's ``fail_stale_trials`` (fail the RUNNING trials that lost their worker, re-queue their points);
    returns the numbers of the trials this call failed (another worker may have failed them first)."""
    storage = study._storage
    if not is_heartbeat_enabled(storage):
        return []
    callback = storage.get_heartbeat_stale_trial_callback()
    before = len(callback.numbers) if isinstance(callback, RetryLost) else 0
    with quiet_optuna():
        optuna.storages.fail_stale_trials(study)
    return list(callback.numbers[before:]) if isinstance(callback, RetryLost) else []


class Heartbeats:
    """The heartbeats of one process's trials, from one thread for the whole run (``with Heartbeats(storage)
    as beats:``) instead of Optuna's one thread per trial (started and joined around every trial of
    ``study.optimize``: about 0.1-0.5 ms each, on 2 busy cores).

    ``with beats.beating(trial_id):`` records the trial's first heartbeat at once (on a journal file its
    stamp carries it, see :mod:`.journal`) and makes it the trial the thread beats for, every
    ``heartbeat_s`` seconds while it runs, as Optuna's thread does. A storage without heartbeats gets no
    thread. A beat that fails (a storage hiccup) is tried again at the next one: the thread does not die of it.
    """

    def __init__(self, storage):
        self.storage = storage
        self.interval = storage.get_heartbeat_interval() if is_heartbeat_enabled(storage) else None
        self._trial_id: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "Heartbeats":
        if self.interval is not None:
            self._thread = threading.Thread(target=self._run, name="labhelpers-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @contextlib.contextmanager
    def beating(self, trial_id: int):
        if self.interval is not None:
            self._beat(trial_id)
        self._trial_id = trial_id
        try:
            yield
        finally:
            self._trial_id = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            trial_id = self._trial_id
            if trial_id is not None:
                self._beat(trial_id)

    def _beat(self, trial_id: int) -> None:
        with contextlib.suppress(Exception):  # a finished trial, or a storage hiccup: the next beat tries again
            self.storage.record_heartbeat(trial_id)
