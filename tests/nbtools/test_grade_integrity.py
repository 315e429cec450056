"""The grader against a hostile student, and the tolerant comparison under another numeric path.

Fixture: tests/fixtures/train_lab.ipynb, a self-check from ``labhelpers.checks`` in the cell of the
solution (as in the labs) and a float32 training cell that declares ``# tolerance: abs=0.001``. Its
printed loss moved by at most 9.2e-5 between this machine's pinned path, ``ATEN_CPU_CAPABILITY=default``,
``MKL_CBWR=COMPATIBLE``, both, and ``OMP_NUM_THREADS=1`` (measured with ``python`` on the cell's code,
2-core AMD EPYC), so the tolerance is ~10x the measured spread and 20x below an edit of +0.02.

| # | attack (each re-executed by the student so that the stored outputs are consistent) | verdict |
|---|---|---|
| 1 | a checked number edited, `# NBVAL_IGNORE_OUTPUT` added to the cell | FAIL: outputs reproduce, locked cell |
| 1b | a checked number edited, cell tagged `nbval-ignore-output` | FAIL: outputs reproduce |
| 2 | wrong solution, self-check call wrapped in a string, `print("... passed")` added | FAIL: self-checks |
| 3 | wrong solution, `checks` monkeypatched to pass in the set-up cell | FAIL: self-checks, locked cell |
| 4 | wrong solution, `checks` monkeypatched inside the self-check cell | FAIL: self-checks |
| 5 | loss edited by +0.02 (beyond the declared tolerance) | FAIL, names both values and the tolerance |
| 6 | exact count edited by 1 | FAIL |
| 7 | a fabricated output line | FAIL |
| 8 | writes to ../data, the package source, ~ and a detached process that writes later | nothing lands outside the sandbox |
| 9 | `os._exit(1)` in a cell | FAIL, the cell named as having killed the kernel |
| 10 | a cell that floods stdout | FAIL, stopped at the output cap |
| 11 | a notebook over the size cap | one-line error before anything runs |
| 12 | `--reference dir/x.ipynb` next to unrelated files | the sandbox copies only configs/, checkpoints/, data/ |
| - | a faithful run re-graded under `ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE` | PASS |
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

import labhelpers
from notebook_fixtures import cell_index, make_project
from labhelpers import numerics
from labhelpers.nbtools import cells, compare, grade, release, reproduce, sandbox
from labhelpers.nbtools import execute as nbexecute
from test_grade import execute, failed, write

ORDER, ERRORS, SELF_CHECKS, REPRODUCE, LOCKED = grade.CHECKS
FIXTURE = Path(__file__).parent.parent / "fixtures" / "train_lab.ipynb"
# another numeric path than the one this test session runs on (the suite also runs under the first one)
OTHER_PATH = ({"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}
              if os.environ.get("ATEN_CPU_CAPABILITY", "").lower() == "default"
              else {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"})
SOLUTION = "return torch.clamp(torch.round(x / scale)"
WRONG = "return x  # wrong\n    return torch.clamp(torch.round(x / scale)"
CHECK_CALL = "checks.check_fixed_point(fixed_point)"
FAKE_PASS = 'print("fixed-point quantizer check passed")'
PATCH = f"checks.check_fixed_point = lambda fn: {FAKE_PASS}"


@pytest.fixture(scope="module")
def train_reference(tmp_path_factory) -> Path:
    path = make_project(tmp_path_factory.mktemp("train_ref"), FIXTURE)
    (path.parent.parent / "data").mkdir()
    (path.parent.parent / "data" / "input.txt").write_text("committed data")
    executed, failure = nbexecute.execute(cells.read(path), path.parent)
    assert failure is None, failure
    nbformat.write(executed, path)
    return path


@pytest.fixture(scope="module")
def train_faithful(train_reference) -> nbformat.NotebookNode:
    return execute(cells.read(train_reference), train_reference.parent)


def _edited(reference: Path, marker: str, old: str, new: str) -> nbformat.NotebookNode:
    nb = cells.read(reference)
    index = cell_index(nb, marker)
    assert old in nb.cells[index].source
    nb.cells[index].source = nb.cells[index].source.replace(old, new)
    return execute(nb, reference.parent)


def _grade(nb, tmp_path, reference, **kwargs) -> dict:
    return grade.grade(write(nb, tmp_path), reference=reference, **kwargs)


def _edit_output(nb, marker: str, old: str, new: str) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    out = nb.cells[cell_index(nb, marker)].outputs[0]
    assert old in out.text
    out.text = out.text.replace(old, new)
    return nb


# ---------------------------------------------------------------- tolerant comparison, other numeric path

def test_faithful_run_passes_under_another_numeric_path(train_reference, train_faithful, tmp_path, monkeypatch):
    for key, value in OTHER_PATH.items():
        monkeypatch.setenv(key, value)
    if numerics._has_avx2():  # prove the path really moves the float32 numbers here
        rerun, failure = nbexecute.execute(cells.read(train_reference), train_reference.parent)
        assert failure is None
        index = cell_index(rerun, "# tolerance:")
        assert rerun.cells[index].outputs[0].text != train_faithful.cells[index].outputs[0].text
    report = _grade(train_faithful, tmp_path, train_reference)
    assert report["passed"], grade.format_report(report)
    assert report["platform"]["re-run"]["mkl_cbwr"] == OTHER_PATH["MKL_CBWR"]
    assert report["platform"]["re-run"]["cpu_capability"] == OTHER_PATH["ATEN_CPU_CAPABILITY"].upper()
    assert "Re-run on:" in grade.format_report(report)


def test_loss_edited_beyond_tolerance_fails_with_both_values(train_reference, train_faithful, tmp_path, monkeypatch):
    for key, value in OTHER_PATH.items():
        monkeypatch.setenv(key, value)
    nb = copy.deepcopy(train_faithful)
    out = nb.cells[cell_index(nb, "# tolerance:")].outputs[0]
    stored = float(out.text.split("= ")[1])
    out.text = f"final loss = {stored + 0.02:.7f}\n"
    report = _grade(nb, tmp_path, train_reference)
    assert list(failed(report)) == [REPRODUCE]
    [problem] = failed(report)[REPRODUCE]
    assert f"{stored + 0.02:.7f}" in problem["message"] and "abs=0.001" in problem["message"]


@pytest.mark.parametrize("marker, old, new", [
    ("parameters:", "parameters: ", "parameters: 1"),                  # an exact count changed
    ("# tolerance:", "final loss", "final loss = 0.0100000\nfinal loss"),  # a fabricated line
])
def test_exact_and_structural_edits_fail(train_reference, train_faithful, tmp_path, marker, old, new):
    report = _grade(_edit_output(train_faithful, marker, old, new), tmp_path, train_reference)
    assert list(failed(report)) == [REPRODUCE]


def test_nbval_plugin_accepts_the_other_path_and_rejects_an_edit(train_reference, train_faithful, tmp_path):
    env = {**os.environ, **OTHER_PATH, "PYTHONPATH": str(cells.repo_dir())}  # this checkout's plugin
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
               "-p", "labhelpers.nbtools.plugin"]
    good = subprocess.run(command + [str(train_reference)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert good.returncode == 0, good.stdout[-2000:]
    nb = cells.read(train_reference)
    out = nb.cells[cell_index(nb, "# tolerance:")].outputs[0]
    out.text = f"final loss = {float(out.text.split('= ')[1]) + 0.02:.7f}\n"
    bad_path = train_reference.with_name("edited.ipynb")
    nbformat.write(nb, bad_path)
    bad = subprocess.run(command + [str(bad_path)], cwd=tmp_path, env=env, capture_output=True, text=True)
    bad_path.unlink()
    assert bad.returncode == 1 and "beyond the cell's tolerance abs=0.001" in bad.stdout


# ---------------------------------------------------------------- forgeries


def test_ignore_marker_added_by_the_submission_does_not_hide_an_edit(train_reference, train_faithful, tmp_path):
    nb = _edit_output(train_faithful, "parameters:", "parameters: ", "parameters: 1")
    index = cell_index(nb, "parameters:")
    nb.cells[index].source = "# NBVAL_IGNORE_OUTPUT\n" + nb.cells[index].source
    report = _grade(nb, tmp_path, train_reference)
    assert set(failed(report)) == {REPRODUCE, LOCKED}
    assert failed(report)[LOCKED][0]["index"] == index


def test_ignore_tag_added_by_the_submission_does_not_hide_an_edit(train_reference, train_faithful, tmp_path):
    nb = _edit_output(train_faithful, "parameters:", "parameters: ", "parameters: 1")
    nb.cells[cell_index(nb, "parameters:")].metadata["tags"] = ["nbval-ignore-output"]
    assert REPRODUCE in failed(_grade(nb, tmp_path, train_reference))


def test_string_wrapped_check_with_printed_pass_fails(train_reference, tmp_path):
    nb = cells.read(train_reference)
    index = cell_index(nb, CHECK_CALL)
    nb.cells[index].source = (nb.cells[index].source.replace(SOLUTION, WRONG)
                              .replace(CHECK_CALL, f'"""\n{CHECK_CALL}\n"""\n{FAKE_PASS}'))
    report = _grade(execute(nb, train_reference.parent), tmp_path, train_reference)
    assert not report["passed"]
    [problem] = failed(report)[SELF_CHECKS]
    assert problem["index"] == index and "AssertionError" in problem["message"]


def test_checks_patched_in_the_setup_cell_fails(train_reference, tmp_path):
    nb = cells.read(train_reference)
    nb.cells[cell_index(nb, "from labhelpers import checks")].source += f"\n{PATCH}"
    index = cell_index(nb, CHECK_CALL)
    nb.cells[index].source = nb.cells[index].source.replace(SOLUTION, WRONG)
    report = _grade(execute(nb, train_reference.parent), tmp_path, train_reference)
    assert {SELF_CHECKS, LOCKED} <= set(failed(report))
    assert failed(report)[SELF_CHECKS][0]["index"] == index


def test_checks_patched_inside_the_self_check_cell_fails(train_reference, tmp_path):
    nb = cells.read(train_reference)
    index = cell_index(nb, CHECK_CALL)
    nb.cells[index].source = nb.cells[index].source.replace(SOLUTION, WRONG).replace(CHECK_CALL, f"{PATCH}\n{CHECK_CALL}")
    report = _grade(execute(nb, train_reference.parent), tmp_path, train_reference)
    assert list(failed(report)) == [SELF_CHECKS]
    assert "re-run by the grader" in failed(report)[SELF_CHECKS][0]["message"]


def test_report_does_not_quote_the_reference_solution(train_reference, tmp_path):
    nb = cells.read(train_reference)
    index = cell_index(nb, CHECK_CALL)
    nb.cells[index].source = nb.cells[index].source.replace(SOLUTION, WRONG)
    report = _grade(execute(nb, train_reference.parent), tmp_path, train_reference)
    assert not report["passed"] and "torch.clamp" not in grade.format_report(report)


# ---------------------------------------------------------------- the sandbox


def test_sandbox_holds(train_reference, train_faithful, tmp_path):
    if not sandbox.isolation_available():
        pytest.fail("bubblewrap is needed for the grader's jail: apt-get install bubblewrap (.ci/run installs it)")
    marker = tmp_path / "late.txt"
    package_file = Path(labhelpers.__file__).parent / "written_by_a_submission.txt"
    home_file = Path.home() / "written_by_a_submission.txt"
    attack = "\n".join([
        "import os, subprocess",
        "from pathlib import Path",
        "import labhelpers",
        "for target in ['../data/input.txt', "
        f"{str(package_file)!r}, {str(home_file)!r}, os.path.expanduser('~/x.txt')]:",
        "    try:",
        "        Path(target).write_text('overwritten')",
        "    except OSError:",
        "        pass",
        f"subprocess.Popen(['sh', '-c', 'sleep 2; echo late > {marker}'], start_new_session=True)",
        "print('done')",
    ])
    nb = copy.deepcopy(train_faithful)
    nb.cells.append(nbformat.v4.new_code_cell(attack))
    nb.cells[-1].execution_count = len(cells.code_indices(nb))
    nb.cells[-1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="done\n")]
    report = _grade(nb, tmp_path, train_reference)
    time.sleep(4)
    assert report["passed"], grade.format_report(report)
    data_file = train_reference.parent.parent / "data" / "input.txt"
    assert data_file.read_text() == "committed data"
    assert not package_file.exists() and not home_file.exists() and not marker.exists()


def test_a_kernel_that_dies_is_a_failed_cell(train_reference, train_faithful, tmp_path):
    nb = copy.deepcopy(train_faithful)
    nb.cells.append(nbformat.v4.new_code_cell("import os\nos._exit(1)"))
    report = _grade(nb, tmp_path, train_reference)
    assert not report["passed"]
    assert any("killed the kernel" in p["message"] and p["index"] == len(nb.cells) - 1
               for p in failed(report)[REPRODUCE])


def test_output_flood_is_capped(train_reference, train_faithful, tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "MAX_OUTPUT_BYTES", 200_000)
    nb = copy.deepcopy(train_faithful)
    nb.cells.append(nbformat.v4.new_code_cell("for _ in range(100000):\n    print('x' * 100)"))
    report = _grade(nb, tmp_path, train_reference)
    assert any("MB of output" in p["message"] for p in failed(report)[REPRODUCE])


def test_oversized_notebook_is_refused(train_reference, train_faithful, tmp_path, monkeypatch):
    monkeypatch.setattr(grade, "MAX_NOTEBOOK_BYTES", 1000)
    with pytest.raises(ValueError, match="MB are graded"):
        _grade(train_faithful, tmp_path, train_reference)


def test_sandbox_copies_only_the_project_folders(tmp_path):
    root = tmp_path / "course"
    (root / "notebooks").mkdir(parents=True)
    (root / "secrets.txt").write_text("do not copy")
    (root / "private").mkdir()
    (root / "configs").mkdir()
    (root / "configs" / "a.toml").write_text("x = 1")
    with sandbox.sandbox(root / "notebooks") as cwd:
        names = {p.name for p in cwd.parent.iterdir()}
        assert {"configs", "notebooks", "imgs", "runs"} <= names
        assert "secrets.txt" not in names and "private" not in names
        assert not (cwd.parent / "configs").is_symlink()


def test_release_of_the_fixture_stubs_the_solution_and_keeps_the_check(train_reference, tmp_path):
    [student] = release.release(tmp_path / "student", notebooks=[train_reference])
    nb = cells.read(student)
    source = nb.cells[cell_index(nb, CHECK_CALL)].source
    assert "torch.clamp" not in source and release.STUB in source and CHECK_CALL in source
    assert [c.get("id") for c in nb.cells] == [c.get("id") for c in cells.read(train_reference).cells]
    assert compare.declared(nb.cells[cell_index(nb, "# tolerance:")].source).abs == 0.001


def test_json_report_on_stdout_is_only_json(train_reference, train_faithful, tmp_path):
    """Nothing the jailed kernel prints (e.g. ipykernel's console banner) may land in the grader's stdout."""
    submission = write(train_faithful, tmp_path)
    done = subprocess.run([sys.executable, "-m", "labhelpers", "grade", str(submission), "--reference",
                           str(train_reference), "--json", "--no-progress"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["passed"] is True


def test_fresh_checks_resolve_their_relative_imports():
    """The grader's fresh copy of labhelpers/checks.py runs checks that import labhelpers' own modules
    (``from . import search``): they must fail with the check's message, not with an ImportError."""
    code = reproduce._FRESH_CHECKS.format(path=str(cells.PACKAGE_DIR / "checks.py")) + (
        "from labhelpers import search\n"
        "space = search.Space({'a': [1, 2]}, to_config=lambda p: p)\n"
        "try:\n"
        "    checks.check_brute_force('not-registered', space)\n"
        "except AssertionError as err:\n"
        "    print('check said:', err)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(Path(labhelpers.__file__).parent.parent)})
    assert out.returncode == 0, out.stderr
    assert "check said: no search strategy is registered as 'not-registered'" in out.stdout
