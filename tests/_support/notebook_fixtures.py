"""Helpers for the notebook tooling tests (tests/nbtools/): the fixture lab in a project layout.

The fixture notebooks live in tests/fixtures/; tests/conftest.py keeps nbval from collecting them.
"""
from __future__ import annotations

import shutil
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FIXTURE = FIXTURES / "mini_lab.ipynb"


def make_project(root: Path, source: Path = FIXTURE) -> Path:
    """A project layout ``root/notebooks/<name>`` (cwd of the notebook, with ``../imgs``); returns the copy."""
    (root / "notebooks").mkdir(parents=True, exist_ok=True)
    (root / "imgs").mkdir(exist_ok=True)
    return Path(shutil.copy(source, root / "notebooks" / source.name))


def cell_index(nb, text: str) -> int:
    """Index of the first cell whose source contains ``text``."""
    return next(i for i, cell in enumerate(nb.cells) if text in cell.source)
