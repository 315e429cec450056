"""Storages by spec, as Optuna's ``storages.get_storage`` chooses them, with heartbeats on every shared one.

:func:`get_storage` is the one place a storage spec is resolved:

* None: a journal file in the run folder, ``<run_dir>/journal.log`` (Optuna's ``JournalFileBackend``): the
  fast local default, safe for several processes on one machine;
* ``"memory"``: Optuna's in-memory storage (one process, nothing kept);
* a URL: ``sqlite:///study.db`` (one process: SQLite locks under parallel writers, Optuna's FAQ),
  ``postgresql://user:password@host:5432/db`` or ``mysql://``: an RDB storage, workers on any machines;
* any other string or path: a journal file there;
* an Optuna storage object: itself.

Both kinds of shared storage answer Optuna's heartbeat questions (``BaseHeartbeat``): a running trial
records a heartbeat every ``heartbeat_s`` seconds (Optuna's own heartbeat thread), and Optuna's
``fail_stale_trials`` (run before every trial) fails the trials that lost their worker and re-queues their
points (:class:`labhelpers.search.liveness.RetryLost`). On an RDB the answers are Optuna's; on a journal file
(which has no heartbeat of Optuna's in 5.0) they are :func:`labhelpers.search.liveness.is_lost`.
"""
from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import time
from pathlib import Path

import optuna
from optuna.storages._heartbeat import BaseHeartbeat  # Optuna 5 exports it only from here
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.distributions import distribution_to_json
from optuna.storages.journal._file import get_lock_file  # the lock Optuna's own append_logs takes
from optuna.storages.journal._storage import JournalOperation  # the journal's record kinds (not exported)
from optuna.trial import TrialState

from .. import validate
from .liveness import GRACE_HEARTBEATS, HEARTBEAT_ATTR, HEARTBEAT_S, WORKER_ATTR, RetryLost, is_lost, quiet_optuna

RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql")
JOURNAL_NAME = "journal.log"
FSYNC_S = 0.5             # a journal file is forced to disk at least this often (see LazySyncFileBackend)


def resolve_spec(spec, run_dir: str | Path | None = None):
    """The spec with the default filled in: None -> ``run_dir/journal.log`` (a str); anything else as given."""
    if spec is None:
        if run_dir is None:
            raise ValueError("storage=None (a journal file in the run folder) needs a run folder")
        return str(Path(run_dir) / JOURNAL_NAME)
    return spec


def get_storage(spec=None, run_dir: str | Path | None = None, *, heartbeat_s: float = HEARTBEAT_S):
    """The Optuna storage for ``spec`` (see the module doc)."""
    check_heartbeat(heartbeat_s)
    spec = resolve_spec(spec, run_dir)
    if isinstance(spec, optuna.storages.BaseStorage):
        return spec
    if spec == "memory":
        return optuna.storages.InMemoryStorage()
    if isinstance(spec, str) and "://" in spec:
        return rdb_storage(spec, heartbeat_s)
    return journal_storage(validate.output_file("storage", spec), heartbeat_s)


def journal_storage(path: str | Path, heartbeat_s: float = HEARTBEAT_S) -> "HeartbeatJournalStorage":
    """A journal file storage at ``path`` (folders created) whose running trials beat every ``heartbeat_s`` s."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return HeartbeatJournalStorage(LazySyncFileBackend(str(path)), heartbeat_s)


class LazySyncFileBackend(JournalFileBackend):
    """Optuna's JournalFileBackend, which forces its writes to disk (``fsync``) at most every ``fsync_s``
    seconds and at exit, instead of after every record (on this machine an fsync costs milliseconds, and a
    trial writes about ten records).

    Every record is still written and flushed to the file under Optuna's file lock before the call returns,
    so other processes see it at once and a killed process (kill -9, a crash, an interrupt) loses nothing.
    Only a crash of the machine itself (power loss, kernel panic) can lose the records of the last
    ``fsync_s`` seconds: those trials are run again by the next run, as any trial that did not complete.
    """

    def __init__(self, file_path: str, fsync_s: float = FSYNC_S):
        super().__init__(file_path)
        self.fsync_s = fsync_s
        self._synced = time.monotonic()
        if file_path not in _AT_EXIT:
            _AT_EXIT.add(file_path)
            atexit.register(_fsync, file_path)

    def append_logs(self, logs: list[dict]) -> None:
        text = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode("utf-8")
        with get_lock_file(self._lock):
            with open(self._file_path, "ab") as f:
                f.write(text)
                f.flush()
                if time.monotonic() - self._synced >= self.fsync_s:
                    os.fsync(f.fileno())
                    self._synced = time.monotonic()


_AT_EXIT: set[str] = set()  # journal files to fsync when the process exits


def _fsync(path: str) -> None:
    with contextlib.suppress(OSError), open(path, "ab") as f:
        os.fsync(f.fileno())


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's JournalStorage answering Optuna's heartbeat questions: a beat is the trial's system attr
    HEARTBEAT_ATTR ``[unix time, seconds between beats]``; stale trials are those :func:`is_lost` finds."""

    def __init__(self, backend, heartbeat_s: float = HEARTBEAT_S):
        super().__init__(backend)
        self.heartbeat_s = heartbeat_s
        self.on_stale = RetryLost()
        self._pending: list[dict] | None = None
        self._first_beat_skipped: int | None = None   # the trial whose stamp carried its first heartbeat

    def stamp(self, trial_id: int, worker: str) -> None:
        """Record the process evaluating the trial and its first heartbeat, in one write (the first thing a
        trial does). Optuna's heartbeat thread, started just before, skips its immediate first beat (a
        second write racing the trial's own writes from another thread) and beats every ``heartbeat_s``
        seconds from there. A trial killed before its stamp has neither: ``is_lost``'s orphan rule."""
        logs = [{"op_code": JournalOperation.SET_TRIAL_SYSTEM_ATTR, "worker_id": self._replay_result.worker_id,
                 "trial_id": trial_id, "system_attr": {key: value}}
                for key, value in ((WORKER_ATTR, worker), (HEARTBEAT_ATTR, [time.time(), self.heartbeat_s]))]
        with self._thread_lock:
            self._backend.append_logs(logs)
            self._sync_with_backend()

    @contextlib.contextmanager
    def params_in_one_write(self):
        """Inside, the parameters a trial suggests are kept and written together on exit: one locked append
        instead of one per parameter (a 6-parameter space wrote 6 records per trial). Optuna's ``Trial``
        keeps what it suggested in its own cache, so nothing inside reads them back. If the block raises,
        none is written: the trial holds no parameter, which the samplers and the retry of lost trials
        already treat as a trial killed while sampling."""
        self._pending = []
        try:
            yield
            pending, self._pending = self._pending, None
            if pending:
                with self._thread_lock:
                    self._backend.append_logs(pending)
                    self._sync_with_backend()
        finally:
            self._pending = None

    def set_trial_param(self, trial_id, param_name, param_value_internal, distribution) -> None:
        if self._pending is None:
            return super().set_trial_param(trial_id, param_name, param_value_internal, distribution)
        self._pending.append({"op_code": JournalOperation.SET_TRIAL_PARAM, "worker_id": self._replay_result.worker_id,
                              "trial_id": trial_id, "param_name": param_name,
                              "param_value_internal": param_value_internal,
                              "distribution": distribution_to_json(distribution)})

    def record_heartbeat(self, trial_id: int) -> None:
        if trial_id != self._first_beat_skipped:  # a new trial: its stamp (see stamp) is its first beat
            self._first_beat_skipped = trial_id
            return
        try:
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, [time.time(), self.heartbeat_s])
        except optuna.exceptions.UpdateFinishedTrialError:  # failed meanwhile as lost by another worker
            pass
        except Exception:  # a storage hiccup: the next beat tries again (a thread must not die of it)
            pass

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        return [t._trial_id for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
                if is_lost(t, now)]

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_s

    def get_heartbeat_stale_trial_callback(self):
        return self.on_stale


