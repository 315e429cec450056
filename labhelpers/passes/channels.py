"""Channel passes for Lab 4: widen or narrow the linear layers of a traced MLP.

``redefine_linear_transform_pass`` resizes ``nn.Linear`` layers node by node, MASE style::

    {"by": "name",
     "default": {"config": {"name": None}},                       # leave other layers alone
     "seq_blocks_2": {"config": {"name": "output_only", "channel_multiplier": 2}},
     "seq_blocks_4": {"config": {"name": "both", "channel_multiplier": 2}},
     "seq_blocks_6": {"config": {"name": "input_only", "channel_multiplier": 2}}}

``name`` is ``output_only`` (scale out_features), ``input_only`` (scale in_features) or ``both``.
``both`` takes one ``channel_multiplier`` or separate ``channel_multiplier_input`` and
``channel_multiplier_output`` (the seed report's task 3). A multiplier may be fractional (0.5)
as long as the new width is a positive integer.

Resized layers are freshly initialised (seed torch first for reproducible weights). The pass checks
the chain of linear layers: the output width of one must be the input width of the next, the
first must still read the model's input features and the last must still produce the classes.
A config that breaks the chain raises a ``ValueError`` that names both layers and both widths;
:func:`multiplier_pass_args` builds consistent configs from per-hidden-layer multipliers.

``redefine_relu_pass`` replaces every ReLU by ``nn.ReLU()`` (never ``nn.ReLU(16)``, which means
``inplace=True``) and reports the width it carries; ``redefine_batch_norm_pass`` resizes a
BatchNorm1d whose width no longer matches the layer before it.
"""
from __future__ import annotations

from numbers import Real

import pandas as pd
from torch import nn

from ..graph import Graph, node_config, validate_pass_args
from ..models import count_params

MODES = ("output_only", "input_only", "both")
_CONFIG_KEYS = {"name", "channel_multiplier", "channel_multiplier_input", "channel_multiplier_output"}


# ----------------------------------------------------------------------------- linear layers

def redefine_linear_transform_pass(graph: Graph, pass_args: dict) -> tuple[Graph, dict]:
    """Resize linear layers by channel multipliers; return ``(new graph, {"layers": DataFrame})``.

    The caller's graph and ``pass_args`` are left untouched. ``info["layers"]`` has one row per
    linear node with its widths and parameter counts before and after.
    """
    validate_pass_args(graph, pass_args, types={"linear"})
    old = _linear_widths(graph)
    new = {node: _new_widths(node, widths, _linear_config(graph, pass_args, node)) for node, widths in old.items()}
    check_linear_chain(new, in_features=_first(old)[0], out_features=_last(old)[1])
    out = graph.copy()
    for node, (n_in, n_out) in new.items():
        if (n_in, n_out) != old[node]:
            bias = out.modules[node].bias is not None
            out.replace_module(node, nn.Linear(n_in, n_out, bias=bias))
    out.model.recompile()
    return out, {"layers": _layer_table(old, new, graph, out)}


def _linear_widths(graph: Graph) -> dict[str, tuple[int, int]]:
    return {node: (m.in_features, m.out_features) for node, m in graph.modules.items() if isinstance(m, nn.Linear)}


def _first(widths: dict):
    return next(iter(widths.values()))


def _last(widths: dict):
    return list(widths.values())[-1]


def _linear_config(graph: Graph, pass_args: dict, node: str) -> dict:
    config = node_config(pass_args, node, "linear") or {"name": None}
    unknown = sorted(set(config) - _CONFIG_KEYS)
    if unknown:
        raise ValueError(f"{node}: config keys {unknown} are unknown; allowed: {sorted(_CONFIG_KEYS)}")
    return config


def _new_widths(node: str, widths: tuple[int, int], config: dict) -> tuple[int, int]:
    """(in, out) of a linear layer after applying its config."""
    mode = config.get("name")
    if mode is None:
        return widths
    if mode not in MODES:
        raise ValueError(f"{node}: name={mode!r} is unknown; choose one of {list(MODES)} or None")
    m_in, m_out = _multipliers(node, mode, config)
    return _scaled(node, "in_features", widths[0], m_in), _scaled(node, "out_features", widths[1], m_out)


def _multipliers(node: str, mode: str, config: dict) -> tuple[Real, Real]:
    """(input multiplier, output multiplier) of one node; 1 for the side a mode leaves alone."""
    shared = config.get("channel_multiplier")
    m_in = config.get("channel_multiplier_input", shared)
    m_out = config.get("channel_multiplier_output", shared)
    needed = {"output_only": ("channel_multiplier_output",), "input_only": ("channel_multiplier_input",),
              "both": ("channel_multiplier_input", "channel_multiplier_output")}[mode]
    for key, value in (("channel_multiplier_input", m_in), ("channel_multiplier_output", m_out)):
        if key in needed and value is None:
            raise ValueError(f"{node}: name={mode!r} needs 'channel_multiplier' (or {key!r})")
    return (m_in if mode != "output_only" else 1), (m_out if mode != "input_only" else 1)


def _scaled(node: str, field: str, width: int, multiplier) -> int:
    if isinstance(multiplier, bool) or not isinstance(multiplier, Real) or not multiplier > 0:
        raise ValueError(f"{node}: multiplier for {field}={multiplier!r} must be a positive number, e.g. 2")
    new = width * multiplier
    if abs(new - round(new)) > 1e-9 or round(new) < 1:
        raise ValueError(f"{node}: {field} {width} x {multiplier} = {new} is not a positive whole number of channels")
    return int(round(new))


