"""nbgrader cell metadata for the lab notebooks, and the source folder of an nbgrader course.

Every cell of an instructor notebook is one of four nbgrader kinds (:func:`cell_kind`), decided by the
same predicates as ``labhelpers release`` and ``grade`` (:func:`labhelpers.nbtools.cells.is_solution`,
:func:`~labhelpers.nbtools.cells.passed_lines`):

==========  =====================================================  =====  ========  ======  ==========
kind        cell                                                   grade  solution  locked  points
==========  =====================================================  =====  ========  ======  ==========
answer      markdown ``**Answer.**`` cell (nbgrader solution)      true   true      false   kept, or 1
solution    code with a ``### BEGIN SOLUTION`` block               false  true      false   --
tests       other code whose stored output prints "... passed"     true   false     true    passed lines
readonly    every other cell (parameters, questions, task text)    false  false     true    --
==========  =====================================================  =====  ========  ======  ==========

nbgrader 0.9 awards a code *test* cell its points when it runs without an error (or stderr) and gives
a code cell that is both solution and grade to a human, so a self-check must sit in its own cell after
the solution: :func:`split_self_checks` splits a cell that holds both, and :func:`with_metadata` refuses
such a cell. ``grade_id`` is the cell's existing one, else its cell id, so ids stay stable across edits.
:func:`with_metadata` is idempotent: re-apply it (:func:`apply`) after editing and re-executing a lab.

:func:`course_source` writes a lab into an nbgrader course (``source/<lab>/``), with the project's
input paths made absolute, and the course's ``nbgrader_config.py`` (:func:`nbgrader_config`), whose stubs
are the release's, so ``nbgrader generate_assignment`` and ``labhelpers release`` write the same cells.
"""
from __future__ import annotations

import ast
import copy
from pathlib import Path

import nbformat

from .. import validate
from .cells import (LABS, cell_label, clear_outputs, is_answer, is_solution, lab_path, parameters_index,
                    passed_lines, read, repo_dir, solution_blocks, statement_spans)
from .release import ANSWER_STUB, STUB
from .sandbox import PROJECT_FOLDERS

SCHEMA_VERSION = 3
KINDS = ("answer", "solution", "tests", "readonly")
_OUTPUT_MARKERS = ("# tolerance:", "# NBVAL_")   # lines that say how a cell's outputs are compared


def cell_kind(cell) -> str:
    """``answer``, ``solution``, ``tests`` or ``readonly`` (see the module's table)."""
    if is_answer(cell):
        return "answer"
    if cell.cell_type == "code" and is_solution(cell):
        return "solution"
    return "tests" if cell.cell_type == "code" and passed_lines(cell) else "readonly"


def cell_metadata(cell, where="cell") -> dict:
    """The ``nbgrader`` metadata of one cell of an executed instructor notebook."""
    kind, old = cell_kind(cell), cell.get("metadata", {}).get("nbgrader", {})
    if kind == "solution" and passed_lines(cell):
        raise ValueError(f"{where}: holds a solution and prints self-check lines; nbgrader cannot grade such a "
                         "cell: split it (nbgrader_meta.split_self_checks), re-execute, then apply the metadata")
    grade_id = old.get("grade_id") or cell.get("id")
    if not grade_id:
        raise ValueError(f"{where}: has no cell id; save the notebook as nbformat 4.5 (Jupyter does) and retry")
    meta = {"grade": kind in ("answer", "tests"), "solution": kind in ("answer", "solution"),
            "locked": kind in ("tests", "readonly"), "grade_id": grade_id, "schema_version": SCHEMA_VERSION}
    if kind == "answer":
        meta["points"] = old.get("points", 1)
    elif kind == "tests":
        meta["points"] = len(passed_lines(cell))
    return meta


def with_metadata(nb, where="notebook") -> nbformat.NotebookNode:
    """A copy of the executed notebook ``nb`` with every cell's nbgrader metadata (idempotent).

    ValueError if it has solutions but no executed self-check, a cell holds both, or two cells share a grade_id.
    """
    if any(is_solution(c) for c in nb.cells) and not any(passed_lines(c) for c in nb.cells):
        raise ValueError(f"{where}: no stored self-check output ('... passed'); execute the notebook first "
                         "(run-labs --in-place), since a test cell's points are its passed lines")
    nb, seen = copy.deepcopy(nb), {}
    for index, cell in enumerate(nb.cells):
        cell.metadata["nbgrader"] = meta = cell_metadata(cell, f"{where}: {cell_label(nb, index)}")
        if meta["grade_id"] in seen:
            raise ValueError(f"{where}: grade_id {meta['grade_id']!r} is used by cells {seen[meta['grade_id']]} "
                             f"and {index}; grade_ids must be unique (give one of them another)")
        seen[meta["grade_id"]] = index
    return nb


def apply(path) -> bool:
    """Write :func:`with_metadata` into the notebook file ``path``; True if it changed."""
    path = Path(path)
    nb = read(path)
    new = with_metadata(nb, path.name)
    if new == nb:
        return False
    nbformat.write(new, path)
    return True


