"""Space kind ``"architecture"`` (Lab 4): the hidden widths (h1, h2) of JSC-Three-Linear, training settings fixed.

Every trial trains its architecture from scratch (:func:`labhelpers.nas.evaluate_architecture`).
"""
from __future__ import annotations

import dataclasses

from .. import models, nas, validate
from ..training import TrainSettings
from .evaluator import Evaluator, Kind
from .space import Space, check_keys, split_fixed


def architecture_space(section: dict) -> Space:
    """``[search.search_space] kind = "architecture"``: hidden widths searched, training settings fixed.

    ::

        [search.search_space]
        kind = "architecture"
        [search.search_space.hidden]
        h1 = [16, 32, 48, 64, 80]      # widths of the first hidden layer (16 x channel multiplier)
        h2 = [16, 32, 48, 64, 80]      # widths of the second; one value = fixed
        [search.search_space.train]
        epochs = 10                    # every trial trains from scratch with these settings
        batch_size = 512
        lr = 1e-3
        seed = 0                       # init and batch-order seed: the same point retrains the same
        n_seeds = 1                    # init seeds seed, seed+1, ... per trial; accuracy is their mean
        final_relu = true              # MASE's ReLU on the logits (false: the variant without it)
        max_train_rows = 0             # 0 = all training rows

    Its fixed part is ``{"train": the training settings, "hidden": {the single-choice widths}}``.
    """
    where = "[search.search_space]"
    check_keys(section, {"kind", "hidden", "train"}, where)
    hidden = section.get("hidden")
    if not isinstance(hidden, dict) or set(hidden) != {"h1", "h2"}:
        raise ValueError(f"{where}.hidden must set h1 and h2 (lists of widths), e.g. h1 = [16, 32, 48, 64, 80]")
    widths = {name: _widths(values, f"{where}.hidden {name}") for name, values in hidden.items()}
    settings = train_settings(section.get("train", {}), f"{where}.train")
    fixed, choices = split_fixed(widths)

    def to_config(params: dict) -> dict:
        point = {**fixed, **params}
        return {"hidden": (point["h1"], point["h2"]), **settings}
    return Space(choices, to_config, kind="architecture", fixed={"train": settings, "hidden": fixed})


def _widths(values, where: str) -> list[int]:
    values = values if isinstance(values, list) else [values]
    for v in values:
        if not validate.is_int(v) or not 1 <= v <= models.MAX_HIDDEN:
            raise ValueError(f"{where}: width {v!r} must be a positive integer at most {models.MAX_HIDDEN}, e.g. 32")
    if len(set(values)) != len(values) or not values:
        raise ValueError(f"{where}: {values} must list each width once")
    return sorted(values)


# patience does not apply: the batched trainer runs every epoch of every network
TRAIN_KEYS = {f.name for f in dataclasses.fields(TrainSettings)} - {"patience"}


def train_settings(table: dict, where: str = "train") -> dict:
    """The training settings of ``table`` (:meth:`TrainSettings.from_toml`, ``max_train_rows = 0`` means all
    rows), as the plain dict a trial's config and the study's context carry."""
    check_keys(table, TRAIN_KEYS, where)
    settings = TrainSettings.from_toml(table, where).to_dict()
    return {k: v for k, v in settings.items() if k in TRAIN_KEYS}


def architecture_evaluator(cfg, *, checkpoint: str | None = None, dataset: str | None = None) -> Evaluator:
    """Load the data once; every trial trains its architecture from scratch (no checkpoint)."""
    from .. import data

    if checkpoint is not None:
        raise ValueError("--checkpoint does not apply to kind 'architecture': every trial trains from scratch")
    name = cfg.model.get("name", "jsc-three-linear")
    if name != "jsc-three-linear":
        raise ValueError(f"[model] name={name!r}: kind 'architecture' searches the hidden widths of 'jsc-three-linear'")
    jsc = data.load_jsc(dataset or cfg.data.get("source", "auto"), cfg.data.get("path"), verbose=False)
    split = cfg.data.get("split", "val")

    def evaluate(config: dict) -> dict[str, float]:
        settings = TrainSettings(**{k: v for k, v in config.items() if k != "hidden"})
        return nas.evaluate_architecture(config["hidden"], jsc, settings, split=split)
    return Evaluator(evaluate, {"dataset_fingerprint": jsc.fingerprint, "split": split})


def hidden_space(widths1, widths2=None, **settings) -> Space:
    """The kind-"architecture" search space over (h1, h2) (Lab 4; was ``nas.hidden_space``)."""
    widths2 = widths1 if widths2 is None else widths2
    return architecture_space({"kind": "architecture", "hidden": {"h1": list(widths1), "h2": list(widths2)},
                               "train": settings})


KIND = Kind(architecture_space, architecture_evaluator, nas.ARCHITECTURE_METRICS)
