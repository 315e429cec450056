"""Issue 13: commands that would overwrite files, and bad input, give one line ``error: ...`` and write nothing.

Every case runs ``labhelpers.cli.main([...])`` in-process (cwd and ``LABHELPERS_DATA_DIR`` in a temp
folder holding a small simulated JSC) and asserts: exit status 2; stderr is exactly one line, starting
with ``error:`` and naming the field; no traceback; and nothing written: every file under the temp
folder and under the repo's notebooks/, imgs/, checkpoints/, data/ and configs/ keeps its bytes (temp) or
size and mtime (repo), and no file or folder appears. One case runs the real ``python -m labhelpers``.

Overwrites (``--force`` is the one flag that allows them; see ``labhelpers.validate.refuse_overwrite``):

| case | command | error names |
|---|---|---|
| overwrite-checkpoint | ``train --out <existing .pt>`` | ``--out``, ``--force`` |
| release-onto-instructor | ``release --out notebooks`` (even with ``--force``) | ``--out``, "notebook being read" |
| release-twice | ``release --out student`` when student/ holds the notebooks | ``--force`` |
| run-labs-onto-notebooks | ``run-labs --out notebooks`` (even with ``--force``) | ``--out``, "notebook being read" |
| run-labs-onto-imgs | ``run-labs --out .`` (would rewrite imgs/) | ``--force`` |
| run-labs-existing-run | ``run-labs --out <folder with run.json>`` | ``--force`` |
| simulate-over-sim | ``data simulate --n-jets 10`` (default data/jsc_sim.npz exists) | ``--out``, ``--force`` |

Bad input that used to give a traceback or be accepted:

| case | input | error names |
|---|---|---|
| text-features | npz with string X | ``dtype <U`` |
| csv-text-column | CSV with a non-numeric feature column | ``feature column 'j_zlogz'`` |
| label-out-of-range | npz label 8 | ``label 8 is out of range`` |
| float-labels | npz with float y | ``labels y have dtype float64`` |
| three-rows | npz with 3 rows | ``at least 2 rows`` (per class and split) |
| hidden-for-tiny | ``train --model jsc-tiny --hidden 16 16`` | ``'hidden'`` |
| huge-hidden | ``train --hidden 100000000 16`` | ``at most 1024`` |
| train-out-folder / -under-file | ``train --out <folder>`` / ``<file>/x.pt`` | ``--out``, "is a folder" / "is a file" |
| release-out-file / -under-file | ``release --out <file>`` / ``<file>/sub`` | ``--out`` |
| run-labs-out-file / -under-file | ``run-labs --out <file>`` / ``<file>/sub`` | ``--out`` |
| run-root-file / -under-file | ``search --run-root <file>`` / ``<file>/sub`` | ``--run-root`` |
| journal-folder / -under-file | ``search --storage <folder>`` / ``<file>/j.log`` | ``--storage`` |
| ckpt-unknown-kwarg | model_kwargs {"width": 3} | ``model_kwargs``, ``'width'`` |
| ckpt-kwargs-list | model_kwargs [16, 16] | ``model_kwargs must be a dict`` |
| ckpt-hidden-int | model_kwargs {"hidden": 5} | ``hidden=5`` |
| ckpt-final-relu-str | model_kwargs {"final_relu": "no"} | ``final_relu='no'`` |
| ckpt-meta-string | meta "hello" | ``meta must be a dict`` |
| ckpt-missing-key / -extra-key | a state_dict key dropped / added | ``lacks`` / ``has extra`` |
| ckpt-wrong-shape | Linear weight (5, 8) | ``(5, 16)`` |
| ckpt-three-linear-as-tiny | JSC-Three-Linear state under model "jsc-tiny" | ``has extra key(s)`` |
| ckpt-unknown-model | ``"model": "jsc-huge"`` | ``model='jsc-huge' is unknown`` |
| ckpt-other-model | a jsc-tiny checkpoint for ``metrics --model jsc-three-linear`` | ``holds model 'jsc-tiny'`` |
| ckpt-nan / ckpt-float64 | NaN weight / float64 tensors | ``NaN/inf`` / ``torch.float64`` |
| toml-data-path-int | ``[data] path = 3`` | ``[data] path=3`` |
| toml-checkpoint-int | ``[model] checkpoint = 3`` | ``[model] checkpoint=3`` |
| toml-space-scalar | ``[search] search_space = 3`` | ``[search.search_space] must be a table`` |
| toml-metrics-scalar | ``[search.strategy] metrics = 3`` | ``[search.strategy.metrics]`` |
| toml-nas-lr-inf | ``[search.search_space.train] lr = inf`` | ``lr=inf`` |
| toml-nas-width-huge | ``h1 = [16, 100000000]`` | ``at most 1024`` |
| yaml-malformed | params file ``a: [1,`` | ``not valid YAML`` |
| yaml-section-scalar | params file ``lab3: 5`` | ``section 'lab3'`` |
| p-section-scalar | ``-p lab3 5`` | ``section 'lab3'`` |
| grade-v3 / grade-invalid | nbformat 3 / schema-invalid notebook | ``nbformat version 3`` / ``nbformat 4 schema`` |
| lr-inf / lr-nan | ``train --lr inf`` / ``nan`` | ``lr=inf`` / ``lr=nan`` |
| loss-diverges | ``train --lr 1e30`` (loss NaN in epoch 1) | ``training diverged``, ``lr=1e+30`` |
| study-name-escape / -empty | ``--study-name ../../x`` / ``''`` | ``--study-name`` and the allowed pattern |
| toml-study-name | ``study_name = "../x"`` in the config | ``study_name`` |
| heartbeat | ``search --heartbeat -5`` | ``--heartbeat=-5`` |
| timeout-run-labs / -grade | ``--timeout-per-cell -1`` | ``--timeout-per-cell=-1`` |
| patience | ``train --patience -2`` | ``patience=-2`` |
| batch-of-one | ``train --batch-size 319`` with 320 training rows (BatchNorm on 1 row) | ``batch_size=319``, ``e.g. 320`` |
| n-trials-huge | ``search --n-trials 99999999999999999999`` | ``at most 1000000`` |

Separately: a NAS search whose training diverges fails that trial with the error (exit 1, no completed
trial); ``--force`` does overwrite (train, release); the real ``python -m labhelpers`` prints the same line.

The repo folders are compared by size and mtime, so do not run the notebooks (nbval) of this checkout at
the same time: the labs write imgs/ and checkpoints/.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from jsc_fixtures import toy_frame, write_sim_npz
from labhelpers import cli, models

REPO = Path(__file__).resolve().parent.parent
REPO_ROOTS = [REPO / d for d in ("notebooks", "imgs", "checkpoints", "data", "configs")]
BY_TYPE = REPO / "configs" / "jsc_tiny_by_type_brute_force.toml"
NAS_TOML = """
[model]
name = "jsc-three-linear"
[data]
source = "sim"
[search.search_space]
kind = "architecture"
[search.search_space.hidden]
h1 = [16, 32]
h2 = [16]
[search.search_space.train]
epochs = 2
lr = {lr}
[search.strategy.setup]
sampler = "brute-force"
"""


# ----------------------------------------------------------------------------- helpers

def _snapshot(tmp: Path) -> dict:
    """Bytes of every file under ``tmp``, size and mtime of the repo's tracked folders, and every folder."""
    state = {}
    for path in sorted(tmp.rglob("*")):
        state[path] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    for root in REPO_ROOTS:
        for path in root.rglob("*"):
            if "openml" not in path.parts and "__pycache__" not in path.parts:
                st = path.stat()
                state[path] = (st.st_size, st.st_mtime_ns) if path.is_file() else "dir"
    return state


