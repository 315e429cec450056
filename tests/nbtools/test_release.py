"""`python -m labhelpers release`: student notebooks with solutions stubbed, and the round trip back."""
from __future__ import annotations

import copy

import nbformat
import pytest

from notebook_fixtures import FIXTURE, cell_index
from labhelpers import cli
from labhelpers.nbtools import cells, execute, grade, release


def paste_solutions(student, original):
    """What a student does: replace each stub by the solution lines, in order."""
    bodies = [_solution_body(block) for cell in original.cells for block in cell.source.split(release.BEGIN)[1:]]
    done = nbformat.from_dict(student)
    for cell in (c for c in done.cells if release.STUB in c.source):
        lines = []
        for line in cell.source.splitlines():
            if line.strip() == release.STUB:
                lines += bodies.pop(0)
            elif line.strip() != "# YOUR CODE HERE":
                lines.append(line)
        cell.source = "\n".join(lines)
    assert bodies == []
    return done


def _solution_body(block: str) -> list[str]:
    """The lines between the BEGIN line and the END line (an indented END leaves its indentation as a last line)."""
    lines = block.split(release.END)[0].splitlines()[1:]
    return lines[:-1] if lines and not lines[-1].strip() else lines


def test_strip_solutions_keeps_signature_docstring_and_indentation():
    source = 'def f(x):\n    """Doc."""\n    ### BEGIN SOLUTION\n    y = x + 1\n    return y\n    ### END SOLUTION\n\nprint(f)'
    assert release.strip_solutions(source) == (
        'def f(x):\n    """Doc."""\n    # YOUR CODE HERE\n    ' + release.STUB + '\n\nprint(f)')
    top = "### BEGIN SOLUTION\ntable = search()\n### END SOLUTION"
    assert release.strip_solutions(top) == "# YOUR CODE HERE\n" + release.STUB


@pytest.mark.parametrize("source, message", [
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "line 2 closes a solution block that was never opened"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "line 2 opens a solution block inside"),
])
def test_unbalanced_markers_are_errors(source, message):
    with pytest.raises(ValueError, match=message):
        release.strip_solutions(source, "lab3 cell 4")


def test_student_notebook_keeps_parameters_and_self_checks_and_clears_outputs(reference):
    original = cells.read(reference)
    student = release.student_notebook(original)
    assert release.solution_count(student) == 0 and "v * factor" not in nbformat.writes(student)
    assert cells.parameters_index(student) == cells.parameters_index(original)
    assert student.cells[1].source == original.cells[1].source
    check = cell_index(original, "scale self-check passed")
    assert student.cells[check].source == original.cells[check].source
    assert all(not c.outputs and c.execution_count is None for c in student.cells if c.cell_type == "code")
    assert [c.cell_type for c in student.cells] == [c.cell_type for c in original.cells]


def test_round_trip_self_checks_fail_on_stubs_and_pass_with_the_solution(reference, tmp_path):
    original = cells.read(reference)
    student = release.student_notebook(original)
    check = cell_index(original, "scale self-check passed")

    _, failure = execute.execute(student, reference.parent)
    assert failure["index"] == check and "NotImplementedError" in failure["message"]

    completed, failure = execute.execute(paste_solutions(student, original), reference.parent)
    assert failure is None
    assert "scale self-check passed" in completed.cells[check].outputs[0].text
    nbformat.write(completed, tmp_path / "mini_lab_done.ipynb")
    assert grade.grade(tmp_path / "mini_lab_done.ipynb", reference=reference)["passed"]


