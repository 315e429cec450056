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

Our quantizer rounds half to even and saturates: ``AP_RND_CONV, AP_SAT`` (the default here).
hls4ml's own default, ``AP_TRN, AP_WRAP``, is a different quantizer, and its outputs differ.
"""
from __future__ import annotations

import contextlib
import copy
import io
import tempfile

import numpy as np
from torch import nn

from ..graph import Graph, module_type
from . import integer

MODES = {"rounding": ("AP_RND_CONV", "AP_TRN", "AP_RND", "AP_RND_ZERO", "AP_RND_INF", "AP_RND_MIN_INF", "AP_TRN_ZERO"),
         "overflow": ("AP_SAT", "AP_WRAP", "AP_SAT_ZERO", "AP_SAT_SYM")}


def ap_type(width: int, frac_width: int, rounding: str = "AP_RND_CONV", overflow: str = "AP_SAT") -> str:
    """``ap_fixed<W, I, Q, O>`` of our ``(width, frac_width)`` format (I counts the sign bit)."""
    return f"ap_fixed<{width},{width - frac_width},{rounding},{overflow}>"


def logits(graph: Graph, x, *, rounding: str = "AP_RND_CONV", overflow: str = "AP_SAT") -> np.ndarray:
    """hls4ml's outputs (float64) for raw feature rows ``x`` of a quantized JSC graph."""
    for field, value in (("rounding", rounding), ("overflow", overflow)):
        if value not in MODES[field]:
            raise ValueError(f"{field}={value!r} is not an ap_fixed mode; choose one of {list(MODES[field])}")
    hls4ml = _hls4ml()
    design = integer.from_graph(graph)
    tail = _tail(graph)
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


def _tail(graph: Graph) -> nn.Sequential:
    """The layers after the float prefix as plain float Linear/ReLU modules (weights unrounded)."""
    layers = []
    for module in list(graph.modules.values())[2:]:
        if module_type(module) == "linear":
            plain = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
            plain.load_state_dict({k: v for k, v in module.state_dict().items() if k in ("weight", "bias")})
            layers.append(plain)
        else:
            layers.append(copy.deepcopy(module))
    return nn.Sequential(*layers).eval()


def _set_precisions(names: dict, design: integer.Design, rounding: str, overflow: str) -> None:
    input_name, *layer_names = names
    expected = sum(1 + layer.relu for layer in design.layers)
    if len(layer_names) != expected:
        raise ValueError(f"hls4ml made {len(layer_names)} layers of this model, expected {expected}; "
                         f"only BatchNorm1d, ReLU, then Linear/ReLU models are supported")
    names[input_name]["Precision"] = {"result": ap_type(*design.layers[0].data_in, rounding, overflow)}
    it = iter(layer_names)
    for i, (layer, bits) in enumerate(zip(design.layers, integer.accumulator_widths(design))):
        wide = f"ap_fixed<{bits},{bits - layer.acc_frac}>"
        names[next(it)]["Precision"] = {"weight": ap_type(*layer.weight_fmt, rounding, overflow),
                                        "bias": ap_type(*layer.bias_fmt, rounding, overflow),
                                        "accum": wide, "result": wide}
        if layer.relu:
            last = i + 1 == len(design.layers)
            after = wide if last else ap_type(*design.layers[i + 1].data_in, rounding, overflow)
            names[next(it)]["Precision"] = {"result": after}
