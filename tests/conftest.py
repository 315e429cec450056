"""Shared fixtures for the notebook tooling tests.

The fixture notebooks under tests/fixtures/ are inputs for these tests, not lab notebooks: nbval
must not collect them (nbval over notebooks/ is configured in pyproject.toml).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from labhelpers import notebooks

collect_ignore_glob = ["fixtures/*"]

FIXTURE = Path(__file__).parent / "fixtures" / "mini_lab.ipynb"


def make_project(root: Path, source: Path = FIXTURE) -> Path:
    """A project layout ``root/notebooks/<name>`` (cwd of the notebook, with ``../imgs``); returns the copy."""
    (root / "notebooks").mkdir(parents=True, exist_ok=True)
    (root / "imgs").mkdir(exist_ok=True)
    return Path(shutil.copy(source, root / "notebooks" / source.name))


def cell_index(nb, text: str) -> int:
    """Index of the first cell whose source contains ``text``."""
    return next(i for i, cell in enumerate(nb.cells) if text in cell.source)


@pytest.fixture(scope="session")
def reference(tmp_path_factory) -> Path:
    """The fixture lab executed top to bottom on a fresh kernel (what a committed lab notebook is)."""
    path = make_project(tmp_path_factory.mktemp("reference"))
    executed, failure = notebooks.execute(notebooks.read(path), path.parent)
    assert failure is None, failure
    nbformat.write(executed, path)
    return path


@pytest.fixture
def project(tmp_path) -> Path:
    """A fresh copy of the (unexecuted) fixture lab in a project layout under tmp_path."""
    return make_project(tmp_path)