def stamp(storage, trial_id: int, worker: str) -> None:
    """Mark a journal trial with the process evaluating it (:func:`labhelpers.search.liveness.is_lost` reads
    it); RDB storages know their trials' liveness themselves."""
    if isinstance(storage, HeartbeatJournalStorage):
        storage.stamp(trial_id, worker)
    elif isinstance(storage, JournalStorage):
        storage.set_trial_system_attr(trial_id, WORKER_ATTR, worker)


def params_in_one_write(storage):
    """``storage.params_in_one_write()`` on a journal file storage; nothing special elsewhere (an RDB
    transaction per parameter is the database's business)."""
    if isinstance(storage, HeartbeatJournalStorage):
        return storage.params_in_one_write()
    return contextlib.nullcontext()


def rdb_storage(url: str, heartbeat_s: float = HEARTBEAT_S) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage (``sqlite:///x.db``, ``postgresql://...``) whose workers record heartbeats:
    a trial silent for ``GRACE_HEARTBEATS * heartbeat_s`` seconds is failed and its point re-queued."""
    check_heartbeat(heartbeat_s)
    if scheme(url) not in RDB_SCHEMES:
        raise ValueError(f"storage {redact(url)!r} is not a database URL; use one of {[s + '://...' for s in RDB_SCHEMES]}")
    try:
        with quiet_optuna():
            return optuna.storages.RDBStorage(with_driver(url), heartbeat_interval=heartbeat_s,
                                              grace_period=GRACE_HEARTBEATS * heartbeat_s,
                                              heartbeat_stale_trial_callback=RetryLost())
    except ImportError as exc:
        raise ValueError(f"storage {redact(url)!r} needs a database driver: {exc}") from None
    except Exception as exc:  # sqlalchemy's OperationalError and friends: server down, bad password, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConnectionError(f"cannot open storage {redact(url)!r}: {first}") from None


def check_heartbeat(heartbeat_s) -> None:
    validate.positive_number("heartbeat", heartbeat_s, unit="seconds", example=str(HEARTBEAT_S))


def with_driver(url: str) -> str:
    """``postgresql://`` (or ``postgres://``) -> ``postgresql+psycopg2://``: SQLAlchemy 2.1 would want psycopg 3,
    and the driver we pin is psycopg2. URLs that name a driver stay as they are."""
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg2://", url)


def scheme(url: str) -> str:
    return url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""


def redact(url: str) -> str:
    """The URL with its password replaced by ``***`` (for messages and logs)."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def check_shared(workers: int, spec) -> None:
    """Several worker processes need a storage they can share: a journal file or a database server."""
    if not validate.is_int(workers) or workers < 1:
        raise ValueError(f"--workers {workers!r} must be a positive integer")
    if workers == 1:
        return
    if spec == "memory":
        raise ValueError(f"--workers {workers} cannot share --storage memory; use a journal file (the default) or postgresql://")
    if isinstance(spec, str) and scheme(spec) == "sqlite":
        raise ValueError(f"--workers {workers} with --storage {spec}: SQLite locks under parallel writers "
                         f"(Optuna FAQ); use a journal file (the default, or a path such as runs/study.log) or postgresql://")
