"""Logic synthesis with Yosys for Xilinx 7-series (``synth_xilinx -flatten -nodsp``) and its cell counts.

``luts`` is the sum of LUT1..LUT6 cells, ``ffs`` the flip-flops (FDRE, FDSE, FDCE, FDPE), ``carry4``
the CARRY4 carry chains. ``-nodsp`` keeps multiplications out of DSP slices, so LUTs are the whole
cost of the arithmetic (da4ml's constant multiplications are adder graphs anyway).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

DEFAULT_TIMEOUT_S = 600
INSTALL_HINT = "install it with `sudo apt-get install yosys` (or `make sysdeps` as root)"
_CELL = re.compile(r"^\s+(\w+)\s+(\d+)\s*$")


def yosys_path() -> str:
    """The ``yosys`` on PATH, or a one-line FileNotFoundError naming the install command."""
    path = shutil.which("yosys")
    if path is None:
        raise FileNotFoundError(f"yosys is not on PATH: {INSTALL_HINT}")
    return path


def yosys_version() -> str:
    """``Yosys 0.23 (git sha1 ...)``: part of the cache key."""
    return subprocess.run([yosys_path(), "-V"], capture_output=True, text=True, timeout=60).stdout.strip()


def script(sources: list[Path], top: str) -> str:
    """The Yosys script: read the Verilog, synthesize for 7-series without DSPs, print statistics."""
    files = " ".join(str(p) for p in sources)
    return f"read_verilog -sv {files}; synth_xilinx -top {top} -flatten -nodsp; stat"


def synthesize(sources: list[Path], top: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict:
    """Run Yosys; return ``{"luts", "ffs", "carry4", "cells", "synth_seconds"}`` (cells: every cell type)."""
    cmd = [yosys_path(), "-q", "-p", f"{script(sources, top)}; tee -q -o {_stat_path(sources)} stat"]
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ValueError(f"synthesis of {top} timed out after timeout_s={timeout_s} s; "
                         f"raise timeout_s or narrow the formats") from None
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise ValueError(f"yosys failed on {top} (exit {done.returncode}): {_last_error(done)}; "
                         f"check the Verilog under {Path(sources[0]).parent}")
    cells = parse_stat(_stat_path(sources).read_text())
    return {**counts(cells), "cells": cells, "synth_seconds": seconds}


def _stat_path(sources: list[Path]) -> Path:
    return Path(sources[0]).parent / "yosys_stat.txt"


def _last_error(done: subprocess.CompletedProcess) -> str:
    lines = [l.strip() for l in (done.stderr + done.stdout).splitlines() if l.strip()]
    errors = [l for l in lines if "ERROR" in l]
    return (errors or lines or ["no output"])[-1][:300]


def parse_stat(text: str) -> dict[str, int]:
    """Cell counts of Yosys's ``stat`` (flattened design: one module), e.g. ``{"LUT2": 1014, ...}``."""
    cells: dict[str, int] = {}
    in_cells = False
    for line in text.splitlines():
        if "Number of cells" in line:
            in_cells = True
            continue
        match = _CELL.match(line) if in_cells else None
        if match:
            cells[match[1]] = cells.get(match[1], 0) + int(match[2])
        elif in_cells and line.strip():
            in_cells = False
    if not cells:
        raise ValueError("yosys printed no cell counts; run its script by hand to see why: "
                         "read_verilog -sv ...; synth_xilinx -top <name> -flatten -nodsp; stat")
    return cells


def counts(cells: dict[str, int]) -> dict[str, int]:
    """LUTs (LUT1..LUT6), flip-flops (FD*) and CARRY4 from the cell counts."""
    return {"luts": sum(n for c, n in cells.items() if re.fullmatch(r"LUT[1-6]", c)),
            "ffs": sum(n for c, n in cells.items() if re.fullmatch(r"FD[RSCP]E(_1)?", c)),
            "carry4": cells.get("CARRY4", 0)}
