"""Size, MACs, FLOPs, BOPs of both models against hand computation; accuracy, latency, combining."""
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from torchmetrics.classification import MulticlassAccuracy

from labhelpers import graph, metrics, models
from labhelpers.data import JSC
from labhelpers.passes import quantize_transform_pass

Q = dict(name="integer", data_in_width=6, data_in_frac_width=3, weight_width=4, weight_frac_width=2,
         bias_width=8, bias_frac_width=4)


def _graph(name):
    torch.manual_seed(0)
    return graph.trace(models.build(name).eval())


def _tiny_jsc(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3 * n, 16, generator=g)
    y = torch.randint(0, 5, (3 * n,), generator=g)
    return JSC(x[:n], y[:n], x[n:2 * n], y[n:2 * n], x[2 * n:], y[2 * n:], source="sim", origin="test",
               scaler_mean=np.zeros(16), scaler_scale=np.ones(16))


# ----------------------------------------------------------------------------- size

def test_size_bits_float_models_by_hand():
    # BatchNorm1d(16): weight, bias, running_mean, running_var = 4 * 16 float32 (num_batches_tracked excluded)
    bn = 4 * 16 * 32
    assert metrics.costs(_graph("jsc-tiny"))["size_bits"] == bn + (16 * 5 + 5) * 32 == 4768
    params = (16 * 16 + 16) + (16 * 16 + 16) + (16 * 5 + 5)
    assert metrics.costs(_graph("jsc-three-linear"))["size_bits"] == bn + params * 32 == 22176


def test_size_bits_quantized_counts_weight_and_bias_widths():
    q, _ = quantize_transform_pass(_graph("jsc-tiny"), {"by": "type", "linear": {"config": Q}})
    assert metrics.costs(q)["size_bits"] == 2048 + 80 * 4 + 5 * 8
    args = {"by": "name", "default": {"config": {"name": "NA"}}, "seq_blocks_4": {"config": Q},
            "seq_blocks_6": {"config": {**Q, "weight_width": 2, "weight_frac_width": 1, "bias_width": 3, "bias_frac_width": 0}}}
    q3, _ = quantize_transform_pass(_graph("jsc-three-linear"), args)
    table = metrics.layer_table(q3)
    assert table.loc["seq_blocks_2", "size_bits"] == 272 * 32
    assert table.loc["seq_blocks_4", "size_bits"] == 256 * 4 + 16 * 8
    assert table.loc["seq_blocks_6", "size_bits"] == 80 * 2 + 5 * 3
    assert table.loc["total", "size_bits"] == 2048 + 272 * 32 + 256 * 4 + 16 * 8 + 80 * 2 + 5 * 3


def test_size_bits_excludes_num_batches_tracked():
    bn = _graph("jsc-tiny").modules["seq_blocks_0"]
    assert "num_batches_tracked" not in metrics.tensor_bits(bn)
    assert set(metrics.tensor_bits(bn)) == {"weight", "bias", "running_mean", "running_var"}


# ----------------------------------------------------------------------------- MACs and FLOPs

def test_macs_flops_by_hand():
    tiny = metrics.layer_table(_graph("jsc-tiny"))
    assert tiny["macs"].tolist() == [16, 0, 80, 0, 96]          # BN folded: 1 MAC/feature; ReLU 0
    assert tiny["flops"].tolist() == [32, 16, 160, 5, 213]      # 2 FLOPs/MAC; ReLU 1 comparison/element
    three = metrics.costs(_graph("jsc-three-linear"))
    assert three["macs"] == 16 + 256 + 256 + 80 == 608
    assert three["flops"] == 2 * 608 + (16 + 16 + 16 + 5) == 1269


@pytest.mark.parametrize("name", ["jsc-tiny", "jsc-three-linear"])
def test_linear_flops_match_torch_flop_counter(name):
    g = _graph(name)
    table = metrics.layer_table(g)
    for node, module in g.modules.items():
        if table.loc[node, "type"] != "linear":
            continue
        with FlopCounterMode(display=False) as counter:
            module(torch.zeros(1, module.in_features))
        assert counter.get_total_flops() == table.loc[node, "flops"] == 2 * table.loc[node, "macs"]


# ----------------------------------------------------------------------------- BOPs

