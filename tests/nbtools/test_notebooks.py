"""Headless runs (run-labs), reproducible outputs and the nbval wiring, on the fixture lab and the real labs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from notebook_fixtures import cell_index
from labhelpers import cli
from labhelpers.nbtools import cells, compare, execute, grade, release, runlabs


def _variant(project: Path, name: str, edit) -> Path:
    """A copy of the fixture lab next to ``project`` under another name, changed by ``edit(nb)``."""
    nb = cells.read(project)
    edit(nb)
    path = project.with_name(name)
    nbformat.write(nb, path)
    return path


def _insert_failing_cell(nb):
    nb.cells.insert(cell_index(nb, "table = pd.DataFrame"), nbformat.v4.new_code_cell('raise RuntimeError("boom")'))


def _untag(nb):
    nb.cells[cells.parameters_index(nb)].metadata["tags"] = []


# ---------------------------------------------------------------- run-labs

def test_run_writes_executed_notebook_and_figures_into_the_run_folder(project, tmp_path):
    run_dir, [result] = runlabs.run_labs(notebooks=[project], parameters={"fast": True}, out=tmp_path / "run",
                                           progress=False)
    assert result["error"] is None and run_dir == tmp_path / "run"
    executed = cells.read(run_dir / "mini_lab.ipynb")
    injected = next(c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "fast = True" in injected.source and str(run_dir / "imgs") in injected.source
    assert all(executed.cells[i].execution_count for i in cells.code_indices(executed) if executed.cells[i].source)
    assert (run_dir / "imgs" / "mini_lab_hist.png").stat().st_size > 1000
    assert not any((project.parent.parent / "imgs").iterdir()), "figures must go to the run folder only"
    assert (run_dir / "run.json").exists()


def test_run_labs_cli_exits_nonzero_naming_notebook_and_cell(project, tmp_path, monkeypatch, capsys):
    bad = _variant(project, "mini_lab_bad.ipynb", _insert_failing_cell)
    monkeypatch.setattr(runlabs, "lab_path", {"lab3": project, "lab4": bad}.get)
    status = cli.main(["run-labs", "--out", str(tmp_path / "run"), "--no-progress", "-p", "seed", "3"])
    captured = capsys.readouterr()
    assert status == 1
    k = cells.code_indices(cells.read(bad)).index(cell_index(cells.read(bad), "boom"))
    assert f"error: mini_lab_bad.ipynb: Cell {k} (In [" in captured.err
    assert 'raise RuntimeError("boom")` raised RuntimeError: boom' in captured.err
    assert "1/2 notebooks ran without error" in captured.out
    assert "seed = 3" in cells.read(tmp_path / "run" / "mini_lab.ipynb").cells[2].source


def test_missing_parameters_tag_is_an_error(project, tmp_path, monkeypatch, capsys):
    untagged = _variant(project, "mini_lab_untagged.ipynb", _untag)
    with pytest.raises(ValueError, match="mini_lab_untagged.ipynb: no cell is tagged 'parameters'"):
        runlabs.run_labs(notebooks=[untagged], out=tmp_path / "run", progress=False)
    monkeypatch.setattr(runlabs, "lab_path", {"lab3": project, "lab4": untagged}.get)
    assert cli.main(["run-labs", "--out", str(tmp_path / "run2")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no cell is tagged 'parameters'" in err
    assert not (tmp_path / "run2" / "mini_lab.ipynb").exists(), "nothing runs until every notebook is valid"


def test_unknown_parameter_is_an_error(project, tmp_path):
    with pytest.raises(ValueError, match="parameter 'epochs': no notebook declares it .*mini_lab.ipynb"):
        runlabs.run_labs(notebooks=[project], parameters={"epochs": 3}, out=tmp_path / "run", progress=False)


def test_parameters_from_cli_file_and_lab_sections(tmp_path):
    declared = {"seed": "0", "fast": "False", "out_dir": '"../imgs"'}
    (tmp_path / "p.yaml").write_text("seed: 1\nlab3:\n  fast: true\nlab4:\n  fast: false\n")
    params = runlabs.read_params_file(tmp_path / "p.yaml")
    assert runlabs.lab_parameters("lab3", declared, params) == {"seed": 1, "fast": True}
    assert runlabs.lab_parameters("lab4", declared, params) == {"seed": 1, "fast": False}
    with pytest.raises(ValueError, match="parameter 'epochs' for lab3: not declared"):
        runlabs.lab_parameters("lab3", declared, {"lab3": {"epochs": 2}})
    (tmp_path / "bad.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        runlabs.read_params_file(tmp_path / "bad.yaml")
    values = ["3", "0.5", "true", "False", "None", "[16, 32]", "sim", "'a b'"]
    assert [runlabs.parse_value(v) for v in values] == [3, 0.5, True, False, None, [16, 32], "sim", "a b"]


def test_declared_parameters(project):
    assert cells.declared_parameters(cells.read(project)) == {
        "seed": "0", "fast": "False", "progress": "False", "out_dir": '"../imgs"'}


# ---------------------------------------------------------------- reproducible outputs

def test_two_fresh_executions_give_identical_checked_outputs(reference):
    first = cells.read(reference)
    second, failure = execute.execute(first, reference.parent)
    assert failure is None
    patterns = compare.sanitize_patterns()
    checked = [i for i in cells.code_indices(first) if cells.output_checked(first.cells[i])]
    for i in checked:
        assert compare.comparable(first.cells[i].outputs, patterns) == \
            compare.comparable(second.cells[i].outputs, patterns), cells.cell_label(first, i)
    with_output = {i for i in checked if first.cells[i].outputs}
    for text in ("self-check passed", 'print(f"mean =', "table.round(4)", "ax.hist"):  # (+ warnings, if any)
        assert cell_index(first, text) in with_output
    # figures: PNG bytes are stable between runs in one environment (not across machines, so nbval skips them)
    figure = cell_index(first, "ax.hist")
    assert first.cells[figure].outputs[0].data["image/png"] == second.cells[figure].outputs[0].data["image/png"]
    assert compare.output_problems(first) == [] and compare.output_problems(second) == []


def test_output_lint_catches_debris():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", execution_count=i + 1) for i in range(5)])
    stream, result = nbformat.v4.new_output, nbformat.v4.new_output
    nb.cells[0].outputs = [stream("stream", name="stderr", text="100%|██████████| 3/3 [00:00<00:00, 9.1it/s]\n")]
    nb.cells[1].outputs = [result("execute_result", {"text/plain": "[<matplotlib.lines.Line2D at 0x7f00aa>]"})]
    nb.cells[2].outputs = [result("execute_result", {"text/plain": "<Figure size 640x480 with 1 Axes>"})]
    nb.cells[3].outputs = [result("display_data", {"text/plain": "<Figure size 640x480 with 1 Axes>",
                                                   "image/png": "iVBORw0KGgo="})]
    nb.cells[4].outputs = [result("display_data", {"application/vnd.jupyter.widget-view+json": {"model_id": "x"},
                                                   "text/plain": "  0%|"})]
    problems = compare.output_problems(nb)
    assert [p.split("`: ")[1] for p in problems] == [
        "progress-bar output", "a memory address in the output",
        "a figure/artist repr without the figure (end the plot line with ';')",
        "a widget (tqdm.auto progress bar?)"]  # the displayed figure (cell 3) is fine


def test_sanitize_masks_only_what_varies():
    patterns = compare.sanitize_patterns()
    masked = {
        "<labhelpers.graph.Graph object at 0x7f3a2c1b4e50>": "<labhelpers.graph.Graph object at 0xADDRESS>",
        "/home/ada/labs/checkpoints/jsc-tiny.pt": "<PROJECT>/checkpoints/jsc-tiny.pt",
        "/opt/x/.venv/lib/python3.11/site-packages/torch/nn/f.py:3: UserWarning": "<SITE-PACKAGES>/torch/nn/f.py:3: UserWarning",
        "study in /tmp/tmpk2j/study.log": "study in <TMP>",
    }
    for text, expected in masked.items():
        assert compare.sanitize(text, patterns) == expected
    kept = ["accuracy 0.7321, latency_ms 0.0123", "size_bits 1234 | bops 5.6e+05", "saved ../imgs/lab3_pareto.png",
            "0x10 is sixteen", "   width_bits  size_bits\n0           4         64"]
    assert [compare.sanitize(t, patterns) for t in kept] == kept


def _nbval(path: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cells.repo_dir())}
    cmd = [sys.executable, "-m", "pytest", "-p", "labhelpers.nbtools.plugin", "--nbval", "--nbval-current-env",
           "-p", "no:cacheprovider", "-q", str(path)]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_nbval_wiring_passes_faithful_fails_edited_and_never_executed(reference, tmp_path):
    """nbval as `make test` runs it: the sanitize file, the checked-cell count, the never-executed guard."""
    good = _nbval(reference, tmp_path)
    assert good.returncode == 0, good.stdout[-2000:]
    nb = cells.read(reference)
    n = sum(bool(nb.cells[i].outputs) and cells.output_checked(nb.cells[i]) for i in cells.code_indices(nb))
    assert n >= 4 and f"mini_lab.ipynb: {n} code cells with stored output compared ({n} passed)" in good.stdout
    assert "1 ignored (NBVAL_IGNORE_OUTPUT/SKIP)" in good.stdout

    edited = cells.read(reference)
    index = cell_index(edited, 'print(f"mean =')
    edited.cells[index].outputs[0].text = "mean = 9.9999, std = 9.9999\n"
    nbformat.write(edited, reference.with_name("edited.ipynb"))
    bad = _nbval(reference.with_name("edited.ipynb"), tmp_path)
    k = cells.code_indices(edited).index(index)
    assert bad.returncode == 1 and f"edited.ipynb::Cell {k}" in bad.stdout and "1 failed" in bad.stdout

    nbformat.write(cells.clear_outputs(edited), reference.with_name("never_run.ipynb"))
    never = _nbval(reference.with_name("never_run.ipynb"), tmp_path)
    assert never.returncode == 1 and "was never executed" in never.stdout


# ---------------------------------------------------------------- the committed lab notebooks

def _lab_or_skip(lab) -> Path:
    try:
        return cells.lab_path(lab)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("lab", list(cells.LABS))
def test_committed_lab_holds_a_clean_top_to_bottom_run(lab):
    """Strict nbval passes vacuously on a never-executed notebook; this makes sure there is something to check."""
    nb = cells.read(_lab_or_skip(lab))
    declared = cells.declared_parameters(nb, lab)
    assert {"seed", "fast", "progress", "out_dir"} <= set(declared)
    assert declared["fast"] == "False" and declared["progress"] == "False"
    assert grade.check_order(nb) == [] and grade.check_errors(nb) == []
    assert compare.output_problems(nb) == []
    assert grade.self_check_sources(nb), "no self-check cell printed 'passed'"
    assert release.solution_count(nb) > 0
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells), "default parameters only"


def test_lab3_fast_runs_twice_with_identical_checked_outputs(tmp_path):
    """Two fresh papermill runs of Lab 3 with fast=True agree on every checked output (nbval covers defaults)."""
    path = _lab_or_skip("lab3")
    runs = [runlabs.run_notebook(path, tmp_path / f"run{i}", {"fast": True}, progress=False) for i in (1, 2)]
    assert [r["error"] for r in runs] == [None, None]
    first, second = (cells.read(r["output"]) for r in runs)
    patterns = compare.sanitize_patterns()
    checked = [i for i in cells.code_indices(first) if cells.output_checked(first.cells[i])]
    differing = [cells.cell_label(first, i) for i in checked
                 if compare.first_difference(compare.comparable(first.cells[i].outputs, patterns),
                                               compare.comparable(second.cells[i].outputs, patterns))]
    assert differing == []
    assert sum(bool(first.cells[i].outputs) for i in checked) >= 10


def test_run_names_the_cell_that_exceeds_the_time_limit(project, tmp_path):
    slow = _variant(project, "mini_lab_slow.ipynb",
                    lambda nb: nb.cells.insert(2, nbformat.v4.new_code_cell("import time\ntime.sleep(6)")))
    _, [result] = runlabs.run_labs(notebooks=[slow], out=tmp_path / "run", progress=False, timeout_per_cell=2)
    assert result["error"] == "mini_lab_slow.ipynb: Cell 1 (In [ ]) `import time` exceeded the 2 s time limit"


def test_new_run_dir_is_a_fresh_timestamped_folder(tmp_path):
    first, second = runlabs.new_run_dir(tmp_path), runlabs.new_run_dir(tmp_path)
    assert first != second and first.is_dir() and second.is_dir()
    assert first.name[:8].isdigit() and first.name[8] == "-" and second.name.startswith(first.name[:15])


def test_fast_run_of_both_labs_leaves_tracked_files_alone(tmp_path):
    """`make labs` / `run-labs --fast` write figures and checkpoints into the run folder, never into imgs/ or checkpoints/."""
    root = cells.repo_dir()
    if not (root / ".git").exists():
        pytest.skip("not a git checkout: nothing to compare against")

    def status() -> str:
        return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=root,
                              capture_output=True, text=True, check=True).stdout

    before = status()
    run_dir, results = runlabs.run_labs(parameters={"fast": True}, out=tmp_path / "run", progress=False)
    assert [r["error"] for r in results] == [None, None]
    assert status() == before
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.pt")) == \
        [f"jsc-three-linear-x{m}.pt" for m in (1, 2)]
    assert any((run_dir / "imgs").glob("lab3_*.png")) and any((run_dir / "imgs").glob("lab4_*.png"))
