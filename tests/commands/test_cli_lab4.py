"""``python -m labhelpers search`` with kind "architecture": trains per trial, resumes, one-line errors."""
import pandas as pd
import pytest

from labhelpers import cli, nas
from labhelpers.training import TrainSettings
from lab4_data import small_jsc

CONFIG = """
[model]
name = "jsc-three-linear"
[data]
source = "sim"
path = "{path}"
split = "val"
[search.search_space]
kind = "architecture"
[search.search_space.hidden]
h1 = {h1}
h2 = [8, 16]
[search.search_space.train]
epochs = 2
batch_size = 256
lr = 1e-2
seed = 3
[search.strategy.setup]
sampler = "brute-force"
seed = 0
[search.strategy.metrics]
accuracy = {{direction = "maximize"}}
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("nas")
    jsc = small_jsc(root, n_rows=1500)
    config = root / "nas.toml"
    config.write_text(CONFIG.format(path=root / "jsc_small.npz", h1="[8, 16]"))
    return root, jsc, config


def _search(config, run_root, *extra):
    return cli.main(["search", "--config", str(config), "--run-root", str(run_root), "--no-progress", *extra])


def test_search_trains_per_trial_and_resumes(setup, monkeypatch, capsys):
    root, jsc, config = setup
    trained = []
    real = nas.evaluate_architecture
    monkeypatch.setattr(nas, "evaluate_architecture", lambda hidden, *a, **k: trained.append(tuple(hidden)) or real(hidden, *a, **k))
    assert _search(config, root / "runs", "--n-trials", "2") == 0
    run_dir = root / "runs" / "nas-brute-force-seed0"
    first = pd.read_csv(run_dir / "trials.csv", index_col="trial")
    assert len(first) == 2 and len(trained) == 2
    assert _search(config, root / "runs", "--n-trials", "3") == 0  # resume: one more trial, not three
    again = pd.read_csv(run_dir / "trials.csv", index_col="trial")
    assert len(again) == 3 and len(trained) == 3
    pd.testing.assert_frame_equal(again.loc[first.index], first)
    assert set(zip(again.h1, again.h2)) <= set(nas.grid([8, 16]))
    assert {"accuracy", "loss", "params", "macs", "flops", "bops"} <= set(again.columns)
    assert "3 completed trials" in capsys.readouterr().out

    # each trial is seeded: retraining the first architecture gives the recorded numbers
    h1, h2 = first.loc[0, ["h1", "h2"]]
    retrained = real((int(h1), int(h2)), jsc, TrainSettings(epochs=2, batch_size=256, lr=1e-2, seed=3))
    assert retrained["accuracy"] == pytest.approx(first.loc[0, "accuracy"], abs=1e-12)
    assert retrained["params"] == nas.params_of((h1, h2)) == first.loc[0, "params"]


@pytest.mark.parametrize("h1, args, message", [
    ("[0, 16]", [], "width 0 must be a positive integer"),
    ("[8, 8]", [], "must list each width once"),
    ("[8, 16]", ["--checkpoint", "x.pt"], "every trial trains from scratch"),
])
def test_bad_configs_fail_with_one_line(setup, tmp_path, capsys, h1, args, message):
    root, _, _ = setup
    config = tmp_path / "bad.toml"
    config.write_text(CONFIG.format(path=root / "jsc_small.npz", h1=h1))
    assert _search(config, tmp_path / "runs", *args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_committed_configs_parse():
    from labhelpers import search

    single = search.load_config("configs/jsc_three_linear_nas.toml")
    pareto = search.load_config("configs/jsc_three_linear_nas_pareto.toml")
    assert single.kind == pareto.kind == "architecture" and single.space.size == 25
    assert single.objective.directions == ["maximize"]
    assert pareto.objective.directions == ["maximize", "minimize"] and pareto.sampler == "nsga2"
    settings = single.space.to_config({"h1": 32, "h2": 64})
    assert settings["hidden"] == (32, 64) and settings["epochs"] == 10 and settings["batch_size"] == 512


def test_multi_objective_search_reports_a_pareto_front(setup, tmp_path, capsys):
    root, _, _ = setup
    config = tmp_path / "pareto.toml"
    text = CONFIG.format(path=root / "jsc_small.npz", h1="[8, 16]").replace('sampler = "brute-force"', 'sampler = "nsga2"')
    config.write_text(text.replace('accuracy = {direction = "maximize"}',
                                   'accuracy = {direction = "maximize"}\nbops = {direction = "minimize"}'))
    assert _search(config, tmp_path / "runs", "--n-trials", "4") == 0
    trials = pd.read_csv(tmp_path / "runs" / "pareto-nsga2-seed0" / "trials.csv", index_col="trial")
    best = pd.read_json(tmp_path / "runs" / "pareto-nsga2-seed0" / "best.json", precise_float=True)  # exact floats
    assert len(trials) == 4 and len(best) >= 1
    for _, row in best.iterrows():  # no trial dominates a reported best one
        assert not ((trials.accuracy >= row.accuracy) & (trials.bops <= row.bops)
                    & ((trials.accuracy > row.accuracy) | (trials.bops < row.bops))).any()


def test_resuming_with_other_training_settings_is_refused(setup, tmp_path, capsys):
    root, _, config = setup
    assert _search(config, tmp_path / "runs", "--n-trials", "1") == 0
    changed = tmp_path / "nas.toml"  # same study name (the file stem), 3 epochs instead of 2
    changed.write_text(config.read_text().replace("epochs = 2", "epochs = 3"))
    assert _search(changed, tmp_path / "runs", "--n-trials", "2") == 2
    err = capsys.readouterr().err.strip()
    assert "different train" in err and "\n" not in err
