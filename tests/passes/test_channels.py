"""Channel passes: shapes and parameter counts per mode, consistency errors, no mutation."""
import copy

import pytest
import torch
from torch import nn

from labhelpers import graph, models
from labhelpers.passes import channels as ch

# JSC-Three-Linear: BN(16)=32, Linear(16,16)=272, Linear(16,16)=272, Linear(16,5)=85 parameters.
BASE_PARAMS = 661


@pytest.fixture
def g():
    torch.manual_seed(0)
    return graph.trace(models.build("jsc-three-linear"))


def _by_name(**configs):
    args = {"by": "name", "default": {"config": {"name": None}}}
    args.update({node: {"config": config} for node, config in configs.items()})
    return args


def _linear_shapes(gr):
    return [(m.in_features, m.out_features) for m in gr.modules.values() if isinstance(m, nn.Linear)]


def test_double_everything_as_in_task_1(g):
    args = _by_name(seq_blocks_2={"name": "output_only", "channel_multiplier": 2},
                    seq_blocks_4={"name": "both", "channel_multiplier": 2},
                    seq_blocks_6={"name": "input_only", "channel_multiplier": 2})
    before = copy.deepcopy(args)
    out, info = ch.redefine_linear_transform_pass(g, args)
    assert args == before, "the pass must not modify the caller's config"
    assert _linear_shapes(out) == [(16, 32), (32, 32), (32, 5)]
    assert _linear_shapes(g) == [(16, 16), (16, 16), (16, 5)], "the input graph must stay untouched"
    # 32 + (16*32+32) + (32*32+32) + (32*5+5) = 32 + 544 + 1056 + 165
    assert models.count_params(out) == 1797 == models.mlp_params((16, 32, 32, 5))
    assert models.count_params(g) == BASE_PARAMS
    assert info["layers"]["params_after"].tolist() == [544, 1056, 165]
    assert out(torch.randn(7, 16)).shape == (7, 5)


def test_separate_input_and_output_multipliers_reach_16_32_64_5(g):
    args = _by_name(seq_blocks_2={"name": "output_only", "channel_multiplier": 2},
                    seq_blocks_4={"name": "both", "channel_multiplier_input": 2, "channel_multiplier_output": 4},
                    seq_blocks_6={"name": "input_only", "channel_multiplier": 4})
    out, _ = ch.redefine_linear_transform_pass(g, args)
    assert _linear_shapes(out) == [(16, 32), (32, 64), (64, 5)]
    assert models.count_params(out) == 32 + (16 * 32 + 32) + (32 * 64 + 64) + (64 * 5 + 5)
    assert ch.hidden_widths(out) == (32, 64)


@pytest.mark.parametrize("multipliers, hidden", [((1, 1), (16, 16)), ((2, 4), (32, 64)), ((5, 3), (80, 48)),
                                                 ((0.5, 8), (8, 128))])
def test_multiplier_pass_args_builds_consistent_networks(g, multipliers, hidden):
    out, _ = ch.redefine_linear_transform_pass(g, ch.multiplier_pass_args(g, multipliers))
    assert ch.hidden_widths(out) == hidden
    assert models.count_params(out) == models.mlp_params((16, *hidden, 5))
    # the same widths as building the model directly
    assert models.count_params(out) == models.count_params(models.build("jsc-three-linear", hidden=list(hidden)))


def test_inconsistent_config_names_both_layers_and_widths(g):
    # the seed's independent a, b, c, d with b != a: Linear(16,32) then Linear(48, ...)
    args = _by_name(seq_blocks_2={"name": "output_only", "channel_multiplier": 2},
                    seq_blocks_4={"name": "both", "channel_multiplier_input": 3, "channel_multiplier_output": 2},
                    seq_blocks_6={"name": "input_only", "channel_multiplier": 2})
    with pytest.raises(ValueError, match=r"seq_blocks_2 outputs 32 features but seq_blocks_4 expects 48 inputs"):
        ch.redefine_linear_transform_pass(g, args)


@pytest.mark.parametrize("config, message", [
    ({"seq_blocks_2": {"name": "input_only", "channel_multiplier": 2}}, "model input has 16"),
    ({"seq_blocks_6": {"name": "output_only", "channel_multiplier": 2}}, "5 classes"),
    ({"seq_blocks_2": {"name": "widen", "channel_multiplier": 2}}, "name='widen' is unknown"),
    ({"seq_blocks_2": {"name": "output_only"}}, "needs 'channel_multiplier'"),
    ({"seq_blocks_2": {"name": "output_only", "channel_multiplier": -1}}, "must be a positive number"),
    ({"seq_blocks_2": {"name": "output_only", "channel_multiplier": 0.3}}, "not a positive whole number"),
    ({"seq_blocks_2": {"name": "output_only", "multiplier": 2}}, "keys \\['multiplier'\\] are unknown"),
])
def test_bad_configs_raise_one_clear_error(g, config, message):
    with pytest.raises(ValueError, match=message):
        ch.redefine_linear_transform_pass(g, _by_name(**config))


def test_unknown_node_and_wrong_multiplier_count(g):
    with pytest.raises(ValueError, match="seq_blocks_9"):
        ch.redefine_linear_transform_pass(g, _by_name(seq_blocks_9={"name": None}))
    with pytest.raises(ValueError, match="one per hidden layer"):
        ch.multiplier_pass_args(g, (2, 2, 2))


def test_relu_pass_gives_plain_relus_with_widths(g):
    widened, _ = ch.redefine_linear_transform_pass(g, ch.multiplier_pass_args(g, (2, 4)))
    out, info = ch.redefine_relu_pass(widened)
    relus = [m for m in out.modules.values() if isinstance(m, nn.ReLU)]
    assert len(relus) == 4 and not any(r.inplace for r in relus)
    assert info["relus"]["width"].tolist() == [16, 32, 64, 5]
    x = torch.randn(3, 16)
    assert torch.equal(out.model.eval()(x), widened.model.eval()(x))
    with pytest.raises(ValueError, match="takes no pass_args"):
        ch.redefine_relu_pass(widened, {"by": "type"})


def test_batch_norm_pass_resizes_only_mismatched_norms():
    model = nn.Sequential(nn.Linear(16, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 5))
    g = graph.trace(model)
    # fx names the nodes of a bare Sequential "_0", "_1", ...
    args = {"by": "name", "_0": {"config": {"name": "output_only", "channel_multiplier": 3}},
            "_3": {"config": {"name": "input_only", "channel_multiplier": 3}}}
    widened, _ = ch.redefine_linear_transform_pass(g, args)
    fixed, info = ch.redefine_batch_norm_pass(widened)
    assert info["resized"].to_dict("records") == [{"node": "_1", "before": 8, "after": 24}]
    assert fixed.model.train()(torch.randn(4, 16)).shape == (4, 5)
    _, info = ch.redefine_batch_norm_pass(g)
    assert info["resized"].empty
