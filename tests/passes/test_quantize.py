"""The fixed-point quantizer and quantize_transform_pass, against hand-computed values."""
import copy

import pytest
import torch
from torch import nn

from labhelpers import graph, models
from labhelpers.passes import LinearInteger, fixed_point, quantize_transform_pass

INT = dict(name="integer", data_in_width=8, data_in_frac_width=4, weight_width=4, weight_frac_width=2,
           bias_width=8, bias_frac_width=4)


def _graph(name="jsc-three-linear", seed=0):
    torch.manual_seed(seed)
    return graph.trace(models.build(name).eval())


def by_type(**config):
    return {"by": "type", "default": {"config": {"name": "NA"}}, "linear": {"config": {**INT, **config}}}


# ----------------------------------------------------------------------------- the quantizer

@pytest.mark.parametrize("width, frac, x, expected", [
    # rounding to the nearest step of 2^-2 = 0.25; ties go to even (0.5 -> 0, 1.5 -> 2, 2.5 -> 2 steps)
    (4, 2, [0.1, 0.125, 0.375, 0.625, -0.125, -0.375], [0.0, 0.0, 0.5, 0.5, 0.0, -0.5]),
    # saturation at (2^3 - 1) / 4 = 1.75 and -2^3 / 4 = -2
    (4, 2, [1.75, 1.9, 10.0, -2.0, -2.2, -10.0], [1.75, 1.75, 1.75, -2.0, -2.0, -2.0]),
    # frac = 0: integers in [-4, 3]
    (3, 0, [2.5, 3.5, 3.7, -4.4, -5.0, 0.49], [2.0, 3.0, 3.0, -4.0, -4.0, 0.0]),
    # frac = width: steps of 1/8 in [-4/8, 3/8]
    (3, 3, [0.3, 1.0, -1.0, 0.0625, 0.1875], [0.25, 0.375, -0.5, 0.0, 0.25]),
    # width 1: the only values are -1 and 0 (frac 0)
    (1, 0, [-0.6, -0.5, 0.7, 5.0], [-1.0, 0.0, 0.0, 0.0]),
])
def test_fixed_point_hand_computed(width, frac, x, expected):
    assert fixed_point(torch.tensor(x), width, frac).tolist() == expected


def test_fixed_point_straight_through_gradient():
    x = torch.tensor([0.3, 1.0, -3.0], requires_grad=True)  # width 4, frac 2: range [-2, 1.75]
    fixed_point(x, 4, 2).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 0.0]


@pytest.mark.parametrize("width, frac, message", [
    (0, 0, "width=0 is out of range"), (33, 0, "width=33 is out of range"), (4, 5, "frac_width=5 is out of range"),
    (4, -1, "frac_width=-1 is out of range"), (8.0, 4, "must be an integer"), (True, 0, "must be an integer"),
])
def test_fixed_point_rejects_bad_widths(width, frac, message):
    with pytest.raises(ValueError, match=message):
        fixed_point(torch.zeros(2), width, frac)


# ----------------------------------------------------------------------------- the pass

def test_by_type_quantizes_every_linear_with_the_given_widths():
    g = _graph()
    q, info = quantize_transform_pass(g, by_type())
    linear = [n for n, t in g.node_types().items() if t == "linear"]
    assert sorted(info["quantized"]) == linear == ["seq_blocks_2", "seq_blocks_4", "seq_blocks_6"]
    for node in linear:
        m = q.modules[node]
        assert isinstance(m, LinearInteger)
        assert (m.data_in_width, m.data_in_frac_width, m.weight_width, m.weight_frac_width) == (8, 4, 4, 2)
    # MASE's by-type search space quantizes nothing: ours changes the outputs
    x = torch.randn(64, 16)
    assert not torch.equal(q(x), g(x))


def test_linear_integer_matches_hand_quantized_forward():
    torch.manual_seed(1)
    linear = nn.Linear(3, 2)
    q = LinearInteger.from_linear(linear, INT)
    x = torch.tensor([[0.30, -1.03, 2.71]])
    expected = fixed_point(x, 8, 4) @ fixed_point(linear.weight, 4, 2).T + fixed_point(linear.bias, 8, 4)
    assert torch.equal(q(x), expected)
    # spot-check one hand-computed operand: 2.71 * 16 = 43.36 -> 43 -> 2.6875
    assert fixed_point(x, 8, 4)[0, 2].item() == 2.6875


