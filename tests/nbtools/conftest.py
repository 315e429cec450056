"""Fixtures for the notebook tooling tests: the mini fixture lab, executed once per session, and fresh copies."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from notebook_fixtures import make_project

from labhelpers.nbtools import cells, execute


@pytest.fixture(scope="session")
def reference(tmp_path_factory) -> Path:
    """The fixture lab executed top to bottom on a fresh kernel (what a committed lab notebook is)."""
    path = make_project(tmp_path_factory.mktemp("reference"))
    executed, failure = execute.execute(cells.read(path), path.parent)
    assert failure is None, failure
    nbformat.write(executed, path)
    return path


@pytest.fixture
def project(tmp_path) -> Path:
    """A fresh copy of the (unexecuted) fixture lab in a project layout under tmp_path."""
    return make_project(tmp_path)
