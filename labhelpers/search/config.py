"""Search configs from TOML (MASE style; the format is in :mod:`labhelpers.search`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import validate
from .._toml import read_toml
from .evaluator import context_of
from .hardware_metrics import hardware_settings
from .kinds import get_kind
from .objective import Objective, objective_from_toml
from .samplers import check_sampler
from .space import Space, check_keys

EXAMPLE = "configs/jsc_tiny_by_type_brute_force.toml"


@dataclass
class SearchConfig:
    """A parsed search TOML: the space, the objective, strategy settings and the kind's own tables."""

    space: Space
    objective: Objective
    sampler: str = "tpe"
    n_trials: int | None = None
    seed: int = 0
    study_name: str | None = None
    kind: str = "quantize"
    model: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    path: Path | None = None
    hardware: dict = field(default_factory=dict)   # [search.hardware] settings; {} unless the objective names luts...


def load_config(path: str | Path, **setup_overrides) -> SearchConfig:
    """Read and validate a search TOML.

    ``setup_overrides`` (sampler, n_trials, seed, study_name; None means "keep") replace the
    ``[search.strategy.setup]`` values, as the CLI flags do.
    """
    path = Path(path)
    raw = read_toml(path, EXAMPLE)
    overrides = {k: v for k, v in setup_overrides.items() if v is not None}
    if overrides:
        if not isinstance(raw.get("search", {}).get("strategy", {}), dict):
            raise ValueError(f"config {path}: [search.strategy] must be a table")
        raw.setdefault("search", {}).setdefault("strategy", {}).setdefault("setup", {}).update(overrides)
    return parse_config(raw, path)


def parse_config(raw: dict, path: Path | None = None) -> SearchConfig:
    """Validate a search config dict (the parsed TOML) and build its space and objective."""
    check_keys(raw, {"model", "data", "search"}, "config")
    search = raw.get("search")
    if not isinstance(search, dict) or "search_space" not in search:
        raise ValueError(f"config lacks [search.search_space]; see {EXAMPLE}")
    check_keys(search, {"search_space", "strategy", "hardware"}, "[search]")
    if not isinstance(search["search_space"], dict):
        raise ValueError(f"[search.search_space] must be a table, got {search['search_space']!r}; see {EXAMPLE}")
    kind_name = search["search_space"].get("kind", "quantize")
    kind = get_kind(kind_name)
    strategy = search.get("strategy", {})
    check_keys(strategy, {"setup", "metrics"}, "[search.strategy]")
    setup = strategy.get("setup", {})
    check_keys(setup, {"sampler", "n_trials", "seed", "sum_scaled_metrics", "study_name"}, "[search.strategy.setup]")
    metrics = strategy.get("metrics", {"accuracy": {"direction": "maximize"}})
    if not isinstance(metrics, dict):
        raise ValueError(f"[search.strategy.metrics] must be a table, got {metrics!r}; e.g. accuracy = {{direction = 'maximize'}}")
    sum_scaled = validate.boolean("[search.strategy.setup] sum_scaled_metrics", setup.get("sum_scaled_metrics", False))
    objective = objective_from_toml(metrics, sum_scaled)
    unknown = sorted(set(objective.metrics) - set(kind.metrics))
    if unknown:
        raise ValueError(f"[search.strategy.metrics] {unknown} are not metrics of kind {kind_name!r}; "
                         f"choose from {list(kind.metrics)}")
    cfg = SearchConfig(space=kind.parse(search["search_space"]), objective=objective, kind=kind_name,
                       model=raw.get("model", {}), data=raw.get("data", {}), path=path,
                       hardware=hardware_settings(search.get("hardware"), objective.metrics), **_setup(setup))
    _check_model_data(cfg)
    return cfg


def _setup(setup: dict) -> dict:
    where = "[search.strategy.setup] "
    out = {"sampler": setup.get("sampler", "tpe"), "n_trials": setup.get("n_trials"), "seed": setup.get("seed", 0),
           "study_name": setup.get("study_name")}
    check_sampler(out["sampler"], where)
    validate.non_negative_int("seed", out["seed"])
    if out["n_trials"] is not None:
        validate.positive_int(f"{where}n_trials", out["n_trials"], validate.MAX_TRIALS)
    if out["study_name"] is not None:
        validate.safe_name(f"{where}study_name", out["study_name"])
    return out


def _check_model_data(cfg: SearchConfig) -> None:
    from .. import data, models

    check_keys(cfg.model, {"name", "checkpoint"}, "[model]")
    check_keys(cfg.data, {"source", "path", "split"}, "[data]")
    if cfg.kind == "quantize" and cfg.model.get("name") not in models.MODELS:
        raise ValueError(f"[model] name={cfg.model.get('name')!r} is unknown; choose one of {sorted(models.MODELS)}")
    if cfg.data.get("source", "auto") not in data.SOURCES:
        raise ValueError(f"[data] source={cfg.data.get('source')!r} is unknown; choose one of {list(data.SOURCES)}")
    if cfg.data.get("split", "val") not in data.SPLITS:
        raise ValueError(f"[data] split={cfg.data.get('split')!r} is unknown; choose one of {list(data.SPLITS)}")
    for table, key in ((cfg.data, "path"), (cfg.model, "checkpoint")):
        if not isinstance(table.get(key, ""), str):
            raise ValueError(f"[{'data' if table is cfg.data else 'model'}] {key}={table[key]!r} must be a path "
                             f"in quotes, e.g. {key} = \"{'data/x.h5' if key == 'path' else 'checkpoints/jsc-tiny.pt'}\"")


def default_study_name(cfg: SearchConfig) -> str:
    """``<config file stem>-<sampler>-seed<seed>`` unless the config names the study."""
    stem = cfg.path.stem if cfg.path is not None else "search"
    return cfg.study_name or f"{stem}-{cfg.sampler}-seed{cfg.seed}"


def config_context(cfg: SearchConfig, evaluate) -> dict:
    """The part of a study's context that only the config and its evaluator know: the space kind and the
    evaluator's context (dataset fingerprint, checkpoint hash, split)."""
    return {"kind": cfg.kind, **context_of(evaluate)}
