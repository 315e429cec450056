"""Search spaces from TOML, samplers, storage/resume, objectives, lookup-table replay, and bad configs."""
import copy

import numpy as np
import optuna
import pytest
import torch

from labhelpers import graph, metrics, models, search
from labhelpers.data import JSC
from labhelpers.passes import LinearInteger, quantize_transform_pass

GRID = [[16, 8], [8, 6], [8, 4], [4, 2]]


def _raw(by="type", key="linear", sampler="brute-force", **setup):
    return {
        "model": {"name": "jsc-tiny"},
        "data": {"source": "sim", "split": "val"},
        "search": {
            "search_space": {"kind": "quantize", "setup": {"by": by},
                             "seed": {"default": {"config": {"name": ["NA"]}},
                                      key: {"config": {"name": ["integer"], "data_in": GRID, "weight": GRID,
                                                       "bias": [[8, 4]]}}}},
            "strategy": {"setup": {"sampler": sampler, "seed": 0, **setup},
                         "metrics": {"accuracy": {"direction": "maximize"}}},
        },
    }


def _tiny_jsc(n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3 * n, 16, generator=g)
    y = (x[:, :5].argmax(1) + (torch.rand(3 * n, generator=g) < 0.3).long()) % 5  # learnable-ish labels
    return JSC(x[:n], y[:n], x[n:2 * n], y[n:2 * n], x[2 * n:], y[2 * n:], source="sim", origin="test",
               scaler_mean=np.zeros(16), scaler_scale=np.ones(16))


@pytest.fixture(scope="module")
def tiny_setup():
    torch.manual_seed(0)
    model = models.build("jsc-tiny").eval()
    with torch.no_grad():
        model.seq_blocks[2].weight.mul_(3.0)  # spread the weights so widths matter
    g = graph.trace(model)
    return g, metrics.evaluator(g, _tiny_jsc())


# ----------------------------------------------------------------------------- spaces

def test_space_sorts_choices_and_fixes_single_ones():
    cfg = search.parse_config(_raw())
    assert cfg.space.choices == {"linear/data_in": [(4, 2), (8, 4), (8, 6), (16, 8)],
                                 "linear/weight": [(4, 2), (8, 4), (8, 6), (16, 8)]}
    assert cfg.space.size == 16 and len(list(cfg.space.grid())) == 16
    args = cfg.space.to_config({"linear/data_in": (8, 6), "linear/weight": (4, 2)})
    assert args == {"by": "type", "default": {"config": {"name": "NA"}},
                    "linear": {"config": {"name": "integer", "data_in_width": 8, "data_in_frac_width": 6,
                                          "weight_width": 4, "weight_frac_width": 2, "bias_width": 8, "bias_frac_width": 4}}}


@pytest.mark.parametrize("by, key", [("type", "linear"), ("name", "seq_blocks_2")])
def test_space_configs_quantize_what_they_say(tiny_setup, by, key):
    g, _ = tiny_setup
    space = search.parse_config(_raw(by=by, key=key)).space
    for params in space.grid():
        q, info = quantize_transform_pass(g, space.to_config(params))
        m = q.modules["seq_blocks_2"]
        assert isinstance(m, LinearInteger) and list(info["quantized"]) == ["seq_blocks_2"]
        assert ((m.data_in_width, m.data_in_frac_width), (m.weight_width, m.weight_frac_width)) == \
            (params[f"{key}/data_in"], params[f"{key}/weight"])


def test_separate_width_lists_are_sorted_and_combined():
    raw = _raw()
    raw["search"]["search_space"]["seed"]["linear"]["config"] = {
        "name": ["integer"], "data_in_width": [8, 4, 16], "data_in_frac_width": [2],
        "weight_width": [8], "weight_frac_width": [3, 1], "bias": [[8, 4]]}
    space = search.parse_config(raw).space
    assert space.choices == {"linear/data_in_width": [4, 8, 16], "linear/weight_frac_width": [1, 3]}
    assert space.size == 6


# ----------------------------------------------------------------------------- brute force and other samplers

