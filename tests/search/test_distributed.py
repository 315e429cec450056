"""Scale-out search: several worker processes on one study (real PostgreSQL server and journal file),
coverage and duplicates of brute force, kill -9 mid-trial then re-run, raising trials, storage errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

import fault_kind  # noqa: F401  (calls search.register_kind for the "fault-toy" kind in this process)
from labhelpers import cli, models, search
from labhelpers.search import liveness, storage as storages
from optuna.storages.journal import JournalStorage
from optuna.trial import TrialState
from pg_server import postgres_url  # noqa: F401  (the session fixture)

ROOT = Path(__file__).resolve().parent.parent.parent
BY_TYPE = ROOT / "configs" / "jsc_tiny_by_type_brute_force.toml"
TOY_POINTS = {(a, b) for a in range(4) for b in range(4)}


@pytest.fixture()
def env(tmp_path, monkeypatch):
    """cwd = tmp_path with a small simulated dataset and a JSC-Tiny checkpoint; workers can import the tests' kind."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1500, 16)).astype(np.float32)
    np.savez(tmp_path / "jsc_sim.npz", X=x, y=(x[:, :5].argmax(1) + (rng.random(1500) < 0.3)) % 5)
    monkeypatch.setenv("LABHELPERS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(ROOT / "tests" / "_support")]))
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    models.save(models.build("jsc-tiny"), tmp_path / "checkpoints" / "jsc-tiny.pt", name="jsc-tiny")
    return tmp_path


def _toy_config(folder: Path, sampler: str = "brute-force", **faults) -> Path:
    """A 4 x 4 fault-toy grid (value = 10a + b), with the given faults (see fault_kind.py)."""
    lines = ["[search.search_space]", 'kind = "fault-toy"', "a = [0, 1, 2, 3]", "b = [0, 1, 2, 3]", "sleep_s = 0.05"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in faults.items()]
    lines += ["[search.strategy.setup]", f'sampler = "{sampler}"', "seed = 0",
              "[search.strategy.metrics]", 'value = {direction = "maximize"}']
    path = folder / "toy.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _search(*argv) -> int:
    return cli.main(["search", "--no-progress", *map(str, argv)])


def _journal(path) -> JournalStorage:
    return storages.journal_storage(path)


def _assert_within_guarantee(study, space, workers: int):
    """Every point has a COMPLETE trial, nothing failed or was left running, and no point has more COMPLETE
    trials than there are workers (the guarantee of labhelpers.search.workers when no worker dies)."""
    cover = search.coverage(study, space)
    assert (cover["complete"] >= 1).all() and (cover["complete"] <= workers).all()
    assert cover[["failed", "running", "waiting"]].to_numpy().sum() == 0
    assert cover["trials"].sum() == len(study.trials) == len(cover) + cover["duplicates"].sum() + cover["skipped"].sum()
    return cover


# ----------------------------------------------------------------------------- several workers, full coverage

def test_three_workers_brute_force_a_quantization_grid_on_postgres(env, postgres_url):
    cfg = search.load_config(BY_TYPE)
    alone = search.run_config(cfg, storage="memory", progress=False).table
    assert _search("--config", BY_TYPE, "--storage", postgres_url, "--workers", 3, "--study-name", "quant3") == 0

    study = optuna.load_study(study_name="quant3", storage=postgres_url)
    _assert_within_guarantee(study, cfg.space, workers=3)
    names = list(cfg.space.choices)
    reference = alone.set_index(names)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    for t in complete:  # every evaluation, duplicates included, equals the single-process run's
        labels = cfg.space.encode(cfg.space.from_optuna(t.params))  # trials store ranks of ordinal choices
        expected = reference.loc[tuple(labels[n] for n in names)]
        assert search.metrics_of(t) == pytest.approx({k: expected[k] for k in search.metrics_of(t)}, rel=1e-6)
    best = json.loads((env / "runs" / "search" / "quant3" / "best.json").read_text())
    assert best[0]["accuracy"] == pytest.approx(alone["accuracy"].max(), rel=1e-6)
    assert len(json.loads((env / "runs" / "search" / "quant3" / "trials.json").read_text())) == len(complete)


def test_three_workers_share_a_journal_file(env):
    config = _toy_config(env)
    cfg = search.load_config(config)
    alone = search.run_config(cfg, storage="memory", progress=False).table
    assert _search("--config", config, "--import", "fault_kind", "--workers", 3, "--study-name", "j3") == 0

    study = optuna.load_study(study_name="j3", storage=_journal(env / "runs" / "search" / "j3" / "journal.log"))
    _assert_within_guarantee(study, cfg.space, workers=3)
    expected = {(r.a, r.b): r.value for r in alone.itertuples()}
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert {(t.params["a"], t.params["b"]): t.value for t in complete} == expected
    assert len({t.system_attrs[liveness.WORKER_ATTR] for t in complete}) > 1  # the work was shared


# ----------------------------------------------------------------------------- crash safety

@pytest.mark.parametrize("backend", ["journal", "postgresql"])
def test_a_worker_killed_mid_trial_loses_nothing_and_a_rerun_finishes(env, backend, request):
    storage = request.getfixturevalue("postgres_url") if backend == "postgresql" else str(env / "kill.log")
    hang = env / "hang"
    hang.touch()  # while it exists, evaluating (a=1, b=2) hangs
    config = _toy_config(env, hang_on=[1, 2], hang_flag=str(hang))
    argv = [sys.executable, "-m", "labhelpers", "search", "--config", str(config), "--import", "fault_kind",
            "--storage", storage, "--study-name", f"kill-{backend}", "--workers", "2", "--heartbeat", "1", "--no-progress"]

    def some_trial_completed() -> bool:  # kill only then, so that there is a completed trial to keep intact
        try:
            study = optuna.load_study(study_name=f"kill-{backend}", storage=storage if "://" in storage else _journal(storage))
        except KeyError:  # the study is not created yet
            return False
        return bool(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))

    first = _run_killing_hung_workers(argv, hang, n=2, ready=some_trial_completed)  # the second worker hangs too
    assert first.returncode == 1, first.stdout + first.stderr
    assert "worker 0 was killed by SIGKILL" in first.stdout and "worker 1 was killed by SIGKILL" in first.stdout
    study = optuna.load_study(study_name=f"kill-{backend}", storage=storage if "://" in storage else _journal(storage))
    before = {t.number: (t.params, t.values, t.user_attrs) for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert before and all(p != {"a": 1, "b": 2} for p, _, _ in before.values())

    hang.unlink()  # the re-run waits for the killed trials to be found lost (journal: at once; PostgreSQL: 3 s)
    again = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr

    study = optuna.load_study(study_name=f"kill-{backend}", storage=storage if "://" in storage else _journal(storage))
    trials = study.get_trials()
    after = {t.number: (t.params, t.values, t.user_attrs) for t in trials if t.state == TrialState.COMPLETE}
    assert {n: after[n] for n in before} == before  # every earlier completed trial intact (numbers, params, values)
    assert {(t.params["a"], t.params["b"]) for t in trials if t.state == TrialState.COMPLETE} == TOY_POINTS
    killed = [t for t in trials if t.params == {"a": 1, "b": 2} and t.state == TrialState.FAIL]
    assert len(killed) == 2 and all(liveness.ERROR_ATTR not in t.user_attrs for t in killed)  # lost, not raised
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.params == {"a": 1, "b": 2}]
    retries = [t for t in done if t.system_attrs.get("failed_trial") in {k.number for k in killed}]
    assert len(retries) == 1 and len(done) <= 2  # one retry for the two lost trials; at most one per worker


