"""Hardware metrics in the search (issue #11, part 4): luts & co. reach the trials table, a failed synthesis is a
failed trial, a resume with other hardware settings is refused, and a plain search never synthesizes.

One real synthesis (a 4-bit JSC-Tiny design, through the CLI); the other tests stub ``hardware.measure``, since
they are about the search's wiring."""
from __future__ import annotations

import json

import pytest
from optuna.trial import TrialState

from labhelpers import cli, hardware, search

GRID = [[16, 8], [8, 6], [8, 4], [4, 2]]
TOOLS = {"da4ml": "0.6.0", "yosys": "Yosys test", "verilator": "verilator test"}


def _raw(metrics=("accuracy", "luts"), hw=None, data_in=GRID, weight=GRID) -> dict:
    directions = {m: {"direction": "maximize" if m == "accuracy" else "minimize"} for m in metrics}
    raw = {"model": {"name": "jsc-tiny", "checkpoint": "checkpoints/jsc-tiny.pt"},
           "data": {"source": "sim", "split": "val"},
           "search": {"search_space": {"kind": "quantize", "setup": {"by": "type"},
                                       "seed": {"default": {"config": {"name": ["NA"]}},
                                                "linear": {"config": {"name": ["integer"], "data_in": data_in,
                                                                      "weight": weight, "bias": [[8, 4]]}}}},
                      "strategy": {"setup": {"sampler": "brute-force", "seed": 0}, "metrics": directions}}}
    if hw is not None:
        raw["search"]["hardware"] = hw
    return raw


def _stub_figures(pass_args: dict) -> dict:
    config = pass_args["linear"]["config"]
    luts = 10 * config["data_in_width"] * config["weight_width"]
    return {"luts": luts, "ffs": luts // 3, "carry4": luts // 5, "latency_cycles": 2, "rtl_matches": True,
            "rows_checked": 100, "mismatched_rows": 0, "reference_matches_pytorch": True, "synth_seconds": 0.0,
            "sim_seconds": 0.0, "cached": False}


@pytest.fixture
def stubbed(monkeypatch):
    """``hardware.measure`` and ``tool_versions`` stubbed; ``calls`` lists the pass_args measured."""
    calls = []

    def measure(graph, pass_args, data, **kwargs):
        calls.append(pass_args)
        return _stub_figures(pass_args)
    monkeypatch.setattr(hardware, "measure", measure)
    monkeypatch.setattr(hardware, "tool_versions", lambda: dict(TOOLS))
    return calls


def test_hardware_metrics_reach_the_trials_table_through_the_cli(tmp_path, monkeypatch):
    """The one real synthesis: a 4-bit design, 100 rows checked by Verilator; the second run reads the cache."""
    monkeypatch.setenv("LABHELPERS_HARDWARE_CACHE", str(tmp_path / "cache"))
    config = tmp_path / "luts.toml"
    raw = _raw(hw={"rows": 100}, data_in=[[4, 2]], weight=[[4, 2], [8, 4]])
    config.write_text(_toml(raw))
    argv = ["search", "--config", str(config), "--n-trials", "1", "--no-progress", "--run-root"]
    assert cli.main([*argv, str(tmp_path / "runs")]) == 0
    [row] = json.loads((tmp_path / "runs" / "luts-brute-force-seed0" / "trials.json").read_text())
    assert row["luts"] > 0 and row["ffs"] > 0 and row["latency_cycles"] >= 1 and row["carry4"] >= 0
    assert row["rtl_matches"] == 1 and row["rows_checked"] == 100 and 0 < row["accuracy"] < 1
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1
    assert cli.main([*argv, str(tmp_path / "again")]) == 0   # same design, another study: from the cache
    [again] = json.loads((tmp_path / "again" / "luts-brute-force-seed0" / "trials.json").read_text())
    assert again == row


def _toml(raw: dict) -> str:
    """Just enough TOML for :func:`_raw`'s dicts (inline tables)."""
    def value(v):
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        return json.dumps(v)
    return "\n".join(f"{k} = {value(v)}" for k, v in raw.items())


