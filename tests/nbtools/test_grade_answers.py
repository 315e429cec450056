"""The grader's locked-cell check and answer cells: one predicate (`cells.is_solution`), read from the reference."""
from __future__ import annotations

import copy

from test_release import with_question_and_answer
from labhelpers.nbtools import cells, grade


def _locked_problems(nb, reference):
    return grade.check_locked(nb, reference, cells.pair_cells(nb, reference))


def test_an_edited_answer_passes_and_an_edited_question_or_code_cell_fails(reference):
    ref = with_question_and_answer(cells.read(reference))
    nb = copy.deepcopy(ref)
    nb.cells[-1].source = "**Answer.** My own words: the mean is 0.1, well inside the noise."
    assert _locked_problems(nb, ref) == []

    nb.cells[-2].source += " (and I changed the question)"
    [found] = _locked_problems(nb, ref)
    assert "locked (question) cell" in found["message"]

    code = cells.code_indices(nb)[0]
    nb.cells[code].source += "\nfast = True"
    assert any("locked cell" in p["message"] and p["index"] == code for p in _locked_problems(nb, ref))


def test_a_forged_answer_marker_does_not_unlock_a_cell(reference):
    ref = with_question_and_answer(cells.read(reference))
    nb = copy.deepcopy(ref)
    code = cells.code_indices(nb)[0]
    for index in (code, len(nb.cells) - 2):  # a locked code cell and the locked question
        nb.cells[index].metadata["nbgrader"] = {"grade": True, "solution": True, "locked": False, "points": 1,
                                                "grade_id": "forged", "schema_version": 3}
        nb.cells[index].source = "**Answer.** whatever I like"
    assert sorted(p["index"] for p in _locked_problems(nb, ref)) == [code, len(nb.cells) - 2]


def test_a_deleted_question_is_reported(reference):
    ref = with_question_and_answer(cells.read(reference))
    nb = copy.deepcopy(ref)
    del nb.cells[-2]
    assert [p["message"] for p in _locked_problems(nb, ref)] == [
        "is missing from the submission (released cells must not be deleted)"]
