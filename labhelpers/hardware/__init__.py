"""Measured hardware for a quantized JSC model: one entry, :func:`measure`.

``measure(model, pass_args, data)`` quantizes the model with the lab's pass, reads off the integer
design (``integer``), writes pipelined Verilog with da4ml (``rtl``), synthesizes it with Yosys for
Xilinx 7-series (``synth``), simulates it with Verilator on validation rows and compares bit for bit
with the integer reference (``sim``), and caches the result by a content hash (``cache``)::

    >>> from labhelpers import hardware
    >>> hardware.measure(model, pass_args, jsc)["luts"]          # doctest: +SKIP

Modules import one way: integer <- rtl <- synth/sim; cache stands alone; this file ties them together.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import validate
from ..graph import Graph, trace
from ..passes.quantize import quantize_transform_pass
from . import cache, integer, rtl, sim, synth

FAMILY = "xilinx-7series"
DEFAULT_ROWS = 1000

__all__ = ["measure", "tool_versions", "FAMILY", "DEFAULT_ROWS"]


def tool_versions() -> dict[str, str]:
    """Versions of the tools that shape a result (part of the cache key)."""
    return {"da4ml": rtl.da4ml_version(), "yosys": synth.yosys_version(), "verilator": sim.verilator_version()}


def measure(model_or_graph: nn.Module | Graph, pass_args: dict | None, data, *, split: str = "val",
            rows: int | None = DEFAULT_ROWS, latency_cutoff: float = rtl.DEFAULT_LATENCY_CUTOFF,
            timeout_s: float = synth.DEFAULT_TIMEOUT_S, verify: bool = True, use_cache: bool = True,
            cache_dir: str | Path | None = None) -> dict:
    """Synthesize and verify one quantized design; returns a dict of figures (units in the names).

    ``model_or_graph``: a float JSC model (or traced graph), quantized here with ``pass_args``; give
    ``pass_args=None`` for a graph that is already quantized. ``data``: a ``labhelpers.data.JSC`` (its
    ``split`` rows are used) or a float tensor of raw feature rows. ``rows``: how many rows the
    Verilator run checks (None: all). Keys: ``luts``, ``ffs``, ``carry4``, ``latency_cycles``,
    ``rtl_matches`` (Verilator == integer reference on every checked row), ``rows_checked``,
    ``reference_matches_pytorch`` (integer reference == fake-quant logits on those rows),
    ``synth_seconds``, ``sim_seconds``, ``cached`` and more (see the README's Hardware section).
    """
    x = _rows(data, split, rows)
    quantized = _quantized(model_or_graph, pass_args)
    design = integer.from_graph(quantized)
    integer.check_widths(design)
    x_codes = integer.input_codes(design, x)
    reference = integer.forward_codes(design, x_codes)
    with torch.no_grad():
        pytorch = quantized(x).double().numpy()
    matches_pytorch = bool(np.array_equal(reference * 2.0 ** -design.out_frac, pytorch))
    versions = tool_versions()
    digest = cache.key(design=design.digest(), tools=versions, family=FAMILY, latency_cutoff=latency_cutoff,
                       verify=verify, rows=_array_digest(x_codes))
    folder = cache.cache_dir(cache_dir)
    stored = cache.get(folder, digest) if use_cache else None
    if stored is not None:
        return {**stored, "reference_matches_pytorch": matches_pytorch, "cached": True}
    with cache.workspace(folder, digest) as work:
        result = _build(design, x_codes, reference, work, latency_cutoff, timeout_s, verify)
    result.update(reference_matches_pytorch=matches_pytorch, accumulator_bits=integer.accumulator_widths(design),
                  family=FAMILY, tools=versions, design_hash=design.digest(), rtl_dir=str(folder / digest),
                  cached=False)
    cache.put(folder, digest, result)
    return result


def _quantized(model_or_graph, pass_args) -> Graph:
    """A quantized copy in eval mode (BatchNorm uses its running statistics, as the hardware does)."""
    graph = model_or_graph if isinstance(model_or_graph, Graph) else trace(model_or_graph)
    quantized = graph.copy() if pass_args is None else quantize_transform_pass(graph, pass_args)[0]
    quantized.model.eval()
    return quantized


def _rows(data, split: str, rows: int | None) -> torch.Tensor:
    if rows is not None:
        validate.positive_int("rows", rows)
    x = torch.as_tensor(data) if isinstance(data, (torch.Tensor, np.ndarray)) else data.split(split)[0]
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"data has shape {tuple(x.shape)}; give a JSC dataset or a (rows, features) tensor")
    return x[:rows].float()


def _array_digest(a: np.ndarray) -> str:
    return cache.key(shape=list(a.shape), sha=hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest())


def _build(design, x_codes, reference, folder: Path, latency_cutoff, timeout_s, verify) -> dict:
    written = rtl.write(design, folder, latency_cutoff=latency_cutoff)
    figures = synth.synthesize(written.sources, written.name, timeout_s=timeout_s)
    result = {**figures, "latency_cycles": written.latency_cycles, "input_bits": written.input_bits,
              "output_bits": written.output_bits}
    if not verify:
        return {**result, "rtl_matches": None, "rows_checked": 0, "mismatched_rows": None, "sim_seconds": 0.0}
    start = time.perf_counter()
    simulated = sim.simulate(written, x_codes)
    mismatched = int(np.any(simulated != reference, axis=1).sum())
    return {**result, "rtl_matches": mismatched == 0, "rows_checked": int(len(x_codes)),
            "mismatched_rows": mismatched, "sim_seconds": time.perf_counter() - start}