def test_a_failed_synthesis_or_a_mismatched_rtl_is_a_failed_trial_and_the_others_go_on(stubbed, monkeypatch):
    def measure(graph, pass_args, data, **kwargs):
        config = pass_args["linear"]["config"]
        if config["data_in_width"] == config["weight_width"] == 4:
            raise ValueError("synthesis of jsc timed out after timeout_s=600 s; raise timeout_s or narrow the formats")
        if config["data_in_width"] == config["weight_width"] == 16:
            return {**_stub_figures(pass_args), "rtl_matches": False, "mismatched_rows": 7}
        return _stub_figures(pass_args)
    monkeypatch.setattr(hardware, "measure", measure)
    cfg = search.parse_config(_raw())
    result = search.run_config(cfg, storage="memory", progress=False)
    failed = {cfg.space.encode(cfg.space.from_optuna(t.params))["linear/weight"]: t.user_attrs[search.ERROR_ATTR]
              for t in result.study.trials if t.state == TrialState.FAIL}
    assert set(failed) == {"(4, 2)", "(16, 8)"}
    assert "timed out" in failed["(4, 2)"] and "differs from the integer reference on 7 of 100 rows" in failed["(16, 8)"]
    assert len(result.table) == 14 and {"luts", "ffs", "carry4", "latency_cycles", "rtl_matches"} <= set(result.table)
    assert sorted(result.table["luts"].unique()) == [320, 640, 1280]  # 4x4 and 16x16 failed


def test_a_missing_tool_is_named_before_the_search_and_every_failing_trial_stops_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))   # no yosys on PATH
    monkeypatch.setenv("LABHELPERS_HARDWARE_CACHE", str(tmp_path / "cache"))
    cfg = search.parse_config(_raw())
    with pytest.raises(FileNotFoundError, match=r"apt-get install yosys"):
        search.run_config(cfg, storage="memory", progress=False)
    # yosys gone after the start (or on one worker only): each trial fails with the same line, and the cap stops it
    monkeypatch.setattr(hardware, "tool_versions", lambda: dict(TOOLS))
    with pytest.raises(search.TooManyFailures, match=r"2 trials in a row.*apt-get install yosys"):
        search.run_config(cfg, storage="memory", progress=False, max_failures=2)


def test_resume_with_other_hardware_settings_is_refused(stubbed, tmp_path, monkeypatch):
    run = dict(run_root=tmp_path, progress=False)
    search.run_config(search.parse_config(_raw(hw={"rows": 100})), n_trials=1, **run)
    search.run_config(search.parse_config(_raw(hw={"rows": 100, "timeout_s": 60})), n_trials=2, **run)  # no score change
    with pytest.raises(ValueError, match=r"exists with a different hardware.*--study-name"):
        search.run_config(search.parse_config(_raw(hw={"rows": 200})), n_trials=3, **run)
    monkeypatch.setattr(hardware, "tool_versions", lambda: {**TOOLS, "yosys": "Yosys 0.99"})
    with pytest.raises(ValueError, match=r"different hardware.*Yosys 0.99"):
        search.run_config(search.parse_config(_raw(hw={"rows": 100})), n_trials=3, **run)
    assert len(stubbed) == 2


def test_a_plain_search_never_synthesizes(stubbed, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("a plain search called labhelpers.hardware")
    monkeypatch.setattr(hardware, "measure", boom)
    monkeypatch.setattr(hardware, "tool_versions", boom)
    cfg = search.parse_config(_raw(metrics=("accuracy", "bops")))
    assert cfg.hardware == {}
    result = search.run_config(cfg, n_trials=2, storage="memory", progress=False)
    assert len(result.table) == 2 and "luts" not in result.table
    assert "hardware" not in result.study.user_attrs[search.CONTEXT_ATTR]


@pytest.mark.parametrize("metrics, hw, message", [
    (("accuracy", "luts"), {"rows": 0}, r"\[search.hardware\] rows=0 must be a positive integer"),
    (("accuracy", "luts"), {"verify": "yes"}, r"\[search.hardware\] verify='yes' must be true or false"),
    (("accuracy", "luts"), {"timeout_s": -1}, r"\[search.hardware\] timeout_s=-1 must be a positive number of seconds"),
    (("accuracy", "luts"), {"cache_dir": 3}, r"cache_dir=3 must be a path in quotes"),
    (("accuracy", "luts"), {"row": 10}, r"\[search.hardware\] has unknown key\(s\) \['row'\]"),
    (("accuracy",), {"rows": 10}, r"\[search.hardware\] has no effect.*luts = \{direction = 'minimize'\}"),
])
def test_bad_hardware_settings_are_one_line_errors(metrics, hw, message):
    with pytest.raises(ValueError, match=message):
        search.parse_config(_raw(metrics=metrics, hw=hw))


def test_defaults_and_the_shipped_config():
    cfg = search.load_config("configs/jsc_tiny_luts.toml")
    assert cfg.space.size == 16 and list(cfg.objective.metrics) == ["accuracy", "luts"]
    assert cfg.hardware == {"rows": 1000, "verify": True, "latency_cutoff": 5, "timeout_s": 600, "cache_dir": None}
    assert search.parse_config(_raw()).hardware == cfg.hardware
