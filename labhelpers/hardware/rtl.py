"""Verilog of a :class:`~labhelpers.hardware.integer.Design`, traced and pipelined by da4ml 0.6.0.

The datapath is traced on integer codes (every value has 0 fractional bits; the binary points live in
the shifts), so the RTL computes exactly :func:`labhelpers.hardware.integer.forward_codes`:

* input: ``n_inputs`` unsigned integers of ``w0 - 1`` bits, the codes of the quantized post-BatchNorm,
  post-ReLU activation (see the integer module); ``w0`` signed bits if the first layer wraps;
* each layer: ``x @ W`` with constant integer weights (da4ml builds adder graphs, no multipliers),
  shifted to the accumulator's binary point, plus the bias code, then ReLU where the model has one;
* between layers, in the next layer's modes: round half to even (an add of ``0.5 - 2**-s`` plus the
  kept LSB, then a truncation), truncate (da4ml's ``TRN``) or round half up (``RND``); then saturate
  (``SAT``) or wrap (``WRAP``, signed) to the next layer's ``data_in`` format;
* output: the last accumulator as integer codes.

``latency_cutoff`` is da4ml's pipelining knob (the combinational delay allowed per stage, in its
adder-delay units); ``latency_cycles`` is the number of pipeline stages it produced: an input
presented before clock edge 0 appears at the output after edge ``latency_cycles``.
"""
from __future__ import annotations

import json
from importlib import metadata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .integer import Design

DA4ML_ROUND = {"truncate": "TRN", "nearest-up": "RND"}  # da4ml 0.6.0 has no ties-to-even: built by hand
MAX_IO_BITS = 32  # da4ml's Verilator binder packs each input and output into an int32
DEFAULT_LATENCY_CUTOFF = 5


@dataclass
class Rtl:
    """Written Verilog: the top module ``name``, its sources for synthesis, and da4ml's model."""

    name: str
    path: Path
    sources: list[Path]
    latency_cycles: int
    input_bits: int
    output_bits: int
    model: object  # da4ml.codegen.VerilogModel, compiled by labhelpers.hardware.sim


def da4ml_version() -> str:
    """The installed da4ml's version, or a one-line FileNotFoundError naming the fix."""
    try:
        return metadata.version("da4ml")
    except metadata.PackageNotFoundError:
        raise FileNotFoundError("da4ml is not installed: run `make env` (pyproject pins da4ml==0.6.0)") from None


def trace(design: Design):
    """da4ml's combinational logic of the design (``CombLogic``)."""
    from da4ml.trace import FixedVariableArrayInput, comb_trace
    from da4ml.trace.ops import quantize, relu

    first = design.layers[0]
    inp = FixedVariableArrayInput((design.n_inputs,))
    signed = first.overflow == "wrap"  # a wrapped post-ReLU code can be negative
    v = quantize(inp, int(signed), first.data_in[0] - 1, 0)  # else unsigned codes: the input passed a ReLU
    for i, layer in enumerate(design.layers):
        if i:
            v = _requantize(v, design.layers[i - 1].acc_frac, layer, quantize)
        v = _dense(v, layer)
        if layer.relu:
            v = relu(v)
    return comb_trace(inp, v)


def _dense(v, layer):
    product_shift = layer.acc_frac - layer.data_in[1] - layer.weight_fmt[1]
    bias_shift = layer.acc_frac - layer.bias_fmt[1]
    acc = v @ layer.weight.T.astype(np.float64)
    if product_shift:
        acc = acc * float(2 ** product_shift)
    return acc + layer.bias.astype(np.float64) * float(2 ** bias_shift)


def _requantize(v, frac: int, layer, quantize):
    """Non-negative integer codes at ``frac`` fractional bits -> codes of ``layer.data_in`` in its modes."""
    width, frac_width = layer.data_in
    shift = frac - frac_width
    # int bits 62: generous; da4ml keeps the exact range it traced, so these WRAPs never wrap
    if shift > 0:
        y = v * 2.0 ** -shift                                   # exact: the binary point moves
        if layer.rounding == "nearest-even":
            lsb = quantize(y, 0, 1, 0, "WRAP", "TRN")           # floor(y) mod 2
            v = quantize(y + (0.5 - 2.0 ** -shift) + lsb * 2.0 ** -shift, 0, 62, 0, "WRAP", "TRN")
        else:
            v = quantize(y, 0, 62, 0, "WRAP", DA4ML_ROUND[layer.rounding])
    elif shift < 0:
        v = v * float(2 ** -shift)
    if layer.overflow == "wrap":
        return quantize(v, 1, width - 1, 0, "WRAP", "TRN")    # two's complement of the low `width` bits
    return quantize(v, 0, width - 1, 0, "SAT", "TRN")


def io_bits(comb) -> tuple[int, int]:
    """Widest input and output (bits, sign included) of a traced design."""
    from da4ml.types import minimal_kif

    widest = lambda qints: max(sum(minimal_kif(q)) for q in qints)
    return widest(comb.inp_qint), widest(comb.out_qint)


def write(design: Design, path: str | Path, *, name: str = "jsc", latency_cutoff: float = DEFAULT_LATENCY_CUTOFF) -> Rtl:
    """Write pipelined Verilog for ``design`` under ``path``; refuse I/O wider than the tools allow."""
    from da4ml.codegen import VerilogModel

    if not latency_cutoff > 0:
        raise ValueError(f"latency_cutoff={latency_cutoff!r} must be > 0 (da4ml's per-stage delay; default {DEFAULT_LATENCY_CUTOFF})")
    comb = trace(design)
    in_bits, out_bits = io_bits(comb)
    if out_bits > MAX_IO_BITS:
        raise ValueError(f"the output needs {out_bits} bits; the Verilator emulation carries at most {MAX_IO_BITS}: "
                         f"narrow the last layer's weight/data_in widths")
    path = Path(path)
    model = VerilogModel(comb, name, path, latency_cutoff=latency_cutoff, print_latency=False)
    model.write()
    latency_cycles = int(json.loads((path / "metadata.json").read_text())["latency"])  # pipeline stages
    return Rtl(name, path, _sources(path, name), latency_cycles, in_bits, out_bits, model)


def _sources(path: Path, name: str) -> list[Path]:
    """Top, stages and da4ml's static cells, without lookup_table.v (it needs memory files we never use)."""
    src = path / "src"
    static = sorted(p for p in (src / "static").glob("*.v") if p.name != "lookup_table.v")
    return [src / f"{name}.v", *sorted(src.glob(f"{name}_stage*.v")), *static]