def test_bops_by_hand():
    assert metrics.dense_bops(16, 5, 32, 32) == 5 * 16 * (32 * 32 + 32 + 32 + 4) == 87360
    assert metrics.costs(_graph("jsc-tiny"))["bops"] == 87360
    q, _ = quantize_transform_pass(_graph("jsc-tiny"), {"by": "type", "linear": {"config": Q}})
    assert metrics.costs(q)["bops"] == 80 * (6 * 4 + 6 + 4 + 4) == 3040
    assert metrics.costs(q)["mac_bitops"] == 80 * 6 * 4
    args = {"by": "name", "default": {"config": {"name": "NA"}}, "seq_blocks_4": {"config": Q}}
    q3, _ = quantize_transform_pass(_graph("jsc-three-linear"), args)
    expected = 256 * (32 * 32 + 64 + 4) + 256 * (6 * 4 + 6 + 4 + 4) + 80 * (32 * 32 + 64 + 4)
    assert metrics.costs(q3)["bops"] == expected


def test_bops_log2_term_for_non_power_of_two():
    assert metrics.dense_bops(10, 3, 8, 4) == pytest.approx(30 * (32 + 12 + math.log2(10)))


def test_layer_table_total_row_equals_costs():
    q, _ = quantize_transform_pass(_graph("jsc-three-linear"), {"by": "type", "linear": {"config": Q}})
    table, totals = metrics.layer_table(q), metrics.costs(q)
    for column in metrics.COST_COLUMNS:
        assert table.loc["total", column] == totals[column]
        assert table.drop(index="total")[column].sum() == totals[column]


# ----------------------------------------------------------------------------- accuracy, latency, evaluator

