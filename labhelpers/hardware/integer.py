"""The integer reference of a quantized JSC model: what a fixed-point datapath computes, in int64.

A design is read off a graph produced by ``quantize_transform_pass``. Supported shapes are exactly
the lab's models: ``BatchNorm1d, ReLU`` (the float prefix), then ``LinearInteger`` layers separated
by ``ReLU``, with an optional final ``ReLU``. Every Linear must be quantized.

What is integer and what stays float:

* **The float prefix.** The PyTorch model keeps BatchNorm1d and the first ReLU in float. Here the
  BatchNorm is folded into a per-feature affine ``x * alpha + beta`` (``alpha = gamma /
  sqrt(var + eps)``, ``beta = bias - mean * alpha``), evaluated in float32 with a fused multiply-add
  as PyTorch's CPU kernel does (so it equals ``BatchNorm1d`` bit for bit; the tests check it), then
  ReLU, then the first layer's input quantizer. That runs on the host, before the hardware.
* **The RTL input** is therefore, per feature, the integer code ``q = clamp(round_half_even(
  relu(x * alpha + beta) * 2**f0), 0, 2**(w0-1) - 1)`` of the first layer's ``data_in`` format
  ``(w0, f0)``. After the ReLU it is never negative, so it travels as ``w0 - 1`` unsigned bits.
* **Each layer** multiplies input codes by weight codes (both at their formats), adds the bias code
  shifted to the product's binary point, in an accumulator with ``frac = max(f_in + f_w, f_b)``
  fractional bits. Its width (:func:`accumulator_widths`) is the worst case over all codes the
  formats allow: ``bit_length(n_in * 2**(w_in-1) * 2**(w_w-1) * 2**(frac-f_in-f_w) + 2**(w_b-1) *
  2**(frac-f_b)) + 1`` (the sign), so no accumulation can overflow.
* **Between layers** the ReLU'd accumulator is requantized to the next layer's ``data_in`` format as
  the fake-quant model does: round half to even, then saturate.
* **The output** is the last accumulator (after the final ReLU, if any); logits = code * 2**-frac.

Rounding ties to even and saturating is what ``torch.fake_quantize_per_tensor_affine`` does, and the
default. A layer's ``rounding`` / ``overflow`` config fields (see :mod:`labhelpers.passes.quantize`)
change its input, weight and bias codes, and so also the requantization *into* it (its ``data_in``
quantizer): ``truncate`` floors, ``nearest-up`` rounds ties up, ``wrap`` keeps the low ``w`` bits as
two's complement. With ``wrap``, a large post-ReLU value can wrap to a negative code, so the RTL
input is then ``w0`` signed bits. The accumulators never overflow (their width is the worst case).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..graph import Graph, module_type
from ..passes.quantize import DEFAULT_MODES, LinearInteger, overflow_codes, round_codes

MAX_ACC_BITS = 62  # int64 with headroom; wider accumulators are refused


@dataclass(frozen=True)
class Layer:
    """One quantized Linear: integer codes and their fixed-point formats ``(width, frac_width)``."""

    name: str
    weight: np.ndarray        # int64 (out, in): weight codes
    bias: np.ndarray          # int64 (out,): bias codes (zeros if the layer has no bias)
    data_in: tuple[int, int]
    weight_fmt: tuple[int, int]
    bias_fmt: tuple[int, int]
    relu: bool                # a ReLU follows this layer
    rounding: str = DEFAULT_MODES["rounding"]   # of data_in, weight and bias (labhelpers.passes.quantize)
    overflow: str = DEFAULT_MODES["overflow"]

    @property
    def modes(self) -> tuple[str, str]:
        return self.rounding, self.overflow

    @property
    def acc_frac(self) -> int:
        return max(self.data_in[1] + self.weight_fmt[1], self.bias_fmt[1])


@dataclass(frozen=True)
class Design:
    """A quantized model as integers: the float prefix (BatchNorm folded) and the integer layers."""

    alpha: np.ndarray         # float32 (16,): folded BatchNorm scale
    beta: np.ndarray          # float32 (16,): folded BatchNorm shift
    layers: tuple[Layer, ...]

    @property
    def n_inputs(self) -> int:
        return self.layers[0].weight.shape[1]

    @property
    def out_frac(self) -> int:
        return self.layers[-1].acc_frac

    def digest(self) -> str:
        """sha256 of everything that defines the hardware (weights, formats, structure)."""
        h = hashlib.sha256()
        for layer in self.layers:
            meta = [layer.name, layer.data_in, layer.weight_fmt, layer.bias_fmt, layer.relu, layer.weight.shape]
            if layer.modes != tuple(DEFAULT_MODES.values()):  # default designs keep their earlier digests
                meta.append(layer.modes)
            h.update(json.dumps(meta).encode())
            h.update(np.ascontiguousarray(layer.weight, dtype=np.int64).tobytes())
            h.update(np.ascontiguousarray(layer.bias, dtype=np.int64).tobytes())
        return h.hexdigest()


# ----------------------------------------------------------------------------- reading a graph

def from_graph(graph: Graph) -> Design:
    """The :class:`Design` of a quantized graph; an unsupported structure raises a one-line ValueError."""
    items = list(graph.modules.items())
    kinds = [module_type(m) for _, m in items]
    if kinds[:2] != ["batch_norm1d", "relu"]:
        raise ValueError(f"hardware needs a model that starts BatchNorm1d, ReLU (the JSC models); got {kinds[:2]}")
    alpha, beta = fold_batch_norm(items[0][1])
    layers = []
    rest = items[2:]
    for i, (name, module) in enumerate(rest):
        kind = module_type(module)
        if kind == "relu":
            if i == 0 or module_type(rest[i - 1][1]) != "linear":
                raise ValueError(f"node {name}: a ReLU must follow a Linear for hardware; got {kinds}")
            continue
        if kind != "linear":
            raise ValueError(f"node {name} ({type(module).__name__}) is not supported in hardware; "
                             f"supported: BatchNorm1d+ReLU first, then Linear and ReLU layers")
        if not isinstance(module, LinearInteger):
            raise ValueError(f"node {name} is a float Linear; hardware needs every Linear quantized "
                             f"(give it name = 'integer' in the pass config)")
        relu = i + 1 < len(rest) and module_type(rest[i + 1][1]) == "relu"
        layers.append(_layer(name, module, relu))
    if not layers:
        raise ValueError("the model has no Linear layer; nothing to build in hardware")
    for prev, layer in zip(layers, layers[1:]):
        if not prev.relu:
            raise ValueError(f"node {layer.name}: hardware needs a ReLU between Linear layers")
    return Design(alpha, beta, tuple(layers))


def fold_batch_norm(bn: nn.BatchNorm1d) -> tuple[np.ndarray, np.ndarray]:
    """Inference BatchNorm as ``x * alpha + beta`` (float32): ``alpha = gamma * rsqrt(var + eps)``."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("BatchNorm1d has no running statistics (track_running_stats=False); hardware needs them")
    with torch.no_grad():
        alpha = bn.running_var.add(bn.eps).rsqrt()
        if bn.weight is not None:
            alpha = alpha * bn.weight
        beta = -bn.running_mean * alpha
        if bn.bias is not None:
            beta = beta + bn.bias
    return alpha.float().numpy().copy(), beta.float().numpy().copy()


