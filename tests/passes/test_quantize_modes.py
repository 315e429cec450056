"""Rounding and overflow modes of the fixed-point quantizer, against hand-computed codes."""
import pytest
import torch

from labhelpers import graph, models
from labhelpers.passes import LinearInteger, fixed_point, quantize, quantize_transform_pass

# codes at (width 4, frac 1): steps of 0.5, codes in [-8, 7]
X = [0.25, 0.75, 1.25, -0.25, -0.75, -1.2, 3.4, 3.75, 3.9, 4.0, 5.0, -4.0, -4.25, -5.0, -9.0]
CODES = {  # x * 2 = 0.5, 1.5, 2.5, -0.5, -1.5, -2.4, 6.8, 7.5, 7.8, 8, 10, -8, -8.5, -10, -18
    ("nearest-even", "saturate"): [0, 2, 2, 0, -2, -2, 7, 7, 7, 7, 7, -8, -8, -8, -8],
    ("truncate", "saturate"):     [0, 1, 2, -1, -2, -3, 6, 7, 7, 7, 7, -8, -8, -8, -8],
    ("nearest-up", "saturate"):   [1, 2, 3, 0, -1, -2, 7, 7, 7, 7, 7, -8, -8, -8, -8],
    ("nearest-even", "wrap"):     [0, 2, 2, 0, -2, -2, 7, -8, -8, -8, -6, -8, -8, 6, -2],
    ("truncate", "wrap"):         [0, 1, 2, -1, -2, -3, 6, 7, 7, -8, -6, -8, 7, 6, -2],
    ("nearest-up", "wrap"):       [1, 2, 3, 0, -1, -2, 7, -8, -8, -8, -6, -8, -8, 6, -2],
}
INT = dict(name="integer", data_in_width=8, data_in_frac_width=4, weight_width=4, weight_frac_width=2,
           bias_width=8, bias_frac_width=4)


@pytest.mark.parametrize("modes", CODES, ids="+".join)
def test_mode_codes_hand_computed(modes):
    """Ties (x.5 steps), negative values and overflow at both ends, in every mode pair."""
    got = fixed_point(torch.tensor(X), 4, 1, *modes) * 2
    assert got.tolist() == CODES[modes]
    assert quantize.overflow_codes(torch.tensor([8, -9, 23]), 4, modes[1]).tolist() == \
           ([7, -8, 7] if modes[1] == "saturate" else [-8, 7, 7])


def test_default_modes_are_todays_quantizer_and_config():
    x = torch.randn(1000) * 4
    assert torch.equal(fixed_point(x, 6, 2), fixed_point(x, 6, 2, "nearest-even", "saturate"))
    assert torch.equal(fixed_point(x, 6, 2), torch.fake_quantize_per_tensor_affine(x, 0.25, 0, -32, 31))
    assert quantize.check_config(INT) == INT  # no mode keys added: stored and printed configs stay as before
    explicit = {**INT, "rounding": "nearest-even", "overflow": "saturate"}
    assert quantize.check_config(explicit) == explicit
    layer = LinearInteger.from_linear(torch.nn.Linear(3, 2), INT)
    assert (layer.rounding, layer.overflow) == ("nearest-even", "saturate") and "rounding" not in repr(layer)


def test_modes_reach_every_quantized_layer_and_keep_a_straight_through_gradient():
    torch.manual_seed(0)
    g = graph.trace(models.build("jsc-three-linear").eval())
    pass_args = {"by": "type", "linear": {"config": {**INT, "rounding": "truncate", "overflow": "wrap"}}}
    q, info = quantize_transform_pass(g, pass_args)
    assert all(c["rounding"] == "truncate" and c["overflow"] == "wrap" for c in info["quantized"].values())
    layer = q.modules["seq_blocks_2"]
    assert "rounding='truncate', overflow='wrap'" in repr(layer)
    x = torch.randn(64, 16) * 3
    with torch.no_grad():
        fast = q(x)
    slow = q(x.requires_grad_(True))  # the autograd path computes the same values
    assert torch.equal(fast, slow)
    w = fixed_point(layer.weight.detach(), 4, 2, "truncate", "wrap")
    assert torch.equal(layer.quantized_parameters()[0], w)
    assert torch.equal(w * 4, torch.floor(layer.weight.detach() * 4).add(8).remainder(16).sub(8))
    v = torch.tensor([0.3, 1.0, -3.0], requires_grad=True)  # (4, 2): range [-2, 1.75]
    fixed_point(v, 4, 2, "truncate", "saturate").sum().backward()
    assert v.grad.tolist() == [1.0, 1.0, 0.0]
    v.grad = None
    fixed_point(v, 4, 2, "truncate", "wrap").sum().backward()
    assert v.grad.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("field, value", [("rounding", "round"), ("rounding", "AP_TRN"), ("overflow", "clip"),
                                          ("overflow", None)])
def test_bad_mode_values_are_one_line_errors_naming_the_field(field, value):
    torch.manual_seed(0)
    g = graph.trace(models.build("jsc-tiny").eval())
    pass_args = {"by": "type", "linear": {"config": {**INT, field: value}}}
    allowed = quantize.ROUNDING if field == "rounding" else quantize.OVERFLOW
    with pytest.raises(ValueError, match=f"pass_args\\['linear'\\]: {field}={value!r} is not allowed: use one of "
                                         f"{', '.join(map(repr, allowed))}") as info:
        quantize_transform_pass(g, pass_args)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=f"{field}={value!r} is not allowed"):
        fixed_point(torch.zeros(2), 4, 1, **{field: value})
