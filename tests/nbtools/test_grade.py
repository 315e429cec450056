"""`python -m labhelpers grade` on fixture submissions generated from tests/fixtures/mini_lab.ipynb."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from notebook_fixtures import cell_index, make_project
from labhelpers import cli
from labhelpers.nbtools import cells, grade
from labhelpers.nbtools import execute as nbexecute

ORDER, ERRORS, SELF_CHECKS, REPRODUCE, LOCKED = grade.CHECKS


def execute(nb, cwd, order=None):
    """Run code cells of a cleared copy in ``order`` (indices, repeats allowed), keeping errors; like a student would."""
    nb = cells.clear_outputs(nb)
    client = NotebookClient(nb, kernel_manager_class=nbexecute.kernel_manager_class(), allow_errors=True,
                            record_timing=False, resources={"metadata": {"path": str(cwd)}})
    with client.setup_kernel(cleanup_kc=True):
        for index in order or cells.code_indices(nb):
            client.execute_cell(nb.cells[index], index)
    return nb


def write(nb, tmp_path, name="mini_lab_submission.ipynb") -> Path:
    nbformat.write(nb, tmp_path / name)
    return tmp_path / name


def failed(report) -> dict:
    """check name -> list of problems, for the checks that failed."""
    return {c["check"]: c["problems"] for c in report["checks"] if not c["passed"]}


@pytest.fixture(scope="module")
def faithful(reference) -> nbformat.NotebookNode:
    """A student's faithful run: Restart Kernel and Run All, in the student's own folder."""
    return execute(cells.read(reference), reference.parent)


def test_faithful_run_passes(faithful, reference, tmp_path):
    report = grade.grade(write(faithful, tmp_path), reference=reference)
    assert report["passed"], grade.format_report(report)
    assert [c["check"] for c in report["checks"]] == list(grade.CHECKS)
    assert [t["task"] for t in report["tasks"]] == ["setup", "Task 1", "Task 2"]


def test_edited_printed_number_fails_and_names_the_cell(faithful, reference, tmp_path):
    nb = copy.deepcopy(faithful)
    index = cell_index(nb, "print(f\"mean =")
    stream = nb.cells[index].outputs[0]
    old = stream.text.split(",")[0]  # "mean = 0.1234"
    stream.text = stream.text.replace(old, old[:-1] + ("9" if old[-1] != "9" else "8"))
    report = grade.grade(write(nb, tmp_path), reference=reference)
    assert not report["passed"]
    assert list(failed(report)) == [REPRODUCE]
    [problem] = failed(report)[REPRODUCE]
    assert problem["cell"].startswith(f"Cell {cells.code_indices(nb).index(index)} ")
    assert old in problem["message"] and "re-run gives" in problem["message"]
    assert problem["task"] == "Task 2"
    assert "Task 2" in grade.format_report(report) and problem["cell"] in grade.format_report(report)


def test_edited_timing_output_is_not_checked(faithful, reference, tmp_path):
    nb = copy.deepcopy(faithful)
    index = cell_index(nb, "NBVAL_IGNORE_OUTPUT")
    nb.cells[index].outputs[0].text = "sorting took 0.001 ms\n"
    assert grade.grade(write(nb, tmp_path), reference=reference)["passed"]


def test_cells_run_out_of_order_fail(reference, tmp_path):
    nb = cells.read(reference)
    code = cells.code_indices(nb)
    rerun = cell_index(nb, "print(f\"mean =")
    submission = execute(nb, reference.parent, order=code + [rerun])  # ran the mean cell once more at the end
    report = grade.grade(write(submission, tmp_path), reference=reference)
    assert list(failed(report)) == [ORDER]
    [problem] = failed(report)[ORDER]
    assert f"In [{len(code) + 1}]" in problem["message"] and problem["index"] == rerun


def _grade_edited(reference, tmp_path, marker: str, old: str, new: str):
    """Replace ``old`` by ``new`` in the cell containing ``marker``, execute, grade: (nb, cell index, report)."""
    nb = cells.read(reference)
    index = cell_index(nb, marker)
    nb.cells[index].source = nb.cells[index].source.replace(old, new)
    return nb, index, grade.grade(write(execute(nb, reference.parent), tmp_path), reference=reference)


def test_cell_that_raises_fails(reference, tmp_path):
    nb, index, report = _grade_edited(reference, tmp_path, "table = pd.DataFrame", "table.width_bits", "table.no_such_column")
    assert not report["passed"]
    [problem] = failed(report)[ERRORS]
    assert problem["index"] == index and "AttributeError" in problem["message"]
    assert any(p["index"] == index and "re-execution stopped" in p["message"] for p in failed(report)[REPRODUCE])


def test_failing_self_check_fails(reference, tmp_path):
    nb, _, report = _grade_edited(reference, tmp_path, "### BEGIN SOLUTION", "v * factor", "v + factor")
    assert not report["passed"]
    [problem] = failed(report)[SELF_CHECKS]
    assert problem["index"] == cell_index(nb, "scale self-check passed") and problem["task"] == "Task 1"
    assert "AssertionError" in failed(report)[ERRORS][0]["message"]


def test_faked_self_check_output_fails(faithful, reference, tmp_path):
    """Editing a self-check cell (here: to print 'passed' without asserting) is caught."""
    nb = copy.deepcopy(faithful)
    index = cell_index(nb, "scale self-check passed")
    nb.cells[index].source = 'print("scale self-check passed")'
    report = grade.grade(write(nb, tmp_path), reference=reference)
    assert list(failed(report)) == [SELF_CHECKS]
    assert "missing or was edited" in failed(report)[SELF_CHECKS][0]["message"]


def test_cell_time_limit_names_the_cell(reference, tmp_path):
    nb = cells.read(reference)
    nb.cells.insert(2, nbformat.v4.new_code_cell("import time\ntime.sleep(4)"))  # before the (slower) imports
    submission = write(execute(nb, reference.parent), tmp_path)
    report = grade.grade(submission, reference=reference, timeout_per_cell=2)
    [problem] = failed(report)[REPRODUCE]
    assert problem["index"] == 2 and "2 s time limit" in problem["message"]
    assert problem["cell"].startswith("Cell 1 (In [2]) `import time`")


def test_submission_runs_in_this_interpreter_and_a_sandbox(reference, tmp_path):
    """The submission cannot pick the kernel, and its re-run writes only into a temporary copy of the project."""
    root = reference.parent.parent
    (root / "checkpoints").mkdir(exist_ok=True)
    (root / "checkpoints" / "model.txt").write_text("committed")
    figure = root / "imgs" / "mini_lab_hist.png"
    stamp = figure.stat().st_mtime_ns
    student = make_project(tmp_path / "student", reference)  # the student's own clone
    (student.parent.parent / "checkpoints").mkdir()
    nb = cells.read(reference)
    nb.cells.append(nbformat.v4.new_code_cell('with open("../checkpoints/model.txt", "w") as f:\n    f.write("overwritten")'))
    submission = execute(nb, student.parent)
    submission.metadata.kernelspec = {"name": "no-such-kernel", "display_name": "x", "language": "python"}
    assert grade.grade(write(submission, tmp_path), reference=reference)["passed"]
    assert (root / "checkpoints" / "model.txt").read_text() == "committed"
    assert figure.stat().st_mtime_ns == stamp


def test_cli_json_and_exit_codes(faithful, reference, tmp_path, capsys):
    good = write(faithful, tmp_path, "good.ipynb")
    assert cli.main(["grade", str(good), "--reference", str(reference), "--json", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and all(c["passed"] for c in report["checks"])
    nb = copy.deepcopy(faithful)
    nb.cells[cell_index(nb, "NBVAL_IGNORE_OUTPUT")].execution_count = None
    bad = write(nb, tmp_path, "bad.ipynb")
    assert cli.main(["grade", str(bad), "--reference", str(reference), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] ran top to bottom" in out and "was not run" in out and "Verdict: FAIL" in out


def test_cli_input_errors_are_one_line(tmp_path, reference, capsys):
    assert cli.main(["grade", str(tmp_path / "missing.ipynb"), "--reference", str(reference)]) == 2
    assert "no file" in capsys.readouterr().err
    (tmp_path / "broken.ipynb").write_text("{not json")
    assert cli.main(["grade", str(tmp_path / "broken.ipynb"), "--reference", str(reference)]) == 2
    assert "not a valid .ipynb" in capsys.readouterr().err
    assert cli.main(["grade", str(reference), "--reference", str(reference), "--timeout-per-cell", "0"]) == 2
    assert "--timeout-per-cell" in capsys.readouterr().err
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "whatever.ipynb")
    assert cli.main(["grade", str(tmp_path / "whatever.ipynb")]) == 2
    assert "--lab 3 or --lab 4" in capsys.readouterr().err


def test_failing_self_check_inside_a_solution_cell_fails(reference, tmp_path):
    """Self-checks may share the cell with the solution (as in Lab 3); the check still finds and names it."""
    nb = cells.read(reference)
    index = cell_index(nb, "def offset")
    nb.cells[index].source = nb.cells[index].source.replace("v + delta", "v - delta")
    report = grade.grade(write(execute(nb, reference.parent), tmp_path), reference=reference)
    [problem] = failed(report)[SELF_CHECKS]
    assert problem["index"] == index and "passed' line" in problem["message"]
