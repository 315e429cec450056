"""The one home of the training settings: a frozen :class:`TrainSettings`, read from Python or TOML.

Every trainer and every Lab 4 table takes one ``TrainSettings`` instead of re-listing epochs, batch
size, lr, seeds ... as parameters. The defaults are the seed report's training (10 epochs, batch
512, Adam lr 1e-3, seed 0, MASE's final ReLU). ``to_dict()`` is the plain form stored in table and
study metadata; ``from_toml`` reads a ``[... .train]`` table of a search config.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .. import validate
from ..data import JSC


@dataclass(frozen=True)
class TrainSettings:
    """How networks are trained; every field is checked when the settings are made.

    * ``epochs``, ``batch_size``, ``lr``: Adam on the training split, ``epochs`` passes in batches.
    * ``seed``: the batch order (every network of one run sees the same batches) and the first init
      seed of the networks a trainer builds itself (Lab 4's tables).
    * ``n_seeds``: Lab 4's tables train each architecture from the init seeds ``seed, seed + 1, ...``
      and report their mean.
    * ``final_relu``: MASE's ReLU on the logits, for the networks a trainer builds itself.
    * ``max_train_rows``: only the first rows of the training split (None: all; say so when you report).
    * ``patience``: the single-network trainer stops after this many epochs without a better
      validation loss and keeps the best epoch's weights (None: run every epoch).
    """

    epochs: int = 10
    batch_size: int = 512
    lr: float = 1e-3
    seed: int = 0
    n_seeds: int = 1
    final_relu: bool = True
    max_train_rows: int | None = None
    patience: int | None = None

    def __post_init__(self):
        for name in ("epochs", "batch_size", "n_seeds"):
            validate.positive_int(name, getattr(self, name))
        validate.positive_number("lr", self.lr, example="1e-3")
        validate.non_negative_int("seed", self.seed)
        validate.boolean("final_relu", self.final_relu)
        _check_rows(self.max_train_rows)
        if self.patience is not None:
            validate.positive_int("patience", self.patience)

    @classmethod
    def from_toml(cls, table: dict, where: str) -> "TrainSettings":
        """Settings from a TOML table such as ``[search.search_space.train]``; 0 means None (TOML has no null).

        Keys left out keep their defaults; an unknown key or a bad value is a ValueError naming ``where``.
        """
        allowed = sorted(field.name for field in dataclasses.fields(cls))
        if not isinstance(table, dict):
            raise ValueError(f"{where} must be a table, got {table!r}")
        unknown = sorted(set(table) - set(allowed))
        if unknown:
            raise ValueError(f"{where} has unknown key(s) {unknown}; allowed: {allowed}")
        values = {k: (None if k in ("max_train_rows", "patience") and validate.is_int(v) and v == 0 else v)
                  for k, v in table.items()}
        try:
            return cls(**values)
        except ValueError as exc:
            raise ValueError(f"{where} {exc}") from None

    def to_dict(self) -> dict:
        """The settings as plain data (for JSON metadata): ``TrainSettings(**s.to_dict()) == s``."""
        return dataclasses.asdict(self)

    def init_seeds(self, count: int) -> list[int]:
        """Init seeds of ``count`` networks trained ``n_seeds`` times: ``seed`` for all, then ``seed + 1`` ..."""
        return [self.seed + i for i in range(self.n_seeds) for _ in range(count)]


def subsample(data: JSC, max_train_rows: int | None) -> JSC:
    """``data`` with only the first ``max_train_rows`` training rows (they are already shuffled)."""
    if _check_rows(max_train_rows) is None or max_train_rows >= len(data.x_train):
        return data
    return dataclasses.replace(data, x_train=data.x_train[:max_train_rows], y_train=data.y_train[:max_train_rows])


def _check_rows(max_train_rows):
    if max_train_rows is not None and not (validate.is_int(max_train_rows) and max_train_rows >= 2):
        raise ValueError(f"max_train_rows={max_train_rows!r} must be an integer >= 2 or None (all rows)")
    return max_train_rows
