"""A second opinion from hls4ml 1.3.0: its bit-accurate ``ap_fixed`` emulation of the same design.

The quantized layers after the float prefix (Linear and ReLU, with the *float* weights, so hls4ml
rounds them itself) are converted with ``convert_from_pytorch_model`` (Vitis backend, io_parallel),
compiled with g++ and run on the host prefix's output ``relu(BatchNorm(x))``. Types, per layer:

* the input: ``ap_fixed<w, w-f, ROUNDING, OVERFLOW>`` of the first layer's ``data_in`` ``(w, f)``;
* weights and biases: their formats, with the same modes;
* accumulators: ``ap_fixed<A, A-F>`` with ``A`` the integer reference's accumulator width and ``F``
  its fractional bits, so sums are exact;
* a ReLU before another layer: that layer's ``data_in`` type (where hls4ml requantizes); the last
  ReLU keeps the accumulator type.

hls4ml 1.3.0's header writer prints each weight and bias as decimal text with as many decimals as
its type has fractional bits (``'{:.{f}f}'``) before the ``ap_fixed`` cast applies the mode. Rounding
modes barely notice; ``AP_TRN`` then truncates the printed value, not the float: a weight just below
a step (0.46 at 1 fractional bit, printed "0.5") gets the upper code. :func:`text_moved_codes` counts
those codes; ``logits(..., prequantized=True)`` hands hls4ml our quantized values instead (exact as
text, so its cast keeps them), which checks everything but the weight rounding.

The modes come from each layer's ``rounding`` / ``overflow`` config fields (:data:`AP_MODES`: our
default nearest-even + saturate is ``AP_RND_CONV, AP_SAT``; truncate + wrap is hls4ml's own default
``AP_TRN, AP_WRAP``), or are forced for every type with ``logits(..., rounding=, overflow=)``.
"""
from __future__ import annotations

import contextlib
import copy
import io
import tempfile

import numpy as np
import torch
from torch import nn

from ..graph import Graph, module_type
from . import integer

AP_MODES = {"nearest-even": "AP_RND_CONV", "truncate": "AP_TRN", "nearest-up": "AP_RND",
            "saturate": "AP_SAT", "wrap": "AP_WRAP"}  # our config values -> ap_fixed modes
MODES = {"rounding": ("AP_RND_CONV", "AP_TRN", "AP_RND", "AP_RND_ZERO", "AP_RND_INF", "AP_RND_MIN_INF", "AP_TRN_ZERO"),
         "overflow": ("AP_SAT", "AP_WRAP", "AP_SAT_ZERO", "AP_SAT_SYM")}


def ap_type(width: int, frac_width: int, rounding: str = "AP_RND_CONV", overflow: str = "AP_SAT") -> str:
    """``ap_fixed<W, I, Q, O>`` of our ``(width, frac_width)`` format (I counts the sign bit)."""
    return f"ap_fixed<{width},{width - frac_width},{rounding},{overflow}>"


def logits(graph: Graph, x, *, rounding: str | None = None, overflow: str | None = None,
           prequantized: bool = False) -> np.ndarray:
    """hls4ml's outputs (float64) for raw feature rows ``x`` of a quantized JSC graph.

    ``rounding`` / ``overflow``: ap_fixed modes (:data:`MODES`) for every quantized type; None (default)
    takes each layer's own modes from its config (:data:`AP_MODES`). ``prequantized``: give hls4ml the
    quantized weights and biases rather than the float ones (module doc)."""
    for field, value in (("rounding", rounding), ("overflow", overflow)):
        if value is not None and value not in MODES[field]:
            raise ValueError(f"{field}={value!r} is not an ap_fixed mode; choose one of {list(MODES[field])}")
    hls4ml = _hls4ml()
    design = integer.from_graph(graph)
    tail = _tail(graph, prequantized)
    config = hls4ml.utils.config_from_pytorch_model(tail, input_shape=(design.n_inputs,), granularity="name",
                                                     default_precision="ap_fixed<32,16>")
    _set_precisions(config["LayerName"], design, rounding, overflow)
    inputs = np.ascontiguousarray(integer.prefix(design, x).numpy(), dtype=np.float64)
    with tempfile.TemporaryDirectory(prefix="hls4ml-") as out, contextlib.redirect_stdout(io.StringIO()):
        model = hls4ml.converters.convert_from_pytorch_model(tail, hls_config=config, output_dir=out,
                                                             backend="Vitis", io_type="io_parallel")
        model.compile()  # g++: about 8-10 s per model here
        return np.asarray(model.predict(inputs), dtype=np.float64).reshape(len(inputs), -1)


def _hls4ml():
    try:
        import hls4ml
    except ImportError:
        raise FileNotFoundError("hls4ml is not installed: run `make env` (pyproject pins hls4ml==1.3.0)") from None
    return hls4ml


def _tail(graph: Graph, prequantized: bool = False) -> nn.Sequential:
    """The layers after the float prefix as plain float Linear/ReLU modules (weights unrounded, or quantized)."""
    layers = []
    for module in list(graph.modules.values())[2:]:
        if module_type(module) == "linear":
            plain = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
            weight, bias = module.quantized_parameters() if prequantized else (module.weight, module.bias)
            plain.load_state_dict({"weight": weight.detach(), **({} if bias is None else {"bias": bias.detach()})})
            layers.append(plain)
        else:
            layers.append(copy.deepcopy(module))
    return nn.Sequential(*layers).eval()


def text_moved_codes(graph: Graph) -> int:
    """How many weight and bias codes hls4ml's decimal header text moves (module doc), in the layers' modes."""
    design = integer.from_graph(graph)
    linears = [m for m in list(graph.modules.values())[2:] if module_type(m) == "linear"]
    moved = 0
    for layer, module in zip(design.layers, linears):
        pairs = [(module.weight, layer.weight_fmt, layer.weight), (module.bias, layer.bias_fmt, layer.bias)]
        for tensor, fmt, codes in pairs[:1 + (module.bias is not None)]:
            text = [float(f"{v:.{fmt[1]}f}") for v in tensor.detach().flatten().tolist()]
            printed = integer.codes(torch.tensor(text, dtype=torch.float64), *fmt, *layer.modes)
            moved += int((printed != codes.reshape(-1)).sum())
    return moved


def _set_precisions(names: dict, design: integer.Design, rounding: str | None, overflow: str | None) -> None:
    input_name, *layer_names = names
    expected = sum(1 + layer.relu for layer in design.layers)
    if len(layer_names) != expected:
        raise ValueError(f"hls4ml made {len(layer_names)} layers of this model, expected {expected}; "
                         f"only BatchNorm1d, ReLU, then Linear/ReLU models are supported")
    modes = [(rounding or AP_MODES[layer.rounding], overflow or AP_MODES[layer.overflow]) for layer in design.layers]
    names[input_name]["Precision"] = {"result": ap_type(*design.layers[0].data_in, *modes[0])}
    it = iter(layer_names)
    for i, (layer, bits) in enumerate(zip(design.layers, integer.accumulator_widths(design))):
        wide = f"ap_fixed<{bits},{bits - layer.acc_frac}>"
        names[next(it)]["Precision"] = {"weight": ap_type(*layer.weight_fmt, *modes[i]),
                                        "bias": ap_type(*layer.bias_fmt, *modes[i]),
                                        "accum": wide, "result": wide}
        if layer.relu:
            last = i + 1 == len(design.layers)
            after = wide if last else ap_type(*design.layers[i + 1].data_in, *modes[i + 1])
            names[next(it)]["Precision"] = {"result": after}
