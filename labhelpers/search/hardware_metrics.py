"""Measured hardware as search metrics (issue #11): LUTs, flip-flops, CARRY4 and latency from synthesis.

A quantize search pays for synthesis only when its objective names one of :data:`METRICS`; then each
trial also runs :func:`labhelpers.hardware.measure` on its design (cached by content hash, so a repeated
design costs nothing) and its figures join the trial's metrics. Settings, all optional::

    [search.hardware]
    rows = 1000                  # validation rows Verilator checks against the integer reference
    verify = true                # false: synthesis only (no Verilator build; rtl_matches not recorded)
    latency_cutoff = 5           # da4ml's pipelining: combinational delay per stage
    timeout_s = 600              # per synthesis; a timed-out synthesis is a failed trial
    cache_dir = "runs/hardware-cache"   # default: $LABHELPERS_HARDWARE_CACHE, else runs/hardware-cache

``rows``, ``verify`` and ``latency_cutoff`` change the scores, so they join the study's context together
with the tool versions and the FPGA family; ``timeout_s`` and ``cache_dir`` do not.

A design whose RTL does not compute the integer reference's outputs (``rtl_matches`` false), or whose
integer reference differs from the fake-quantized model that the accuracy was measured on, fails its
trial: its LUTs belong to another function than the one scored, and on a Pareto front they would read
as a cheap design of that accuracy.
"""
from __future__ import annotations

from typing import Callable

from .. import hardware, validate
from .space import check_keys

METRICS = ("luts", "ffs", "carry4", "latency_cycles")
RECORDED = (*METRICS, "rtl_matches", "rows_checked", "synth_seconds", "sim_seconds")
SCORE_SETTINGS = ("rows", "verify", "latency_cutoff")   # settings that change the figures: part of the context
WHERE = "[search.hardware]"


def wanted(metric_names) -> bool:
    """True if any of ``metric_names`` is a hardware metric."""
    return bool(set(metric_names) & set(METRICS))


def hardware_settings(table: dict | None, metric_names) -> dict:
    """The validated ``[search.hardware]`` table with defaults filled in; {} when no objective metric is a
    hardware one (a table then is an error: it would have no effect)."""
    if not wanted(metric_names):
        if table is not None:
            raise ValueError(f"{WHERE} has no effect: no objective metric is one of {list(METRICS)}; "
                             f"add e.g. luts = {{direction = 'minimize'}} to [search.strategy.metrics] or remove it")
        return {}
    table = {} if table is None else table
    check_keys(table, {"rows", "verify", "latency_cutoff", "timeout_s", "cache_dir"}, WHERE)
    settings = {"rows": table.get("rows", hardware.DEFAULT_ROWS), "verify": table.get("verify", True),
                "latency_cutoff": table.get("latency_cutoff", hardware.rtl.DEFAULT_LATENCY_CUTOFF),
                "timeout_s": table.get("timeout_s", hardware.synth.DEFAULT_TIMEOUT_S), "cache_dir": table.get("cache_dir")}
    validate.positive_int(f"{WHERE} rows", settings["rows"])
    validate.boolean(f"{WHERE} verify", settings["verify"])
    # kept as given: 5 and 5.0 are different cache keys, and the hardware command's default is the int 5
    validate.positive_number(f"{WHERE} latency_cutoff", settings["latency_cutoff"], example="5")
    validate.positive_number(f"{WHERE} timeout_s", settings["timeout_s"], "seconds", "600")
    if settings["cache_dir"] is not None and not isinstance(settings["cache_dir"], str):
        raise ValueError(f"{WHERE} cache_dir={settings['cache_dir']!r} must be a path in quotes, "
                         f"e.g. cache_dir = \"runs/hardware-cache\"")
    return settings


def hardware_context(settings: dict) -> dict:
    """What changes the figures: the score settings, the FPGA family and the tool versions (a missing tool
    raises here, once, with the line naming its install command, before any trial starts)."""
    return {**{k: settings[k] for k in SCORE_SETTINGS}, "family": hardware.FAMILY, "tools": hardware.tool_versions()}


def with_hardware(evaluate, settings: dict) -> Callable[[dict], dict]:
    """``evaluate`` (a :class:`labhelpers.metrics.Evaluator`: float graph, data, split) followed by
    :func:`labhelpers.hardware.measure` of the same pass_args; returns both sets of metrics."""
    def measured(pass_args: dict) -> dict:
        scores = evaluate(pass_args)
        result = hardware.measure(evaluate.graph, pass_args, evaluate.data, split=evaluate.split,
                                  rows=settings["rows"], latency_cutoff=settings["latency_cutoff"],
                                  timeout_s=settings["timeout_s"], verify=settings["verify"],
                                  cache_dir=settings["cache_dir"])
        return {**scores, **figures(result)}
    return measured


def figures(result: dict) -> dict:
    """The :data:`RECORDED` figures of a ``measure`` result; ValueError for a design that does not compute
    what was scored (see the module doc)."""
    if result.get("rtl_matches") is False:
        raise ValueError(f"the RTL differs from the integer reference on {result.get('mismatched_rows')} of "
                         f"{result.get('rows_checked')} rows: its figures would score another design; "
                         f"inspect its Verilog in {result.get('rtl_dir')} (a da4ml or labhelpers.hardware bug)")
    if result.get("reference_matches_pytorch") is False:
        raise ValueError("the integer reference differs from the fake-quantized model whose accuracy was scored "
                         "(a labhelpers.hardware.integer bug): its figures would score another design")
    return {k: result[k] for k in RECORDED if result.get(k) is not None}
