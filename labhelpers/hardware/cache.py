"""A content-addressed cache of hardware results: one JSON file per key, under a git-ignored folder.

The key is a sha256 over the design (its integer weights, formats and structure: see
``Design.digest``), the tool versions (da4ml, Yosys, Verilator) and the settings that change the
result (latency cutoff, rows checked). A repeated design is read back instead of re-synthesized.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

DEFAULT_DIR = Path("runs/hardware-cache")  # relative to the working directory, like runs/search


def cache_dir(path: str | Path | None = None) -> Path:
    """``path``, else ``$LABHELPERS_HARDWARE_CACHE``, else ``runs/hardware-cache``."""
    return Path(path or os.environ.get("LABHELPERS_HARDWARE_CACHE") or DEFAULT_DIR)


def key(**parts) -> str:
    """sha256 (hex) of the JSON of ``parts`` with sorted keys."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def get(folder: Path, digest: str) -> dict | None:
    """The stored result for ``digest``, or None (a missing or unreadable entry is a miss)."""
    path = Path(folder) / f"{digest}.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def put(folder: Path, digest: str, result: dict) -> Path:
    """Store ``result`` atomically (write, then rename), so readers never see half a file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{digest}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(result, indent=1))
    return tmp.replace(folder / f"{digest}.json")


@contextlib.contextmanager
def workspace(folder: Path, digest: str):
    """A fresh build folder; on success it becomes ``folder/digest`` (the design's Verilog, kept).

    Each call builds in its own temporary folder, so two processes measuring the same design never
    share da4ml's build files. A failed build keeps its temporary folder for inspection.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{digest[:16]}.", dir=folder))
    yield work
    final = folder / digest
    try:  # a final folder already there holds the same design (same digest): keep it, never delete under a reader
        work.rename(final)
    except OSError:  # another process (a search worker) renamed its copy of the same design first
        shutil.rmtree(work, ignore_errors=True)
