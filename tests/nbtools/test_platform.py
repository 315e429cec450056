"""Where a submission's numbers were computed: ``numerics.show_platform()`` in the labs, read by the grader."""
from __future__ import annotations

import nbformat
import pytest

from labhelpers import numerics
from labhelpers.nbtools import cells, execute, grade


def _with_outputs(*outputs, metadata=None):
    nb = nbformat.v4.new_notebook(metadata=metadata or {})
    cell = nbformat.v4.new_code_cell("numerics.show_platform()")
    cell.outputs = list(outputs)
    nb.cells = [cell]
    return nb


def _shown(info):
    return nbformat.v4.new_output("display_data", data={numerics.PLATFORM_MIME: info, "text/plain": "computed on: ..."})


def test_the_grader_quotes_the_platform_the_notebook_shows_or_says_it_is_not_recorded():
    info = {"python": "3.11.7", "cpu_capability": "DEFAULT", "threads": "1"}
    assert grade.submission_platform(_with_outputs(_shown(info))) == "python 3.11.7, cpu_capability DEFAULT, threads 1"
    assert grade.submission_platform(_with_outputs()) == "not recorded"
    assert grade.submission_platform(_with_outputs(metadata={"labhelpers": {"platform": {"python": "3.12"}}})) == \
        "python 3.12"
    long = grade.submission_platform(_with_outputs(_shown({"junk": "x" * 1000})))
    assert len(long) == 300 and long.endswith("...")  # a forged output cannot flood the report


def test_show_platform_leaves_its_output_in_an_executed_notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from labhelpers import numerics\nnumerics.show_platform()")]
    executed, failure = execute.execute(nb, tmp_path)
    assert failure is None
    (output,) = executed.cells[0].outputs
    info = output["data"][numerics.PLATFORM_MIME]
    assert set(info) == set(numerics.platform_info()) and output["data"]["text/plain"].startswith("computed on: python ")
    assert grade.submission_platform(executed).startswith(f"python {info['python']}")


@pytest.mark.parametrize("lab", ["lab3", "lab4"])
def test_each_lab_records_its_platform_in_a_cell_nbval_ignores(lab):
    nb = cells.read(cells.lab_path(lab))
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and "numerics.show_platform()" in c.source]
    assert not cells.output_checked(cell) and grade.submission_platform(nb) != "not recorded"
