"""Crash safety and study context under attack (issue 13): kills anywhere, hung workers, poisoned samplers,
runaway failures, and studies resumed or started at once with another config.

| attack | what must hold | test |
|---|---|---|
| a trial holding 1 of 2 parameters (killed while sampling) is in the study | brute force and grid still draw every point; plain Optuna's BruteForceSampler is shown to break on it | test_samplers_ignore_a_trial_killed_while_sampling |
| such a trial's worker is found dead | it is failed, its partial point is never re-queued | test_a_partial_trial_is_never_requeued |
| a hung-but-alive journal worker (stale heartbeat, pid alive) | its trial is failed and its point re-queued | test_a_stale_heartbeat_is_lost_even_if_the_pid_lives |
| kill -9 at random instants and inside sampling (holding a, not b), 2 workers, journal and PostgreSQL, then re-run with another kill inside sampling | every point completed exactly once, no error recorded (no param_name mismatch), no partial point queued, nothing left running or queued | test_kill_anywhere_then_rerun_completes_every_point_once |
| SIGSTOP one of 2 journal workers mid-trial, later SIGCONT | the other takes its point over within seconds; the late result is dropped; exit 0 | test_a_stopped_journal_worker_is_taken_over |
| every evaluation raises | the run stops after --max-failures trials in a row with one line; fixed, a re-run completes | test_consecutive_failures_stop_the_run_with_one_line |
| --max-failures 0, --heartbeat -5 | one line naming the flag's value, nothing written | test_bad_failure_cap_or_heartbeat_is_one_line |
| resume with another sampler, or another metric scale (1 -> 1e-9) | refused with one line naming what changed | test_resuming_with_another_sampler_or_metric_scale_is_refused |
| a second process finds the study created but its context not stored yet | it waits for the creator's context and is refused (does not adopt its own) | test_a_loser_waits_for_the_creators_context |
| two commands with different spaces started at once on one study name | one finishes, the other is refused at once with one line | test_two_configs_started_at_once_one_is_refused |
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.storages.journal import JournalStorage
from optuna.trial import TrialState

import fault_kind  # noqa: F401  (calls search.register_kind for the "fault-toy" kind in this process)
from labhelpers import cli, search
from labhelpers.search import liveness, storage as storages, trials as loop
from pg_server import postgres_url  # noqa: F401  (the session fixture)

ROOT = Path(__file__).resolve().parent.parent.parent
# the toy space's parameters are ordinal (numbers): Space samples them as suggest_int over their ranks 0..3
DIST = {"a": IntDistribution(0, 3), "b": IntDistribution(0, 3)}


@pytest.fixture()
def env(tmp_path, monkeypatch):
    """cwd = tmp_path; worker processes can import the tests' fault-toy kind."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(ROOT / "tests" / "_support")]))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _toy(folder: Path, name: str = "toy", n: int = 4, sampler: str = "brute-force", scale: float = 1.0, **faults) -> Path:
    """An n x n fault-toy grid (value = 10a + b) with the given faults (see fault_kind.py)."""
    lines = ["[search.search_space]", 'kind = "fault-toy"', f"a = {list(range(n))}", f"b = {list(range(n))}"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in {"sleep_s": 0.02, **faults}.items()]
    lines += ["[search.strategy.setup]", f'sampler = "{sampler}"', "seed = 0",
              "[search.strategy.metrics]", f'value = {{direction = "maximize", scale = {scale!r}}}']
    path = folder / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _journal(path) -> JournalStorage:
    return storages.journal_storage(path)


def _load(name: str, storage: str):
    return optuna.load_study(study_name=name, storage=storage if "://" in storage else _journal(storage))


def _cmd(config: Path, *extra) -> list[str]:
    return [sys.executable, "-m", "labhelpers", "search", "--config", str(config), "--import", "fault_kind",
            "--no-progress", *map(str, extra)]


def _complete_per_point(study) -> dict[tuple, int]:
    counts = {}
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        key = (t.params["a"], t.params["b"])
        counts[key] = counts.get(key, 0) + 1
    return counts


