"""A cheap, deterministic search space kind for the scale-out tests, with faults on marked points.

Workers load it with ``--import fault_kind`` (tests/ on PYTHONPATH). TOML::

    [search.search_space]
    kind = "fault-toy"
    a = [0, 1, 2, 3]
    b = [0, 1, 2, 3]
    sleep_s = 0.05                 # per evaluation
    hang_on = [1, 2]               # point (a, b) that hangs while the file hang_flag exists,
    hang_flag = "/tmp/x/hang"      #   after writing its pid to <hang_flag>.<pid>
    raise_on = [2, 0]              # point (a, b) whose evaluation raises while raise_flag exists
    raise_flag = "/tmp/x/raise"

Metrics: ``value = 10 * a + b`` and ``cost = a + b``.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from labhelpers import search

FAULTS = ("sleep_s", "hang_on", "hang_flag", "raise_on", "raise_flag")


def parse(section: dict) -> search.Space:
    search._check_keys(section, {"kind", "a", "b", *FAULTS}, "[search.search_space]")
    faults = {k: section[k] for k in FAULTS if k in section}
    return search.Space({"a": list(section["a"]), "b": list(section["b"])},
                        to_config=lambda params: {**params, **faults}, kind="fault-toy")


def evaluator(cfg, **overrides):
    return evaluate


def evaluate(config: dict) -> dict:
    time.sleep(config.get("sleep_s", 0.0))
    point = [config["a"], config["b"]]
    if point == config.get("hang_on") and Path(config["hang_flag"]).exists():
        Path(f"{config['hang_flag']}.{os.getpid()}").write_text(str(os.getpid()))
        time.sleep(600)
    if point == config.get("raise_on") and Path(config["raise_flag"]).exists():
        raise RuntimeError(f"injected failure at a={config['a']} b={config['b']}")
    return {"value": 10.0 * config["a"] + config["b"], "cost": config["a"] + config["b"]}


search.register_kind("fault-toy", parse, evaluator, ("value", "cost"))
