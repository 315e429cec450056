"""The search package's own seams: one storage resolver, the explicit kind map, the evaluator's context,
a space's fixed part, and the trial metrics format (one user attribute, old studies still read)."""
from __future__ import annotations

import optuna
import pytest
from optuna.storages._heartbeat import is_heartbeat_enabled

from labhelpers import search
from labhelpers.search import storage

GRID = [[16, 8], [8, 4]]


def _quantize_section(**linear):
    return {"kind": "quantize", "setup": {"by": "name"},
            "seed": {"default": {"config": {"name": ["NA"]}},
                     "fc1": {"config": {"name": ["integer"], "data_in": GRID, "weight": [[8, 4]], **linear}}}}


def test_one_resolver_for_every_storage_spec(tmp_path):
    default = search.get_storage(None, tmp_path / "run")
    assert isinstance(default, storage.HeartbeatJournalStorage) and is_heartbeat_enabled(default)
    assert (tmp_path / "run" / "journal.log").is_file()
    assert search.resolve_spec(None, tmp_path / "run") == str(tmp_path / "run" / "journal.log")
    assert isinstance(search.get_storage(str(tmp_path / "j.log")), storage.HeartbeatJournalStorage)
    assert isinstance(search.get_storage("memory"), optuna.storages.InMemoryStorage)
    rdb = search.get_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_s=2)
    assert isinstance(rdb, optuna.storages.RDBStorage) and rdb.get_heartbeat_interval() == 2
    assert search.get_storage(default) is default
    with pytest.raises(ValueError, match="needs a run folder"):
        search.get_storage(None)
    with pytest.raises(ValueError, match="is not a database URL"):
        search.get_storage("redis://localhost")


def test_kinds_are_one_explicit_map_without_import_side_effects():
    import labhelpers.nas  # noqa: F401  (no longer registers anything)

    assert set(search.KINDS) >= {"quantize", "architecture"}
    assert search.get_kind("architecture").metrics[0] == "accuracy"
    with pytest.raises(ValueError, match=r"kind='nope' is unknown; choose one of \[.*'architecture'.*'quantize'"):
        search.get_kind("nope")
    kind = search.register_kind("toy-kind", lambda table: None, lambda cfg, **kw: None, ("value",))
    try:
        assert search.get_kind("toy-kind") is kind
    finally:
        search.KINDS.pop("toy-kind")


def test_an_evaluator_carries_its_context_into_the_study():
    space = search.Space({"x": [1, 2]}, to_config=lambda p: p, fixed={"by": "toy"})
    evaluate = search.Evaluator(lambda c: {"value": float(c["x"])}, {"dataset_fingerprint": "abc"})
    assert evaluate({"x": 2}) == {"value": 2.0}
    search.register_kind("toy-context", lambda table: space, lambda cfg, **kw: evaluate, ("value",))
    try:
        cfg = search.parse_config({"search": {"search_space": {"kind": "toy-context"},
                                              "strategy": {"setup": {"sampler": "brute-force"},
                                                           "metrics": {"value": {"direction": "maximize"}}}}})
        result = search.run_config(cfg, storage="memory", progress=False)
    finally:
        search.KINDS.pop("toy-context")
    context = result.study.user_attrs[search.CONTEXT_ATTR]
    assert context["dataset_fingerprint"] == "abc" and context["kind"] == "toy-context" and context["by"] == "toy"
    assert search.config_context(cfg, lambda c: {}) == {"kind": "toy-context"}  # a plain function has none


def test_a_space_has_a_fixed_part():
    space = search.quantize_space(_quantize_section())
    assert list(space.choices) == ["fc1/data_in"]
    assert space.fixed == {"by": "name", "seed": {"default": {"name": "NA"},
                                                  "fc1": {"name": "integer", "weight": (8, 4)}}}
    assert space.to_config({"fc1/data_in": (8, 4)})["fc1"]["config"]["weight_frac_width"] == 4
    lab4 = search.hidden_space([16, 32], [8], epochs=3)
    assert list(lab4.choices) == ["h1"] and lab4.fixed["hidden"] == {"h2": 8} and lab4.fixed["train"]["epochs"] == 3
    context = search.study_context(lab4, search.Objective({"accuracy": ("maximize", 1.0)}), "grid")
    assert context["train"]["epochs"] == 3 and context["hidden"] == {"h2": 8}