def test_brute_force_visits_every_point_once_and_finds_the_lookup_optimum(tiny_setup, tmp_path):
    _, evaluate = tiny_setup
    cfg = search.parse_config(_raw())
    table = search.exhaustive(cfg.space, evaluate, progress=False)
    result = search.run(cfg.space, evaluate, cfg.objective, sampler="brute-force", n_trials=100, seed=3,
                        study_name="bf", run_root=tmp_path, progress=False)
    names = list(cfg.space.choices)
    visited = [tuple(r) for r in result.table[names].itertuples(index=False)]
    assert len(visited) == 16 and len(set(visited)) == 16  # stops by itself after 16
    assert set(visited) == {tuple(r) for r in table[names].itertuples(index=False)}
    assert table["accuracy"].nunique() > 1  # the widths matter, so finding the optimum means something
    assert result.best["accuracy"].iloc[0] == table["accuracy"].max()
    assert {"accuracy", "loss", "size_bits", "bops", "macs", "flops"} <= set(search.metrics_of(result.study.trials[0]))
    for name in ("trials.csv", "trials.json", "best.json", "journal.log"):
        assert (tmp_path / "bf" / name).is_file()


def test_grid_sampler_covers_the_space(tiny_setup):
    _, evaluate = tiny_setup
    cfg = search.parse_config(_raw())
    result = search.run(cfg.space, evaluate, cfg.objective, sampler="grid", storage="memory", progress=False)
    assert len(result.table) == 16 and len(result.table[list(cfg.space.choices)].drop_duplicates()) == 16


def test_seeded_samplers_reproduce(tiny_setup):
    _, evaluate = tiny_setup
    cfg = search.parse_config(_raw())
    runs = [search.run(cfg.space, evaluate, cfg.objective, sampler=s, n_trials=12, seed=7, storage="memory",
                       progress=False).table for s in ("tpe", "tpe", "random")]
    assert runs[0].equals(runs[1])
    assert not runs[0].equals(runs[2])


def test_multi_objective_nsga2_returns_the_pareto_front(tiny_setup):
    _, evaluate = tiny_setup
    cfg = search.parse_config(_raw())
    objective = search.Objective({"accuracy": ("maximize", 1.0), "bops": ("minimize", 1.0)})
    result = search.run(cfg.space, evaluate, objective, sampler="nsga2", n_trials=12, storage="memory", progress=False)
    front = metrics.pareto_front(result.table.drop_duplicates(list(cfg.space.choices)), {"accuracy": "maximize", "bops": "minimize"})
    best = result.best.drop_duplicates(list(cfg.space.choices))
    assert sorted(map(tuple, best[["accuracy", "bops"]].values)) == sorted(map(tuple, front[["accuracy", "bops"]].values))


def test_sum_scaled_objective(tiny_setup):
    _, evaluate = tiny_setup
    raw = _raw(sum_scaled_metrics=True)
    raw["search"]["strategy"]["metrics"] = {"accuracy": {"direction": "maximize", "scale": 2.0},
                                            "bops": {"direction": "minimize", "scale": 1e-5}}
    cfg = search.parse_config(raw)
    result = search.run(cfg.space, evaluate, cfg.objective, sampler="random", n_trials=4, storage="memory", progress=False)
    row = result.table.iloc[0]
    assert row["score"] == pytest.approx(2.0 * row["accuracy"] - 1e-5 * row["bops"])


# ----------------------------------------------------------------------------- storage and resume

def test_rerun_resumes_the_study(tiny_setup, tmp_path):
    _, evaluate = tiny_setup
    cfg = search.parse_config(_raw(sampler="tpe"))
    kwargs = dict(sampler="tpe", seed=0, study_name="resume", run_root=tmp_path, progress=False)
    calls = []
    counting = lambda config: calls.append(1) or evaluate(config)
    first = search.run(cfg.space, counting, cfg.objective, n_trials=5, **kwargs)
    second = search.run(cfg.space, counting, cfg.objective, n_trials=8, **kwargs)
    third = search.run(cfg.space, counting, cfg.objective, n_trials=8, **kwargs)
    assert (len(first.table), len(second.table), len(third.table), len(calls)) == (5, 8, 8, 8)
    assert second.table.iloc[:5].equals(first.table)