def split_self_checks(nb, where="notebook") -> nbformat.NotebookNode:
    """A copy of ``nb`` where each solution cell that prints self-check lines becomes two cells.

    The solution cell keeps its id and everything up to its last solution statement; a new cell (id
    ``<id>-checks``) takes the statements after it, the cell's outputs and its ``# tolerance:`` line.
    Re-execute the notebook afterwards: its execution counts are no longer consecutive.
    """
    nb, out = copy.deepcopy(nb), []
    for index, cell in enumerate(nb.cells):
        out.append(cell)
        if cell.cell_type == "code" and is_solution(cell) and passed_lines(cell):
            out.append(_split(cell, f"{where}: {cell_label(nb, index)}"))
    nb.cells = out
    return nb


def _split(cell, where):
    lines, cut = cell.source.splitlines(), _last_solution_line(cell.source, where)
    markers = [line for line in lines[:cut] if line.strip().startswith(_OUTPUT_MARKERS)]
    body = lines[cut:]
    while body and not body[0].strip():
        body = body[1:]
    tests = "\n".join(markers + body).rstrip()
    if not any(line.strip() and not line.strip().startswith("#") for line in lines[cut:]):
        raise ValueError(f"{where}: prints self-check lines but has no statement after its last solution block; "
                         "move the checks after the solution")
    checks = nbformat.v4.new_code_cell(tests, id=f"{cell.id[:57]}-checks", outputs=cell.outputs,
                                       execution_count=cell.execution_count)
    if cell.metadata.get("tags"):
        checks.metadata["tags"] = list(cell.metadata["tags"])
    cell.source = "\n".join(line for line in lines[:cut] if line not in markers).rstrip()
    cell.outputs, cell.execution_count = [], None
    return checks


def _last_solution_line(source: str, where) -> int:
    """Last line of the last top-level statement that overlaps a solution block."""
    try:
        spans = statement_spans(source)
    except SyntaxError as exc:
        raise ValueError(f"{where}: is not valid Python ({exc.msg}, line {exc.lineno})") from None
    return max([last for _, last, in_solution in spans if in_solution] + [end for _, end in solution_blocks(source)])


def nbgrader_config() -> str:
    """A course's ``nbgrader_config.py``: the release's stubs, and time for the labs' slowest cells."""
    return "\n".join([
        "# nbgrader configuration for the JSC labs (written by labhelpers.nbtools.nbgrader_meta.course_source)",
        "c = get_config()",
        "# the stubs of `labhelpers release`, so both releases write the same student cells",
        f"c.ClearSolutions.code_stub = {{'python': {('# YOUR CODE HERE' + chr(10) + STUB)!r}}}",
        f"c.ClearSolutions.text_stub = {ANSWER_STUB!r}",
        "# a lab cell trains or searches for minutes; nbgrader's default is 30 s per cell",
        "c.Execute.timeout = 1800", ""])


def set_parameters(nb, values: dict, where="notebook") -> nbformat.NotebookNode:
    """A copy of ``nb`` whose parameters cell assigns ``values`` (each name must already be assigned there)."""
    nb = copy.deepcopy(nb)
    cell = nb.cells[parameters_index(nb, where)]
    lines = cell.source.splitlines()
    found = {}
    for node in ast.parse(cell.source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and node.lineno == node.end_lineno:
            found[node.targets[0].id] = node
    unknown = sorted(set(values) - set(found))
    if unknown:
        raise ValueError(f"{where}: parameter {unknown[0]!r} is not assigned on one line of the parameters cell; "
                         f"allowed: {', '.join(sorted(found))}")
    for name, value in values.items():
        node = found[name]
        line = lines[node.lineno - 1]
        lines[node.lineno - 1] = line[:node.value.col_offset] + repr(value) + line[node.value.end_col_offset:]
    cell.source = "\n".join(lines)
    return nb


def project_inputs(nb, project: Path, where="notebook") -> dict:
    """Parameters whose default is a ``../configs``, ``../checkpoints`` or ``../data`` path, made absolute in ``project``."""
    params = nb.cells[parameters_index(nb, where)].source
    out = {}
    for node in ast.parse(params).body:
        value = node.value if isinstance(node, ast.Assign) else None
        if isinstance(value, ast.Constant) and isinstance(value.value, str) \
                and value.value.split("/")[:2][-1] in PROJECT_FOLDERS and value.value.startswith("../"):
            out.update({t.id: str(project / value.value[3:]) for t in node.targets if isinstance(t, ast.Name)})
    return out


def course_source(course, labs=None, parameters=None, force=False) -> list[Path]:
    """Write each lab as ``course/source/<lab>/<notebook>`` (metadata applied, outputs cleared) and the course's
    ``nbgrader_config.py`` if it has none.

    The lab's input paths (configs, checkpoints, data) point into this project; ``parameters`` (name ->
    value) override any parameter. Existing source notebooks are replaced only with ``force``.
    """
    course = validate.output_dir("--course", course)
    ready = {}
    for lab in labs or LABS:   # every notebook is made before any is written
        path = lab_path(lab)
        nb = with_metadata(read(path), path.name)
        values = {**project_inputs(nb, repo_dir(), path.name), **(parameters or {})}
        ready[course / "source" / lab / path.name] = clear_outputs(set_parameters(nb, values, path.name))
    validate.refuse_overwrite("--course", list(ready), force)
    for target, nb in ready.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
    written = list(ready)
    config = course / "nbgrader_config.py"
    if not config.exists():
        config.write_text(nbgrader_config())
        written.append(config)
    return written


__all__ = ["KINDS", "SCHEMA_VERSION", "apply", "cell_kind", "cell_metadata", "course_source",
           "nbgrader_config", "project_inputs", "set_parameters", "split_self_checks", "with_metadata"]