def test_metrics_are_one_user_attribute_and_old_studies_still_read():
    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(value=1.0, user_attrs={"accuracy": 0.5, "requeued": True}))
    study.add_trial(optuna.trial.create_trial(value=1.0, user_attrs={search.METRICS_ATTR: {"accuracy": 0.7}}))
    assert [search.metrics_of(t) for t in study.trials] == [{"accuracy": 0.5, "requeued": True}, {"accuracy": 0.7}]


def test_quantize_space_searches_rounding_and_overflow_modes():
    """The pass's rounding/overflow fields are search fields like the widths; a bad mode names the field."""
    section = {"kind": "quantize", "seed": {"linear": {"config": {
        "name": "integer", "data_in": [[8, 4]], "weight": [[8, 4]], "bias": [[8, 4]],
        "rounding": ["nearest-even", "truncate"], "overflow": "wrap"}}}}
    space = search.quantize_space(section)
    assert space.choices == {"linear/rounding": ["nearest-even", "truncate"]}
    configs = [space.to_config(p)["linear"]["config"] for p in space.grid()]
    assert [(c["rounding"], c["overflow"]) for c in configs] == [("nearest-even", "wrap"), ("truncate", "wrap")]
    section["seed"]["linear"]["config"]["overflow"] = "clip"
    with pytest.raises(ValueError, match="overflow='clip' is not allowed: use one of 'saturate', 'wrap'"):
        search.quantize_space(section)


def test_register_sampler_adds_a_strategy_to_run_and_configs():
    space = search.Space({"x": [1, 2, 3]}, to_config=lambda p: p)
    made = []

    def factory(space_, seed):
        made.append(seed)
        return optuna.samplers.BruteForceSampler(seed=seed)

    assert search.register_sampler("toy-exhaustive", factory, exhaustive=True) is factory
    try:
        result = search.run(space, lambda c: {"value": float(c["x"])}, search.Objective({"value": ("maximize", 1.0)}),
                            sampler="toy-exhaustive", n_trials=50, seed=3, storage="memory", progress=False)
        assert made == [3] and len(result.table) == 3   # exhaustive: the budget is capped at the space's size
        assert result.study.user_attrs[search.CONTEXT_ATTR]["sampler"] == "toy-exhaustive"
        cfg = search.parse_config({"model": {"name": "jsc-tiny"}, "search": {"search_space": _quantize_section(),
                                              "strategy": {"setup": {"sampler": "toy-exhaustive"},
                                                           "metrics": {"accuracy": {"direction": "maximize"}}}}})
        assert cfg.sampler == "toy-exhaustive"
    finally:
        search.SAMPLERS.pop("toy-exhaustive")
        search.EXHAUSTIVE.discard("toy-exhaustive")
    with pytest.raises(ValueError, match="sampler='toy-exhaustive' is unknown"):
        search.make_sampler("toy-exhaustive", space, 0)
    with pytest.raises(ValueError, match="'brute-force' is built in; register yours under another name"):
        search.register_sampler("brute-force", factory)
    with pytest.raises(ValueError, match="factory must be callable"):
        search.register_sampler("toy", None)


