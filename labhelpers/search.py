"""Search: spaces from TOML, seeded Optuna studies, objectives chosen by metric name.

A search needs three things, each independent of the others:

* a :class:`Space`: named parameters, each with a list of choices, and ``to_config(params)`` that
  turns one sample into the config an evaluator understands (for quantization: MASE pass_args);
* an evaluator ``evaluate(config) -> {metric name: float}`` (e.g. :func:`labhelpers.metrics.evaluator`);
* an :class:`Objective`: which metrics to optimise, in which direction.

:func:`run` ties them together in an Optuna study. Space kinds are a small registry
(:data:`KINDS`, :func:`register_kind`): ``kind = "quantize"`` is defined here; Lab 4 registers its own
kind with its own parser and evaluator.

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
    sampler = "brute-force"                  # brute-force | grid | random | tpe | nsga2
    n_trials = 16                            # default: the size of the space
    seed = 0
    sum_scaled_metrics = false               # true: one objective, sum of +-scale * metric, maximised
    [search.strategy.metrics]                # metric -> direction (and scale for the weighted sum)
    accuracy = {direction = "maximize", scale = 1.0}
    bops = {direction = "minimize", scale = 1e-6}

Search parameters are named ``<key>/<field>`` (``linear/data_in``, ``seq_blocks_2/weight``); a
(width, frac_width) pair travels through Optuna as the string ``"(8, 4)"``. Numeric choices are
sorted (so ordered samplers see them in order); a repeated choice is an error. Storage defaults to a
journal file in the run folder (``runs/search/<study name>/journal.log``); re-running the same study
name resumes it and only runs the remaining trial budget. A study keeps its context (:func:`study_context`:
sampler, objective, space, data, checkpoint, training settings), stored by the process that creates it;
resuming it in another context is refused.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import itertools
import math
import numbers
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import optuna
import pandas as pd
from tqdm.auto import tqdm

from . import validate
from ._toml import read_toml
from .passes import quantize as _quantize

DEFAULT_RUN_ROOT = Path("runs/search")
DIRECTIONS = ("maximize", "minimize")


# ============================================================================= spaces

@dataclass
class Space:
    """Named parameters with sorted choices, and ``to_config(params) -> config`` for the evaluator."""

    choices: dict[str, list]
    to_config: Callable[[dict], Any]
    kind: str = "custom"
    _codes: dict[str, dict] = field(init=False, repr=False)

    def __post_init__(self):
        for name, values in self.choices.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"search space parameter {name!r} needs a non-empty list of choices, got {values!r}")
        self._codes = {name: {_encode(v): v for v in values} for name, values in self.choices.items()}

    @property
    def size(self) -> int:
        """Number of distinct points."""
        return math.prod(len(v) for v in self.choices.values())

    def grid(self) -> Iterator[dict]:
        """Every point, as a params dict, in the order of the sorted choices."""
        names = list(self.choices)
        for values in itertools.product(*self.choices.values()):
            yield dict(zip(names, values))

    def optuna_grid(self) -> dict[str, list]:
        """The space with Optuna-storable (encoded) choices, as GridSampler wants it."""
        return {name: list(codes) for name, codes in self._codes.items()}

    def suggest(self, trial: optuna.Trial) -> dict:
        """Sample one point through Optuna's categorical interface (tuples travel as strings)."""
        return {name: codes[trial.suggest_categorical(name, list(codes))] for name, codes in self._codes.items()}

    def decode(self, encoded: dict) -> dict:
        return {name: self._codes[name][value] for name, value in encoded.items()}

    def encode(self, params: dict) -> dict:
        return {name: _encode(value) for name, value in params.items()}


def _encode(value):
    """Optuna stores None/bool/int/float/str; a (width, frac) pair becomes the string '(8, 4)'."""
    return str(tuple(value)) if isinstance(value, (tuple, list)) else value


def _sorted_choices(values: list, where: str) -> list:
    """Numeric choices (or tuples of numbers) sorted ascending; duplicates are an error."""
    values = [tuple(v) if isinstance(v, list) else v for v in values]
    if len(set(map(_encode, values))) != len(values):
        raise ValueError(f"{where} has duplicate choices {values}; list each choice once")
    def numeric(v):
        items = v if isinstance(v, tuple) else (v,)
        return all(isinstance(i, numbers.Real) and not isinstance(i, bool) for i in items)
    return sorted(values) if all(numeric(v) for v in values) else values


# ----------------------------------------------------------------------------- kind "quantize"

QUANTIZE_FIELDS = ("name", *_quantize.FIELDS, *_quantize.PREFIXES)


