"""Self-checks for students, in the style of MIT 6.5940's labs: fixed small inputs, expected values
worked out by hand, an assert, and a printed "passed".

Each ``check_*`` takes the student's function, runs it on the fixed cases and raises an
``AssertionError`` that shows the case, the expected and the obtained value.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def _compare(name: str, args: tuple, got, expected, tol: float = 0.0) -> None:
    got_list = got.tolist() if isinstance(got, torch.Tensor) else got
    ok = (math.isclose(got_list, expected, rel_tol=tol, abs_tol=tol) if isinstance(expected, float) and tol
          else got_list == expected)
    assert ok, f"{name}{args}: expected {expected}, got {got_list}"


# ============================================================================= Lab 3

# (width, frac_width, inputs, expected): ties round to even, values saturate at the ends of the range.
FIXED_POINT_CASES = (
    (4, 2, [0.1, 0.125, 0.375, -0.375, 1.9, -3.0], [0.0, 0.0, 0.5, -0.5, 1.75, -2.0]),
    (3, 0, [2.5, 3.5, -4.4, 0.49], [2.0, 3.0, -4.0, 0.0]),
    (3, 3, [0.3, 1.0, -1.0], [0.25, 0.375, -0.5]),
    (8, 4, [0.03125, 0.09375, 7.99, -8.5], [0.0, 0.125, 7.9375, -8.0]),
)


def check_fixed_point(fn) -> None:
    """``fn(x, width, frac_width)`` must return clamp(round(x 2^f), -2^(w-1), 2^(w-1)-1) / 2^f."""
    for width, frac, x, expected in FIXED_POINT_CASES:
        _compare("fixed_point", (x, width, frac), fn(torch.tensor(x), width, frac), expected)
    print("fixed-point quantizer check passed")


# (n_in, n_out, weight_width, bias_width) -> bits of weights and biases
SIZE_CASES = (((16, 5, 32, 32), 2720), ((16, 5, 8, 8), 680), ((16, 16, 4, 8), 1152), ((3, 2, 1, 2), 10))


def check_size_bits(fn) -> None:
    """``fn(n_in, n_out, weight_width, bias_width)``: bits to store a dense layer's weights and biases."""
    for args, expected in SIZE_CASES:
        _compare("linear_size_bits", args, fn(*args), expected)
    print("size check passed")


# (n_in, n_out) -> FLOPs of one input row, 1 MAC = 2 FLOPs
FLOP_CASES = (((16, 5), 160), ((16, 16), 512), ((3, 7), 42))


def check_flops(fn) -> None:
    """``fn(n_in, n_out)``: FLOPs of a dense layer on one row; also cross-checked with FlopCounterMode."""
    for args, expected in FLOP_CASES:
        with FlopCounterMode(display=False) as counter:
            nn.Linear(*args)(torch.zeros(1, args[0]))
        assert counter.get_total_flops() == expected, f"FlopCounterMode disagrees with the expected {expected}"
        _compare("linear_flops", args, fn(*args), expected)
    print("FLOPs check passed")


# (n_in, n_out, b_a, b_w) -> Baskin et al. BOPs m*n*(b_a*b_w + b_a + b_w + log2 n)
BOPS_CASES = (((16, 5, 32, 32), 87360.0), ((16, 5, 8, 8), 6720.0), ((16, 16, 4, 2), 4608.0),
              ((10, 3, 8, 4), 30 * (44 + math.log2(10))))


def check_bops(fn) -> None:
    """``fn(n_in, n_out, b_a, b_w)``: bit operations of a dense layer (Baskin et al.)."""
    for args, expected in BOPS_CASES:
        _compare("dense_bops", args, float(fn(*args)), expected, tol=1e-9)
    print("BOPs check passed")


# Hints for check_score: what a wrong value of each metric usually means.
SCORE_HINTS = {
    "accuracy": "score the quantized graph (not the float one) on the validation split, starting every call "
                "from the float graph",
    "loss": "score the quantized graph (not the float one) on the validation split, starting every call from the "
            "float graph",
    "size_bits": "your size function, or the widths you pass it",
    "flops": "your FLOPs function",
    "bops": "your BOPs function, or the widths you pass it (b_a is the input width, b_w the weight width)",
}


