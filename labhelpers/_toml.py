"""Reading a TOML config with the one-line errors the CLI prints."""
from __future__ import annotations

import tomllib
from pathlib import Path


def read_toml(path: str | Path, example: str) -> dict:
    """Parse ``path``; a missing file or bad TOML raises one line that points at ``example``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config {path} does not exist; see {example} for an example")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config {path} is not valid TOML: {exc}") from None
