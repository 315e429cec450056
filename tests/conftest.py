"""Settings for the whole test tree.

The fixture notebooks under tests/fixtures/ are inputs for the notebook tooling tests (tests/nbtools/),
not lab notebooks: nbval must not collect them (nbval over notebooks/ is configured in pyproject.toml).
"""
from __future__ import annotations

collect_ignore_glob = ["fixtures/*"]
