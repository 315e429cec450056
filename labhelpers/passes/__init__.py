"""Transform passes in the MASE idiom: ``pass(graph, pass_args) -> (graph, info)``.

Every pass works on ``graph.copy()`` and never modifies the caller's graph or ``pass_args``, so each
trial of a search starts from the same float graph.
"""
from .quantize import LinearInteger, fixed_point, quantize_transform_pass

__all__ = ["LinearInteger", "fixed_point", "quantize_transform_pass"]
