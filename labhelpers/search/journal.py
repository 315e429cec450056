"""The default storage, a journal file: crash-safe, and about three locked appends per trial.

Optuna's ``JournalStorage`` keeps a replay of the file in memory. Every call first re-reads whatever the
file gained (other workers' records, and its own just written), and every update is one locked append.
A trial of Optuna's ``study.optimize`` on it cost 5 appends and about 11 re-reads, each re-read opening
the file. Here, with the file still the only source of truth:

* :class:`LazySyncFileBackend` forces the file to disk (``fsync``) at most every ``fsync_s`` seconds; it
  answers "nothing new" from one ``stat``, and replays the records it has just appended from the bytes it
  wrote (those exact bytes, parsed again) when no other process wrote in between, instead of reading them
  back from the file;
* :class:`HeartbeatJournalStorage` answers Optuna's heartbeat questions, and, inside the crash-safe loop
  (:mod:`.trials`), writes each trial in three appends: its creation together with the worker stamp and
  first heartbeat (:meth:`~HeartbeatJournalStorage.stamping`), its parameters
  (:meth:`~HeartbeatJournalStorage.params_in_one_write`), and its user attributes together with its final
  state (:meth:`~HeartbeatJournalStorage.attrs_with_state`).

Every record is written and flushed under the writers' lock (an ``flock`` on the file, see
:meth:`LazySyncFileBackend._locked`) before the call that wrote it returns.

Optuna internals used (Optuna 5.0): its lock ``journal._file.get_lock_file`` (without ``fcntl``), the record kinds
``journal._storage.JournalOperation``; ``JournalFileBackend._log_number_offset`` (byte offset of each
record); ``JournalStorage._write_log``, ``_sync_with_backend``, ``_backend``, ``_thread_lock`` and
``_replay_result`` (its ``worker_id``, ``apply_logs``, ``get_trial``, ``get_study``, ``_study_id_to_trial_ids``).
"""
from __future__ import annotations

import atexit
import contextlib
import copy
import json
import os
import time

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

import optuna
from optuna.distributions import distribution_to_json
from optuna.storages._heartbeat import BaseHeartbeat  # Optuna 5 exports it only from here
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.storages.journal._file import get_lock_file  # the lock Optuna's own append_logs takes
from optuna.storages.journal._storage import JournalOperation  # the journal's record kinds (not exported)
from optuna.trial import TrialState

from .liveness import HEARTBEAT_ATTR, HEARTBEAT_S, WORKER_ATTR, RetryLost, is_lost

_UNFINISHED = frozenset({TrialState.RUNNING, TrialState.WAITING})
FSYNC_S = 0.5             # a journal file is forced to disk at least this often (see LazySyncFileBackend)


class LazySyncFileBackend(JournalFileBackend):
    """Optuna's JournalFileBackend, which forces its writes to disk (``fsync``) at most every ``fsync_s``
    seconds and at exit, instead of after every record (on this machine an fsync costs milliseconds, and a
    trial writes several records).

    Every record is still written and flushed to the file under the writers' lock (:meth:`_locked`) before
    the call returns, so other processes see it at once and a killed process (kill -9, a crash, an
    interrupt) loses nothing.
    Only a crash of the machine itself (power loss, kernel panic) can lose the records of the last
    ``fsync_s`` seconds: those trials are run again by the next run, as any trial that did not complete.

    Reading: when the file ends where this backend last read or wrote, there is nothing to read (one
    ``stat``). When an append starts where this backend's known records end (no other process wrote in
    between: checked under the lock, and where the write landed), the appended lines are kept, and the
    next read from there parses them instead of reading them back from the file; anything after them is
    read from the file.
    """

    def __init__(self, file_path: str, fsync_s: float = FSYNC_S):
        super().__init__(file_path)
        self.fsync_s = fsync_s
        self._synced = time.monotonic()
        self._written: tuple[int, list[bytes]] | None = None  # (number of the first record, its lines) just appended
        if file_path not in _AT_EXIT:
            _AT_EXIT.add(file_path)
            atexit.register(_fsync, file_path)

    def append_logs(self, logs: list[dict]) -> None:
        lines = [(json.dumps(log, separators=(",", ":")) + "\n").encode("utf-8") for log in logs]
        data = b"".join(lines)
        with open(self._file_path, "ab") as f, self._locked(f):
            start = f.seek(0, os.SEEK_END)
            f.write(data)  # one write() of the whole batch, in append mode
            f.flush()
            end = f.tell()
            if time.monotonic() - self._synced >= self.fsync_s:
                os.fsync(f.fileno())
                self._synced = time.monotonic()
        offsets = self._log_number_offset
        known = len(offsets) - 1  # records 0..known-1 have offsets (Optuna adds them in order)
        if end - len(data) == start and offsets.get(known) == start:  # our lines follow the records we know
            for number, line in enumerate(lines, start=known):
                offsets[number + 1] = offsets[number] + len(line)
            self._written = (known, lines)

    @contextlib.contextmanager
    def _locked(self, f):
        """The writers' lock: an exclusive ``flock`` on the journal file itself, which the kernel releases
        when the file is closed or the process dies (Optuna's default lock, a symlink made and removed per
        append, costs two or three file-system metadata operations, milliseconds when the disk is busy, and
        a worker killed while holding it blocks every other writer for its 30 s grace period). Every
        labhelpers process writes a journal through this backend. A writer that takes only Optuna's lock
        (plain Optuna on the same file) is not excluded by it; on a local file system each append is one
        ``write()`` in append mode, which the kernel does not interleave with another. Without ``fcntl``
        (Windows): Optuna's lock."""
        if fcntl is None:
            with get_lock_file(self._lock):
                yield
            return
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        yield

    def read_logs(self, log_number_from: int):
        written, self._written = self._written, None
        if written is not None and written[0] == log_number_from:
            for line in written[1]:
                yield json.loads(line)
            log_number_from += len(written[1])
        if self._log_number_offset.get(log_number_from) == os.stat(self._file_path).st_size:
            return  # nothing new
        yield from super().read_logs(log_number_from)


