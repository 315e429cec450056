"""The journal file written in three appends per trial (labhelpers.search.journal), and what the fast path
must not change: the file stays the source of truth (a second writer's records are seen, a fresh reader
rebuilds the same study), the writers' lock excludes, the heartbeat thread beats, the index answers what a
scan answers, and the best trials are Optuna's."""
from __future__ import annotations

import fcntl
import json
import random
import threading
import time

import optuna
import pytest
from optuna.storages.journal import JournalStorage
from optuna.trial import TrialState

from labhelpers import search
from labhelpers.search import liveness, storage
from labhelpers.search.study import best_trial_numbers

CREATE, PARAM, STATE, USER_ATTR, SYSTEM_ATTR = 4, 5, 6, 8, 9  # optuna's JournalOperation codes


def _toy_search(tmp_path, n_trials=6, fail_on=None, heartbeat_s=10.0, sleep_s=0.0):
    space = search.Space({"a": [0, 1, 2], "b": [0, 1]}, to_config=lambda p: p)

    def evaluate(config):
        time.sleep(sleep_s)
        if fail_on is not None and config == fail_on:
            raise RuntimeError("boom")
        return {"value": float(10 * config["a"] + config["b"])}

    return search.run(space, evaluate, search.Objective({"value": ("maximize", 1.0)}), sampler="brute-force",
                      n_trials=n_trials, study_name="toy", run_root=tmp_path, progress=False, heartbeat_s=heartbeat_s)


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_trial_is_three_appends_stamp_with_creation_metrics_with_state(tmp_path):
    result = _toy_search(tmp_path, fail_on={"a": 1, "b": 0})
    records = _records(tmp_path / "toy" / "journal.log")
    creates = [r for r in records if r["op_code"] == CREATE]
    assert len(creates) == 6 and all(set(r["system_attrs"]) == {liveness.WORKER_ATTR, liveness.HEARTBEAT_ATTR}
                                     for r in creates)
    assert not [r for r in records if r["op_code"] == SYSTEM_ATTR]  # no separate stamp, no extra beat
    for i, r in enumerate(records):  # every user attr (metrics, error) sits right before its trial's final state
        if r["op_code"] == USER_ATTR:
            after = records[i + 1:]
            nxt = next(x for x in after if x["op_code"] != USER_ATTR)
            assert nxt["op_code"] == STATE and nxt["trial_id"] == r["trial_id"] and nxt["state"] != TrialState.RUNNING
    trials = result.study.get_trials()
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and failed[0].user_attrs[liveness.ERROR_ATTR] == "RuntimeError: boom"
    assert all(t.user_attrs["metrics"]["value"] == t.values[0] for t in trials if t.state == TrialState.COMPLETE)
    fresh = optuna.load_study(study_name="toy", storage=JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "toy" / "journal.log"))))
    assert [(t.state, t.params, t.values, t.user_attrs, t.system_attrs) for t in fresh.get_trials()] == \
        [(t.state, t.params, t.values, t.user_attrs, t.system_attrs) for t in trials]


def test_two_writers_on_one_file_see_each_other_and_the_file(tmp_path):
    path = tmp_path / "j.log"
    a, b = storage.journal_storage(path), storage.journal_storage(path)
    study_a = optuna.create_study(storage=a, study_name="s")
    study_b = optuna.load_study(storage=b, study_name="s")
    rng = random.Random(0)
    for i in range(60):
        study = rng.choice([study_a, study_b])
        trial = study.ask()
        trial.suggest_int("x", 0, 100)
        study.tell(trial, float(i))
        for other in (a, b):  # each replay equals a fresh read of the file
            fresh = JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
            assert [(t.number, t.state, t.params, t.values) for t in other.get_all_trials(0)] == \
                [(t.number, t.state, t.params, t.values) for t in fresh.get_all_trials(0)]


def test_the_writers_lock_excludes(tmp_path):
    path = tmp_path / "j.log"
    store = storage.journal_storage(path)
    done = threading.Event()
    with open(path, "ab") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        writer = threading.Thread(target=lambda: (store.create_new_study([optuna.study.StudyDirection.MINIMIZE], "s"),
                                                  done.set()))
        writer.start()
        assert not done.wait(0.3)  # blocked while another holds the lock
    assert done.wait(5)
    writer.join()


def test_one_heartbeat_thread_beats_the_running_trial(tmp_path):
    before = set(threading.enumerate())
    seen = []
    original = search.Space.suggest

    def watch(self, trial):
        seen.append(frozenset(t.ident for t in threading.enumerate() if t not in before))
        return original(self, trial)

    search.Space.suggest = watch
    try:
        result = _toy_search(tmp_path, n_trials=3, heartbeat_s=0.05, sleep_s=0.3)
    finally:
        search.Space.suggest = original
    assert len(seen) == 3 and len(set(seen)) == 1 and len(seen[0]) == 1  # one thread for the run, not one per trial
    for t in result.study.get_trials():
        start = t.datetime_start.timestamp()
        assert t.system_attrs[liveness.HEARTBEAT_ATTR][0] > start + 0.1  # beaten while it ran


def test_the_index_answers_what_a_scan_answers(tmp_path):
    a = storage.journal_storage(tmp_path / "j.log")
    b = storage.journal_storage(tmp_path / "j.log")
    study_a = optuna.create_study(storage=a, study_name="s")
    study_b = optuna.load_study(storage=b, study_name="s")
    rng, running = random.Random(1), []
    for step in range(300):
        study, r = rng.choice([study_a, study_b]), rng.random()
        if r < 0.3:
            study.enqueue_trial({"x": rng.random()})
        elif r < 0.6:
            with pytest.warns(UserWarning):
                running.append((study, study.ask()))
        elif running:
            owner, trial = running.pop(rng.randrange(len(running)))
            state = TrialState.FAIL if rng.random() < 0.3 else None
            owner.tell(trial, None if state else rng.random(), state=state)
        for store in (a, b):
            for states in ((TrialState.RUNNING,), (TrialState.WAITING,), (TrialState.WAITING, TrialState.RUNNING)):
                assert [t.number for t in store.get_all_trials(0, deepcopy=False, states=states)] == \
                    [t.number for t in JournalStorage.get_all_trials(store, 0, deepcopy=False, states=states)]
            assert store.get_n_trials(0, TrialState.COMPLETE) == \
                len(JournalStorage.get_all_trials(store, 0, deepcopy=False, states=(TrialState.COMPLETE,)))


@pytest.mark.parametrize("directions", [["maximize"], ["minimize", "maximize"], ["minimize"] * 3])
def test_best_trials_are_optunas(directions):
    rng = random.Random(len(directions))
    for _ in range(20):
        study = optuna.create_study(directions=directions)
        for _ in range(rng.randint(0, 40)):
            trial = study.ask()
            if rng.random() < 0.1:
                study.tell(trial, state=TrialState.FAIL)
            else:
                values = [float(rng.randint(0, 4)) for _ in directions]
                study.tell(trial, values if len(values) > 1 else values[0])
        assert best_trial_numbers(study.get_trials(deepcopy=False), study.directions) == \
            sorted(t.number for t in study.best_trials)
