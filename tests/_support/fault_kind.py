"""A cheap, deterministic search space kind for the scale-out tests, with faults on marked points.

Workers load it with ``--import fault_kind`` (tests/_support on PYTHONPATH). TOML::

    [search.search_space]
    kind = "fault-toy"
    a = [0, 1, 2, 3]
    b = [0, 1, 2, 3]
    sleep_s = 0.05                 # per evaluation
    hang_on = [1, 2]               # point (a, b) that hangs while the file hang_flag exists ("all": every point),
    hang_flag = "/tmp/x/hang"      #   after writing its pid to <hang_flag>.<pid>
    raise_on = [2, 0]              # point (a, b) whose evaluation raises while raise_flag exists ("all": every point)
    raise_flag = "/tmp/x/raise"
    sample_sleep_s = 0.05          # sampling is slow: this long between drawing a and drawing b, ...
    sampling_flag = "/tmp/x/smp"   #   ... while the file <sampling_flag>.<pid> exists (a drawn, b not yet drawn)

Metrics: ``value = 10 * a + b`` and ``cost = a + b``.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from labhelpers import search

FAULTS = ("sleep_s", "hang_on", "hang_flag", "raise_on", "raise_flag")
SAMPLING = ("sample_sleep_s", "sampling_flag")


class SlowSampling(search.Space):
    """A Space whose sampling takes time between its two parameters (to kill a worker inside sampling)."""

    sample_sleep_s: float = 0.0
    sampling_flag: str | None = None

    def suggest(self, trial):
        names = list(self.choices)
        first = {names[0]: self.suggest_param(trial, names[0])}
        partial = not set(names[1:]) <= set(trial.params)  # a re-queued trial holds all its parameters already
        flag = Path(f"{self.sampling_flag}.{os.getpid()}") if self.sampling_flag and partial else None
        if flag is not None:
            flag.write_text(str(os.getpid()))
        time.sleep(self.sample_sleep_s)
        rest = {n: self.suggest_param(trial, n) for n in names[1:]}
        if flag is not None:
            flag.unlink()
        return {**first, **rest}


def parse(section: dict) -> search.Space:
    search.check_keys(section, {"kind", "a", "b", *FAULTS, *SAMPLING}, "[search.search_space]")
    faults = {k: section[k] for k in FAULTS if k in section}
    space = SlowSampling({"a": list(section["a"]), "b": list(section["b"])},
                         to_config=lambda params: {**params, **faults}, kind="fault-toy")
    space.sample_sleep_s = section.get("sample_sleep_s", 0.0)
    space.sampling_flag = section.get("sampling_flag")
    return space


def evaluator(cfg, **overrides):
    return evaluate


def evaluate(config: dict) -> dict:
    time.sleep(config.get("sleep_s", 0.0))
    point = [config["a"], config["b"]]
    if config.get("hang_on") in (point, "all") and Path(config["hang_flag"]).exists():
        Path(f"{config['hang_flag']}.{os.getpid()}").write_text(str(os.getpid()))
        deadline = time.monotonic() + 600
        while Path(config["hang_flag"]).exists() and time.monotonic() < deadline:  # hang while the flag exists
            time.sleep(0.05)
    if config.get("raise_on") in (point, "all") and Path(config["raise_flag"]).exists():
        raise RuntimeError(f"injected failure at a={config['a']} b={config['b']}")
    return {"value": 10.0 * config["a"] + config["b"], "cost": config["a"] + config["b"]}


search.register_kind("fault-toy", parse, evaluator, ("value", "cost"))  # explicit: the CLI's --import fault_kind