def check_linear_chain(widths: dict[str, tuple[int, int]], *, in_features: int, out_features: int) -> None:
    """Raise ``ValueError`` unless consecutive linear layers agree and the ends keep their widths."""
    nodes = list(widths)
    if widths[nodes[0]][0] != in_features:
        raise ValueError(f"{nodes[0]} would read {widths[nodes[0]][0]} features, but the model input has "
                         f"{in_features}; the first linear layer's in_features cannot change")
    if widths[nodes[-1]][1] != out_features:
        raise ValueError(f"{nodes[-1]} would produce {widths[nodes[-1]][1]} outputs, but the model has "
                         f"{out_features} classes; the last linear layer's out_features cannot change")
    for a, b in zip(nodes, nodes[1:]):
        if widths[a][1] != widths[b][0]:
            raise ValueError(f"inconsistent widths: {a} outputs {widths[a][1]} features but {b} expects "
                             f"{widths[b][0]} inputs; adjacent linear layers must agree (use the same "
                             f"multiplier for {a}'s output and {b}'s input, or multiplier_pass_args)")


def _layer_table(old: dict, new: dict, before: Graph, after: Graph) -> pd.DataFrame:
    rows = [{"node": node, "in_before": old[node][0], "out_before": old[node][1],
             "in_after": new[node][0], "out_after": new[node][1],
             "params_before": count_params(before.modules[node]), "params_after": count_params(after.modules[node])}
            for node in old]
    return pd.DataFrame(rows).set_index("node")


def multiplier_pass_args(graph: Graph, multipliers) -> dict:
    """A consistent by-name config from one multiplier per hidden layer.

    For JSC-Three-Linear, ``multipliers=(2, 4)`` turns Linear(16,16)-Linear(16,16)-Linear(16,5) into
    Linear(16,32)-Linear(32,64)-Linear(64,5): the first linear layer is ``output_only``, the middle
    ones ``both`` with the multipliers on either side, the last ``input_only``.
    """
    nodes = list(_linear_widths(graph))
    multipliers = list(multipliers)
    if len(multipliers) != len(nodes) - 1:
        raise ValueError(f"multipliers={multipliers!r}: give one per hidden layer, i.e. {len(nodes) - 1} "
                         f"for the linear layers {nodes}")
    args = {"by": "name", "default": {"config": {"name": None}}}
    sides = [None, *multipliers, None]  # multiplier on each layer's input and output side
    for i, node in enumerate(nodes):
        m_in, m_out = sides[i], sides[i + 1]
        if m_in is None and m_out is None:
            continue
        mode = "both" if m_in is not None and m_out is not None else ("output_only" if m_in is None else "input_only")
        config = {"name": mode}
        config.update({"channel_multiplier_input": m_in} if m_in is not None else {})
        config.update({"channel_multiplier_output": m_out} if m_out is not None else {})
        args[node] = {"config": config}
    return args


def hidden_widths(graph: Graph) -> tuple[int, ...]:
    """The hidden widths of a traced MLP: the out_features of every linear layer but the last."""
    return tuple(out for _, out in list(_linear_widths(graph).values())[:-1])


# ----------------------------------------------------------------------------- ReLU and BatchNorm

def redefine_relu_pass(graph: Graph, pass_args: dict | None = None) -> tuple[Graph, dict]:
    """Replace every ReLU with a fresh ``nn.ReLU()`` (not in-place); info["relus"] gives each one's width.

    ReLU has no parameters, so any width passes through; the pass makes the activations explicit
    and non-in-place after a channel change, and reports the width each one now carries.
    ``pass_args`` is accepted for the pass signature and must be None or empty.
    """
    _no_args("redefine_relu_pass", pass_args)
    out = graph.copy()
    widths = _widths_into(out)
    for node, module in out.modules.items():
        if isinstance(module, nn.ReLU):
            out.replace_module(node, nn.ReLU())
    out.model.recompile()
    table = pd.DataFrame([{"node": n, "width": widths[n]} for n, m in out.modules.items() if isinstance(m, nn.ReLU)])
    return out, {"relus": table.set_index("node")}


def redefine_batch_norm_pass(graph: Graph, pass_args: dict | None = None) -> tuple[Graph, dict]:
    """Resize every BatchNorm1d whose num_features differs from the width flowing into it."""
    _no_args("redefine_batch_norm_pass", pass_args)
    out = graph.copy()
    widths = _widths_into(out)
    changed = []
    for node, module in out.modules.items():
        if isinstance(module, nn.BatchNorm1d) and widths[node] not in (None, module.num_features):
            changed.append({"node": node, "before": module.num_features, "after": widths[node]})
            out.replace_module(node, nn.BatchNorm1d(widths[node], eps=module.eps, momentum=module.momentum,
                                                    affine=module.affine))
    out.model.recompile()
    return out, {"resized": pd.DataFrame(changed, columns=["node", "before", "after"])}


def _no_args(name: str, pass_args) -> None:
    if pass_args not in (None, {}):
        raise ValueError(f"{name} takes no pass_args (got {pass_args!r}); pass None")


def _widths_into(graph: Graph) -> dict[str, int | None]:
    """Width of the features each module node receives (None before the first sized layer)."""
    width, widths = None, {}
    for node, module in graph.modules.items():
        if isinstance(module, nn.Linear):
            widths[node], width = module.in_features, module.out_features
        elif isinstance(module, nn.BatchNorm1d) and width is None:
            widths[node] = width = module.num_features
        else:
            widths[node] = width
    return widths