def test_sqlite_url_storage(tiny_setup, tmp_path):
    _, evaluate = tiny_setup
    cfg = search.parse_config(_raw())
    url = f"sqlite:///{tmp_path / 'study.db'}"
    search.run(cfg.space, evaluate, cfg.objective, sampler="brute-force", n_trials=3, storage=url,
               study_name="sq", run_root=tmp_path, progress=False)
    again = search.run(cfg.space, evaluate, cfg.objective, sampler="brute-force", n_trials=5, storage=url,
                       study_name="sq", run_root=tmp_path, progress=False)
    assert len(again.table) == 5
    assert len(optuna.load_study(study_name="sq", storage=url).trials) == 5


def test_resuming_with_other_directions_is_refused(tiny_setup, tmp_path):
    _, evaluate = tiny_setup
    cfg = search.parse_config(_raw())
    search.run(cfg.space, evaluate, cfg.objective, n_trials=2, study_name="dir", run_root=tmp_path, progress=False)
    two = search.Objective({"accuracy": ("maximize", 1.0), "bops": ("minimize", 1.0)})
    with pytest.raises(ValueError, match="already exists with directions"):
        search.run(cfg.space, evaluate, two, n_trials=2, study_name="dir", run_root=tmp_path, progress=False)


def test_resuming_on_other_data_or_checkpoint_is_refused(tiny_setup, tmp_path):
    _, evaluate = tiny_setup
    cfg = search.parse_config(_raw())
    kwargs = dict(sampler="brute-force", study_name="ctx", run_root=tmp_path, progress=False)
    search.run(cfg.space, evaluate, cfg.objective, n_trials=2, context={"dataset_fingerprint": "aaaa"}, **kwargs)
    resumed = search.run(cfg.space, evaluate, cfg.objective, n_trials=3, context={"dataset_fingerprint": "aaaa"}, **kwargs)
    assert len(resumed.table) == 3
    with pytest.raises(ValueError, match="different dataset_fingerprint.*another --study-name"):
        search.run(cfg.space, evaluate, cfg.objective, n_trials=4, context={"dataset_fingerprint": "bbbb"}, **kwargs)


# ----------------------------------------------------------------------------- a custom kind (how Lab 4 plugs in)

def test_generic_space_and_registry():
    space = search.Space({"x": [3, 1, 2], "y": ["a", "b"]}, to_config=lambda p: p, kind="toy")
    objective = search.Objective({"value": ("minimize", 1.0)})
    result = search.run(space, lambda c: {"value": c["x"] + (c["y"] == "b")}, objective, sampler="brute-force",
                        storage="memory", progress=False)
    assert len(result.table) == 6 and result.best["value"].iloc[0] == 1
    search.register_kind("toy-test", lambda table: space, lambda cfg, **kw: None, ("value",))
    try:
        cfg = search.parse_config({"search": {"search_space": {"kind": "toy-test"},
                                              "strategy": {"metrics": {"value": {"direction": "minimize"}}}}})
        assert cfg.kind == "toy-test" and cfg.space is space
    finally:
        search.KINDS.pop("toy-test")


# ----------------------------------------------------------------------------- replay and efficiency

def test_replay_against_a_lookup_table():
    space = search.Space({"a": [1, 2, 3, 4], "b": [1, 2, 3, 4]}, to_config=lambda p: p)
    table = search.exhaustive(space, lambda p: {"acc": float(p["a"] * 10 + p["b"])}, progress=False)
    curves = search.replay(space, table, "acc", samplers=("brute-force", "random"), seeds=range(4), n_trials=16,
                           progress=False)
    bf = curves[curves["sampler"] == "brute-force"]
    assert (bf.groupby("seed")["distinct"].max() == 16).all()
    assert (bf.groupby("seed")["best"].max() == 44.0).all()
    summary = search.efficiency(curves, 44.0)
    assert summary.loc["brute-force", "reached"] == 4 and summary.loc["brute-force", "mean_regret_final"] == 0
    assert 1 <= summary.loc["brute-force", "median_trials"] <= 16
    # best-so-far never decreases
    assert (curves.groupby(["sampler", "seed"])["best"].diff().dropna() >= 0).all()


# ----------------------------------------------------------------------------- bad configs

def _mutate(path, value):
    raw = _raw()
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return raw


SP = ("search", "search_space")
LIN = (*SP, "seed", "linear", "config")