def test_brute_force_self_check_names_repeats_misses_and_an_unseeded_order(capsys):
    from labhelpers import checks

    space = search.Space({"a": [1, 2], "b": ["x", "y", "z"]}, to_config=lambda p: p)

    class FirstPoint(optuna.samplers.BaseSampler):   # a wrong strategy: trial k gets point k // 2
        def __init__(self, space_, seed):
            self.points = [space_.encode(p) for p in space_.grid()]

        def infer_relative_search_space(self, study, trial):
            return {}

        def sample_relative(self, study, trial, search_space):
            return {}

        def sample_independent(self, study, trial, name, distribution):
            return self.points[trial.number // 2][name]

    try:
        search.register_sampler("toy-wrong", FirstPoint)
        with pytest.raises(AssertionError, match="without exhaustive=True"):
            checks.check_brute_force("toy-wrong", space)
        search.register_sampler("toy-wrong", FirstPoint, exhaustive=True)
        with pytest.raises(AssertionError, match=r"seed 0: 6 trials visited 3 distinct points of 6; repeated \[\{'a': 1"):
            checks.check_brute_force("toy-wrong", space)
        search.register_sampler("toy-wrong", lambda s, seed: optuna.samplers.BruteForceSampler(seed=0), exhaustive=True)
        with pytest.raises(AssertionError, match="visit the points in the same order: shuffle them with the seed"):
            checks.check_brute_force("toy-wrong", space)
        search.register_sampler("toy-wrong", lambda s, seed: optuna.samplers.BruteForceSampler(seed=seed), exhaustive=True)
        checks.check_brute_force("toy-wrong", space)
        assert "brute-force strategy check passed" in capsys.readouterr().out
    finally:
        search.SAMPLERS.pop("toy-wrong")
        search.EXHAUSTIVE.discard("toy-wrong")
    with pytest.raises(AssertionError, match="no search strategy is registered as 'toy-wrong'"):
        checks.check_brute_force("toy-wrong", space)


def test_score_self_check_names_the_wrong_metric_and_carried_state():
    from labhelpers import checks

    def evaluate(config):
        return {"accuracy": 0.5 + config["w"] / 100, "bops": 10.0 * config["w"]}

    checks.check_score(evaluate, evaluate, [{"w": 8}, {"w": 4}])
    with pytest.raises(AssertionError, match="call 1: bops = 81.0, metrics.evaluator gives 80.0: your BOPs function"):
        checks.check_score(lambda c: {**evaluate(c), "bops": 10.0 * c["w"] + 1}, evaluate, [{"w": 8}])
    with pytest.raises(AssertionError, match=r"score returned \['accuracy'\] but not \['bops'\]"):
        checks.check_score(lambda c: {"accuracy": evaluate(c)["accuracy"]}, evaluate, [{"w": 8}])
    first = []

    def sticky(config):   # keeps the first config's result, like a loop that quantizes the last trial's graph
        first.append(config)
        return evaluate(first[0])

    with pytest.raises(AssertionError, match="call 2: accuracy = 0.58, metrics.evaluator gives 0.54: score the quantized"):
        checks.check_score(sticky, evaluate, [{"w": 8}, {"w": 4}])
    with pytest.raises(AssertionError, match="changed the pass_args"):
        checks.check_score(lambda c: evaluate(c) | {"x": c.setdefault("x", 1)}, evaluate, [{"w": 8}])


def test_best_so_far_plots_the_statistic_the_tables_quote():
    import matplotlib
    matplotlib.use("Agg")
    import pandas as pd

    from labhelpers import plots

    curves = pd.DataFrame({"sampler": ["s"] * 6, "seed": [0, 0, 1, 1, 2, 2], "trial": [1, 2] * 3,
                           "best": [1.0, 2.0, 1.0, 2.0, 4.0, 4.0]})
    summary = search.curve_summary(curves, 4.0)
    assert summary["best_median"].tolist() == [1.0, 2.0] and summary["best_mean"].tolist() == [2.0, 8 / 3]
    left, right = plots.best_so_far(summary, center="median")
    assert left.lines[0].get_ydata().tolist() == [1.0, 2.0] and right.lines[0].get_ydata().tolist() == [3.0, 2.0]
    assert right.get_ylabel().startswith("median regret")
    with pytest.raises(ValueError, match="center"):
        plots.best_so_far(summary, center="mode")