def quantize_space(section: dict) -> Space:
    """A :class:`Space` over quantize pass_args from a ``[search.search_space]`` table (see module doc)."""
    _check_keys(section, {"kind", "setup", "seed"}, "[search.search_space]")
    setup = section.get("setup", {})
    _check_keys(setup, {"by"}, "[search.search_space.setup]")
    by = setup.get("by", "type")
    if by not in ("type", "name"):
        raise ValueError(f"[search.search_space.setup] by={by!r} is invalid; use 'type' or 'name'")
    seed = section.get("seed")
    if not isinstance(seed, dict) or not seed:
        raise ValueError("[search.search_space.seed] is missing: add e.g. [search.search_space.seed.linear.config]")
    choices, fixed = {}, {}
    for key, entry in seed.items():
        where = f"[search.search_space.seed.{key}]"
        if not isinstance(entry, dict) or set(entry) != {"config"} or not isinstance(entry["config"], dict):
            raise ValueError(f"{where} must hold exactly one table 'config', e.g. [search.search_space.seed.{key}.config]")
        fields = _quantize_fields(entry["config"], f"{where[:-1]}.config]")
        fixed[key] = {f: v[0] for f, v in fields.items() if len(v) == 1}
        choices.update({f"{key}/{f}": v for f, v in fields.items() if len(v) > 1})
    return Space(choices, lambda params: _quantize_config(by, fixed, params), kind="quantize")


def _quantize_fields(config: dict, where: str) -> dict[str, list]:
    _check_keys(config, set(QUANTIZE_FIELDS), where)
    fields = {f: _sorted_choices(v if isinstance(v, list) else [v], f"{where} {f}") for f, v in config.items()}
    for prefix in _quantize.PREFIXES:
        if prefix in fields and ({f"{prefix}_width", f"{prefix}_frac_width"} & set(fields)):
            raise ValueError(f"{where} sets both {prefix!r} pairs and {prefix}_width/{prefix}_frac_width; use one")
        pairs = fields.get(prefix) or itertools.product(fields.get(f"{prefix}_width", [None]),
                                                        fields.get(f"{prefix}_frac_width", [None]))
        for pair in pairs:
            _check_pair(prefix, pair, where)
    return fields


def _check_pair(prefix: str, pair, where: str) -> None:
    if not isinstance(pair, tuple) or len(pair) != 2:
        raise ValueError(f"{where} {prefix}: each choice must be a [width, frac_width] pair, got {pair!r}")
    width, frac = pair
    if width is not None:
        _quantize._check_width(f"{prefix}_width", width, 1, _quantize.MAX_WIDTH, f"{where} ")
    if frac is not None:
        high = width if isinstance(width, int) else _quantize.MAX_WIDTH
        _quantize._check_width(f"{prefix}_frac_width", frac, 0, high, f"{where} (with {prefix}_width={width}) ")


def _quantize_config(by: str, fixed: dict, params: dict) -> dict:
    """MASE pass_args for one sample: fixed values plus sampled ones, (width, frac) pairs expanded."""
    tables = {key: dict(values) for key, values in fixed.items()}
    for name, value in params.items():
        key, _, f = name.partition("/")
        tables[key][f] = value
    pass_args = {"by": by}
    for key, table in tables.items():
        config = {}
        for f, value in table.items():
            if f in _quantize.PREFIXES:
                config[f"{f}_width"], config[f"{f}_frac_width"] = value
            else:
                config[f] = value
        pass_args[key] = {"config": config}
    return pass_args


# ----------------------------------------------------------------------------- the kind registry

@dataclass(frozen=True)
class Kind:
    """A space kind: ``parse(table) -> Space``, ``evaluator(cfg, **overrides) -> evaluate``, its metrics."""

    parse: Callable[[dict], Space]
    evaluator: Callable[..., Callable[[Any], dict]]
    metrics: tuple[str, ...]


KINDS: dict[str, Kind] = {}


def register_kind(name: str, parse: Callable[[dict], Space], evaluator: Callable, metrics: tuple[str, ...]) -> None:
    """Make ``[search.search_space] kind = name`` available (Lab 4 adds its architecture space here)."""
    KINDS[name] = Kind(parse, evaluator, tuple(metrics))


QUANTIZE_METRICS = ("accuracy", "loss", "params", "size_bits", "macs", "flops", "bops", "mac_bitops",
                    "latency_ms", "latency_iqr_ms")