def _layer(name: str, q: LinearInteger, relu: bool) -> Layer:
    fmt = lambda p: (int(getattr(q, f"{p}_width")), int(getattr(q, f"{p}_frac_width")))
    data_in, w_fmt, b_fmt = fmt("data_in"), fmt("weight"), fmt("bias")
    modes = q.rounding, q.overflow
    weight = codes(q.weight.detach(), *w_fmt, *modes)
    bias = codes(q.bias.detach(), *b_fmt, *modes) if q.bias is not None else np.zeros(q.out_features, np.int64)
    return Layer(name, weight, bias, data_in, w_fmt, b_fmt, relu, *modes)


def codes(x: torch.Tensor, width: int, frac_width: int, rounding: str = "nearest-even",
          overflow: str = "saturate") -> np.ndarray:
    """Integer codes of ``x`` at ``(width, frac_width)`` (int64): round, then saturate or wrap (module doc)."""
    scaled = round_codes(x.double() * 2.0 ** frac_width, rounding)
    return overflow_codes(scaled, width, overflow).to(torch.int64).numpy()


# ----------------------------------------------------------------------------- computing

def prefix(design: Design, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """The float part on the host: relu(x * alpha + beta) in float32, fused as BatchNorm1d computes it."""
    x = torch.as_tensor(x, dtype=torch.float32)
    return torch.relu(torch.addcmul(torch.from_numpy(design.beta), x, torch.from_numpy(design.alpha)))


def input_codes(design: Design, x: torch.Tensor | np.ndarray) -> np.ndarray:
    """The RTL's input: codes of relu(BatchNorm(x)) at the first layer's ``data_in`` format (int64)."""
    first = design.layers[0]
    return codes(prefix(design, x), *first.data_in, *first.modes)


def accumulator_widths(design: Design) -> list[int]:
    """Signed accumulator width (bits) of each layer: the worst case its formats allow (module doc)."""
    widths = []
    for layer in design.layers:
        n_in = layer.weight.shape[1]
        (wx, fx), (ww, fw), (wb, fb) = layer.data_in, layer.weight_fmt, layer.bias_fmt
        bound = n_in * 2 ** (wx - 1) * 2 ** (ww - 1) * 2 ** (layer.acc_frac - fx - fw)
        bound += 2 ** (wb - 1) * 2 ** (layer.acc_frac - fb)
        widths.append(bound.bit_length() + 1)
    return widths


def check_widths(design: Design) -> None:
    """Refuse designs whose accumulators would not fit int64 (one-line ValueError naming the layer)."""
    for layer, bits in zip(design.layers, accumulator_widths(design)):
        if bits > MAX_ACC_BITS:
            raise ValueError(f"node {layer.name}: accumulator needs {bits} bits, more than {MAX_ACC_BITS}; "
                             f"narrow its data_in/weight/bias widths")


def forward_codes(design: Design, x_codes: np.ndarray) -> np.ndarray:
    """Run the integer datapath on input codes; returns output codes (int64) at ``design.out_frac``."""
    check_widths(design)
    v = np.asarray(x_codes, dtype=np.int64)
    for i, layer in enumerate(design.layers):
        if i:
            v = requantize(v, design.layers[i - 1].acc_frac, *layer.data_in, *layer.modes)
        v = accumulate(layer, v)
        if layer.relu:
            v = np.maximum(v, 0)
    return v


def accumulate(layer: Layer, v: np.ndarray) -> np.ndarray:
    """One layer's accumulator codes (int64, at ``layer.acc_frac``) for input codes ``v``, before any ReLU."""
    product_shift = layer.acc_frac - layer.data_in[1] - layer.weight_fmt[1]
    bias_shift = layer.acc_frac - layer.bias_fmt[1]
    return ((v @ layer.weight.T) << product_shift) + (layer.bias << bias_shift)


def requantize(v: np.ndarray, frac: int, width: int, frac_width: int, rounding: str = "nearest-even",
               overflow: str = "saturate") -> np.ndarray:
    """Codes at ``frac`` fractional bits -> codes at ``(width, frac_width)`` in the given modes (default:
    round half to even, saturate), exactly in int64."""
    shift = frac - frac_width
    if shift <= 0:
        out = v << -shift
    else:
        q = v >> shift                      # floor: truncate
        rem = v - (q << shift)
        half = 1 << (shift - 1)
        if rounding == "nearest-even":
            q = q + ((rem > half) | ((rem == half) & ((q & 1) == 1)))
        elif rounding == "nearest-up":
            q = q + (rem >= half)
        out = q
    return overflow_codes(out, width, overflow)


def logits(design: Design, x: torch.Tensor | np.ndarray) -> np.ndarray:
    """The integer reference's logits (float64, exact): output codes times ``2**-out_frac``."""
    return forward_codes(design, input_codes(design, x)) * 2.0 ** -design.out_frac
