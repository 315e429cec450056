"""nbgrader compatibility: the labs' cell metadata, its agreement with release and grade, and a course's run.

The course tests run nbgrader 0.9.6 (the ``test`` extra) as a course does, in a subprocess of this
interpreter: ``generate_assignment``, then ``autograde`` of a submission made from the reference solutions
(every self-check test cell gets its points) and of the released stubs (none does), scores read from the
gradebook. One runs the fixture lab, one the real Lab 3 with ``fast=True``. Without nbgrader they are
skipped, except under ``CI=true``, where they fail.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import nbformat
import pytest
from notebook_fixtures import make_project

from labhelpers import cli
from labhelpers.nbtools import cells, execute, nbgrader_meta, release


def require_nbgrader() -> None:
    if importlib.util.find_spec("nbgrader") is None:
        reason = "nbgrader is not installed (pip install -e '.[test]')"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
        pytest.skip(reason)


@pytest.mark.parametrize("lab, minimum", [("lab3", {"answer": 8, "solution": 4, "tests": 4, "readonly": 40}),
                                          ("lab4", {"answer": 8, "solution": 5, "tests": 4, "readonly": 30})])
def test_committed_labs_carry_exactly_the_metadata_the_function_writes(lab, minimum):
    nb = cells.read(cells.lab_path(lab))
    assert nbgrader_meta.with_metadata(nb, lab) == nb   # re-applying changes nothing: no drift
    kinds = Counter(nbgrader_meta.cell_kind(c) for c in nb.cells)
    assert all(kinds[kind] >= n for kind, n in minimum.items()), kinds
    points = {c.metadata.nbgrader["grade_id"]: c.metadata.nbgrader["points"] for c in nb.cells
              if nbgrader_meta.cell_kind(c) == "tests"}
    assert sum(points.values()) == sum(len(cells.passed_lines(c)) for c in nb.cells) >= 6


@pytest.mark.parametrize("lab", ["lab3", "lab4"])
def test_release_grade_and_nbgrader_agree_on_every_cell(lab):
    """nbgrader's predicates and ours name the same solution and locked cells, and nbgrader's ClearSolutions,
    configured as the course's nbgrader_config.py, writes the same student cells as ``labhelpers release``."""
    require_nbgrader()
    from nbgrader import utils
    from nbgrader.preprocessors import ClearSolutions
    from traitlets.config import Config

    nb = cells.read(cells.lab_path(lab))
    for cell in nb.cells:
        assert utils.is_solution(cell) == cells.is_solution(cell), cell.source[:80]
        # grade.check_locked compares every non-solution code cell, and the locked markdown cells
        assert utils.is_locked(cell) == (not cells.is_solution(cell)), cell.source[:80]
        assert cells.is_locked(cell) == (cell.cell_type == "markdown" and utils.is_locked(cell))
        assert utils.is_grade(cell) == (cells.is_answer(cell) or bool(cells.passed_lines(cell)))
    config = Config()
    exec(nbgrader_meta.nbgrader_config(), {"get_config": lambda: config})  # the course's config file
    theirs, _ = ClearSolutions(config=config).preprocess(cells.clear_outputs(nb), {})
    ours = release.student_notebook(nb, lab)
    assert [c.source for c in theirs.cells] == [c.source for c in ours.cells]
    assert sum(c.source != o.source for c, o in zip(nb.cells, ours.cells)) >= 9


def test_a_cell_with_a_solution_and_its_self_checks_is_split(reference):
    nb = cells.read(reference)
    with pytest.raises(ValueError, match=r"Cell 4 .*holds a solution and prints self-check lines; .*split it"):
        nbgrader_meta.with_metadata(nb, "mini_lab.ipynb")
    split = nbgrader_meta.split_self_checks(nb)
    assert len(split.cells) == len(nb.cells) + 1
    mixed = cells.code_indices(nb)[4]
    solution, checks = split.cells[mixed], split.cells[mixed + 1]
    assert solution.id == nb.cells[mixed].id and checks.id == f"{solution.id}-checks"
    assert checks.source == ('assert clip([-2, 0, 5], -1, 3) == [-1, 0, 3]\nprint("clip self-check passed")\n'
                             'assert offset([1, 2], 0.5) == [1.5, 2.5]\nprint("offset self-check passed")')
    assert solution.source.rstrip().endswith(release.END) and not solution.outputs
    meta = nbgrader_meta.with_metadata(split).cells[mixed + 1].metadata.nbgrader
    assert meta == {"grade": True, "solution": False, "locked": True, "points": 2,
                    "grade_id": checks.id, "schema_version": 3}


def test_bad_notebooks_are_refused_with_one_line(reference):
    nb = nbgrader_meta.split_self_checks(cells.read(reference))
    with pytest.raises(ValueError, match="no stored self-check output .*execute the notebook first"):
        nbgrader_meta.with_metadata(cells.clear_outputs(nb), "x.ipynb")
    nb.cells[2].metadata["nbgrader"] = {"grade_id": nb.cells[1].id}
    with pytest.raises(ValueError, match=f"grade_id '{nb.cells[1].id}' is used by cells 1 and 2"):
        nbgrader_meta.with_metadata(nb, "x.ipynb")
    with pytest.raises(ValueError, match="parameter 'sed' is not assigned .*allowed: fast, out_dir, progress, seed"):
        nbgrader_meta.set_parameters(nb, {"sed": 1})


