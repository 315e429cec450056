"""`python -m labhelpers data|train`: output, checkpoints, one-line errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from labhelpers import models as M
from jsc_fixtures import toy_frame, write_sim_npz


def _cli(*args, data_dir):
    env = {**os.environ, "LABHELPERS_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "labhelpers", *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture
def data_dir(tmp_path):
    write_sim_npz(tmp_path / "jsc_sim.npz", toy_frame(500))
    return tmp_path


def test_help_lists_subcommands(data_dir):
    out = _cli("--help", data_dir=data_dir).stdout
    assert "data" in out and "train" in out


def test_data_summary_prints_counts_and_fingerprint(data_dir):
    result = _cli("data", "--dataset", "sim", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert "fingerprint=" in result.stdout and "total" in result.stdout and "train" in result.stdout


def test_train_writes_checkpoint_with_metadata(data_dir, tmp_path):
    out = tmp_path / "ck" / "tiny.pt"
    result = _cli("train", "--model", "jsc-tiny", "--epochs", "2", "--no-progress", "--out", str(out), data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    model, meta = M.load(out, expected_model="jsc-tiny")
    assert meta["dataset_fingerprint"] == printed["dataset_fingerprint"] and 0 <= meta["test_accuracy"] <= 1


@pytest.mark.parametrize("args, match", [
    (("train", "--model", "jsc-huge", "--out", "x.pt"), "model='jsc-huge' is unknown"),
    (("data", "--dataset", "sim", "--path", "missing.npz"), "is missing"),
    (("train", "--model", "jsc-tiny", "--epochs", "0", "--out", "x.pt"), "epochs=0"),
])
def test_bad_input_is_one_line_nonzero(data_dir, args, match):
    result = _cli(*args, data_dir=data_dir)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0]