@pytest.mark.parametrize("raw, message", [
    ({**_raw(), "extra": {}}, r"config has unknown key\(s\) \['extra'\]"),
    (_mutate(("search", "strategy", "setup", "sampler"), "annealing"), "sampler='annealing' is unknown"),
    (_mutate(("search", "strategy", "setup", "n_trials"), 0), "n_trials=0 must be a positive integer"),
    (_mutate(("search", "strategy", "setup", "seed"), -1), "seed=-1 must be a non-negative integer"),
    (_mutate(("search", "strategy", "setup", "trials"), 3), r"unknown key\(s\) \['trials'\]"),
    (_mutate((*SP, "kind"), "pruning"), "kind='pruning' is unknown"),
    (_mutate((*SP, "setup", "by"), "module"), "by='module' is invalid"),
    (_mutate((*LIN, "weight"), [[40, 8]]), r"weight_width=40 is out of range"),
    (_mutate((*LIN, "weight"), [[4, 6]]), r"weight_frac_width=6 is out of range"),
    (_mutate((*LIN, "weight"), [[8, 4], [8, 4]]), "duplicate choices"),
    (_mutate((*LIN, "weight"), [8]), r"must be a \[width, frac_width\] pair"),
    (_mutate((*LIN, "weight_bits"), [8]), r"unknown key\(s\) \['weight_bits'\]"),
    (_mutate((*LIN, "weight_width"), [8]), "sets both 'weight' pairs and weight_width"),
    (_mutate(("search", "strategy", "metrics"), {"accuracy": {"direction": "up"}}), "direction='up' is invalid"),
    (_mutate(("search", "strategy", "metrics"), {"energy": {"direction": "minimize"}}), r"\['energy'\] are not metrics"),
    (_mutate(("model", "name"), "jsc-huge"), "name='jsc-huge' is unknown"),
    (_mutate(("data", "split"), "holdout"), "split='holdout' is unknown"),
])
def test_bad_configs_raise_one_clear_error(raw, message):
    with pytest.raises(ValueError, match=message):
        search.parse_config(copy.deepcopy(raw))


def test_frac_wider_than_some_width_choice_is_rejected():
    raw = _raw()
    raw["search"]["search_space"]["seed"]["linear"]["config"] = {
        "name": ["integer"], "data_in_width": [4, 8], "data_in_frac_width": [6], "weight": [[8, 4]], "bias": [[8, 4]]}
    with pytest.raises(ValueError, match=r"\(with data_in_width=4\) data_in_frac_width=6 is out of range"):
        search.parse_config(raw)


def test_missing_config_file():
    with pytest.raises(FileNotFoundError, match="config nowhere.toml does not exist"):
        search.load_config("nowhere.toml")


def test_resume_false_starts_again(tiny_setup, tmp_path):
    _, evaluate = tiny_setup
    cfg = search.parse_config(_raw())
    kwargs = dict(sampler="brute-force", seed=0, study_name="again", run_root=tmp_path, progress=False)
    search.run(cfg.space, evaluate, cfg.objective, n_trials=4, **kwargs)
    fresh = search.run(cfg.space, evaluate, cfg.objective, n_trials=3, resume=False, **kwargs)
    assert len(fresh.table) == 3 and list(fresh.table.index) == [0, 1, 2]


def test_figures_are_written(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from labhelpers import plots

    space = search.Space({"a": [1, 2, 3, 4], "b": [1, 2]}, to_config=lambda p: p)
    table = search.exhaustive(space, lambda p: {"acc": float(p["a"] + p["b"]), "bops": float(p["a"] * 10)}, progress=False)
    curves = search.replay(space, table, "acc", samplers=("brute-force", "tpe"), seeds=range(2), n_trials=8, progress=False)
    plots.save(plots.best_so_far(search.curve_summary(curves, 6.0)), tmp_path / "curves.png")
    front = metrics.pareto_front(table, {"acc": "maximize", "bops": "minimize"})
    plots.save(plots.pareto(table, front, "bops", "acc"), tmp_path / "front.png")
    plots.save(plots.metrics_by_config(table, ["acc", "bops"], table["a"].astype(str)), tmp_path / "bars.png")
    plt.close("all")
    assert all((tmp_path / f).stat().st_size > 1000 for f in ("curves.png", "front.png", "bars.png"))
