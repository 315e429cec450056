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
records a heartbeat every ``heartbeat_s`` seconds (:class:`labhelpers.search.liveness.Heartbeats`, one
thread per run of the crash-safe loop), and Optuna's ``fail_stale_trials`` (run before every trial) fails the trials that lost their worker and re-queues their
points (:class:`labhelpers.search.liveness.RetryLost`). On an RDB the answers are Optuna's; on a journal file
(which has no heartbeat of Optuna's in 5.0) they are :func:`labhelpers.search.liveness.is_lost`, and the
file is written by :mod:`.journal` (crash-safe, about three appends per trial).
"""
from __future__ import annotations

import contextlib
import re
from pathlib import Path

import optuna
from optuna.storages.journal import JournalStorage

from .. import validate
from .journal import HeartbeatJournalStorage, LazySyncFileBackend
from .liveness import GRACE_HEARTBEATS, HEARTBEAT_S, WORKER_ATTR, RetryLost, quiet_optuna

RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql")
JOURNAL_NAME = "journal.log"


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


def stamping(storage, worker: str):
    """``storage.stamping(worker)`` on a journal file storage (new trials created with their stamp)."""
    if isinstance(storage, HeartbeatJournalStorage):
        return storage.stamping(worker)
    return contextlib.nullcontext()


def attrs_with_state(storage, trial_id: int):
    """``storage.attrs_with_state(trial_id)`` on a journal file storage (a trial's user attributes written
    with its final state)."""
    if isinstance(storage, HeartbeatJournalStorage):
        return storage.attrs_with_state(trial_id)
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
