"""Search: spaces from TOML, seeded Optuna studies, objectives chosen by metric name.

A search needs three things, each independent of the others:

* a :class:`Space`: named parameters, each with a list of choices, and ``to_config(params)`` that
  turns one sample into the config an evaluator understands (for quantization: MASE pass_args);
* an evaluator ``evaluate(config) -> {metric name: float}`` (e.g. :func:`labhelpers.metrics.evaluator`);
* an :class:`Objective`: which metrics to optimise, in which direction.

:func:`run` ties them together in an Optuna study. Space kinds live in one explicit map
(:data:`KINDS`: ``quantize`` and Lab 4's ``architecture``); :func:`register_kind` adds another, explicitly.
Search strategies (Optuna samplers) live in :data:`SAMPLERS` likewise; :func:`register_sampler` adds one.

Inside, imports flow one way::

    space, objective                  Space (choices + fixed part), Objective ("maximize"/"minimize")
    liveness -> storage, samplers     get_storage (any spec), heartbeats of journal files; seeded samplers
    hardware_metrics                  luts/ffs/carry4/latency_cycles via labhelpers.hardware ([search.hardware])
    evaluator -> *_kind -> kinds      Evaluator (callable + context), Kind, the KINDS map
    config                            SearchConfig from TOML
    study, budget                     context-checked studies, results tables; budgets and status
    trials -> runner -> workers       the crash-safe loop; run / run_config; several processes (launch)
    analysis                          exhaustive, replay, efficiency, curve_summary, score

TOML format (MASE style; see configs/*.toml)::

    [model]                                  # used by the "quantize" kind
    name = "jsc-tiny"
    checkpoint = "checkpoints/jsc-tiny.pt"   # relative to the working directory
    [data]
    source = "sim"                           # auto | real | sim
    split = "val"                            # train | val | test

    [search.search_space]
    kind = "quantize"
    [search.search_space.setup]
    by = "type"                              # or "name"
    [search.search_space.seed.default.config]
    name = ["NA"]                            # layers not named below stay in float
    [search.search_space.seed.linear.config] # a node type (by type) or node name (by name)
    name = ["integer"]
    data_in = [[16, 8], [8, 6], [8, 4], [4, 2]]   # (width, frac_width) pairs, or separate lists:
    weight_width = [4, 8]                          #   <prefix>_width / <prefix>_frac_width
    weight_frac_width = [2]
    bias = [[8, 4]]                          # a single choice is a fixed value, not a search parameter

    [search.strategy.setup]
    sampler = "brute-force"                  # brute-force | grid | random | tpe | nsga2 | a registered name
    n_trials = 16                            # default: the size of the space
    seed = 0
    sum_scaled_metrics = false               # true: one objective, sum of +-scale * metric, maximised
    [search.strategy.metrics]                # metric -> direction (and scale for the weighted sum)
    accuracy = {direction = "maximize", scale = 1.0}
    bops = {direction = "minimize", scale = 1e-6}
    # luts, ffs, carry4 or latency_cycles here synthesizes every trial; optional settings (defaults shown):
    [search.hardware]                        # see labhelpers.search.hardware_metrics
    rows = 1000
    verify = true

Search parameters are named ``<key>/<field>`` (``linear/data_in``, ``seq_blocks_2/weight``); a
(width, frac_width) pair is labelled ``"(8, 4)"`` in tables. Numeric choices are sorted, and reach Optuna as
the rank of the choice (``suggest_int``), so TPE and NSGA-II see their order (:mod:`.space`); a repeated
choice is an error. Storage defaults to a
journal file in the run folder (``runs/search/<study name>/journal.log``; any Optuna storage URL works:
:func:`get_storage`); re-running the same study
name resumes it and only runs the remaining trial budget. A study keeps its context (:func:`study_context`:
sampler, objective, space and its fixed part, data, checkpoint, training settings, hardware settings and tool versions),
stored by the process that creates it;
resuming it in another context is refused.
"""
from __future__ import annotations

from .analysis import curve_summary, efficiency, exhaustive, replay, score
from .architecture_kind import architecture_space, hidden_space
from .budget import Status, budget, coverage, status
from .config import SearchConfig, config_context, default_study_name, load_config, parse_config
from .evaluator import Evaluator, Kind
from .kinds import KINDS, get_kind, register_kind
from .liveness import CONTEXT_ATTR, ERROR_ATTR, HEARTBEAT_ATTR, METRICS_ATTR, WORKER_ATTR, fail_dead_trials
from .objective import DIRECTIONS, Objective, objective_from_toml
from .quantize_kind import quantize_space
from .runner import DEFAULT_RUN_ROOT, run, run_config
from .samplers import EXHAUSTIVE, SAMPLERS, make_sampler, register_sampler, sampler_seed
from .space import Space, check_keys
from .storage import check_shared, get_storage, resolve_spec
from .study import SearchResult, metrics_of, open_study, results, study_context, trials_table
from .trials import TooManyFailures
from .workers import Launch, launch

__all__ = [
    "CONTEXT_ATTR", "DEFAULT_RUN_ROOT", "DIRECTIONS", "ERROR_ATTR", "EXHAUSTIVE", "Evaluator", "HEARTBEAT_ATTR",
    "KINDS", "Kind", "Launch", "METRICS_ATTR", "Objective", "SAMPLERS", "SearchConfig", "SearchResult", "Space",
    "Status", "TooManyFailures", "WORKER_ATTR", "architecture_space", "budget", "check_keys", "check_shared", "config_context",
    "coverage", "curve_summary", "default_study_name", "efficiency", "exhaustive", "fail_dead_trials",
    "get_kind", "get_storage", "hidden_space", "launch", "load_config", "make_sampler", "metrics_of",
    "objective_from_toml", "open_study", "parse_config", "quantize_space", "register_kind", "register_sampler", "replay",
    "resolve_spec", "results", "run", "run_config", "sampler_seed", "score", "status", "study_context",
    "trials_table",
]