def _quantize_evaluator(cfg: "SearchConfig", *, checkpoint: str | None = None, dataset: str | None = None):
    """Float graph from the checkpoint + data split -> :func:`labhelpers.metrics.evaluator`."""
    from . import data as _data, graph as _graph, metrics as _metrics, models as _models

    model_cfg, data_cfg = cfg.model, cfg.data
    path = checkpoint or model_cfg.get("checkpoint") or f"checkpoints/{model_cfg['name']}.pt"
    jsc = _data.load_jsc(dataset or data_cfg.get("source", "auto"), data_cfg.get("path"), verbose=False)
    model, _ = _models.load(path, expected_model=model_cfg["name"], fingerprint=jsc.fingerprint)
    graph = _graph.trace(model)
    first = cfg.space.to_config(next(cfg.space.grid()))
    _quantize.quantize_transform_pass(graph, first)  # node names/types
    with_latency = any(m.startswith("latency") for m in cfg.objective.metrics)
    evaluate = _metrics.evaluator(graph, jsc, split=data_cfg.get("split", "val"), with_latency=with_latency)
    evaluate.context = {"dataset_fingerprint": jsc.fingerprint, "checkpoint_sha256": _sha256(path),
                        "split": data_cfg.get("split", "val"),
                        "pass_args": first}  # of the first point: carries the fixed (single-choice) settings and `by`
    return evaluate


def _sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


register_kind("quantize", quantize_space, _quantize_evaluator, QUANTIZE_METRICS)


# ============================================================================= objectives

@dataclass
class Objective:
    """Metrics to optimise: ``{name: (direction, scale)}``.

    With ``sum_scaled=False`` every metric is its own objective (one metric: single-objective; more:
    multi-objective, the Pareto front is ``study.best_trials``). With ``sum_scaled=True`` there is one
    objective, ``sum(+scale * metric for maximised metrics, -scale * metric for minimised ones)``,
    which is maximised.
    """

    metrics: dict[str, tuple[str, float]]
    sum_scaled: bool = False

    def __post_init__(self):
        if not self.metrics:
            raise ValueError("no objective metrics: add e.g. [search.strategy.metrics] accuracy = {direction = 'maximize'}")
        for name, (direction, scale) in self.metrics.items():
            if direction not in DIRECTIONS:
                raise ValueError(f"metric {name!r} direction={direction!r} is invalid; use 'maximize' or 'minimize'")
            if not isinstance(scale, numbers.Real) or isinstance(scale, bool):
                raise ValueError(f"metric {name!r} scale={scale!r} must be a number")

    @property
    def directions(self) -> list[str]:
        return ["maximize"] if self.sum_scaled else [d for d, _ in self.metrics.values()]

    @property
    def names(self) -> list[str]:
        return ["score"] if self.sum_scaled else list(self.metrics)

    def weights(self) -> dict[str, float]:
        """Signed weights of the scaled sum (negative for minimised metrics)."""
        return {k: s if d == "maximize" else -s for k, (d, s) in self.metrics.items()}

    def values(self, measured: dict[str, float]) -> list[float]:
        missing = sorted(set(self.metrics) - set(measured))
        if missing:
            raise ValueError(f"objective metrics {missing} were not measured; available: {sorted(measured)}")
        if self.sum_scaled:
            return [float(sum(w * measured[k] for k, w in self.weights().items()))]
        return [float(measured[k]) for k in self.metrics]


def objective_from_toml(table: dict, sum_scaled: bool = False) -> Objective:
    """``{"accuracy": {"direction": "maximize", "scale": 1.0}, ...}`` -> :class:`Objective`."""
    metrics = {}
    for name, spec in table.items():
        spec = {"direction": spec} if isinstance(spec, str) else spec
        if not isinstance(spec, dict):
            raise ValueError(f"[search.strategy.metrics] {name} must be a table like {{direction = 'maximize', scale = 1.0}}")
        _check_keys(spec, {"direction", "scale"}, f"[search.strategy.metrics.{name}]")
        metrics[name] = (spec.get("direction", "maximize"), spec.get("scale", 1.0))
    return Objective(metrics, sum_scaled)


# ============================================================================= samplers and storage

class _SpaceBruteForce(optuna.samplers.BruteForceSampler):
    """Optuna's BruteForceSampler, blind to finished trials that hold only some of the space's parameters.

    Optuna builds its tree from every trial, FAIL included. A trial whose worker was killed while sampling
    holds, say, 3 of 6 parameters; in the tree it ends a branch early, and every later draw through that
    branch raises ``ValueError: param_name mismatch`` (the study is poisoned for good). Here such a trial
    is left out of the tree: its point is still unvisited, so it is drawn again like any other.
    """

    def __init__(self, names, seed: int | None = None):
        super().__init__(seed=seed)
        self._names = frozenset(names)

    def _populate_tree(self, tree, trials, params) -> None:
        whole = [t for t in trials if not t.state.is_finished() or self._names <= t.params.keys()]
        optuna.samplers.BruteForceSampler._populate_tree(tree, whole, params)