def check_score(fn, evaluate, configs) -> None:
    """``fn(pass_args) -> {metric: value}`` must give, config after config, what ``evaluate`` gives
    (``metrics.evaluator`` of the same float graph and split): quantize, evaluate, measure, from float every time."""
    import copy

    calls = list(configs) + list(configs[:1])   # the first config again: nothing may carry over between calls
    for i, config in enumerate(calls):
        kept = copy.deepcopy(config)
        got, expected = fn(config), evaluate(config)
        assert isinstance(got, dict), f"score must return a dict of metrics, got {type(got).__name__}"
        missing = sorted(set(expected) - set(got))
        assert not missing, (f"call {i + 1}: score returned {sorted(got)} but not {missing}: merge "
                             f"metrics.accuracy_loss(...) with the costs of the quantized graph")
        for key, value in expected.items():
            assert math.isclose(float(got[key]), float(value), rel_tol=1e-9, abs_tol=1e-12), (
                f"call {i + 1}: {key} = {got[key]}, metrics.evaluator gives {value}: "
                f"{SCORE_HINTS.get(key, 'use metrics.costs of the quantized graph')}")
        assert config == kept, f"call {i + 1}: score changed the pass_args it was given; passes copy, never edit"
    print("score loop check passed")


def check_brute_force(name: str, space, seeds=(0, 1)) -> None:
    """The strategy registered as ``name`` must visit every point of ``space`` exactly once in ``space.size``
    trials, for each seed, in an order that depends on the seed; and be registered as exhaustive."""
    import optuna

    from . import search
    from .search.liveness import quiet_optuna

    assert name in search.SAMPLERS, (f"no search strategy is registered as {name!r}: call "
                                     f"search.register_sampler({name!r}, MyBruteForce, exhaustive=True)")
    assert name in search.EXHAUSTIVE, (f"{name!r} is registered without exhaustive=True, so a run's budget is not "
                                       f"capped at the {space.size} points of the space")
    every = {tuple(sorted(space.to_optuna(p).items())) for p in space.grid()}
    orders = []
    for seed in seeds:
        with quiet_optuna():
            study = optuna.create_study(sampler=search.make_sampler(name, space, seed), direction="maximize")
            study.optimize(lambda trial: float(len(space.suggest(trial))), n_trials=space.size)
        seen = [tuple(sorted(t.params.items())) for t in study.trials]
        repeated = sorted({p for p in seen if seen.count(p) > 1})
        missed = sorted(every - set(seen))
        assert not repeated and not missed, (
            f"seed {seed}: {space.size} trials visited {len(set(seen))} distinct points of {space.size}; "
            f"repeated {[dict(p) for p in repeated[:2]]}, never visited {[dict(p) for p in missed[:2]]}")
        orders.append(seen)
    assert len(orders) < 2 or orders[0] != orders[1], (f"seeds {seeds[0]} and {seeds[1]} visit the points in the same "
                                                       f"order: shuffle them with the seed")
    print("brute-force strategy check passed")


# ============================================================================= Lab 4

# (multiplier of hidden layer 1, multiplier of hidden layer 2) -> (in, out) of JSC-Three-Linear's linear layers
CHANNEL_CASES = (
    ((1, 1), [(16, 16), (16, 16), (16, 5)]),
    ((2, 2), [(16, 32), (32, 32), (32, 5)]),
    ((2, 4), [(16, 32), (32, 64), (64, 5)]),
    ((5, 3), [(16, 80), (80, 48), (48, 5)]),
)


