"""What a space kind provides (:class:`Kind`) and what its evaluator is (:class:`Evaluator`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .space import Space


@dataclass(frozen=True)
class Evaluator:
    """``evaluator(config) -> {metric: value}``, with its ``context``: plain data that changes its scores
    (dataset fingerprint, checkpoint hash, split...), stored with a study so that a resume elsewhere is refused."""

    evaluate: Callable[[Any], dict]
    context: dict = field(default_factory=dict)

    def __call__(self, config) -> dict:
        return self.evaluate(config)


def context_of(evaluate) -> dict:
    """The context of an :class:`Evaluator`; {} for a plain function."""
    return dict(evaluate.context) if isinstance(evaluate, Evaluator) else {}


@dataclass(frozen=True)
class Kind:
    """A space kind: ``parse(table) -> Space``, ``evaluator(cfg, checkpoint=, dataset=) -> Evaluator``, its metrics."""

    parse: Callable[[dict], Space]
    evaluator: Callable[..., Callable[[Any], dict]]
    metrics: tuple[str, ...]