_AT_EXIT: set[str] = set()  # journal files to fsync when the process exits


def _fsync(path: str) -> None:
    with contextlib.suppress(OSError), open(path, "ab") as f:
        os.fsync(f.fileno())


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's JournalStorage answering Optuna's heartbeat questions: a beat is the trial's system attr
    HEARTBEAT_ATTR ``[unix time, seconds between beats]``; stale trials are those :func:`is_lost` finds.
    Inside the crash-safe loop it writes a trial in three appends (see the module doc)."""

    def __init__(self, backend, heartbeat_s: float = HEARTBEAT_S):
        super().__init__(backend)
        self.heartbeat_s = heartbeat_s
        self.on_stale = RetryLost()
        self._pending: list[dict] | None = None       # parameters kept by params_in_one_write
        self._worker: str | None = None               # new trials are created stamped with it (stamping)
        self._held: dict[int, list[dict]] = {}         # trial id -> user attr records kept by attrs_with_state
        self._first_beat_skipped: int | None = None   # the trial whose stamp carried its first heartbeat
        self._indices: dict[int, list] = {}            # study id -> its _index

    def _beat(self) -> list:
        return [time.time(), self.heartbeat_s]

    @contextlib.contextmanager
    def stamping(self, worker: str):
        """Inside, a trial this process creates (Optuna's ``study.ask``, when no queued trial is waiting)
        is created with the worker stamp and its first heartbeat in the same record: a new trial is never
        without them, and :meth:`stamp` has nothing left to write for it."""
        self._worker = worker
        try:
            yield
        finally:
            self._worker = None

    def stamp(self, trial_id: int, worker: str) -> None:
        """Record the process evaluating the trial and its first heartbeat, in one write (the first thing a
        trial does), unless the trial was created with them (:meth:`stamping`). The heartbeats that follow
        come every ``heartbeat_s`` seconds; the first ``record_heartbeat`` of a trial is skipped, since
        this stamp carries it. A trial killed before its stamp has neither: ``is_lost``'s orphan rule."""
        with self._thread_lock:
            if self._replay_result.get_trial(trial_id).system_attrs.get(WORKER_ATTR) == worker:
                return
            logs = [self._record(JournalOperation.SET_TRIAL_SYSTEM_ATTR, trial_id=trial_id, system_attr={key: value})
                    for key, value in ((WORKER_ATTR, worker), (HEARTBEAT_ATTR, self._beat()))]
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

    @contextlib.contextmanager
    def attrs_with_state(self, trial_id: int):
        """Inside, the trial's user attributes (its metrics, its error) are kept and written in the same
        append as its final state (Optuna's ``tell``): the trial is never reported finished without them,
        and a worker killed before that append leaves a RUNNING trial, failed and re-run like any lost
        one. Until then the ``Trial`` object shows them (Optuna caches what it set), the storage does not.
        Attributes still kept on exit (no final state was written) are written then, unless the trial has
        finished meanwhile (failed as lost by another worker: it takes no update)."""
        self._held[trial_id] = []
        try:
            yield
        finally:
            held = self._held.pop(trial_id, [])
            if held:
                with self._thread_lock:
                    self._sync_with_backend()
                    if not self._replay_result.get_trial(trial_id).state.is_finished():
                        self._backend.append_logs(held)
                        self._sync_with_backend()

    def _record(self, op_code: int, **fields) -> dict:
        return {"op_code": op_code, "worker_id": self._replay_result.worker_id, **fields}

    def _write_log(self, op_code: int, extra_fields: dict) -> None:
        """Optuna's one record per update, with this storage's batching (see :meth:`stamping` and
        :meth:`attrs_with_state`)."""
        log = self._record(op_code, **extra_fields)
        trial_id = extra_fields.get("trial_id")
        if op_code == JournalOperation.CREATE_TRIAL and self._worker is not None and "state" not in log:
            log["system_attrs"] = {WORKER_ATTR: self._worker, HEARTBEAT_ATTR: self._beat()}  # not from a template
        elif op_code == JournalOperation.SET_TRIAL_USER_ATTR and trial_id in self._held:
            self._held[trial_id].append(log)
            return
        elif op_code == JournalOperation.SET_TRIAL_STATE_VALUES and TrialState(log["state"]).is_finished():
            self._backend.append_logs([*self._held.pop(trial_id, []), log])
            return
        self._backend.append_logs([log])

    def _sync_with_backend(self) -> None:
        """Optuna's, except that a record of this process that fails to apply (an update of a trial that
        another worker failed meanwhile) does not stop the records after it (the rest of that append):
        each is applied, and the first error is raised after them, so it is raised once and here."""
        error = None
        for log in self._backend.read_logs(self._replay_result.log_number_read):
            try:
                self._replay_result.apply_logs((log,))
            except Exception as exc:  # noqa: BLE001 (re-raised below)
                error = error or exc
        if error is not None:
            raise error

    def set_trial_param(self, trial_id, param_name, param_value_internal, distribution) -> None:
        if self._pending is None:
            return super().set_trial_param(trial_id, param_name, param_value_internal, distribution)
        self._pending.append(self._record(JournalOperation.SET_TRIAL_PARAM, trial_id=trial_id, param_name=param_name,
                                          param_value_internal=param_value_internal,
                                          distribution=distribution_to_json(distribution)))

    def record_heartbeat(self, trial_id: int) -> None:
        if trial_id != self._first_beat_skipped:  # a new trial: its stamp (see stamp) is its first beat
            self._first_beat_skipped = trial_id
            return
        try:
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, self._beat())
        except optuna.exceptions.UpdateFinishedTrialError:  # failed meanwhile as lost by another worker
            pass
        except Exception:  # a storage hiccup: the next beat tries again (a thread must not die of it)
            pass

    def get_all_trials(self, study_id: int, deepcopy: bool = True, states=None) -> list:
        """Optuna's. The RUNNING or WAITING trials, which every trial asks for (Optuna's stale-trial check and
        its queue), come from :meth:`_index` instead of a scan of every trial of the study."""
        if states is None or not set(states) <= _UNFINISHED:
            return super().get_all_trials(study_id, deepcopy, states)
        with self._thread_lock:
            self._sync_with_backend()
            trials = [t for t in map(self._replay_result.get_trial, self._index(study_id)[1]) if t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def get_n_trials(self, study_id: int, state=None) -> int:
        """Optuna's; the number of COMPLETE trials (the budget, checked after every trial) from :meth:`_index`."""
        if state not in (TrialState.COMPLETE, (TrialState.COMPLETE,)):
            return super().get_n_trials(study_id, state)
        with self._thread_lock:
            self._sync_with_backend()
            return self._index(study_id)[2]

    def _index(self, study_id: int) -> list:
        """``[trials seen, ids of the unfinished ones (in order), number of COMPLETE ones]`` of the study, brought
        up to date from the trials added since and the unfinished ones (a finished trial never changes)."""
        self._replay_result.get_study(study_id)  # KeyError for a study that does not (or no longer) exist
        ids = self._replay_result._study_id_to_trial_ids[study_id]
        seen, unfinished, complete = self._indices.get(study_id, (0, [], 0))
        still = []
        for trial_id in unfinished + ids[seen:]:
            state = self._replay_result.get_trial(trial_id).state
            if not state.is_finished():
                still.append(trial_id)
            elif state == TrialState.COMPLETE:
                complete += 1
        self._indices[study_id] = index = [len(ids), still, complete]
        return index

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        return [t._trial_id for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
                if is_lost(t, now)]

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_s

    def get_heartbeat_stale_trial_callback(self):
        return self.on_stale