def check_channel_pass(fn) -> None:
    """``fn(m1, m2) -> Graph``: JSC-Three-Linear with hidden widths 16*m1 and 16*m2, ReLUs not in place."""
    for (m1, m2), expected in CHANNEL_CASES:
        graph = fn(m1, m2)
        linears = [(m.in_features, m.out_features) for m in graph.modules.values() if isinstance(m, nn.Linear)]
        _compare("linear shapes", (m1, m2), linears, expected)
        inplace = [n for n, m in graph.modules.items() if isinstance(m, nn.ReLU) and m.inplace]
        assert not inplace, f"ReLUs {inplace} are in place: use nn.ReLU(), not nn.ReLU(16) (which means inplace=True)"
        out = graph(torch.zeros(2, 16))
        _compare("output shape", (m1, m2), tuple(out.shape), (2, 5))
    print("channel pass check passed")


# (h1, h2) -> parameters: BatchNorm 2*16 + Linear(16,h1) + Linear(h1,h2) + Linear(h2,5), weights and biases
PARAM_CASES = (((16, 16), 661), ((32, 32), 1797), ((32, 64), 3013), ((80, 48), 5525), ((8, 128), 1965))


def check_param_count(fn) -> None:
    """``fn(h1, h2)``: trainable parameters of JSC-Three-Linear with hidden widths h1, h2 (worked by hand)."""
    for args, expected in PARAM_CASES:
        _compare("param_count", args, fn(*args), expected)
    print("parameter count check passed")


# Whole, consistent configs of JSC-Three-Linear's linear layers (seq_blocks_2, _4, _6), one mode at a time
# where possible; the expected widths are those of labhelpers.passes.channels.redefine_linear_transform_pass.
LINEAR_PASS_CASES = (
    ("output_only", {"seq_blocks_2": {"name": "output_only", "channel_multiplier": 2},
                     "seq_blocks_4": {"name": "input_only", "channel_multiplier": 2}}),
    ("input_only", {"seq_blocks_4": {"name": "output_only", "channel_multiplier": 3},
                    "seq_blocks_6": {"name": "input_only", "channel_multiplier": 3}}),
    ("both", {"seq_blocks_2": {"name": "output_only", "channel_multiplier": 2},
              "seq_blocks_4": {"name": "both", "channel_multiplier": 2},
              "seq_blocks_6": {"name": "input_only", "channel_multiplier": 2}}),
    ("both", {"seq_blocks_2": {"name": "output_only", "channel_multiplier_output": 2},
              "seq_blocks_4": {"name": "both", "channel_multiplier_input": 2, "channel_multiplier_output": 4},
              "seq_blocks_6": {"name": "input_only", "channel_multiplier_input": 4}}),
    ("no change (default name None)", {}),
)


def _traced(inplace_relus: bool = False):
    from . import graph, models

    model = models.build("jsc-three-linear")
    for module in model.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = inplace_relus
    return graph.trace(model)


def _linear_shapes(g) -> dict:
    return {node: (m.in_features, m.out_features) for node, m in g.modules.items() if isinstance(m, nn.Linear)}


def _pass_result(name: str, what: str, result):
    assert isinstance(result, tuple) and len(result) == 2, \
        f"{name} on {what}: a pass returns (graph, info), got {type(result).__name__}"
    return result[0]


def check_linear_pass(fn) -> None:
    """``fn(graph, pass_args) -> (graph, info)`` must resize JSC-Three-Linear's linear layers as the library's
    ``channels.redefine_linear_transform_pass`` does, in every mode, without touching the caller's graph or config."""
    import copy

    from .passes import channels

    for mode, nodes in LINEAR_PASS_CASES:
        pass_args = {"by": "name", "default": {"config": {"name": None}},
                     **{node: {"config": config} for node, config in nodes.items()}}
        kept, base = copy.deepcopy(pass_args), _traced()
        expected = _linear_shapes(channels.redefine_linear_transform_pass(base, pass_args)[0])
        got = _pass_result("linear pass", f"mode {mode}", fn(base, pass_args))
        for node, shape in _linear_shapes(got).items():
            assert shape == expected[node], (f"mode {mode!r}: {node} with config {nodes.get(node, 'default')} should "
                                             f"become Linear{expected[node]}, got Linear{shape}")
        assert _linear_shapes(base) == {n: (16, 16) if n != "seq_blocks_6" else (16, 5) for n in expected}, \
            f"mode {mode!r}: the caller's graph was changed; copy it first (graph.copy())"
        assert pass_args == kept, f"mode {mode!r}: the caller's pass_args were changed; never pop or edit them"
        _compare("output shape", (mode,), tuple(got(torch.zeros(2, 16)).shape), (2, 5))
    print("linear transform pass check passed")


