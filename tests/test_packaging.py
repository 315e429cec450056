"""environment.yml pins the same versions as pyproject.toml, and torch stays on the CPU wheel's version."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    return dict(re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", s).groups() for s in specs)


def _environment_pins() -> dict[str, str]:
    text = (ROOT / "environment.yml").read_text()
    return dict(re.findall(r"^\s+- ([A-Za-z0-9_.-]+)==(\S+)\s*$", text, flags=re.M))


def test_every_dependency_is_pinned_exactly_and_environment_matches():
    pins = _pyproject_pins()  # fullmatch above fails on any dependency that is not pinned with ==
    assert pins["torch"] == "2.13.0" and pins["pythia8mc"] == "8.317.2"
    assert _environment_pins() == pins