class _SpaceGrid(optuna.samplers.GridSampler):
    """Optuna's GridSampler, which counts a grid point as visited only by a finished trial holding all of
    its parameters (a trial killed while sampling leaves its point to be drawn again, as above)."""

    def __init__(self, space: "Space", seed: int | None = None):
        super().__init__(space.optuna_grid(), seed=seed)
        self._names = frozenset(space.choices)

    def _get_unvisited_grid_ids(self, study: optuna.Study) -> list[int]:
        visited, running = set(), set()
        for t in study._storage.get_all_trials(study._study_id, deepcopy=False):
            if "grid_id" not in t.system_attrs or not self._same_search_space(t.system_attrs["search_space"]):
                continue
            if t.state.is_finished() and self._names <= t.params.keys():
                visited.add(t.system_attrs["grid_id"])
            elif t.state == optuna.trial.TrialState.RUNNING:
                running.add(t.system_attrs["grid_id"])
        every = set(range(self._n_min_trials))
        return list(every - visited - running or every - visited)


SAMPLERS: dict[str, Callable[[Space, int], optuna.samplers.BaseSampler]] = {
    "brute-force": lambda space, seed: _SpaceBruteForce(space.choices, seed=seed),
    "grid": lambda space, seed: _SpaceGrid(space, seed=seed),
    "random": lambda space, seed: optuna.samplers.RandomSampler(seed=seed),
    "tpe": lambda space, seed: optuna.samplers.TPESampler(seed=seed),
    "nsga2": lambda space, seed: optuna.samplers.NSGAIISampler(seed=seed),
}
EXHAUSTIVE = ("brute-force", "grid")  # samplers that stop once every point was visited


def make_sampler(name: str, space: Space, seed: int) -> optuna.samplers.BaseSampler:
    """A seeded Optuna sampler by name: brute-force, grid, random, tpe or nsga2."""
    if name not in SAMPLERS:
        raise ValueError(f"sampler={name!r} is unknown; choose one of {list(SAMPLERS)}")
    _check_seed(seed)
    return SAMPLERS[name](space, seed)


def _check_seed(seed) -> None:
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative integer, e.g. 0")


def make_storage(storage, run_dir: Path):
    """None: a journal file ``run_dir/journal.log``; 'memory': in memory; a URL with '://'
    (``sqlite:///study.db``, ``postgresql://...``): that Optuna storage, with heartbeats for crashed workers
    (:func:`labhelpers.distributed.rdb_storage`); an Optuna storage object: itself; any other string: a
    journal file path (safe for several processes on one machine)."""
    if isinstance(storage, optuna.storages.BaseStorage):
        return storage
    if storage == "memory":
        return optuna.storages.InMemoryStorage()
    if storage is not None and "://" in storage:
        from . import distributed
        return distributed.rdb_storage(storage)
    path = validate.output_file("storage", storage) if storage is not None else run_dir / "journal.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    from optuna.storages.journal import JournalFileBackend, JournalStorage
    return JournalStorage(JournalFileBackend(str(path)))


@contextlib.contextmanager
def _quiet_optuna():
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            yield
        finally:
            optuna.logging.set_verbosity(level)


# ============================================================================= running a study

@dataclass
class SearchResult:
    """A finished (or resumed) study: ``table`` has one row per trial; ``best`` the best trial(s)."""

    study: optuna.Study
    table: pd.DataFrame
    best: pd.DataFrame
    run_dir: Path | None


