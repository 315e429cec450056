"""The grader's re-run: the submission, with the reference's self-checks put back, run again in a jailed sandbox.

:func:`graded_notebook` inserts a grader cell after each cell paired with a reference self-check cell;
it runs the reference's self-check lines with ``labhelpers.checks`` loaded afresh from its file.
:func:`check_reproduces` runs that notebook in a :func:`labhelpers.nbtools.sandbox.sandbox` (kernel
jailed with bubblewrap) and compares every checked output with :mod:`labhelpers.nbtools.compare`,
exactly or within the reference cell's ``# tolerance:``. :mod:`labhelpers.nbtools.grade` turns the
findings into the report.
"""
from __future__ import annotations

import copy

import nbformat

from .cells import (PACKAGE_DIR, cell_label, code_indices, output_checked, pair_cells, passed_lines, problem,
                    statement_spans)
from .compare import EXACT, comparable, declared, first_difference, sanitize_patterns, shorten
from .execute import execute
from .sandbox import sandbox

MAX_OUTPUT_BYTES = 20_000_000      # a re-run whose cells print more than this in all is stopped

# A fresh copy of labhelpers/checks.py, named inside the package so that its relative imports (the checks
# compare a student's pass or strategy with labhelpers' own) resolve to labhelpers' modules.
_FRESH_CHECKS = """import importlib.util as _grader_util
import labhelpers as _grader_package
_grader_spec = _grader_util.spec_from_file_location("labhelpers.checks_for_grading", {path!r})
checks = _grader_util.module_from_spec(_grader_spec)
_grader_spec.loader.exec_module(checks)
"""


def _check_statements(source: str) -> str:
    """The top-level statements of a reference cell that hold no solution block: its self-check lines."""
    try:
        spans = statement_spans(source)
    except SyntaxError:
        return source
    lines = source.splitlines()
    return "\n".join("\n".join(lines[first - 1:last]) for first, last, in_solution in spans if not in_solution)


def graded_notebook(nb, reference, pairs: dict[int, int]):
    """What the grader re-runs: the submission, with the reference's self-checks put back after its cells.

    After each cell paired with a reference self-check cell, a grader cell runs the reference's
    self-check lines again (:func:`_check_statements`), with ``checks`` imported afresh from the
    installed file, so that neither a string-wrapped check, nor a printed 'passed', nor a replaced
    ``checks`` module counts. Returns ``(notebook, where, checks)``: ``where`` maps each submission
    cell index to its index in the graded notebook, ``checks`` each reference self-check cell to its
    grader cell.
    """
    graded = copy.deepcopy(nb)
    fresh = _FRESH_CHECKS.format(path=str(PACKAGE_DIR / "checks.py"))
    extra = {i: r for r, i in pairs.items() if passed_lines(reference.cells[r])}
    cells, where, checks = [], {}, {}
    for i, cell in enumerate(graded.cells):
        where[i] = len(cells)
        cells.append(cell)
        if i in extra:
            checks[extra[i]] = len(cells)
            cells.append(nbformat.v4.new_code_cell(fresh + _check_statements(reference.cells[extra[i]].source)))
    graded.cells = cells
    return graded, where, checks


def check_reproduces(nb, notebook_dir, timeout_per_cell=None, progress=False, reference=None, jail=True,
                     pairs=None) -> tuple[list, list]:
    """Re-run the submission (as :func:`graded_notebook` builds it) in a sandbox, compare its checked outputs.

    Which cells are compared, and how (exact, or within a ``# tolerance:``), comes from the paired
    reference cell; cells the submission added are compared exactly. ``pairs``: :func:`pair_cells`
    (computed if not given). Returns ``(reproduce problems, self-check problems found by the re-run)``.
    """
    reference = reference if reference is not None else nb
    pairs = pair_cells(nb, reference) if pairs is None else pairs
    by_submission = {i: r for r, i in pairs.items()}
    graded, where, checks = graded_notebook(nb, reference, pairs)
    keep_going = set(checks.values())
    with sandbox(notebook_dir) as cwd:
        rerun, failure = execute(graded, cwd, timeout_per_cell, progress=progress, desc="re-running",
                                 keep_going=keep_going, jail=cwd.parent if jail else None,
                                 max_output_bytes=MAX_OUTPUT_BYTES)
    patterns, problems = sanitize_patterns(), []
    for index in code_indices(nb):
        if failure and where[index] >= failure["index"]:
            break
        cell, rules = nb.cells[index], reference.cells[by_submission[index]] if index in by_submission else None
        if cell.get("execution_count") is None or (rules is not None and not output_checked(rules)):
            continue
        tolerance = declared(rules.source, cell_label(nb, index)) if rules is not None else EXACT
        diff = first_difference(comparable(cell.outputs, patterns), comparable(rerun.cells[where[index]].outputs, patterns),
                                tolerance)
        if diff:
            problems.append(problem(nb, index, f"output differs from a fresh re-run: {diff}"))
    if failure:
        index = max((i for i in code_indices(nb) if where[i] <= failure["index"]), default=code_indices(nb)[0])
        problems.append(problem(nb, index, f"re-execution stopped here: {failure['message']}"))
    return problems, _rerun_self_checks(nb, reference, rerun, pairs, checks, failure)


def _rerun_self_checks(nb, reference, rerun, pairs, checks, failure) -> list[dict]:
    problems = []
    for r, g in checks.items():
        if failure and g >= failure["index"]:
            continue
        errors = [o for o in rerun.cells[g].outputs if o.get("output_type") == "error"]
        if errors or len(passed_lines(rerun.cells[g])) < len(passed_lines(reference.cells[r])):
            why = f" ({errors[0].get('ename')}: {shorten(str(errors[0].get('evalue')), 200)})" if errors else ""
            problems.append(problem(nb, pairs[r], f"the reference's self-check, re-run by the grader after this "
                                                   f"cell, did not pass{why}"))
    return problems
