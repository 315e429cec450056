"""Fixed-point quantization of ``nn.Linear`` layers: ``quantize_transform_pass`` and ``LinearInteger``.

A fixed-point number with ``width`` bits of which ``frac_width`` are fractional is::

    q(x) = clamp(round(x * 2**frac_width), -2**(width-1), 2**(width-1) - 1) / 2**frac_width

computed by ``torch.fake_quantize_per_tensor_affine`` (scale ``2**-frac_width``, zero point 0). It
rounds ties to even (0.5 -> 0, 1.5 -> 2, 2.5 -> 2), as ``torch.round`` does; hls4ml's default
``ap_fixed`` mode truncates instead, so its numbers can differ by one step. Its gradient passes
straight through inside the range and is 0 outside (the straight-through estimator). Values are
emulated in float32, so widths above 24 significant bits are limited by float32's mantissa.

Two optional per-layer fields choose other modes (:data:`ROUNDING`, :data:`OVERFLOW`); they apply to
the layer's ``data_in``, ``weight`` and ``bias`` quantization (its output is not quantized here; the
integer reference requantizes a layer's output with the *next* layer's ``data_in`` modes, since that
is its input quantizer). With ``c`` the integer code before overflow handling:

* ``rounding = "nearest-even"`` (default, ``AP_RND_CONV``): ``c = round_half_even(x * 2**f)``;
  ``"truncate"`` (``AP_TRN``): ``c = floor(x * 2**f)``; ``"nearest-up"`` (``AP_RND``):
  ``c = floor(x * 2**f + 1/2)``.
* ``overflow = "saturate"`` (default, ``AP_SAT``): clamp ``c`` to ``[-2**(w-1), 2**(w-1) - 1]``;
  ``"wrap"`` (``AP_WRAP``): two's-complement wrap, ``(c + 2**(w-1)) mod 2**w - 2**(w-1)``.

A config without them is today's quantizer, bit for bit (``fake_quantize_per_tensor_affine``). The
other modes are computed exactly in float64 codes, with a straight-through gradient (0 outside the
range when saturating, 1 everywhere when wrapping).

The pass config follows MASE::

    {"by": "type",                                   # or "name" (node names like "seq_blocks_2")
     "default": {"config": {"name": "NA"}},          # "NA" (or None) leaves a layer in float
     "linear": {"config": {"name": "integer",
                           "data_in_width": 8, "data_in_frac_width": 4,
                           "weight_width": 8, "weight_frac_width": 4,
                           "bias_width": 8, "bias_frac_width": 4,
                           "rounding": "truncate", "overflow": "wrap"}}}   # optional; default nearest-even, saturate
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..graph import Graph, node_config, validate_pass_args
from ..validate import is_int, one_of

PREFIXES = ("data_in", "weight", "bias")
FIELDS = tuple(f"{p}_{s}" for p in PREFIXES for s in ("width", "frac_width"))
FLOAT_NAMES = ("NA", None)  # MASE spells "leave this layer alone" as name = "NA" (TOML has no null)
MAX_WIDTH = 32
ROUNDING = ("nearest-even", "truncate", "nearest-up")  # ap_fixed: AP_RND_CONV, AP_TRN, AP_RND
OVERFLOW = ("saturate", "wrap")                         # ap_fixed: AP_SAT, AP_WRAP
MODE_FIELDS = {"rounding": ROUNDING, "overflow": OVERFLOW}
DEFAULT_MODES = {"rounding": ROUNDING[0], "overflow": OVERFLOW[0]}


def fixed_point(x: torch.Tensor, width: int, frac_width: int, rounding: str = "nearest-even",
                overflow: str = "saturate") -> torch.Tensor:
    """Round ``x`` to signed fixed point (``width`` bits, ``frac_width`` fractional) in the given modes (module doc)."""
    check_width("width", width, 1, MAX_WIDTH)
    check_width("frac_width", frac_width, 0, width)
    check_modes(rounding, overflow)
    if rounding == ROUNDING[0] and overflow == OVERFLOW[0]:
        return torch.fake_quantize_per_tensor_affine(x, 2.0 ** -frac_width, 0, -2 ** (width - 1), 2 ** (width - 1) - 1)
    q = _mode_values(x, width, frac_width, rounding, overflow)
    if not (torch.is_grad_enabled() and x.requires_grad):
        return q
    if overflow == "wrap":
        return q + (x - x.detach())      # adds exactly 0: q's values, x's gradient
    scaled = x.detach() * 2.0 ** frac_width
    inside = (scaled >= -2 ** (width - 1)) & (scaled < 2 ** (width - 1))
    return q + (x - x.detach()) * inside


def round_codes(scaled: torch.Tensor, rounding: str) -> torch.Tensor:
    """Integer-valued codes of ``scaled = x * 2**f`` (same dtype), rounded as ``rounding`` says."""
    if rounding == "nearest-even":
        return torch.round(scaled)
    low = torch.floor(scaled)
    return low if rounding == "truncate" else low + (scaled - low >= 0.5)  # nearest-up: ties to +inf


def overflow_codes(c, width: int, overflow: str):
    """Codes ``c`` (numpy or torch, integer-valued) brought into ``width`` signed bits: saturate or wrap."""
    low, high = -2 ** (width - 1), 2 ** (width - 1) - 1
    return c.clip(low, high) if overflow == "saturate" else (c - low) % 2 ** width + low


def _mode_values(x: torch.Tensor, width: int, frac_width: int, rounding: str, overflow: str) -> torch.Tensor:
    """Fixed-point values of ``x`` in any mode, without gradient: exact codes in float64, scaled back."""
    c = overflow_codes(round_codes(x.detach().double() * 2.0 ** frac_width, rounding), width, overflow)
    return (c * 2.0 ** -frac_width).to(x.dtype)


def _fixed_point_values(x: torch.Tensor, width: int, frac_width: int) -> torch.Tensor:
    """:func:`fixed_point`'s values without its gradient, for inference: round, clamp, scale back.

    Bit-identical to ``fake_quantize_per_tensor_affine`` (scaling by a power of two is exact in
    float32, and ``torch.round`` rounds ties to even as ``nearbyint`` does), and about ten times faster.
    """
    return torch.mul(x, 2.0 ** frac_width).round_().clamp_(-2 ** (width - 1), 2 ** (width - 1) - 1).mul_(2.0 ** -frac_width)


def check_modes(rounding, overflow, where: str = "") -> None:
    """One-line ValueError unless ``rounding`` is in :data:`ROUNDING` and ``overflow`` in :data:`OVERFLOW`."""
    one_of("rounding", rounding, ROUNDING, where)
    one_of("overflow", overflow, OVERFLOW, where)


def check_width(field: str, value, low: int, high: int, where: str = "") -> None:
    """ValueError unless ``value`` is an integer (not bool) in ``low..high``; the message names ``where`` + ``field``."""
    if not is_int(value):
        raise ValueError(f"{where}{field}={value!r} must be an integer in [{low}, {high}]")
    if not low <= value <= high:
        raise ValueError(f"{where}{field}={value!r} is out of range; allowed {low} <= {field} <= {high}")




def check_config(config: dict, where: str = "") -> dict | None:
    """Validate one layer config; return it with plain-int widths, or None for a layer left in float."""
    if not isinstance(config, dict):
        raise ValueError(f"{where}config must be a table of widths, got {config!r}")
    name = config.get("name", "integer")
    if name in FLOAT_NAMES:
        return None
    if name != "integer":
        raise ValueError(f"{where}name={name!r} is unknown; use 'integer' (fixed point) or 'NA' (leave in float)")
    unknown = sorted(set(config) - set(FIELDS) - set(MODE_FIELDS) - {"name"})
    if unknown:
        allowed = ", ".join(map(repr, (*FIELDS, *MODE_FIELDS)))
        raise ValueError(f"{where}unknown config key(s) {unknown}; allowed: ['name', {allowed}]")
    missing = [f for f in FIELDS if f not in config]
    if missing:
        raise ValueError(f"{where}config lacks {missing}; an 'integer' layer needs all of {list(FIELDS)}")
    for prefix in PREFIXES:
        width = config[f"{prefix}_width"]
        check_width(f"{prefix}_width", width, 1, MAX_WIDTH, where)
        check_width(f"{prefix}_frac_width", config[f"{prefix}_frac_width"], 0, int(width), where)
    check_modes(config.get("rounding", ROUNDING[0]), config.get("overflow", OVERFLOW[0]), where)
    modes = {f: config[f] for f in MODE_FIELDS if f in config}  # only if given: default configs stay as they were
    return {"name": "integer", **{f: int(config[f]) for f in FIELDS}, **modes}


class LinearInteger(nn.Linear):
    """``nn.Linear`` whose input, weight and bias are rounded to fixed point before the matmul.

    The output is the float accumulation of the quantized operands (no output quantization). The
    stored weight and bias stay float. When no gradient is needed, the quantized weight and bias are
    computed once and reused until the stored ones change (any in-place update bumps their version).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, config: dict,
                 device=None, dtype=None):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.config = check_config(config) or {}
        if not self.config:
            raise ValueError("LinearInteger needs an 'integer' config; leave float layers as nn.Linear")
        for field, value in {**DEFAULT_MODES, **self.config}.items():
            if field != "name":
                setattr(self, field, value)
        self._frozen_key, self._frozen = None, None

    @classmethod
    def from_linear(cls, linear: nn.Linear, config: dict) -> "LinearInteger":
        """A LinearInteger holding a copy of ``linear``'s float weights (a LinearInteger's too).

        Built on the meta device, so no random initialisation runs (and torch's global RNG is not drawn from).
        """
        q = cls(linear.in_features, linear.out_features, bias=linear.bias is not None, config=config, device="meta")
        q.weight = nn.Parameter(linear.weight.detach().clone())
        if linear.bias is not None:
            q.bias = nn.Parameter(linear.bias.detach().clone())
        q.quantized_parameters()
        return q.train(linear.training)

    def reset_parameters(self) -> None:
        if not self.weight.is_meta:  # from_linear builds on the meta device and then takes the float weights
            super().reset_parameters()

    @torch.no_grad()
    def quantized_parameters(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(weight, bias)`` rounded to their fixed-point formats, cached while the stored ones are unchanged."""
        key = tuple((id(t), t._version) for t in (self.weight, self.bias) if t is not None)
        if key != self._frozen_key:
            w = self.quantize(self.weight, "weight")
            b = None if self.bias is None else self.quantize(self.bias, "bias")
            self._frozen_key, self._frozen = key, (w, b)
        return self._frozen

    def quantize(self, x: torch.Tensor, prefix: str) -> torch.Tensor:
        """``x`` at this layer's ``prefix`` format ("data_in", "weight" or "bias") and modes (gradient per :func:`fixed_point`)."""
        return fixed_point(x, getattr(self, f"{prefix}_width"), getattr(self, f"{prefix}_frac_width"),
                           self.rounding, self.overflow)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():  # straight-through gradients to the input and the float weights
            b = None if self.bias is None else self.quantize(self.bias, "bias")
            return F.linear(self.quantize(x, "data_in"), self.quantize(self.weight, "weight"), b)
        if self.rounding == ROUNDING[0] and self.overflow == OVERFLOW[0]:
            x = _fixed_point_values(x, self.data_in_width, self.data_in_frac_width)
        else:
            x = _mode_values(x, self.data_in_width, self.data_in_frac_width, self.rounding, self.overflow)
        return F.linear(x, *self.quantized_parameters())

    def extra_repr(self) -> str:
        widths = ", ".join(f"{p}=({getattr(self, p + '_width')}, {getattr(self, p + '_frac_width')})" for p in PREFIXES)
        modes = "".join(f", {f}={getattr(self, f)!r}" for f in MODE_FIELDS if getattr(self, f) != DEFAULT_MODES[f])
        return f"{super().extra_repr()}, {widths}{modes}"


def quantize_transform_pass(graph: Graph, pass_args: dict) -> tuple[Graph, dict]:
    """Return ``graph`` with the selected ``nn.Linear`` nodes replaced by ``LinearInteger``.

    Returns ``(quantized graph, info)`` where ``info["quantized"]`` maps node name -> applied config and
    ``info["float"]`` lists the linear nodes left in float. Neither ``graph`` nor ``pass_args`` is
    modified. Only the replaced layers are new: every other module, and the fx graph, is shared with
    ``graph`` (copy on write, see :mod:`labhelpers.graph`). Linear layers that are already
    LinearInteger are re-quantized from their float weights.
    """
    by = validate_pass_args(graph, pass_args, types={"linear"})
    types = graph.node_types()
    configs = {}
    for node, node_type in types.items():
        raw = node_config(pass_args, node, node_type)
        config = None if raw is None else check_config(raw, where=f"pass_args[{_key(pass_args, by, node, node_type)!r}]: ")
        if config is not None and node_type != "linear" and by == "name" and node in pass_args:
            raise ValueError(f"pass_args key {node!r} is a {node_type} node; quantize_transform_pass acts on "
                             f"linear nodes only: {[n for n, t in types.items() if t == 'linear']}")
        configs[node] = config
    info = {"quantized": {}, "float": []}
    replacements = {}
    for node, module in graph.modules.items():
        if types[node] != "linear":
            continue
        if configs[node] is None:
            info["float"].append(node)
            continue
        replacements[node] = LinearInteger.from_linear(module, configs[node])
        info["quantized"][node] = configs[node]
    return graph.with_modules(replacements), info


def _key(pass_args: dict, by: str, node: str, node_type: str) -> str:
    key = node if by == "name" else node_type
    return key if key in pass_args else "default"


def load_pass_args(path) -> dict:
    """The ``[passes.quantize]`` table of a MASE-style transform TOML as pass_args."""
    from .._toml import read_toml

    raw = read_toml(path, "configs/jsc_tiny_int8.toml")
    unknown = sorted(set(raw) - {"passes"}) or sorted(set(raw.get("passes", {})) - {"quantize"})
    if unknown:
        raise ValueError(f"config {path} has unknown table(s) {unknown}; a transform config holds only [passes.quantize]")
    if "quantize" not in raw.get("passes", {}):
        raise ValueError(f"config {path} lacks [passes.quantize]; see configs/jsc_tiny_int8.toml")
    return raw["passes"]["quantize"]