def run(space: Space, evaluate: Callable[[Any], dict], objective: Objective, *, sampler: str = "tpe",
        n_trials: int | None = None, seed: int = 0, study_name: str = "search", storage: str | None = None,
        run_root: str | Path = DEFAULT_RUN_ROOT, write: bool = True, resume: bool = True,
        progress: bool = True, worker: int = 0, requeue_failed: bool = True,
        context: dict | None = None, heartbeat_s: int | None = None,
        max_failures: int | None = None) -> SearchResult:
    """Run (or resume) a seeded study; record every metric as trial user attributes.

    ``n_trials`` is the total budget of the study, counted in completed trials (default: the size of
    the space). A study of the same name in the same storage is resumed: only ``n_trials`` minus its
    completed trials run (``resume=False`` deletes that study first and starts again).
    Results go to ``run_root/study_name/`` as trials.csv, trials.json and best.json (``write=False``
    or ``storage='memory'`` writes nothing).
    A trial whose evaluation raises is recorded as FAIL with ``user_attrs["error"]``, and the run goes
    on; ``worker`` (sampler seed ``seed + worker``) and ``requeue_failed`` serve several workers on one
    study: see :mod:`labhelpers.distributed`.
    ``context`` (plain data: dataset fingerprint, checkpoint hash...) is stored with a new study, together
    with the sampler, the objective and the space (:func:`study_context`); resuming a study whose stored
    context differs raises instead of mixing results of different runs.
    ``heartbeat_s`` (journal storages; default :data:`labhelpers.distributed.HEARTBEAT_S`): how often a
    running trial records that its worker is alive. ``max_failures`` (default
    :data:`labhelpers.distributed.MAX_FAILURES`): this many trials in a row that fail stop the run with a
    ValueError.
    """
    n_trials = validate.positive_int("n_trials", space.size if n_trials is None else n_trials, validate.MAX_TRIALS)
    run_dir = validate.output_dir("run_root", run_root) / validate.safe_name("study_name", study_name)
    from . import distributed
    with _quiet_optuna():
        store = make_storage(storage, run_dir)
        if not resume:
            _delete_study(study_name, store)
        study = _open_study(space, objective, sampler, distributed.worker_seed(sampler, seed, worker), study_name,
                            store, study_context(space, objective, sampler, context), run_dir)
        budget, points = distributed.budget(space, sampler, n_trials)
        if requeue_failed:
            distributed.prepare(study, points)
        _optimize(study, space, evaluate, objective, budget, points, progress,
                  heartbeat_s=distributed.HEARTBEAT_S if heartbeat_s is None else heartbeat_s,
                  max_failures=distributed.MAX_FAILURES if max_failures is None else max_failures)
    return results(study, objective, run_dir if write and storage != "memory" else None)


def results(study: optuna.Study, objective: Objective, run_dir: str | Path | None = None) -> SearchResult:
    """The study's trials table and best trial(s); written to ``run_dir`` (trials.csv/json, best.json) if given."""
    # best first: other workers may add trials meanwhile, and every best trial is then in the table
    best_numbers = [t.number for t in study.best_trials] if _n_complete(study) else []
    table = trials_table(study, objective)
    best = table.loc[best_numbers] if len(table) else table
    if run_dir is not None:
        _write(Path(run_dir), table, best)
    return SearchResult(study, table, best, Path(run_dir) if run_dir is not None else None)


CONTEXT_ATTR = "context"   # study user attr: everything that changes a score (see study_context)
CONTEXT_WAIT_S = 10.0     # a study found without its context may be one being created right now: wait this long


def study_context(space: Space, objective: Objective, sampler: str, context: dict | None = None) -> dict:
    """Everything that changes a trial's score or the meaning of "best", as plain JSON data: the sampler,
    the objective (metrics, directions, scales, scaled sum or not), the space's choices, plus ``context``:
    what the kind's evaluator knows (its ``evaluate.context``: dataset fingerprint, checkpoint hash, split,
    the space's fixed settings, training settings...). Resuming a study is refused unless this is the same."""
    base = {"sampler": sampler,
            "objective": {"metrics": {k: [d, float(sc)] for k, (d, sc) in objective.metrics.items()},
                          "sum_scaled": bool(objective.sum_scaled)},
            "space": {k: [str(_encode(c)) for c in v] for k, v in space.choices.items()}}
    return json.loads(json.dumps({**base, **(context or {})}, sort_keys=True, default=str))


def _open_study(space, objective, sampler, seed, study_name, storage, context: dict | None = None,
                run_dir: Path | None = None) -> optuna.Study:
    """Create the study with its context, or load it and check that its stored context is ``context``.

    Creating is atomic across processes (Optuna raises DuplicatedStudyError for the second creator, on
    every storage), and the creator stores the context right after: so of two commands started at once on
    one study name, the second sees the first one's context (waiting up to CONTEXT_WAIT_S for it) and is
    refused at once if it differs."""
    sampler_obj = make_sampler(sampler, space, seed)
    try:
        study = optuna.create_study(storage=storage, sampler=sampler_obj, study_name=study_name,
                                    directions=objective.directions, load_if_exists=False)
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler_obj)
        created = False
    existing = [d.name.lower() for d in study.directions]
    if existing != objective.directions:
        raise ValueError(f"study {study_name!r} already exists with directions {existing}, not {objective.directions}; "
                         f"choose another --study-name")
    if context is not None:
        if created:
            study.set_user_attr(CONTEXT_ATTR, context)
        else:
            _check_context(study, context, run_dir)
    return study


