"""The numerics policy: which outputs reproduce bit for bit where, and the pins that make them.

Float results depend on more than the seed. Measured on a 2-core AMD EPYC (AVX-512), torch 2.13.0
CPU, training JSC-Three-Linear with the same seed gives other float32 weights when any of these change:
the ATen kernel level (``ATEN_CPU_CAPABILITY=default`` vs avx2/avx512), MKL's code path
(``MKL_CBWR=COMPATIBLE`` vs the default; Intel CPUs take MKL's AVX-512 path where AMD takes AVX2), and
the number of intra-op threads. After 10 epochs, accuracies then move in the 4th decimal
(``benchmarks/numeric_spread.py`` measures it for a whole notebook).

What this package does about it:

* **Pins** (:func:`pin_environment`, run when ``labhelpers`` is imported, before torch does any
  work): on x86-64 CPUs with AVX2, ``MKL_CBWR=AVX2`` (MKL takes the same code path on Intel and AMD)
  and ``ATEN_CPU_CAPABILITY=avx2`` (AVX-512 machines use the same vector kernels as AVX2 ones). Both
  are ``setdefault``: a value the user exported wins, which is how the tolerant path is exercised.
  Training and trial evaluation run on one intra-op thread (``labhelpers.training``,
  ``labhelpers.metrics``), so results do not depend on the core count.
* **Lab 4 trains in float64** (:data:`TRAIN_DTYPE_NAME`, the default of ``training.train_many``).
  Measured on Lab 4's training (25 architectures, 2 epochs): in float64 ``MKL_CBWR=COMPATIBLE`` and
  the thread count change nothing (losses move by 2e-16, accuracies not at all), where float32 moved
  them. ATen's kernel level still matters in float64: ``ATEN_CPU_CAPABILITY=default`` moved Lab 4's
  printed accuracies by up to 0.0006 (avx2 and avx512 agree exactly). The trained networks are
  stored as float32 checkpoints.

What is bit-exact where (torch 2.13.0 CPU, the pinned versions):

* same machine, same environment: everything except timings;
* any x86-64 CPU with AVX2 under the pins above: the same bits as this machine, by design (the pins
  make MKL and ATen take the AVX2 paths on Intel too, and one thread removes the core count; only an
  AMD machine was available to measure, where avx2 and avx512 agree exactly);
* ``MKL_CBWR`` set to anything else, or another thread count: Lab 4 stays the same (float64);
* other kernel levels (no AVX2, ``ATEN_CPU_CAPABILITY=default``, ARM laptops): outputs not derived
  from training (metric formulas, parameter counts, quantized evaluation of the committed
  checkpoints, configs) stay exact; values derived from training move in their last printed digits,
  and counts derived from them (trials to reach a target) can move by a few. Notebook cells that
  print such values declare a tolerance (``# tolerance: ...``, see :mod:`labhelpers.nbtools.compare`),
  chosen from the spread that ``benchmarks/numeric_spread.py`` measures.
"""
from __future__ import annotations

import contextlib
import logging
import random
import warnings

import os
import platform
import sys

PINS = {"MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
TRAIN_DTYPE_NAME = "float64"


def _has_avx2() -> bool:
    """True on an x86-64 Linux CPU that reports AVX2 (the pins only apply there)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return any(line.startswith("flags") and " avx2" in line for line in f)
    except OSError:
        return False


def pin_environment(environ=None) -> dict[str, str]:
    """Set the numeric pins that the user has not set; returns the ones set now.

    They take effect because torch reads both variables lazily, at its first BLAS call and its first
    vectorized kernel, so this works even when torch was imported first (but before it computed).
    """
    environ = os.environ if environ is None else environ
    if not _has_avx2():
        return {}
    added = {k: v for k, v in PINS.items() if k not in environ}
    environ.update(added)
    return added


def platform_info() -> dict[str, str]:
    """The numeric platform of this process: Python, torch, CPU, kernel level, MKL path, threads."""
    import torch

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl_cbwr": os.environ.get("MKL_CBWR", "(unset)"),
        "threads": str(torch.get_num_threads()),
    }


PLATFORM_MIME = "application/vnd.labhelpers.platform+json"  # the output show_platform() leaves in a notebook


def show_platform() -> None:
    """Show, in a notebook, where its numbers are being computed (:func:`platform_info` of this kernel).

    The output carries the dict under :data:`PLATFORM_MIME`, which ``labhelpers grade`` reads and quotes as the
    submission's platform next to its own; a plain-text line shows the same. Put it in an
    ``NBVAL_IGNORE_OUTPUT`` cell: it differs from machine to machine.
    """
    from IPython.display import display

    info = platform_info()
    display({PLATFORM_MIME: info, "text/plain": f"computed on: {platform_line(info)}"}, raw=True)


def platform_line(info: dict) -> str:
    """A platform dict (:func:`platform_info`) as one line: ``python 3.11.7, torch 2.13.0+cpu, ...``."""
    return ", ".join(f"{k} {v}" for k, v in info.items())


def fresh_platform_info() -> dict[str, str]:
    """:func:`platform_info` of a fresh interpreter with this environment, as a notebook kernel started now sees it.

    (In this process torch may have fixed its kernel level before the environment changed.)
    """
    import json
    import subprocess

    code = "import json, labhelpers.numerics as n; print(json.dumps(n.platform_info()))"
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError):
        return {"python": sys.version.split()[0], "note": "could not start a fresh interpreter to read the platform"}


def train_dtype():
    """The torch dtype Lab 4 trains in (float64: see the module docstring)."""
    import torch

    return getattr(torch, TRAIN_DTYPE_NAME)


def seed_everything(seed: int):
    """Seed python, numpy and torch, switch on deterministic algorithms; return a seeded ``torch.Generator``.

    The one place where a ``seed`` parameter reaches every random number generator.
    """
    import numpy as np
    import torch

    from .validate import non_negative_int

    seed = non_negative_int("seed", seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def num_threads(threads: int | None):
    """Temporarily set ``torch.set_num_threads`` (None: unchanged)."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def quiet(*loggers: str, level: int = logging.ERROR, warning_categories=()):
    """Raise the named loggers to ``level`` and ignore the given warning categories, restoring both after.

    ``quiet("optuna", warning_categories=(optuna.exceptions.ExperimentalWarning,))`` is how search
    code silences Optuna's per-trial INFO lines; ``quiet("traitlets")`` silences nbclient's noise.
    """
    saved = [(logging.getLogger(name), logging.getLogger(name).level) for name in loggers]
    with warnings.catch_warnings():
        for category in warning_categories:
            warnings.simplefilter("ignore", category)
        for logger, _ in saved:
            _set_level(logger, max(level, logger.getEffectiveLevel()))
        try:
            yield
        finally:
            for logger, before in saved:
                _set_level(logger, before)


def _set_level(logger: logging.Logger, level: int) -> None:
    """``logger.setLevel(level)`` unless it is that already: setLevel clears the level cache of every logger
    (about 0.1 ms here), and a search enters :func:`quiet` before every trial."""
    if logger.level != level:
        logger.setLevel(level)
