"""The student release: solution blocks become ``NotImplementedError`` stubs, outputs are cleared.

Solution code sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` lines (:data:`BEGIN`,
:data:`END`); :func:`strip_solutions` replaces each block with :data:`STUB`. A written answer (a
markdown cell with nbgrader ``solution: true``) becomes :data:`ANSWER_STUB`. The grader
(:mod:`labhelpers.nbtools.grade`) tells solution cells from locked ones with the same predicate,
:func:`labhelpers.nbtools.cells.is_solution`.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

from .. import validate
from .cells import ANSWER, BEGIN, END, LABS, check_targets, clear_outputs, is_answer, lab_path, parameters_index, read

__all__ = ["ANSWER_STUB", "BEGIN", "END", "STUB", "release", "solution_count", "strip_solutions", "student_notebook"]
ANSWER_STUB = f"{ANSWER} YOUR ANSWER HERE"
STUB = 'raise NotImplementedError("replace this line with your solution")'


def strip_solutions(source: str, where="cell") -> str:
    """Replace every ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` block by a NotImplementedError stub.

    The stub keeps the indentation of the BEGIN line; lines before it (signature, docstring) stay.
    """
    out, inside, indent = [], False, ""
    for number, line in enumerate(source.splitlines(), 1):
        marker = line.strip()
        if marker == BEGIN:
            if inside:
                raise ValueError(f"{where}: line {number} opens a solution block inside another one")
            inside, indent = True, line[: len(line) - len(line.lstrip())]
            out += [f"{indent}# YOUR CODE HERE", f"{indent}{STUB}"]
        elif marker == END:
            if not inside:
                raise ValueError(f"{where}: line {number} closes a solution block that was never opened")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: a solution block is never closed with {END!r}")
    return "\n".join(out)


def student_notebook(nb, where="notebook") -> nbformat.NotebookNode:
    """The student version: solutions stubbed, answers blanked, outputs cleared; parameters and self-checks kept."""
    nb = clear_outputs(nb)
    for index, cell in enumerate(nb.cells):
        if is_answer(cell):
            cell.source = ANSWER_STUB
        elif BEGIN in cell.source:
            label = f"{where} cell {index}"
            cell.source = strip_solutions(cell.source, label) if cell.cell_type == "code" \
                else _strip_markdown(cell.source, label)
    return nb


def _strip_markdown(source: str, where) -> str:
    return strip_solutions(source, where).replace(f"# YOUR CODE HERE\n{STUB}", "YOUR ANSWER HERE")


def solution_count(nb) -> int:
    """Number of solution blocks in a notebook."""
    return sum(cell.source.count(BEGIN) for cell in nb.cells)


def release(out, labs=None, notebooks=None, force=False) -> list[Path]:
    """Write the student notebooks into ``out``; ValueError if a notebook has no solution blocks.

    Existing notebooks in ``out`` are only replaced with ``force``; an instructor notebook never is.
    """
    paths = [Path(p) for p in notebooks] if notebooks else [lab_path(lab) for lab in (labs or LABS)]
    out = validate.output_dir("--out", out)
    check_targets(paths, out, [], force)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        nb = read(path)
        parameters_index(nb, path.name)
        if not solution_count(nb):
            raise ValueError(f"{path.name}: no '{BEGIN}' blocks, nothing to release")
        nbformat.write(student_notebook(nb, path.name), out / path.name)
        written.append(out / path.name)
    return written
