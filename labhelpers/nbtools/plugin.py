"""pytest plugin for nbval over the lab notebooks (enabled in pyproject: ``-p labhelpers.nbtools.plugin``).

- uses ``labhelpers/nbtools/nbval_sanitize.cfg`` unless ``--nbval-sanitize-with`` is given, from any cwd
  (so ``cd notebooks && pytest --nbval lab3_quantization_search.ipynb`` checks the same way);
- fails every cell of a notebook that was never executed (strict nbval would pass it vacuously);
- prints, per notebook, how many cells had their outputs checked;
- compares every cell with :mod:`labhelpers.nbtools.compare` (the grader's comparison): exact, or within the
  tolerance that the cell declares in a ``# tolerance: ...`` line. nbval still executes the cells,
  coalesces the streams and reads the sanitize file; only its comparison is replaced.
"""
from __future__ import annotations

import types
from collections import defaultdict

import pytest

from .compare import SANITIZE_FILE, comparable, declared, first_difference


def pytest_configure(config) -> None:
    if getattr(config.option, "nbval", False) or getattr(config.option, "nbval_lax", False):
        if not getattr(config.option, "nbval_sanitize_with", None):
            config.option.nbval_sanitize_with = str(SANITIZE_FILE)
        config.pluginmanager.register(_CellCounter(), "labhelpers-nbval-counter")


def _is_nbval_cell(item) -> bool:
    return type(item).__name__ == "IPyNbCell" and hasattr(item, "cell")


class _CellCounter:
    def __init__(self):
        self.cells = {}  # nodeid -> (notebook, kind)
        self.outcomes = {}  # nodeid -> passed/failed/skipped
        self.never_run = set()

    def pytest_collection_modifyitems(self, items) -> None:
        by_notebook = defaultdict(list)
        for item in (i for i in items if _is_nbval_cell(i)):
            by_notebook[item.parent.nodeid].append(item)
            self.cells[item.nodeid] = (item.parent.nodeid, _kind(item))
            item.compare_outputs = types.MethodType(_compare_outputs, item)
        self.never_run = {nb for nb, cells in by_notebook.items()
                          if any(c.cell.source.strip() for c in cells)
                          and all(c.cell.execution_count is None for c in cells)}

    def pytest_runtest_setup(self, item) -> None:
        if _is_nbval_cell(item) and item.parent.nodeid in self.never_run:
            pytest.fail(f"{item.parent.nodeid} was never executed (no execution counts): nbval would pass it "
                        "without checking anything; run it top to bottom and commit its outputs", pytrace=False)

    def pytest_runtest_logreport(self, report) -> None:
        if report.nodeid in self.cells and (report.when == "call" or report.outcome != "passed"):
            self.outcomes.setdefault(report.nodeid, report.outcome)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.cells:
            return
        terminalreporter.section("nbval: notebook cells with checked outputs")
        for notebook, counts in self._counts().items():
            terminalreporter.write_line(
                f"{notebook}: {counts['checked']} code cells with stored output compared "
                f"({counts['checked_passed']} passed), {counts['empty']} compared as empty, "
                f"{counts['ignored']} ignored (NBVAL_IGNORE_OUTPUT/SKIP), {counts['code']} code cells in all")
        total = sum(c["checked"] for c in self._counts().values())
        terminalreporter.write_line(f"total: {total} cells with stored output compared")

    def _counts(self) -> dict:
        counts = defaultdict(lambda: defaultdict(int))
        for nodeid, (notebook, kind) in self.cells.items():
            c = counts[notebook]
            c["code"] += 1
            c[kind] += 1
            if kind == "checked" and self.outcomes.get(nodeid) == "passed":
                c["checked_passed"] += 1
        return counts


def _kind(item) -> str:
    if item.options.get("skip") or not item.options.get("check"):
        return "ignored"
    return "checked" if item.cell.get("outputs") else "empty"


def _compare_outputs(item, test, ref, skip_compare=None) -> bool:
    """Replaces ``IPyNbCell.compare_outputs``: the stored outputs ``ref`` against the re-run ``test``."""
    patterns = list(item.parent.sanitize_patterns.items())
    tolerance = declared(item.cell.source, f"{item.parent.nodeid}::Cell {item.cell_num}")
    diff = first_difference(comparable(ref, patterns), comparable(test, patterns), tolerance)
    item.comparison_traceback = [] if diff is None else [diff]
    return diff is None