def _check_context(study: optuna.Study, context: dict, run_dir: Path | None) -> None:
    """Refuse to resume a study whose stored context is not ``context`` (one line naming what differs)."""
    stored = _stored_context(study)
    if stored is None:  # a study made without a context (by Optuna itself, or an old labhelpers): adopt it
        study.set_user_attr(CONTEXT_ATTR, context)
        return
    if stored != context:
        changed = sorted(k for k in set(stored) | set(context) if stored.get(k) != context.get(k))
        where = f"delete {run_dir}" if run_dir is not None else "delete that study"
        raise ValueError(f"study {study.study_name!r} exists with a different {', '.join(changed)} "
                         f"(stored {_short([stored.get(k) for k in changed])}, now {_short([context.get(k) for k in changed])}); "
                         f"resuming would mix results: pass another --study-name or {where}")


def _stored_context(study: optuna.Study) -> dict | None:
    """The study's stored context; for a study just created by another process without trials yet, wait
    (up to CONTEXT_WAIT_S) for its creator to store it."""
    deadline = time.monotonic() + CONTEXT_WAIT_S
    while True:
        stored = study.user_attrs.get(CONTEXT_ATTR)
        if stored is not None or study.get_trials(deepcopy=False) or time.monotonic() > deadline:
            return stored
        time.sleep(0.05)


def _short(value, limit: int = 300) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


def _delete_study(study_name: str, storage) -> None:
    try:
        optuna.delete_study(study_name=study_name, storage=storage)
    except KeyError:  # no such study yet
        pass