def _checkpoint(path: Path, name="jsc-tiny", kwargs=None, edit=None, **blob_changes) -> Path:
    model = models.build(name, **(kwargs or {}))
    models.save(model, path, name=name, model_kwargs=kwargs or {})
    blob = torch.load(path, weights_only=True)
    if edit:
        edit(blob["state_dict"])
    blob.update(blob_changes)
    torch.save(blob, path)
    return path


def _npz(path: Path, x, y) -> Path:
    np.savez(path, X=np.asarray(x), y=np.asarray(y))
    return path


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _toml(tmp: Path, text: str) -> str:
    return str(_write(tmp / "bad.toml", text))


def _by_type(tmp: Path, old: str, new: str) -> str:
    text = BY_TYPE.read_text()
    assert old in text
    return _toml(tmp, text.replace(old, new))


def _file(tmp: Path) -> Path:
    return _write(tmp / "plain.txt", "a regular file\n")


def _nan_weight(state):
    state["seq_blocks.2.weight"][0, 0] = float("nan")


def _three_linear_state(tmp: Path) -> dict:
    models.save(models.build("jsc-three-linear"), tmp / "tl.pt", name="jsc-three-linear")
    state = torch.load(tmp / "tl.pt", weights_only=True)["state_dict"]
    (tmp / "tl.pt").unlink()
    return state