def test_by_name_quantizes_only_the_named_layer():
    g = _graph()
    args = {"by": "name", "default": {"config": {"name": "NA"}}, "seq_blocks_4": {"config": INT}}
    q, info = quantize_transform_pass(g, args)
    assert list(info["quantized"]) == ["seq_blocks_4"]
    assert info["float"] == ["seq_blocks_2", "seq_blocks_6"]
    assert [type(q.modules[n]).__name__ for n in ("seq_blocks_2", "seq_blocks_4", "seq_blocks_6")] == \
        ["Linear", "LinearInteger", "Linear"]


def test_default_applies_to_unnamed_linear_layers():
    args = {"by": "name", "default": {"config": INT}, "seq_blocks_6": {"config": {"name": "NA"}}}
    _, info = quantize_transform_pass(_graph(), args)
    assert sorted(info["quantized"]) == ["seq_blocks_2", "seq_blocks_4"] and info["float"] == ["seq_blocks_6"]


def test_pass_leaves_caller_graph_and_config_unchanged():
    g = _graph()
    args = by_type()
    before_args = copy.deepcopy(args)
    before_state = {k: v.clone() for k, v in g.model.state_dict().items()}
    x = torch.randn(32, 16)
    y = g(x)
    quantize_transform_pass(g, args)
    q2, info2 = quantize_transform_pass(g, args)  # a config works twice (MASE pops its keys)
    assert args == before_args
    assert all(type(m) is not LinearInteger for m in g.modules.values())
    assert all(torch.equal(before_state[k], v) for k, v in g.model.state_dict().items())
    assert torch.equal(g(x), y) and len(info2["quantized"]) == 3


def test_requantizing_starts_from_float_weights():
    g = _graph()
    coarse, _ = quantize_transform_pass(g, by_type(weight_width=2, weight_frac_width=1))
    fine_from_coarse, _ = quantize_transform_pass(coarse, by_type(weight_width=16, weight_frac_width=8))
    fine_from_float, _ = quantize_transform_pass(g, by_type(weight_width=16, weight_frac_width=8))
    x = torch.randn(64, 16)
    assert torch.equal(fine_from_coarse(x), fine_from_float(x))


@pytest.mark.parametrize("args, message", [
    ({"by": "kind"}, "by.*'kind' is invalid"),
    ({"by": "name", "seq_blocks_9": {"config": INT}}, "'seq_blocks_9' is not a node name"),
    ({"by": "type", "conv2d": {"config": INT}}, "'conv2d' is not a node type"),
    ({"by": "name", "seq_blocks_0": {"config": INT}}, "'seq_blocks_0' is a batch_norm1d node"),
    (by_type(weight_width=40), r"weight_width=40 is out of range; allowed 1 <= weight_width <= 32"),
    (by_type(data_in_frac_width=9), r"data_in_frac_width=9 is out of range; allowed 0 <= data_in_frac_width <= 8"),
    (by_type(bias_width=8.5), "bias_width=8.5 must be an integer"),
    (by_type(weight_witdh=4), r"unknown config key\(s\) \['weight_witdh'\]"),
    (by_type(name="float16"), "name='float16' is unknown"),
    ({"by": "type", "linear": {"config": {"name": "integer", "data_in_width": 8}}}, "config lacks"),
    ({"by": "type", "linear": INT}, "must be a table with a 'config' table"),
])
def test_bad_pass_args_raise_one_clear_error(args, message):
    with pytest.raises(ValueError, match=message):
        quantize_transform_pass(_graph(), args)


def test_trials_copy_only_replaced_layers_and_never_change_each_other():
    """Copy on write: untouched modules are shared, yet no trial changes the float graph or an earlier trial."""
    g = _graph()
    x = torch.randn(64, 16)
    before_state = {k: v.clone() for k, v in g.model.state_dict().items()}
    y = g(x)
    first, _ = quantize_transform_pass(g, by_type())
    with torch.no_grad():
        first_out = first(x)
    assert torch.equal(first(x), first_out)  # with autograd: fake_quantize on every operand, the same values
    assert first.modules["seq_blocks_0"].running_mean is g.modules["seq_blocks_0"].running_mean  # shared, not copied
    first.model.train()  # modes stay per graph
    assert not any(m.training for m in g.modules.values())
    first.model.eval()
    for width in range(4, 17):  # many later trials, by type and by name
        quantize_transform_pass(g, by_type(weight_width=width, weight_frac_width=1))
        quantize_transform_pass(first, {"by": "name", "seq_blocks_4": {"config": {**INT, "data_in_width": width}}})
    assert all(type(m) is not LinearInteger for m in g.modules.values())
    assert all(torch.equal(before_state[k], v) for k, v in g.model.state_dict().items())
    assert torch.equal(g(x), y)
    with torch.no_grad():
        assert torch.equal(first(x), first_out)
    assert first.modules["seq_blocks_4"].weight_width == 4
