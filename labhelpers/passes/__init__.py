"""Transform passes: pass(graph, pass_args) -> (graph, info)."""
from . import channels  # noqa: F401
