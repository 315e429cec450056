"""Space kind ``"quantize"``: MASE quantize pass_args from ``[search.search_space]`` (format: :mod:`labhelpers.search`)."""
from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

from .. import validate
from ..passes import quantize
from .evaluator import Evaluator, Kind
from .hardware_metrics import METRICS as HARDWARE_METRICS
from .hardware_metrics import hardware_context, with_hardware
from .space import Space, check_keys, sorted_choices, split_fixed

FIELDS = ("name", *quantize.FIELDS, *quantize.PREFIXES, *quantize.MODE_FIELDS)  # rounding/overflow too
METRICS = ("accuracy", "loss", "params", "size_bits", "macs", "flops", "bops", "mac_bitops",
           "latency_ms", "latency_iqr_ms", *HARDWARE_METRICS)


def quantize_space(section: dict) -> Space:
    """A :class:`Space` over quantize pass_args from a ``[search.search_space]`` table.

    Its fixed part is ``{"by": "type" | "name", "seed": {key: {field: the single choice}}}``."""
    check_keys(section, {"kind", "setup", "seed"}, "[search.search_space]")
    setup = section.get("setup", {})
    check_keys(setup, {"by"}, "[search.search_space.setup]")
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
        fixed[key], sampled = split_fixed(_fields(entry["config"], f"{where[:-1]}.config]"))
        choices.update({f"{key}/{f}": v for f, v in sampled.items()})
    return Space(choices, lambda params: pass_args(by, fixed, params), kind="quantize",
                 fixed={"by": by, "seed": fixed})


def _fields(config: dict, where: str) -> dict[str, list]:
    check_keys(config, set(FIELDS), where)
    fields = {f: sorted_choices(v if isinstance(v, list) else [v], f"{where} {f}") for f, v in config.items()}
    for prefix in quantize.PREFIXES:
        if prefix in fields and ({f"{prefix}_width", f"{prefix}_frac_width"} & set(fields)):
            raise ValueError(f"{where} sets both {prefix!r} pairs and {prefix}_width/{prefix}_frac_width; use one")
        pairs = fields.get(prefix) or itertools.product(fields.get(f"{prefix}_width", [None]),
                                                        fields.get(f"{prefix}_frac_width", [None]))
        for pair in pairs:
            _check_pair(prefix, pair, where)
    for mode, allowed in quantize.MODE_FIELDS.items():
        for choice in fields.get(mode, []):
            validate.one_of(mode, choice, allowed, f"{where} ")
    return fields


def _check_pair(prefix: str, pair, where: str) -> None:
    """The pass's own check (:func:`labhelpers.passes.quantize.check_config`) of one (width, frac) pair; a
    missing half is checked against the widest width."""
    if not isinstance(pair, tuple) or len(pair) != 2:
        raise ValueError(f"{where} {prefix}: each choice must be a [width, frac_width] pair, got {pair!r}")
    width, frac = pair
    layer = {"name": "integer", **{f"{p}_width": quantize.MAX_WIDTH for p in quantize.PREFIXES},
             **{f"{p}_frac_width": 0 for p in quantize.PREFIXES}}
    if width is not None:
        quantize.check_config({**layer, f"{prefix}_width": width}, f"{where} ")
    if frac is not None:
        wide = width if isinstance(width, int) else quantize.MAX_WIDTH
        quantize.check_config({**layer, f"{prefix}_width": wide, f"{prefix}_frac_width": frac},
                              f"{where} (with {prefix}_width={width}) ")


def pass_args(by: str, fixed: dict, params: dict) -> dict:
    """MASE pass_args for one sample: fixed values plus sampled ones, (width, frac) pairs expanded."""
    tables = {key: dict(values) for key, values in fixed.items()}
    for name, value in params.items():
        key, _, f = name.partition("/")
        tables[key][f] = value
    out = {"by": by}
    for key, table in tables.items():
        config = {}
        for f, value in table.items():
            if f in quantize.PREFIXES:
                config[f"{f}_width"], config[f"{f}_frac_width"] = value
            else:
                config[f] = value
        out[key] = {"config": config}
    return out


def quantize_evaluator(cfg, *, checkpoint: str | None = None, dataset: str | None = None) -> Evaluator:
    """Checkpoint -> float graph -> :func:`labhelpers.metrics.load_evaluator`, with the study's context; with
    ``cfg.hardware`` (the objective names luts...), each trial is also synthesized (:mod:`.hardware_metrics`)."""
    from .. import metrics

    split = cfg.data.get("split", "val")
    evaluate = metrics.load_evaluator(cfg.model["name"], checkpoint or cfg.model.get("checkpoint"),
                                      dataset=dataset or cfg.data.get("source", "auto"), data_path=cfg.data.get("path"),
                                      split=split, with_latency=any(m.startswith("latency") for m in cfg.objective.metrics))
    # every point has the same tables: the first one shows a config that does not fit the graph before any trial
    quantize.quantize_transform_pass(evaluate.graph, cfg.space.to_config(next(cfg.space.grid())))
    context = {"dataset_fingerprint": evaluate.data.fingerprint, "checkpoint_sha256": sha256(evaluate.checkpoint),
               "split": split}
    if cfg.hardware:
        return Evaluator(with_hardware(evaluate, cfg.hardware), {**context, "hardware": hardware_context(cfg.hardware)})
    return Evaluator(evaluate, context)


def sha256(path) -> str:
    """The first 16 hex digits of the file's SHA-256."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


KIND = Kind(quantize_space, quantize_evaluator, METRICS)