def test_course_source_points_the_inputs_into_the_project(tmp_path, capsys):
    assert cli.main(["nbgrader-course", "--course", str(tmp_path), "--only", "lab3", "-p", "fast", "True"]) == 0
    target = tmp_path / "source" / "lab3" / cells.LABS["lab3"]
    assert f"wrote {target}" in capsys.readouterr().out
    params = cells.declared_parameters(cells.read(target))
    assert params["fast"] == "True" and params["out_dir"] == '"../runs/lab3/imgs"'
    assert params["config_dir"] == repr(str(cells.repo_dir() / "configs"))
    assert params["synthesis_table"] == repr(str(cells.repo_dir() / "data" / "lab3_synthesis.csv"))
    assert "c.ClearSolutions.text_stub = '**Answer.** YOUR ANSWER HERE'" in (tmp_path / "nbgrader_config.py").read_text()
    assert cli.main(["nbgrader-course", "--course", str(tmp_path), "--only", "lab3"]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert cli.main(["nbgrader-course", "--course", str(tmp_path / "other"), "-p", "sed", "1"]) == 2
    assert "parameter 'sed' is not assigned" in capsys.readouterr().err and not (tmp_path / "other").exists()


# ---------------------------------------------------------------- a course, run by nbgrader itself

def nbgrader(course: Path, *args: str) -> None:
    """``python -m nbgrader <args>`` in ``course``, with this checkout's labhelpers on the kernels' path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cells.repo_dir()), os.environ.get("PYTHONPATH", "")]),
           # nbgrader runs the venv's `alembic` script to set up its gradebook: as in an activated venv
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[ERROR]" not in done.stderr, done.stderr[-3000:]


def autograded_scores(course: Path, assignment: str, source: Path) -> dict:
    """Submit the source notebook (reference solutions) as 'ada' and the released one as 'bob', autograde,
    and return ``{student: {grade_id: (auto_score, max_score)}}`` from the gradebook."""
    from nbgrader.api import Gradebook

    nbgrader(course, "generate_assignment", assignment)
    released = course / "release" / assignment / source.name
    for student, notebook in (("ada", source), ("bob", released)):
        (course / "submitted" / student / assignment).mkdir(parents=True)
        shutil.copy(notebook, course / "submitted" / student / assignment / source.name)
    nbgrader(course, "autograde", assignment)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        return {student: {grade.name: (grade.auto_score, grade.max_score) for grade in
                          gradebook.find_submission_notebook(source.stem, assignment, student).grades}
                for student in ("ada", "bob")}


def assert_full_and_zero_marks(scores: dict, source: Path) -> None:
    nb = cells.read(source)
    meta = [c.metadata.nbgrader for c in nb.cells]
    tests = {m["grade_id"]: m["points"] for m in meta if m["grade"] and not m["solution"]}
    answers = {c.metadata.nbgrader["grade_id"] for c in nb.cells if cells.is_answer(c)}
    assert set(scores["ada"]) == set(tests) | answers and len(tests) >= 2
    assert {g: scores["ada"][g] for g in tests} == {g: (p, p) for g, p in tests.items()}   # full marks
    assert {g: scores["bob"][g] for g in tests} == {g: (0, p) for g, p in tests.items()}   # stubs: zero
    assert all(scores["ada"][g][0] is None and scores["bob"][g][0] == 0 for g in answers)  # humans grade answers


def test_nbgrader_course_gives_full_marks_to_the_solutions_and_none_to_the_stubs(tmp_path, reference):
    """The fixture lab (split, re-executed, metadata applied) through generate_assignment and autograde."""
    require_nbgrader()
    lab = make_project(tmp_path / "project")
    nb = nbgrader_meta.split_self_checks(cells.read(reference))
    executed, failure = execute.execute(nb, lab.parent)
    assert failure is None, failure
    question = nbformat.v4.new_markdown_cell("**Question.** Is the mean close to 0?")
    answer = nbformat.v4.new_markdown_cell(f"{cells.ANSWER} Yes.", metadata={"nbgrader": {"solution": True}})
    executed.cells += [question, answer]
    course = tmp_path / "course"
    source = course / "source" / "mini" / lab.name
    source.parent.mkdir(parents=True)
    nbformat.write(cells.clear_outputs(nbgrader_meta.with_metadata(executed)), source)
    (course / "nbgrader_config.py").write_text(nbgrader_meta.nbgrader_config())
    scores = autograded_scores(course, "mini", source)
    assert_full_and_zero_marks(scores, source)
    released = cells.read(course / "release" / "mini" / lab.name)   # nbgrader's release is labhelpers'
    assert [c.source for c in released.cells] == [c.source for c in release.student_notebook(cells.read(source)).cells]
    assert any(release.STUB in c.source for c in released.cells)


@pytest.mark.parametrize("lab", ["lab3", "lab4"])
def test_nbgrader_course_runs_each_lab_fast(tmp_path, lab):
    """The real lab (fast=True) as ``nbgrader-course`` writes it: every self-check test cell full for the
    reference solutions, zero for the released stubs, every answer cell left to a human. About 70-100 s
    per lab here (Lab 4's command-line cells included: their config comes from the config_dir parameter)."""
    require_nbgrader()
    course = tmp_path / "course"
    source, _config = nbgrader_meta.course_source(course, [lab], {"fast": True})
    scores = autograded_scores(course, lab, source)
    assert_full_and_zero_marks(scores, source)
    graded = cells.read(course / "autograded" / "ada" / lab / source.name)  # the reference ran cleanly throughout
    raised = [cells.cell_label(graded, i) for i, c in enumerate(graded.cells) if c.cell_type == "code"
              and any(o.output_type == "error" for o in c.outputs)]
    assert raised == []