def test_accuracy_loss_over_the_full_split():
    data, g = _tiny_jsc(), _graph("jsc-three-linear")
    x, y = data.split("test")
    with torch.no_grad():
        logits = g(x)
    result = metrics.accuracy_loss(g, data, "test")
    assert result["accuracy"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert result["loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-5)


def test_latency_reports_median_and_iqr_in_ms():
    result = metrics.latency(_graph("jsc-tiny"), torch.zeros(1, 16), min_run_time=0.01, warmup=1)
    assert set(result) == {"latency_ms", "latency_iqr_ms"}
    assert result["latency_ms"] > 0 and result["latency_iqr_ms"] >= 0


def test_evaluator_starts_every_call_from_float_and_keeps_threads():
    data, g = _tiny_jsc(), _graph("jsc-tiny")
    evaluate = metrics.evaluator(g, data)
    threads = torch.get_num_threads()
    first = evaluate({"by": "type", "linear": {"config": Q}})
    evaluate({"by": "type", "linear": {"config": {**Q, "weight_width": 2, "weight_frac_width": 1}}})
    assert evaluate({"by": "type", "linear": {"config": Q}}) == first
    assert torch.get_num_threads() == threads
    assert set(first) == {"accuracy", "loss", "params", "size_bits", "macs", "flops", "bops", "mac_bitops"}


def _q(dw, df, ww, wf):
    return dict(name="integer", data_in_width=dw, data_in_frac_width=df, weight_width=ww, weight_frac_width=wf,
                bias_width=8, bias_frac_width=4)


PINNED = [  # JSC-Three-Linear checkpoint on the simulated validation split, as commit 08a8042 measured them
    ({"by": "type", "default": {"config": {"name": "NA"}}, "linear": {"config": _q(8, 4, 8, 4)}},
     {"accuracy": 0.6379374861717224, "size_bits": 7080, "bops": 49728.0, "mac_bitops": 37888}),
    ({"by": "name", "default": {"config": {"name": "NA"}}, "seq_blocks_2": {"config": _q(4, 2, 2, 1)},
      "seq_blocks_6": {"config": _q(8, 4, 3, 2)}},
     {"accuracy": 0.5595625042915344, "size_bits": 11672, "bops": 287280.0, "mac_bitops": 266112}),
]


def test_checkpoint_evaluator_matches_the_plain_definitions_bit_for_bit():
    """The fast path equals fake_quantize + a torchmetrics object + F.cross_entropy exactly (benchmarks/
    bench_quant_eval.py --check compares every shipped Lab 3 configuration with the old implementation)."""
    root = Path(__file__).resolve().parent.parent
    evaluate = metrics.load_evaluator("jsc-three-linear", str(root / "checkpoints/jsc-three-linear.pt"), dataset="sim")
    x, y = evaluate.data.split("val")
    for pass_args, pinned in PINNED:
        result = evaluate(pass_args)
        assert {k: result[k] for k in pinned} == pinned
        q, _ = quantize_transform_pass(evaluate.graph, pass_args)
        logits = q(x)  # autograd on: fake_quantize on every operand, as before the fast path
        assert result["accuracy"] == float(MulticlassAccuracy(num_classes=5, average="micro")(logits, y))
        assert result["loss"] == torch.nn.functional.cross_entropy(logits, y, reduction="sum").item() / len(x)
        assert evaluate(pass_args) == result


# ----------------------------------------------------------------------------- combining

def test_weighted_sum_and_pareto_front():
    assert metrics.weighted_sum({"accuracy": 0.7, "bops": 1000.0}, {"accuracy": 1.0, "bops": -1e-4}) == pytest.approx(0.6)
    with pytest.raises(ValueError, match=r"\['latency_ms'\] that are not measured"):
        metrics.weighted_sum({"accuracy": 0.7}, {"latency_ms": -1.0})
    table = pd.DataFrame({"accuracy": [0.70, 0.72, 0.69, 0.72, 0.60],
                          "bops": [100, 300, 200, 300, 50]}, index=list("abcde"))
    front = metrics.pareto_front(table, {"accuracy": "maximize", "bops": "minimize"})
    assert list(front.index) == ["b", "d", "a", "e"]  # c is dominated by a; the tie b/d is kept
    with pytest.raises(ValueError, match="use one of 'maximize', 'minimize'"):
        metrics.pareto_front(table, {"accuracy": "max"})


# ----------------------------------------------------------------------------- the notebook's self-checks

def test_self_checks_pass_the_library_and_catch_wrong_answers(capsys):
    from labhelpers import checks
    from labhelpers.passes import fixed_point

    checks.check_fixed_point(fixed_point)
    checks.check_size_bits(lambda n, m, bw, bb: n * m * bw + m * bb)
    checks.check_flops(lambda n, m: 2 * n * m)
    checks.check_bops(metrics.dense_bops)
    assert capsys.readouterr().out.count("passed") == 4
    truncating = lambda x, w, f: torch.clamp(torch.floor(x * 2 ** f), -2 ** (w - 1), 2 ** (w - 1) - 1) / 2 ** f
    with pytest.raises(AssertionError, match="fixed_point"):
        checks.check_fixed_point(truncating)
    with pytest.raises(AssertionError, match="linear_size_bits"):
        checks.check_size_bits(lambda n, m, bw, bb: (n * m + m) * bw)
    with pytest.raises(AssertionError, match="linear_flops"):
        checks.check_flops(lambda n, m: n * m)
    with pytest.raises(AssertionError, match="dense_bops"):
        checks.check_bops(lambda n, m, ba, bw: n * m * ba * bw)


def test_binomial_interval_is_wilsons():
    # Worked by hand (Wilson, z = 1.959964): 13/20 -> centre 0.6258, half-width 0.1930.
    assert metrics.binomial_interval(13, 20) == pytest.approx((0.43285, 0.81881), abs=1e-5)
    assert metrics.binomial_interval(20, 20) == pytest.approx((0.83887, 1.0), abs=1e-5)
    low, high = metrics.binomial_interval(0, 20)
    assert low == pytest.approx(0.0, abs=1e-12) and 0.16 < high < 0.17
    wide, narrow = metrics.binomial_interval(5, 10, 0.99), metrics.binomial_interval(5, 10, 0.9)
    assert wide[0] < narrow[0] < 0.5 < narrow[1] < wide[1]
    with pytest.raises(ValueError, match="k=21, n=20"):
        metrics.binomial_interval(21, 20)


def test_mcnemar_is_the_exact_binomial_tail_of_the_discordant_rows():
    a = [True, True, True, False, False, True]
    b = [False, False, False, False, True, True]   # 3 rows only A got right, 1 only B, 2 concordant
    assert metrics.mcnemar(a, b) == {"a_only": 3, "b_only": 1, "p_value": 2 * (1 + 4) / 16}
    assert metrics.mcnemar(a, a) == {"a_only": 0, "b_only": 0, "p_value": 1.0}
    many = metrics.mcnemar([True] * 30 + [False] * 70, [False] * 30 + [True] * 70)
    assert many["p_value"] == pytest.approx(7.85013964559367e-05, rel=1e-9)   # scipy.stats.binomtest(30, 100)
    with pytest.raises(ValueError, match="same rows"):
        metrics.mcnemar([True], [True, False])
