"""``python -m labhelpers metrics`` and ``search``: outputs, run folders, resume, and one-line errors."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from labhelpers import cli, models

ROOT = Path(__file__).resolve().parents[2]
BY_TYPE = ROOT / "configs" / "jsc_tiny_by_type_brute_force.toml"


@pytest.fixture()
def env(tmp_path, monkeypatch):
    """A small simulated dataset and a JSC-Tiny checkpoint in tmp_path; cwd = tmp_path."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1500, 16)).astype(np.float32)
    y = (x[:, :5].argmax(1) + (rng.random(1500) < 0.3)) % 5
    np.savez(tmp_path / "jsc_sim.npz", X=x, y=y)
    monkeypatch.setenv("LABHELPERS_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    models.save(models.build("jsc-tiny"), tmp_path / "checkpoints" / "jsc-tiny.pt", name="jsc-tiny")
    return tmp_path


def _run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_metrics_json(env, capsys):
    code, out, _ = _run(capsys, "metrics", "--model", "jsc-tiny", "--config", ROOT / "configs" / "jsc_tiny_int8.toml", "--json")
    result = json.loads(out)
    assert code == 0 and result["quantized"] == ["seq_blocks_2"]
    assert result["totals"]["size_bits"] == 2048 + 85 * 8
    assert result["totals"]["bops"] == 80 * (64 + 16 + 4)
    assert [row["node"] for row in result["layers"]] == ["seq_blocks_0", "seq_blocks_1", "seq_blocks_2", "seq_blocks_3", "total"]


def test_search_writes_a_run_folder_and_resumes(env, capsys):
    args = ("search", "--config", BY_TYPE, "--no-progress")
    code, out, _ = _run(capsys, *args, "--n-trials", 6)
    run_dir = env / "runs" / "search" / "jsc_tiny_by_type_brute_force-brute-force-seed0"
    assert code == 0 and "6 completed trials" in out
    assert {"trials.csv", "trials.json", "best.json", "journal.log"} <= {p.name for p in run_dir.iterdir()}
    code, out, _ = _run(capsys, *args)  # the config's budget: 16
    assert code == 0 and "16 completed trials" in out
    assert len(json.loads((run_dir / "trials.json").read_text())) == 16


def test_search_options_override_the_config(env, capsys):
    code, out, _ = _run(capsys, "search", "--config", BY_TYPE, "--no-progress", "--sampler", "random", "--seed", 3,
                        "--n-trials", 3, "--study-name", "mine", "--storage", f"sqlite:///{env / 's.db'}")
    assert code == 0 and "study mine: 3 completed trials" in out and (env / "s.db").is_file()


def _bad_config(env, old, new):
    path = env / "bad.toml"
    path.write_text(BY_TYPE.read_text().replace(old, new))
    return path


@pytest.mark.parametrize("change, message", [
    (('data_in = [[16, 8]', 'data_in = [[40, 8]'), "data_in_width=40 is out of range; allowed 1 <= data_in_width <= 32"),
    (('sum_scaled_metrics = false', 'sum_scaled = false'), "unknown key(s) ['sum_scaled']"),
    (('by = "type"', 'by = "name"'), "'linear' is not a node name of this graph"),
    (('name = "jsc-tiny"', 'name = "jsc-three-linear"'), "holds model 'jsc-tiny', not 'jsc-three-linear'"),
])
def test_search_bad_config_one_line_error(env, capsys, change, message):
    code, out, err = _run(capsys, "search", "--config", _bad_config(env, *change), "--no-progress")
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ")
    assert message in err


@pytest.mark.parametrize("argv, message", [
    (("search", "--config", BY_TYPE, "--sampler", "anneal"), "sampler='anneal' is unknown"),
    (("search", "--config", BY_TYPE, "--checkpoint", "nope.pt"), "checkpoint nope.pt does not exist"),
    (("search", "--config", "missing.toml"), "config missing.toml does not exist"),
    (("metrics", "--model", "jsc-tiny", "--checkpoint", "nope.pt"), "checkpoint nope.pt does not exist"),
    (("metrics", "--model", "jsc-huge"), "--model 'jsc-huge' is unknown"),
    (("metrics", "--model", "jsc-tiny", "--config", BY_TYPE), "unknown table(s) ['data', 'model', 'search']"),
])
def test_cli_errors_are_one_line(env, capsys, argv, message):
    code, out, err = _run(capsys, *argv)
    assert code == 2 and err.count("\n") == 1 and message in err


def test_cli_exit_status_in_a_subprocess(env):
    bad = _bad_config(env, 'weight = [[16, 8]', 'weight = [[16, 17]')
    proc = subprocess.run([sys.executable, "-m", "labhelpers", "search", "--config", str(bad)],
                          capture_output=True, text=True, cwd=env, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "weight_frac_width=17 is out of range" in proc.stderr
