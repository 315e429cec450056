"""A small torch.fx wrapper and the MASE pass-config convention.

A pass is a function ``pass(graph, pass_args) -> (graph, info)``. The passes in
``labhelpers.passes`` never modify their input, so every trial of a search can start from the same
float graph. They also never modify ``pass_args`` (MASE pops keys out of the caller's dict, which
breaks a config on its second use).

**Copy on write.** A pass copies only what it changes: :meth:`Graph.with_modules` returns a graph
whose replaced modules are new, while the fx graph, the generated code and the parameters and
buffers of every other module are *shared* with the input graph (copying the whole model cost more
than evaluating it). Each graph has its own thin module objects, so ``train()``/``eval()`` on one
graph never switches another. The contract that keeps the sharing safe: nothing modifies a
graph's tensors or fx graph in place -- a pass builds a new module and swaps it in; code that
trains a graph (a forward pass in training mode updates BatchNorm's running statistics in place)
or edits its modules or nodes works on :meth:`Graph.copy`, a full deep copy, first.

Pass configs follow MASE::

    {"by": "type",                                # or "name"
     "default": {"config": {"name": None}},       # used where nothing more specific matches
     "linear": {"config": {...}}}                 # a node type (by type) or node name (by name)
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import fx, nn

# Node types as MASE names them.
_TYPE_NAMES: dict[type, str] = {
    nn.Linear: "linear",
    nn.ReLU: "relu",
    nn.BatchNorm1d: "batch_norm1d",
}


def module_type(module: nn.Module) -> str:
    """MASE-style type name of a module: ``linear``, ``relu``, ``batch_norm1d`` (subclasses included)."""
    for cls in type(module).__mro__:
        if cls in _TYPE_NAMES:
            return _TYPE_NAMES[cls]
    return type(module).__name__.lower()


class Graph:
    """A traced model: ``graph.model`` is the ``fx.GraphModule``; ``graph.modules`` maps node name -> module."""

    def __init__(self, model: nn.Module | fx.GraphModule):
        self.model = model if isinstance(model, fx.GraphModule) else fx.symbolic_trace(copy.deepcopy(model))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def copy(self) -> "Graph":
        """A full deep copy: nothing is shared with this graph (use it before training or editing modules)."""
        return Graph(copy.deepcopy(self.model))

    def with_modules(self, replacements: dict[str, nn.Module]) -> "Graph":
        """A graph with the given node -> module replacements; all tensors are shared (copy on write).

        Every other module becomes a new shell around the same parameters and buffers, so the swap,
        and the ``train()``/``eval()`` mode of either graph, stay their own. See the module docstring.
        """
        by_target = {self._target(node): module for node, module in replacements.items()}
        return Graph(_shell_tree(self.model, "", by_target))

    @property
    def module_nodes(self) -> list[fx.Node]:
        return [n for n in self.model.graph.nodes if n.op == "call_module"]

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.module_nodes]

    @property
    def modules(self) -> dict[str, nn.Module]:
        """Node name (``seq_blocks_2``) -> module, in execution order."""
        return {n.name: self.model.get_submodule(n.target) for n in self.module_nodes}

    def node_types(self) -> dict[str, str]:
        return {name: module_type(m) for name, m in self.modules.items()}

    def replace_module(self, node_name: str, new_module: nn.Module) -> None:
        """Swap the module a node calls (in place: call it on a copy)."""
        target = self._target(node_name)
        parent_name, _, attr = target.rpartition(".")
        setattr(self.model.get_submodule(parent_name), attr, new_module)

    def _target(self, node_name: str) -> str:
        for n in self.module_nodes:
            if n.name == node_name:
                return n.target
        raise ValueError(f"node {node_name!r} is not in the graph; nodes are {self.node_names}")

    def summary(self) -> "list[dict[str, Any]]":
        return [{"node": name, "type": module_type(m), "module": repr(m)} for name, m in self.modules.items()]


def _shell(module: nn.Module) -> nn.Module:
    """A new module object sharing ``module``'s parameters, buffers, children and code, with its own dicts of them."""
    new = object.__new__(type(module))  # not GraphModule.__new__: that makes a new class without the forward
    new.__dict__.update({k: v.copy() if isinstance(v, dict) else v for k, v in module.__dict__.items()})
    return new


def _shell_tree(module: nn.Module, prefix: str, replacements: dict[str, nn.Module]) -> nn.Module:
    new = _shell(module)
    for name, child in new._modules.items():
        target = prefix + name
        new._modules[name] = replacements[target] if target in replacements else _shell_tree(child, target + ".", replacements)
    return new


def trace(model: nn.Module) -> Graph:
    """Trace a (copy of a) model with torch.fx; the caller's model is never modified by passes."""
    return Graph(model)


def validate_pass_args(graph: Graph, pass_args: dict, *, types: set[str] | None = None) -> str:
    """Check a MASE pass config against the graph and return its ``by`` mode.

    ``types`` are the node types the pass acts on (``{"linear"}`` for quantization). Unknown keys,
    node names or types raise a one-line ``ValueError`` that lists what is allowed.
    """
    if not isinstance(pass_args, dict):
        raise ValueError(f"pass_args must be a dict like {{'by': 'type', 'default': {{...}}}}, got {type(pass_args).__name__}")
    by = pass_args.get("by", "type")
    if by not in ("type", "name"):
        raise ValueError(f"pass_args['by']={by!r} is invalid; use 'type' or 'name'")
    allowed = set(graph.node_names) if by == "name" else set(graph.node_types().values())
    if types is not None and by == "type":
        allowed &= types
    for key, entry in pass_args.items():
        if key == "by":
            continue
        if key != "default" and key not in allowed:
            what = "node name" if by == "name" else "node type"
            raise ValueError(f"pass_args key {key!r} is not a {what} of this graph (by={by!r}); "
                             f"allowed: {sorted(allowed)} or 'default'")
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            raise ValueError(f"pass_args[{key!r}] must be a table with a 'config' table, "
                             f"e.g. {{'config': {{'name': 'integer', ...}}}}")
    return by


def node_config(pass_args: dict, node_name: str, node_type: str) -> dict | None:
    """The config for one node (a deep copy), or None if neither the node nor ``default`` has one."""
    key = node_name if pass_args.get("by", "type") == "name" else node_type
    entry = pass_args.get(key, pass_args.get("default"))
    return copy.deepcopy(entry["config"]) if entry is not None else None