def test_release_command_writes_student_notebooks(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(release, "lab_path", lambda lab: FIXTURE)
    assert cli.main(["release", "--out", str(tmp_path / "student"), "--only", "lab3"]) == 0
    assert f"wrote {tmp_path / 'student' / 'mini_lab.ipynb'}" in capsys.readouterr().out
    written = cells.read(tmp_path / "student" / "mini_lab.ipynb")
    assert any(release.STUB in c.source for c in written.cells) and release.solution_count(written) == 0


def test_release_refuses_a_notebook_without_solutions(tmp_path):
    nb = release.student_notebook(cells.read(FIXTURE))
    nbformat.write(nb, tmp_path / "plain.ipynb")
    with pytest.raises(ValueError, match="plain.ipynb: no '### BEGIN SOLUTION' blocks"):
        release.release(tmp_path / "out", notebooks=[tmp_path / "plain.ipynb"])


def with_question_and_answer(nb):
    """The fixture plus a locked question cell and an nbgrader answer cell, as Lab 4's conclusions are."""
    nb = copy.deepcopy(nb)
    question = nbformat.v4.new_markdown_cell("**Question (task 2).** Is the mean close to 0?")
    question.metadata["nbgrader"] = {"grade": False, "solution": False, "locked": True,
                                     "grade_id": "mini-task2-q1-question", "schema_version": 3}
    answer = nbformat.v4.new_markdown_cell(f"{cells.ANSWER} Yes: 0.1 against a standard error of 0.3.")
    answer.metadata["nbgrader"] = {"grade": True, "solution": True, "locked": False, "points": 1,
                                   "grade_id": "mini-task2-q1", "schema_version": 3}
    nb.cells += [question, answer]
    return nb


def test_release_blanks_answer_cells_and_keeps_questions(reference):
    original = with_question_and_answer(cells.read(reference))
    student = release.student_notebook(original)
    question, answer = student.cells[-2:]
    assert answer.source == release.ANSWER_STUB == "**Answer.** YOUR ANSWER HERE"
    assert "standard error of 0.3" not in nbformat.writes(student)
    assert answer.metadata == original.cells[-1].metadata and question.source == original.cells[-2].source
    assert cells.is_solution(answer) and not cells.is_solution(question) and cells.is_locked(question)


def assert_released(lab: str, min_answers: int, min_stubs: int) -> str:
    """The committed ``lab``: no reference answer or solution in the student notebook, and pasting the
    solutions back gives the instructor's code cells. Returns the student notebook's text."""
    original = cells.read(cells.lab_path(lab))
    student = release.student_notebook(original, lab)
    answers = [i for i, c in enumerate(original.cells) if cells.is_answer(c)]
    assert len(answers) >= min_answers and all(original.cells[i - 1].metadata["nbgrader"]["locked"] for i in answers)
    assert all(student.cells[i].source == release.ANSWER_STUB for i in answers)
    text = "\n".join(c.source for c in student.cells)
    assert not any(original.cells[i].source[len(cells.ANSWER):][:60] in text for i in answers)
    assert release.solution_count(student) == 0 and text.count(release.STUB) == release.solution_count(original) >= min_stubs
    restored = paste_solutions(student, original)
    unmarked = [[line for line in c.source.splitlines() if line.strip() not in (release.BEGIN, release.END)]
                for c in original.cells if c.cell_type == "code"]
    assert [c.source.splitlines() for c in restored.cells if c.cell_type == "code"] == unmarked
    return text


def test_lab4_release_blanks_every_answer_and_stubs_every_solution():
    """The committed Lab 4: no reference answer or solution in the student notebook, and pasting the
    solutions back gives the instructor's code cells (whose stored outputs show the self-checks passing)."""
    assert_released("lab4", min_answers=8, min_stubs=6)


def test_lab3_release_blanks_every_answer_and_stubs_every_solution():
    """The committed Lab 3, as Lab 4: answers blanked, the student's quantizer, cost functions, scoring loop
    and brute-force strategy stubbed, and pasting the solutions back gives the instructor's code cells."""
    text = assert_released("lab3", min_answers=8, min_stubs=7)
    assert "**Conclusion" not in text and "McNemar p = 0.000389" not in text
    for built in ("def my_score", "class MyBruteForce", "def my_dense_bops", 'register_sampler("my-brute-force"'):
        assert built in text