def _partial_fail(study, number_of_params: int = 1) -> optuna.trial.FrozenTrial:
    """Add a FAIL trial that holds only ``a`` (what a worker killed inside sampling leaves)."""
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, params={"a": 2}, distributions={"a": DIST["a"]}))
    return study.trials[-1]


# ----------------------------------------------------------------------------- samplers and the retry queue

@pytest.mark.parametrize("sampler", ["brute-force", "grid"])
def test_samplers_ignore_a_trial_killed_while_sampling(tmp_path, sampler):
    space = search.Space({"a": [0, 1, 2, 3], "b": [0, 1, 2, 3]}, to_config=lambda p: p)
    objective = search.Objective({"value": ("maximize", 1.0)})
    grid = search.make_sampler("grid", space, 0)
    def seed_trials(study):  # four finished points, then one FAIL trial holding only a=0 (of the point a=0, b=1)
        for params, state in [*(({"a": a, "b": 0}, TrialState.COMPLETE) for a in range(4)), ({"a": 0}, TrialState.FAIL)]:
            attrs = {}
            if sampler == "grid":  # as GridSampler.before_trial stamps a trial, before its parameters are drawn
                point = (params["a"], params.get("b", 1))  # a grid id that the trial number rule never gives
                attrs = {"search_space": grid._search_space, "grid_id": grid._all_grids.index(point)}
            study.add_trial(optuna.trial.create_trial(
                state=state, params=params, distributions={k: DIST[k] for k in params}, system_attrs=attrs,
                value=10.0 * params["a"] if state == TrialState.COMPLETE else None))

    if sampler == "brute-force":  # the attack is real: Optuna's own sampler breaks on such a study for good
        plain = optuna.create_study(sampler=optuna.samplers.BruteForceSampler(seed=0), direction="maximize")
        seed_trials(plain)
        with pytest.raises(ValueError, match="param_name mismatch"):
            for _ in range(12):
                trial = plain.ask()
                plain.tell(trial, float(trial.suggest_int("a", 0, 3) + trial.suggest_int("b", 0, 3)))

    storage = _journal(tmp_path / "j.log")
    seed_trials(optuna.create_study(storage=storage, study_name="poisoned", direction="maximize"))
    result = search.run(space, lambda c: {"value": 10.0 * c["a"] + c["b"]}, objective, sampler=sampler,
                        study_name="poisoned", storage=storage, write=False, progress=False, max_failures=5)
    trials = result.study.get_trials()
    assert {(t.params["a"], t.params["b"]) for t in trials if t.state == TrialState.COMPLETE} == \
        {(a, b) for a in range(4) for b in range(4)}
    assert not [t for t in trials if liveness.ERROR_ATTR in t.user_attrs]  # no trial failed while sampling


def test_a_partial_trial_is_never_requeued(tmp_path):
    space = search.Space({"a": [0, 1, 2, 3], "b": [0, 1, 2, 3]}, to_config=lambda p: p)
    objective = search.Objective({"value": ("maximize", 1.0)})
    storage = _journal(tmp_path / "j.log")
    study = search.open_study(space, objective, "brute-force", 0, "partial", storage,
                               search.study_context(space, objective, "brute-force"))
    gone = subprocess.Popen(["true"])
    gone.wait()
    for params in ({"a": 1}, {"a": 3, "b": 3}):  # killed inside sampling; killed while evaluating
        trial = study.ask()
        for name in params:
            trial.suggest_int(name, 0, 3)
        storage.set_trial_param(trial._trial_id, "a", float(params["a"]), DIST["a"])  # pin the drawn values
        if "b" in params:
            storage.set_trial_param(trial._trial_id, "b", float(params["b"]), DIST["b"])
        storage.set_trial_system_attr(trial._trial_id, liveness.WORKER_ATTR, liveness.worker_id(gone.pid))
    assert liveness.fail_dead_trials(study) == [0, 1]
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.params for t in waiting] == [{"a": 3, "b": 3}]  # the whole point only
    assert liveness.retry_lost_trial(study, study.trials[0]) is None and \
        len(study.get_trials(states=(TrialState.WAITING,))) == 1