def _run_killing_hung_workers(argv, hang: Path, n: int, ready=lambda: True) -> subprocess.CompletedProcess:
    """Run ``argv``; SIGKILL each worker that reports hanging (its pid in ``<hang>.<pid>``), ``n`` of them,
    once ``ready()`` (hung workers wait meanwhile: nothing kills them early)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    killed, deadline = set(), time.monotonic() + 240
    try:
        while len(killed) < n and time.monotonic() < deadline and proc.poll() is None:
            flags = list(hang.parent.glob(hang.name + ".*"))
            for flag in flags if flags and ready() else []:
                pid = int(flag.read_text())
                if pid not in killed:
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
            time.sleep(0.05)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # the test failed: don't leave the workers (our own session) hanging
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert len(killed) == n, f"{len(killed)} workers hung, expected {n}: {err}"
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def test_a_raising_trial_is_recorded_and_the_run_goes_on(env, capsys):
    flag = env / "raise"
    flag.touch()
    config = _toy_config(env, raise_on=[2, 0], raise_flag=str(flag))
    assert _search("--config", config, "--import", "fault_kind", "--study-name", "boom") == 1
    out, err = capsys.readouterr()
    assert "15 completed trials" in out and "1 trial(s) raised: RuntimeError: injected failure at a=2 b=0" in out
    assert "incomplete: 1 of 16 points lack a completed trial; re-run the same command" in err

    flag.unlink()  # the re-run re-queues the failed point once
    assert _search("--config", config, "--import", "fault_kind", "--study-name", "boom") == 0
    study = optuna.load_study(study_name="boom", storage=_journal(env / "runs" / "search" / "boom" / "journal.log"))
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert [(t.params, t.user_attrs["error"]) for t in failed] == [({"a": 2, "b": 0}, "RuntimeError: injected failure at a=2 b=0")]
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 16


def test_budgets_count_completed_trials_only(env):
    """Random search: a failing trial does not count, and the re-run tops the study up to its budget."""
    config = _toy_config(env, sampler="random")
    cfg = search.load_config(config, n_trials=40, seed=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fault_kind, "evaluate", _failing_every_third(fault_kind.evaluate))
        first = search.run_config(cfg, storage=str(env / "b.log"), progress=False)
    second = search.run_config(cfg, storage=str(env / "b.log"), progress=False)
    failed = first.study.get_trials(states=(TrialState.FAIL,))
    assert failed and len(first.table) == 40 - len(failed)
    assert len(second.table) == 40 and second.table.loc[first.table.index].equals(first.table)


def _failing_every_third(evaluate):
    calls = []

    def wrapped(config):
        calls.append(1)
        if len(calls) % 3 == 0:
            raise ValueError("every third evaluation fails")
        return evaluate(config)
    return wrapped


def test_dead_workers_trials_on_a_journal_are_failed_and_retried(tmp_path):
    study = optuna.create_study(storage=_journal(tmp_path / "j.log"), study_name="dead")
    gone = subprocess.Popen(["true"])
    gone.wait()
    stamps = [liveness.worker_id(gone.pid), liveness.worker_id(), "another-host:1:1"]  # dead, alive, elsewhere
    for x, stamp in enumerate(stamps):
        study.enqueue_trial({"x": x})
        trial = study.ask()
        trial.suggest_categorical("x", [0, 1, 2])
        trial.storage.set_trial_system_attr(trial._trial_id, liveness.WORKER_ATTR, stamp)
    assert liveness.fail_dead_trials(study) == [0]
    states = [t.state for t in study.trials]
    assert states[:3] == [TrialState.FAIL, TrialState.RUNNING, TrialState.RUNNING]
    retry = study.trials[3]
    assert retry.state == TrialState.WAITING and retry.params == {"x": 0}
    assert retry.system_attrs["failed_trial"] == 0 and liveness.WORKER_ATTR not in retry.system_attrs
    assert liveness.fail_dead_trials(study) == []  # already failed: nothing twice


# ----------------------------------------------------------------------------- storage choices and errors

@pytest.mark.parametrize("extra, message", [
    (("--workers", 2, "--storage", "sqlite:///s.db"), "--workers 2 with --storage sqlite:///s.db: SQLite locks under parallel writers"),
    (("--workers", 2, "--storage", "memory"), "--workers 2 cannot share --storage memory"),
    (("--workers", 0), "--workers 0 must be a positive integer"),
    (("--storage", "postgresql://me:secret@127.0.0.1:9/db"), "cannot open storage 'postgresql://me:***@127.0.0.1:9/db'"),
    (("--storage", "sqlite:///s.db", "--heartbeat", 0), "heartbeat=0 must be a positive number of seconds"),
    (("--import", "no_such_module"), "--import no_such_module: No module named 'no_such_module'"),
    (("--worker-index", -1), "worker index -1 must be a non-negative integer"),
])
def test_storage_and_worker_errors_are_one_line(env, capsys, extra, message):
    assert _search("--config", BY_TYPE, *extra) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and message in err and "secret" not in err
