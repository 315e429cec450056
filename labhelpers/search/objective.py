"""Objectives: which metrics to optimise, in which direction (Optuna's "maximize"/"minimize")."""
from __future__ import annotations

import numbers
from dataclasses import dataclass

from .space import check_keys

DIRECTIONS = ("maximize", "minimize")


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
            if not _is_real(scale):
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


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def objective_from_toml(table: dict, sum_scaled: bool = False) -> Objective:
    """``{"accuracy": {"direction": "maximize", "scale": 1.0}, ...}`` -> :class:`Objective`."""
    metrics = {}
    for name, spec in table.items():
        spec = {"direction": spec} if isinstance(spec, str) else spec
        if not isinstance(spec, dict):
            raise ValueError(f"[search.strategy.metrics] {name} must be a table like {{direction = 'maximize', scale = 1.0}}")
        check_keys(spec, {"direction", "scale"}, f"[search.strategy.metrics.{name}]")
        metrics[name] = (spec.get("direction", "maximize"), spec.get("scale", 1.0))
    return Objective(metrics, sum_scaled)