def test_a_stale_heartbeat_is_lost_even_if_the_pid_lives(tmp_path):
    study = optuna.create_study(storage=_journal(tmp_path / "j.log"), study_name="stale")
    now = time.time()
    beats = [[now - 10, 1], [now, 1], None]  # stale (3 beats of 1 s missed), fresh, none yet (pid decides)
    for x, beat in enumerate(beats):
        study.enqueue_trial({"x": x})
        trial = study.ask()
        trial.suggest_categorical("x", [0, 1, 2])
        trial.storage.set_trial_system_attr(trial._trial_id, liveness.WORKER_ATTR, liveness.worker_id())  # alive
        if beat is not None:
            trial.storage.set_trial_system_attr(trial._trial_id, liveness.HEARTBEAT_ATTR, beat)
    assert liveness.fail_dead_trials(study) == [0]
    assert [t.state for t in study.trials[:3]] == [TrialState.FAIL, TrialState.RUNNING, TrialState.RUNNING]
    assert study.trials[3].state == TrialState.WAITING and study.trials[3].params == {"x": 0}
    assert liveness.HEARTBEAT_ATTR not in study.trials[3].system_attrs


# ----------------------------------------------------------------------------- kill -9 anywhere, then re-run

@pytest.mark.parametrize("backend", ["journal", "postgresql"])
def test_kill_anywhere_then_rerun_completes_every_point_once(env, backend, request):
    """Two worker commands on one study (as on two machines). Run 1: one is killed inside sampling (holding
    a but not b), the other at a random instant. Run 2 (the re-run): one is killed inside sampling again,
    and the other must finish the study alone."""
    storage = request.getfixturevalue("postgres_url") if backend == "postgresql" else str(env / "kill.log")
    flag = env / "smp"
    config = _toy(env, n=4, sleep_s=0.03, sample_sleep_s=0.1, sampling_flag=str(flag))
    argv = _cmd(config, "--storage", storage, "--study-name", "anywhere", "--heartbeat", 1)
    rng = random.Random(f"kill-{backend}")
    with _processes(argv, argv) as first:
        assert _kill_inside_sampling(first, flag), "run 1: no worker was caught inside sampling"
        time.sleep(rng.uniform(0.0, 1.0))
        for proc in first:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    with _processes(argv, argv) as again:
        killed = _kill_inside_sampling(again, flag)
        assert killed, "run 2: no worker was caught inside sampling"
        survivor = next(p for p in again if p.pid != killed)
        out, err = survivor.communicate(timeout=120)
        assert survivor.returncode == 0, out + err

    # the trial killed last may still be RUNNING (PostgreSQL: until its heartbeat is 3 s old; it holds no
    # point, so nobody waits for it): what the next run does first, after that time, fails it
    study = optuna.load_study(study_name="anywhere",
                              storage=storages.rdb_storage(storage, 1) if "://" in storage else _journal(storage))
    time.sleep(3.5 if backend == "postgresql" else 0)
    loop.prepare(study, None)
    trials = study.get_trials()
    assert _complete_per_point(study) == {(a, b): 1 for a in range(4) for b in range(4)}
    assert all(t.value == 10 * t.params["a"] + t.params["b"] for t in trials if t.state == TrialState.COMPLETE)
    # killed inside sampling: on PostgreSQL the trial holds a but not b (one write per parameter); a journal
    # file gets a trial's parameters in one write (storage.params_in_one_write), so such a trial holds none
    partial = [t for t in trials if set(t.params) != {"a", "b"}]
    assert len(partial) >= 2 and all(t.state == TrialState.FAIL for t in partial), \
        [(t.number, t.state.name, t.params, sorted(t.system_attrs)) for t in trials]  # the attack happened, twice
    held = {frozenset(t.params) for t in partial}
    if backend == "postgresql":  # (a worker killed at the random instant may hold nothing yet)
        assert frozenset({"a"}) in held and held <= {frozenset({"a"}), frozenset()}, held
    else:
        assert held == {frozenset()}, held
    assert not [t for t in trials if liveness.ERROR_ATTR in t.user_attrs]  # nothing raised (no param_name mismatch)
    assert not [t for t in trials if "failed_trial" in t.system_attrs and set(t.params) != {"a", "b"}]
    assert not [t for t in trials if t.state == TrialState.WAITING or (t.state == TrialState.RUNNING and t.params)]