def check_relu_pass(fn) -> None:
    """``fn(graph) -> (graph, info)``: every ReLU a fresh ``nn.ReLU()`` (not in place), nothing else changed."""
    base = _traced(inplace_relus=True)
    got = _pass_result("relu pass", "JSC-Three-Linear", fn(base))
    relus = [n for n, m in base.modules.items() if isinstance(m, nn.ReLU)]
    _compare("ReLU nodes", (), [n for n, m in got.modules.items() if isinstance(m, nn.ReLU)], relus)
    inplace = [n for n in relus if got.modules[n].inplace]
    assert not inplace, f"ReLUs {inplace} are still in place: replace each with nn.ReLU() (nn.ReLU(16) means inplace=True)"
    assert all(base.modules[n].inplace for n in relus), "the caller's graph was changed; copy it first (graph.copy())"
    _compare("linear shapes", (), _linear_shapes(got), _linear_shapes(base))
    print("ReLU pass check passed")


def check_train_and_score(fn, data, settings, batched, hidden=(16, 16), tol: float = 0.005) -> dict:
    """``fn(hidden, settings, init_seed) -> {"val_accuracy", "test_accuracy"}`` against the batched trainer.

    ``batched``: a table of ``labhelpers.training.train_many`` (e.g. ``nas.uniform_search(...).table``) with
    the row of ``hidden`` and init seed ``settings.seed``, trained with the same ``settings``. The batched
    trainer gives each network the result of training it alone up to float rounding, which grows over
    10 epochs (benchmarks/batched_equivalence.py: at most 0.0017 val, 0.0027 test over 50 networks), so
    ``tol`` is 0.005, well below the seed-to-seed spread. Returns the absolute differences.
    """
    row = batched[(batched["h1"] == hidden[0]) & (batched["h2"] == hidden[1]) & (batched["seed"] == settings.seed)]
    assert len(row) == 1, f"the batched table has no single row for hidden={hidden}, seed={settings.seed}"
    got = fn(tuple(hidden), settings, settings.seed)
    missing = {"val_accuracy", "test_accuracy"} - set(got)
    assert not missing, f"train_and_score must return a dict with {sorted(missing)} (got keys {sorted(got)})"
    diffs = {}
    for key in ("val_accuracy", "test_accuracy"):
        expected = float(row[key].iloc[0])
        diffs[key] = abs(float(got[key]) - expected)
        assert diffs[key] <= tol, (
            f"train_and_score{tuple(hidden)}: {key} {float(got[key]):.4f}, the batched trainer {expected:.4f} "
            f"(tolerance {tol}): seed torch with init_seed right before models.build(..., final_relu="
            f"settings.final_relu), train with training.train(model, data, settings), score with metrics.accuracy_loss")
    print("training loop check passed")
    return diffs


def check_per_layer_space(cfg, widths, settings) -> None:
    """A parsed search config (``search.parse_config``) for task 3: kind architecture, h1 and h2 over ``widths``,
    and the training settings of ``settings`` (a TrainSettings), every field."""
    assert cfg.kind == "architecture", f"[search.search_space] kind = {cfg.kind!r}: it must be \"architecture\""
    for name in ("h1", "h2"):
        got = cfg.space.choices.get(name, cfg.space.fixed.get("hidden", {}).get(name))
        got = got if isinstance(got, list) else [got]
        assert got == sorted(widths), f"hidden {name} = {got}: it must be the task's widths {sorted(widths)}"
    train = cfg.space.fixed["train"]
    for key, value in settings.to_dict().items():
        if key in train:
            assert train[key] == value, f"[search.search_space.train] {key} = {train[key]!r}, but the task trains with {value!r}"
    print("per-layer search space check passed")