def _n_complete(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def _optimize(study, space, evaluate, objective, budget, points, progress, *, heartbeat_s, max_failures) -> None:
    from . import distributed
    bar = tqdm(total=max(budget - _n_complete(study), 0), desc=f"{study.study_name}", disable=not progress, leave=False)

    def trial_fn(trial: optuna.Trial):
        params = space.suggest(trial)
        if points is not None:
            distributed.claim(trial)  # several workers: skip a point that another worker has or had first
        measured = evaluate(space.to_config(params))
        for name, value in measured.items():
            trial.set_user_attr(name, _plain_number(value))
        values = objective.values(measured)
        if points is not None:
            distributed.claim(trial)  # again: a worker that drew the point meanwhile with a lower number wins
        return values

    def tick(study, trial):
        bar.update(1)

    try:
        distributed.optimize(study, trial_fn, budget=budget, points=points, callbacks=[tick],
                             heartbeat_s=heartbeat_s, max_failures=max_failures)
    finally:
        bar.close()


def _plain_number(value) -> int | float:
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def trials_table(study: optuna.Study, objective: Objective) -> pd.DataFrame:
    """One row per completed trial: parameters, every recorded metric, and ``score`` for a scaled sum."""
    rows = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        score = {"score": t.values[0]} if objective.sum_scaled else {}
        rows.append({"trial": t.number, **t.params, **t.user_attrs, **score})
    return pd.DataFrame(rows).set_index("trial") if rows else pd.DataFrame()


def _write(run_dir: Path, table: pd.DataFrame, best: pd.DataFrame) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(run_dir / "trials.csv")
    table.reset_index().to_json(run_dir / "trials.json", orient="records", indent=1)
    best.reset_index().to_json(run_dir / "best.json", orient="records", indent=1)


# ============================================================================= configs from TOML

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


def load_config(path: str | Path, **setup_overrides) -> SearchConfig:
    """Read and validate a search TOML (format in the module docstring).

    ``setup_overrides`` (sampler, n_trials, seed, study_name; None means "keep") replace the
    ``[search.strategy.setup]`` values, as the CLI flags do.
    """
    path = Path(path)
    raw = read_toml(path, "configs/jsc_tiny_by_type_brute_force.toml")
    overrides = {k: v for k, v in setup_overrides.items() if v is not None}
    if overrides:
        if not isinstance(raw.get("search", {}).get("strategy", {}), dict):
            raise ValueError(f"config {path}: [search.strategy] must be a table")
        raw.setdefault("search", {}).setdefault("strategy", {}).setdefault("setup", {}).update(overrides)
    return parse_config(raw, path)


def parse_config(raw: dict, path: Path | None = None) -> SearchConfig:
    """Validate a search config dict (the parsed TOML) and build its space and objective."""
    _check_keys(raw, {"model", "data", "search"}, "config")
    search = raw.get("search")
    if not isinstance(search, dict) or "search_space" not in search:
        raise ValueError("config lacks [search.search_space]; see configs/jsc_tiny_by_type_brute_force.toml")
    _check_keys(search, {"search_space", "strategy"}, "[search]")
    if not isinstance(search["search_space"], dict):
        raise ValueError(f"[search.search_space] must be a table, got {search['search_space']!r}; "
                         "see configs/jsc_tiny_by_type_brute_force.toml")
    kind = search["search_space"].get("kind", "quantize")
    if kind not in KINDS:
        raise ValueError(f"[search.search_space] kind={kind!r} is unknown; choose one of {sorted(KINDS)}")
    strategy = search.get("strategy", {})
    _check_keys(strategy, {"setup", "metrics"}, "[search.strategy]")
    setup = strategy.get("setup", {})
    _check_keys(setup, {"sampler", "n_trials", "seed", "sum_scaled_metrics", "study_name"}, "[search.strategy.setup]")
    metrics = strategy.get("metrics", {"accuracy": {"direction": "maximize"}})
    if not isinstance(metrics, dict):
        raise ValueError(f"[search.strategy.metrics] must be a table, got {metrics!r}; e.g. accuracy = {{direction = 'maximize'}}")
    if not isinstance(setup.get("sum_scaled_metrics", False), bool):
        raise ValueError(f"[search.strategy.setup] sum_scaled_metrics={setup['sum_scaled_metrics']!r} must be true or false")
    objective = objective_from_toml(metrics, setup.get("sum_scaled_metrics", False))
    unknown = sorted(set(objective.metrics) - set(KINDS[kind].metrics))
    if unknown:
        raise ValueError(f"[search.strategy.metrics] {unknown} are not metrics of kind {kind!r}; "
                         f"choose from {list(KINDS[kind].metrics)}")
    cfg = SearchConfig(space=KINDS[kind].parse(search["search_space"]), objective=objective, kind=kind,
                       model=raw.get("model", {}), data=raw.get("data", {}), path=path, **_setup(setup))
    _check_model_data(cfg)
    return cfg


def _setup(setup: dict) -> dict:
    out = {"sampler": setup.get("sampler", "tpe"), "n_trials": setup.get("n_trials"), "seed": setup.get("seed", 0),
           "study_name": setup.get("study_name")}
    if out["sampler"] not in SAMPLERS:
        raise ValueError(f"[search.strategy.setup] sampler={out['sampler']!r} is unknown; choose one of {list(SAMPLERS)}")
    _check_seed(out["seed"])
    if out["n_trials"] is not None:
        validate.positive_int("[search.strategy.setup] n_trials", out["n_trials"], validate.MAX_TRIALS)
    if out["study_name"] is not None:
        validate.safe_name("[search.strategy.setup] study_name", out["study_name"])
    return out


def _check_model_data(cfg: SearchConfig) -> None:
    from . import data as _data, models as _models

    _check_keys(cfg.model, {"name", "checkpoint"}, "[model]")
    _check_keys(cfg.data, {"source", "path", "split"}, "[data]")
    if cfg.kind == "quantize" and cfg.model.get("name") not in _models.MODELS:
        raise ValueError(f"[model] name={cfg.model.get('name')!r} is unknown; choose one of {sorted(_models.MODELS)}")
    if cfg.data.get("source", "auto") not in _data.SOURCES:
        raise ValueError(f"[data] source={cfg.data.get('source')!r} is unknown; choose one of {list(_data.SOURCES)}")
    if cfg.data.get("split", "val") not in _data.SPLITS:
        raise ValueError(f"[data] split={cfg.data.get('split')!r} is unknown; choose one of {list(_data.SPLITS)}")
    for table, key in ((cfg.data, "path"), (cfg.model, "checkpoint")):
        if not isinstance(table.get(key, ""), str):
            raise ValueError(f"[{'data' if table is cfg.data else 'model'}] {key}={table[key]!r} must be a path "
                             f"in quotes, e.g. {key} = \"{'data/x.h5' if key == 'path' else 'checkpoints/jsc-tiny.pt'}\"")


def _check_keys(table, allowed: set[str], where: str) -> None:
    if not isinstance(table, dict):
        raise ValueError(f"{where} must be a table, got {table!r}")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ValueError(f"{where} has unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def default_study_name(cfg: SearchConfig) -> str:
    """``<config file stem>-<sampler>-seed<seed>`` unless the config names the study."""
    stem = cfg.path.stem if cfg.path is not None else "search"
    return cfg.study_name or f"{stem}-{cfg.sampler}-seed{cfg.seed}"


def run_config(cfg: SearchConfig, *, checkpoint: str | None = None, dataset: str | None = None,
               **run_kwargs) -> SearchResult:
    """Build the kind's evaluator from the config and :func:`run` the study it describes."""
    evaluate = KINDS[cfg.kind].evaluator(cfg, checkpoint=checkpoint, dataset=dataset)
    kwargs = {"sampler": cfg.sampler, "n_trials": cfg.n_trials, "seed": cfg.seed,
              "study_name": default_study_name(cfg), "context": config_context(cfg, evaluate), **run_kwargs}
    return run(cfg.space, evaluate, cfg.objective, **kwargs)


def config_context(cfg: SearchConfig, evaluate) -> dict:
    """The part of a study's context that only the config and its evaluator know: the space kind and the
    evaluator's ``context`` (dataset fingerprint, checkpoint hash, split, training settings)."""
    return {"kind": cfg.kind, **getattr(evaluate, "context", {})}


# ============================================================================= sample efficiency

def exhaustive(space: Space, evaluate: Callable[[Any], dict], *, progress: bool = True) -> pd.DataFrame:
    """Evaluate every point once: the lookup table (params encoded as in Optuna, plus all metrics)."""
    rows = []
    for params in tqdm(space.grid(), total=space.size, desc="exhaustive", disable=not progress, leave=False):
        rows.append({**space.encode(params), **evaluate(space.to_config(params))})
    return pd.DataFrame(rows)


def replay(space: Space, table: pd.DataFrame, column: str, *, samplers=("brute-force", "random", "tpe"),
           seeds=range(20), n_trials: int = 16, progress: bool = True) -> pd.DataFrame:
    """Run each sampler for each seed against the lookup ``table`` (maximising ``column``).

    Returns the long table: sampler, seed, trial (1-based), value, best (best so far) and distinct
    (distinct points visited so far). Nothing is re-evaluated: every trial reads the table.
    """
    names = list(space.choices)
    lookup = dict(zip(map(tuple, table[names].itertuples(index=False)), table[column].astype(float)))
    if len(lookup) != space.size:
        raise ValueError(f"lookup table has {len(lookup)} distinct points, the space {space.size}; run exhaustive() first")
    rows = []
    jobs = [(s, seed) for s in samplers for seed in seeds]
    with _quiet_optuna():
        for sampler, seed in tqdm(jobs, desc="replay", disable=not progress, leave=False):
            rows += _replay_one(space, lookup, names, sampler, seed, n_trials)
    return pd.DataFrame(rows)


def _replay_one(space, lookup, names, sampler, seed, n_trials) -> list[dict]:
    study = optuna.create_study(sampler=make_sampler(sampler, space, seed), direction="maximize")
    study.optimize(lambda t: lookup[tuple(space.encode(space.suggest(t))[n] for n in names)], n_trials=n_trials)
    rows, best, seen = [], -math.inf, set()
    for i, t in enumerate(study.trials, start=1):
        best = max(best, t.value)
        seen.add(tuple(t.params[n] for n in names))
        rows.append({"sampler": sampler, "seed": seed, "trial": i, "value": t.value, "best": best, "distinct": len(seen)})
    return rows


def efficiency(curves: pd.DataFrame, optimum: float, *, tol: float = 0.0) -> pd.DataFrame:
    """Per sampler: how many trials each seed needed to come within ``tol`` of ``optimum``.

    Columns: seeds, reached (seeds that got there within the budget), median_trials (``inf`` unless
    more than half got there), mean_regret_final, and distinct_final (mean distinct points visited).
    """
    rows = []
    for sampler, group in curves.groupby("sampler", sort=False):
        per_seed = group.groupby("seed")
        hit = np.array([_first_hit(g, optimum, tol) for _, g in per_seed])
        last = per_seed.tail(1)
        rows.append({"sampler": sampler, "seeds": len(hit), "reached": int(np.isfinite(hit).sum()),
                     "median_trials": float(np.median(hit)), "mean_regret_final": float((optimum - last["best"]).mean()),
                     "distinct_final": float(last["distinct"].mean())})
    return pd.DataFrame(rows).set_index("sampler")


def _first_hit(group: pd.DataFrame, optimum: float, tol: float) -> float:
    hits = group.loc[group["best"] >= optimum - tol - 1e-12, "trial"]
    return float(hits.iloc[0]) if len(hits) else math.inf


def score(table: pd.DataFrame, objective: Objective) -> pd.Series:
    """The single objective value of every row of a metrics table (the scaled sum, or the one metric)."""
    if len(objective.directions) != 1:
        raise ValueError(f"score() needs a single objective; {list(objective.metrics)} are several: set sum_scaled")
    return pd.Series([objective.values(row)[0] for row in table.to_dict("records")], index=table.index, name="score")


def curve_summary(curves: pd.DataFrame, optimum: float) -> pd.DataFrame:
    """Per sampler and trial: mean, 10th and 90th percentile of best-so-far, and mean regret."""
    g = curves.assign(regret=optimum - curves["best"]).groupby(["sampler", "trial"], sort=False)
    return pd.DataFrame({"best_mean": g["best"].mean(), "best_p10": g["best"].quantile(0.1),
                         "best_p90": g["best"].quantile(0.9), "regret_mean": g["regret"].mean(),
                         "regret_median": g["regret"].median()})