@contextlib.contextmanager
def _processes(*argvs):
    """Start the commands (each in its own session); kill whatever still runs on the way out."""
    procs = [subprocess.Popen(a, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
             for a in argvs]
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()


def _kill_inside_sampling(procs, flag: Path, timeout: float = 60.0) -> int | None:
    """SIGKILL the first of ``procs`` seen between drawing ``a`` and drawing ``b``; its pid. The worker is
    stopped first and killed only if its marker is still there, so a slow test process cannot kill it late."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = {p.pid: p for p in procs if p.poll() is None}
        for marker in flag.parent.glob(flag.name + ".*"):
            pid = int(marker.name.rsplit(".", 1)[1])
            if pid not in alive:
                continue
            os.kill(pid, signal.SIGSTOP)
            while _state(pid) not in ("T", None):  # wait until it is really stopped
                time.sleep(0.001)
            if marker.exists():
                alive[pid].kill()
                alive[pid].wait()
                marker.unlink(missing_ok=True)
                return pid
            os.kill(pid, signal.SIGCONT)
        time.sleep(0.01)
    return None


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


# ----------------------------------------------------------------------------- a hung (stopped) journal worker

def test_a_stopped_journal_worker_is_taken_over(env):
    hang = env / "hang"
    hang.touch()  # while it exists, evaluating (1, 2) hangs
    config = _toy(env, hang_on=[1, 2], hang_flag=str(hang))
    storage = str(env / "stop.log")
    argv = _cmd(config, "--storage", storage, "--study-name", "stop", "--heartbeat", 1)
    with _processes(argv, argv) as procs:
        deadline, stopped = time.monotonic() + 60, None
        while stopped is None and time.monotonic() < deadline:
            if markers := list(env.glob("hang.*")):
                stopped = int(markers[0].read_text())
                os.kill(stopped, signal.SIGSTOP)  # alive, but silent: its pid still exists
            time.sleep(0.05)
        assert stopped in [p.pid for p in procs], "no worker reached the hanging point"
        hang.unlink()  # the retry must not hang
        started = time.monotonic()
        while time.monotonic() - started < 60 and len(_complete_per_point(_load("stop", storage))) < 16:
            time.sleep(0.2)
        assert len(_complete_per_point(_load("stop", storage))) == 16, "the other worker never took the point over"
        assert time.monotonic() - started < 30  # heartbeat 1 s: stale after 3 s
        os.kill(stopped, signal.SIGCONT)  # it wakes up, finishes its evaluation, and must not record it
        outs = [p.communicate(timeout=60) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
    study = _load("stop", storage)
    assert _complete_per_point(study) == {(a, b): 1 for a in range(4) for b in range(4)}
    lost = [t for t in study.get_trials() if t.params == {"a": 1, "b": 2} and t.state == TrialState.FAIL]
    assert len(lost) == 1 and "value" not in search.metrics_of(lost[0]) and liveness.ERROR_ATTR not in lost[0].user_attrs
    assert lost[0].system_attrs[liveness.WORKER_ATTR].split(":")[1] == str(stopped)


# ----------------------------------------------------------------------------- runaway failures

def test_consecutive_failures_stop_the_run_with_one_line(env, capsys):
    flag = env / "raise"
    flag.touch()
    config = _toy(env, raise_on="all", raise_flag=str(flag))
    assert cli.main(["search", "--no-progress", "--config", str(config), "--study-name", "boom",
                     "--max-failures", "3"]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "3 trials in a row did not complete (last: RuntimeError: injected failure" in err and "--max-failures" in err
    study = _load("boom", str(env / "runs" / "search" / "boom" / "journal.log"))
    assert len(study.trials) == 3 and all(t.state == TrialState.FAIL for t in study.trials)

    flag.unlink()  # fixed: the re-run completes the study
    assert cli.main(["search", "--no-progress", "--config", str(config), "--study-name", "boom"]) == 0
    assert _complete_per_point(_load("boom", str(env / "runs" / "search" / "boom" / "journal.log"))) == \
        {(a, b): 1 for a in range(4) for b in range(4)}


@pytest.mark.parametrize("flag, value", [("--max-failures", 0), ("--heartbeat", -5)])
def test_bad_failure_cap_or_heartbeat_is_one_line(env, capsys, flag, value):
    assert cli.main(["search", "--no-progress", "--config", str(_toy(env)), flag, str(value)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"={value} must be a positive" in err
    assert not (env / "runs").exists()


# ----------------------------------------------------------------------------- study context

@pytest.mark.parametrize("change, field", [({"sampler": "random"}, "sampler"), ({"scale": 1e-9}, "objective")])
def test_resuming_with_another_sampler_or_metric_scale_is_refused(env, capsys, change, field):
    base = _toy(env)
    assert cli.main(["search", "--no-progress", "--config", str(base), "--study-name", "ctx", "--n-trials", "3"]) == 0
    capsys.readouterr()
    other = _toy(env, name="other", **change)
    assert cli.main(["search", "--no-progress", "--config", str(other), "--study-name", "ctx", "--n-trials", "5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"study 'ctx' exists with a different {field} " in err
    assert "pass another --study-name or delete runs/search/ctx" in err
    study = _load("ctx", str(env / "runs" / "search" / "ctx" / "journal.log"))
    assert len(study.trials) == 3  # nothing ran under the other config


def test_a_loser_waits_for_the_creators_context(tmp_path):
    """The window between creating a study and storing its context: a second process must not adopt its own."""
    space = search.Space({"a": [0, 1], "b": [0, 1]}, to_config=lambda p: p)
    objective = search.Objective({"value": ("maximize", 1.0)})
    mine = search.study_context(space, objective, "brute-force", {"dataset_fingerprint": "mine"})
    theirs = search.study_context(space, objective, "brute-force", {"dataset_fingerprint": "theirs"})
    storage = _journal(tmp_path / "j.log")
    created = optuna.create_study(storage=storage, study_name="race", direction="maximize")  # context not yet stored
    late = threading.Timer(0.5, lambda: created.set_user_attr(search.CONTEXT_ATTR, theirs))
    late.start()
    try:
        with pytest.raises(ValueError, match="exists with a different dataset_fingerprint"):
            search.open_study(space, objective, "brute-force", 0, "race", storage, mine)
    finally:
        late.join()
    assert created.user_attrs[search.CONTEXT_ATTR] == theirs


def test_two_configs_started_at_once_one_is_refused(env):
    """Every evaluation hangs until the test says so: the loser must be refused while the winner still runs."""
    hang = env / "hang"
    hang.touch()
    small, large = (_toy(env, name=name, n=n, hang_on="all", hang_flag=str(hang)) for name, n in (("small", 3), ("large", 4)))
    with _processes(_cmd(small, "--study-name", "same"), _cmd(large, "--study-name", "same")) as procs:
        deadline = time.monotonic() + 90
        while all(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.05)
        done = [p for p in procs if p.poll() is not None]
        assert len(done) == 1 and done[0].returncode == 2, "no command was refused while the other one ran"
        loser, winner = procs.index(done[0]), 1 - procs.index(done[0])
        hang.unlink()  # now the winner may finish
        outs = [p.communicate(timeout=120) for p in procs]
    assert procs[winner].returncode == 0, outs[winner]
    assert outs[loser][1].count("\n") == 1 and "study 'same' exists with a different space" in outs[loser][1]
    n = (3, 4)[winner]
    study = _load("same", str(env / "runs" / "search" / "same" / "journal.log"))
    assert _complete_per_point(study) == {(a, b): 1 for a in range(n) for b in range(n)}
    assert len(study.trials) == n * n  # nothing of the loser's space was run