def _metrics(path) -> list[str]:
    return ["metrics", "--model", "jsc-tiny", "--dataset", "sim", "--checkpoint", str(path)]


def _train(*extra) -> list[str]:
    return ["train", "--model", "jsc-tiny", "--epochs", "2", "--no-progress", *extra]


def _v3(tmp: Path) -> str:
    cell = {"cell_type": "code", "input": "1", "outputs": [], "language": "python", "collapsed": False}
    return str(_write(tmp / "ada_lab3.ipynb", json.dumps(
        {"metadata": {}, "nbformat": 3, "nbformat_minor": 0, "worksheets": [{"cells": [cell]}]})))


def _invalid_nb(tmp: Path) -> str:
    nb = json.loads((REPO / "tests" / "fixtures" / "mini_lab.ipynb").read_text())
    nb["cells"][0]["cell_type"] = "weird"
    return str(_write(tmp / "ada_lab3.ipynb", json.dumps(nb)))


def _student_folder(tmp: Path) -> str:
    for name in ("lab3_quantization_search.ipynb", "lab4_architecture_search.ipynb"):
        _write(tmp / "student" / name, "{}")
    return str(tmp / "student")


# ----------------------------------------------------------------------------- the cases

# id -> (build(tmp) -> argv, substrings the error line must contain)
CASES = {
    # overwrites
    "overwrite-checkpoint": (lambda t: _train("--out", str(_checkpoint(t / "old.pt"))), ["--out", "--force"]),
    "release-onto-instructor": (lambda t: ["release", "--out", str(REPO / "notebooks"), "--force"],
                                ["--out", "notebook being read"]),
    "release-twice": (lambda t: ["release", "--out", _student_folder(t)], ["--out", "--force"]),
    "run-labs-onto-notebooks": (lambda t: ["run-labs", "--out", str(REPO / "notebooks"), "--force", "--no-progress"],
                                ["--out", "notebook being read"]),
    "run-labs-onto-imgs": (lambda t: ["run-labs", "--out", str(REPO), "--no-progress"], ["--out", "imgs", "--force"]),
    "run-labs-existing-run": (lambda t: ["run-labs", "--out", str(_write(t / "run" / "run.json", "[]").parent)],
                              ["run.json", "--force"]),
    "simulate-over-sim": (lambda t: ["data", "simulate", "--n-jets", "10", "--no-progress"],
                          ["--out", "jsc_sim.npz", "--force"]),
    # data files
    "text-features": (lambda t: ["data", "--dataset", "sim", "--path", str(_npz(t / "x.npz", [["a"] * 16] * 40, [0] * 40))],
                      ["dtype <U"]),
    "csv-text-column": (lambda t: ["data", "--dataset", "real", "--path",
                                   str(_write(t / "x.csv", toy_frame(50).assign(j_zlogz="abc").to_csv(index=False)))],
                        ["feature column 'j_zlogz'", "not numeric"]),
    "label-out-of-range": (lambda t: ["data", "--dataset", "sim", "--path",
                                      str(_npz(t / "x.npz", np.ones((40, 16)), [8] + [0] * 39))], ["label 8 is out of range"]),
    "float-labels": (lambda t: ["data", "--dataset", "sim", "--path",
                                str(_npz(t / "x.npz", np.ones((40, 16)), np.zeros(40)))], ["labels y have dtype float64"]),
    "three-rows": (lambda t: ["data", "--dataset", "sim", "--path",
                              str(_npz(t / "x.npz", np.arange(48.0).reshape(3, 16), [0, 1, 2]))], ["at least 2 rows"]),
    # models and output paths
    "hidden-for-tiny": (lambda t: _train("--hidden", "16", "16", "--out", str(t / "x.pt")), ["'hidden'", "jsc-tiny"]),
    "huge-hidden": (lambda t: ["train", "--model", "jsc-three-linear", "--hidden", "100000000", "16",
                               "--out", str(t / "x.pt")], ["hidden=", "at most 1024"]),
    "train-out-folder": (lambda t: _train("--out", str(t)), ["--out", "is a folder"]),
    "train-out-under-file": (lambda t: _train("--out", str(_file(t) / "x.pt")), ["--out", "is a file"]),
    "release-out-file": (lambda t: ["release", "--out", str(_file(t))], ["--out", "is a file"]),
    "release-out-under-file": (lambda t: ["release", "--out", str(_file(t) / "sub")], ["--out", "is a file"]),
    "run-labs-out-file": (lambda t: ["run-labs", "--out", str(_file(t))], ["--out", "is a file"]),
    "run-labs-out-under-file": (lambda t: ["run-labs", "--out", str(_file(t) / "sub")], ["--out", "is a file"]),
    "run-root-file": (lambda t: ["search", "--config", str(BY_TYPE), "--run-root", str(_file(t))], ["--run-root"]),
    "run-root-under-file": (lambda t: ["search", "--config", str(BY_TYPE), "--run-root", str(_file(t) / "sub")],
                            ["--run-root", "is a file"]),
    "journal-folder": (lambda t: ["search", "--config", str(BY_TYPE), "--storage", str(t)], ["--storage", "is a folder"]),
    "journal-under-file": (lambda t: ["search", "--config", str(BY_TYPE), "--storage", str(_file(t) / "j.log")],
                           ["--storage", "is a file"]),
    # checkpoints
    "ckpt-unknown-kwarg": (lambda t: _metrics(_checkpoint(t / "c.pt", model_kwargs={"width": 3})),
                           ["model_kwargs", "'width'"]),
    "ckpt-kwargs-list": (lambda t: _metrics(_checkpoint(t / "c.pt", model_kwargs=[16, 16])), ["model_kwargs must be a dict"]),
    "ckpt-hidden-int": (lambda t: ["metrics", "--model", "jsc-three-linear", "--dataset", "sim", "--checkpoint",
                                   str(_checkpoint(t / "c.pt", "jsc-three-linear", model_kwargs={"hidden": 5}))],
                        ["hidden=5"]),
    "ckpt-final-relu-str": (lambda t: _metrics(_checkpoint(t / "c.pt", model_kwargs={"final_relu": "no"})),
                            ["final_relu='no'"]),
    "ckpt-meta-string": (lambda t: _metrics(_checkpoint(t / "c.pt", meta="hello")), ["meta must be a dict"]),
    "ckpt-missing-key": (lambda t: _metrics(_checkpoint(t / "c.pt", edit=lambda s: s.pop("seq_blocks.2.bias"))),
                         ["lacks", "seq_blocks.2.bias"]),
    "ckpt-extra-key": (lambda t: _metrics(_checkpoint(t / "c.pt", edit=lambda s: s.update(extra=torch.zeros(1)))),
                       ["has extra", "'extra'"]),
    "ckpt-wrong-shape": (lambda t: _metrics(_checkpoint(
        t / "c.pt", edit=lambda s: s.update({"seq_blocks.2.weight": torch.zeros(5, 8)}))), ["seq_blocks.2.weight", "(5, 16)"]),
    "ckpt-three-linear-as-tiny": (lambda t: _metrics(_checkpoint(t / "c.pt", state_dict=_three_linear_state(t))),
                                  ["has extra key(s)", "jsc-tiny"]),
    "ckpt-unknown-model": (lambda t: _metrics(_checkpoint(t / "c.pt", model="jsc-huge")), ["model='jsc-huge' is unknown"]),
    "ckpt-other-model": (lambda t: ["metrics", "--model", "jsc-three-linear", "--dataset", "sim", "--checkpoint",
                                    str(_checkpoint(t / "c.pt"))], ["holds model 'jsc-tiny', not 'jsc-three-linear'"]),
    "ckpt-nan": (lambda t: _metrics(_checkpoint(t / "c.pt", edit=_nan_weight)), ["seq_blocks.2.weight", "NaN/inf"]),
    "ckpt-float64": (lambda t: _metrics(_checkpoint(t / "c.pt", edit=lambda s: s.update(
        {k: v.double() for k, v in s.items() if v.is_floating_point()}))), ["torch.float64", "torch.float32"]),
    # search configs
    "toml-data-path-int": (lambda t: ["search", "--config", _by_type(t, 'split = "val"', 'split = "val"\npath = 3')],
                           ["[data] path=3"]),
    "toml-checkpoint-int": (lambda t: ["search", "--config", _by_type(t, 'checkpoint = "checkpoints/jsc-tiny.pt"',
                                                                       "checkpoint = 3")], ["[model] checkpoint=3"]),
    "toml-space-scalar": (lambda t: ["search", "--config", _toml(t, "[search]\nsearch_space = 3\n")],
                          ["[search.search_space] must be a table"]),
    "toml-metrics-scalar": (lambda t: ["search", "--config", _by_type(
        t, '[search.strategy.metrics]\naccuracy = {direction = "maximize"}', '[search.strategy]\nmetrics = 3')],
                            ["[search.strategy"]),
    "toml-nas-lr-inf": (lambda t: ["search", "--config", _toml(t, NAS_TOML.format(lr="inf"))], ["lr=inf"]),
    "toml-nas-width-huge": (lambda t: ["search", "--config", _toml(t, NAS_TOML.format(lr="1e-3").replace(
        "h1 = [16, 32]", "h1 = [16, 100000000]"))], ["hidden h1", "at most 1024"]),
    "toml-study-name": (lambda t: ["search", "--config", _by_type(t, "seed = 0", 'seed = 0\nstudy_name = "../x"')],
                        ["study_name='../x'", "A-Z a-z 0-9"]),
    # run-labs parameters and grading
    "yaml-malformed": (lambda t: ["run-labs", "--params-file", str(_write(t / "p.yaml", "seed: [1,\n")), "--out", str(t / "r")],
                       ["params file", "not valid YAML"]),
    "yaml-section-scalar": (lambda t: ["run-labs", "--params-file", str(_write(t / "p.yaml", "lab3: 5\n")),
                                       "--out", str(t / "r")], ["section 'lab3'"]),
    "p-section-scalar": (lambda t: ["run-labs", "-p", "lab3", "5", "--out", str(t / "r")], ["section 'lab3'"]),
    "grade-v3": (lambda t: ["grade", _v3(t), "--no-progress"], ["nbformat version 3"]),
    "grade-invalid": (lambda t: ["grade", _invalid_nb(t), "--no-progress"], ["cells/0", "nbformat 4 schema"]),
    # numbers
    "lr-inf": (lambda t: _train("--lr", "inf", "--out", str(t / "x.pt")), ["lr=inf", "positive number"]),
    "lr-nan": (lambda t: _train("--lr", "nan", "--out", str(t / "x.pt")), ["lr=nan", "positive number"]),
    "loss-diverges": (lambda t: _train("--lr", "1e30", "--out", str(t / "x.pt")), ["training diverged", "lr=1e+30"]),
    "study-name-escape": (lambda t: ["search", "--config", str(BY_TYPE), "--study-name", "../../escaped_study"],
                          ["--study-name='../../escaped_study'", "A-Z a-z 0-9"]),
    "study-name-empty": (lambda t: ["search", "--config", str(BY_TYPE), "--study-name", ""], ["--study-name=''"]),
    "heartbeat": (lambda t: ["search", "--config", str(BY_TYPE), "--heartbeat", "-5"], ["--heartbeat=-5", "positive"]),
    "timeout-run-labs": (lambda t: ["run-labs", "--timeout-per-cell", "-1", "--out", str(t / "r")],
                         ["--timeout-per-cell=-1", "positive"]),
    "timeout-grade": (lambda t: ["grade", _v3(t), "--timeout-per-cell", "-1"], ["--timeout-per-cell=-1"]),
    "patience": (lambda t: _train("--patience", "-2", "--out", str(t / "x.pt")), ["patience=-2", "positive integer"]),
    "batch-of-one": (lambda t: _train("--batch-size", "319", "--out", str(t / "x.pt")), ["batch_size=319", "e.g. 320"]),
    "n-trials-huge": (lambda t: ["search", "--config", str(BY_TYPE), "--n-trials", "99999999999999999999"],
                      ["--n-trials=99999999999999999999", "at most 1000000"]),
}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """cwd in an empty folder; the data folder holds a small simulated JSC (so data/ of the repo is not read)."""
    data_dir, work = tmp_path / "data", tmp_path / "work"
    data_dir.mkdir()
    work.mkdir()
    write_sim_npz(data_dir / "jsc_sim.npz", toy_frame(500))
    monkeypatch.setenv("LABHELPERS_DATA_DIR", str(data_dir))
    monkeypatch.chdir(work)
    return work


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_writes_nothing(case, workdir, capsys):
    build, expected = CASES[case]
    argv = build(workdir)
    before = _snapshot(workdir.parent)
    capsys.readouterr()
    status = cli.main(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    missing = [text for text in expected if text not in lines[0]]
    assert not missing, f"{missing} not in {lines[0]!r}"
    assert _snapshot(workdir.parent) == before


def test_real_command_prints_one_line_without_traceback(workdir):
    """The installed entry point, not just main(): a refused overwrite exits 2 with one stderr line."""
    target = _checkpoint(workdir / "old.pt")
    before = _snapshot(workdir.parent)
    result = subprocess.run([sys.executable, "-m", "labhelpers", *_train("--out", str(target))],
                            capture_output=True, text=True, env=dict(os.environ), timeout=300)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: --out: {target} exists; pass --force to overwrite it, "
                                          "or choose another path"]
    assert _snapshot(workdir.parent) == before


def test_force_overwrites_a_checkpoint(workdir, capsys):
    """The flag named in the error does what it says."""
    target = _checkpoint(workdir / "old.pt")
    old = target.read_bytes()
    assert cli.main(_train("--out", str(target), "--force")) == 0
    assert target.read_bytes() != old and models.load(target)[1]["epochs_run"] == 2


def test_force_replaces_existing_student_notebooks(workdir, capsys):
    student = Path(_student_folder(workdir))
    assert cli.main(["release", "--out", str(student), "--force"]) == 0
    assert all("raise NotImplementedError" in p.read_text() for p in student.glob("*.ipynb"))


def test_diverging_nas_trial_fails_with_the_error(workdir, capsys):
    """A search trial whose training goes NaN is a failed trial carrying the error; nothing completes."""
    config = _toml(workdir, NAS_TOML.format(lr="1e300"))
    status = cli.main(["search", "--config", config, "--run-root", str(workdir / "runs"), "--no-progress"])
    out = capsys.readouterr().out
    assert status == 1
    assert "2 trial(s) raised: ValueError: training diverged" in out and "lr=1e+30" in out
    assert "0 completed trials" in out
