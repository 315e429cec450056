"""JSC models as in MASE's labs, with a registry by name, parameter counts and safe checkpoints.

Every model keeps its layers in ``self.seq_blocks`` (an ``nn.Sequential``), so torch.fx names the
nodes ``seq_blocks_0``, ``seq_blocks_1``, ... exactly like MASE's pass configs expect.

MASE writes ``nn.ReLU(16)``, which means ``inplace=True`` by accident; we use ``nn.ReLU()``.
MASE's JSC-Tiny ends with a ReLU that clips the logits at zero: a class whose logit would be
negative can never win on its own. ``final_relu=True`` (the default) keeps MASE's architecture;
``final_relu=False`` gives the variant without it.
"""
from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import Callable

import torch
from torch import nn

N_FEATURES = 16
N_CLASSES = 5
MAX_HIDDEN = 1024  # widest hidden layer accepted (Lab 4 searches 8..128); larger ones only exhaust memory


class JSCTiny(nn.Module):
    """BatchNorm1d(16), ReLU, Linear(16, 5), ReLU (the last one only if ``final_relu``)."""

    def __init__(self, final_relu: bool = True):
        super().__init__()
        layers = [nn.BatchNorm1d(N_FEATURES), nn.ReLU(), nn.Linear(N_FEATURES, N_CLASSES)]
        self.seq_blocks = nn.Sequential(*layers, *([nn.ReLU()] if final_relu else []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq_blocks(x)


class JSCThreeLinear(nn.Module):
    """BatchNorm1d(16), ReLU, Linear(16, h1), ReLU, Linear(h1, h2), ReLU, Linear(h2, 5), ReLU.

    ``hidden=(16, 16)`` is the lab's JSC-Three-Linear; other widths are what Lab 4 searches.
    """

    def __init__(self, hidden: tuple[int, int] | list[int] = (16, 16), final_relu: bool = True):
        super().__init__()
        h1, h2 = check_hidden(hidden)
        layers = [
            nn.BatchNorm1d(N_FEATURES), nn.ReLU(),
            nn.Linear(N_FEATURES, h1), nn.ReLU(),
            nn.Linear(h1, h2), nn.ReLU(),
            nn.Linear(h2, N_CLASSES),
        ]
        self.seq_blocks = nn.Sequential(*layers, *([nn.ReLU()] if final_relu else []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq_blocks(x)


def check_hidden(hidden) -> tuple[int, int]:
    """``hidden`` as a tuple (h1, h2) of widths in 1..MAX_HIDDEN; else ValueError naming ``hidden``."""
    hidden = tuple(hidden) if isinstance(hidden, (list, tuple)) else hidden
    if not isinstance(hidden, tuple) or len(hidden) != 2 \
            or not all(isinstance(h, int) and not isinstance(h, bool) and 1 <= h <= MAX_HIDDEN for h in hidden):
        raise ValueError(f"hidden={hidden!r}: give two positive integer widths of at most {MAX_HIDDEN}, "
                         f"e.g. hidden=(16, 16)")
    return hidden


def count_params(model: nn.Module) -> int:
    """Trainable parameters (weights and biases; BatchNorm running statistics are buffers, not counted).

    Also takes a traced ``labhelpers.graph.Graph`` (its ``.model`` is counted).
    """
    model = model if isinstance(model, nn.Module) else model.model
    return sum(p.numel() for p in model.parameters())


def mlp_params(widths, *, batch_norm_features: int | None = N_FEATURES) -> int:
    """Parameters of an MLP with layer widths ``(16, h1, ..., 5)`` plus an input BatchNorm (2 per feature).

    ``mlp_params((16, 16, 16, 5))`` = 32 + 272 + 272 + 85 = 661, JSC-Three-Linear's count.
    """
    widths = list(widths)
    linear = sum(a * b + b for a, b in zip(widths, widths[1:]))
    return linear + (2 * batch_norm_features if batch_norm_features else 0)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "jsc-tiny": JSCTiny,
    "jsc-three-linear": JSCThreeLinear,
}


def build(name: str, **kwargs) -> nn.Module:
    """A fresh model from the registry, e.g. ``build("jsc-tiny", final_relu=False)``."""
    if name not in MODELS:
        raise ValueError(f"model={name!r} is unknown; choose one of {sorted(MODELS)}")
    allowed = list(inspect.signature(MODELS[name]).parameters)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"model {name!r} has no setting {unknown[0]!r}; its settings: {allowed}")
    if not isinstance(kwargs.get("final_relu", True), bool):
        raise ValueError(f"final_relu={kwargs['final_relu']!r} must be True or False")
    return MODELS[name](**kwargs)


def _plain(value):
    """Metadata must survive ``torch.load(weights_only=True)``: only str/int/float/bool/None/list/dict."""
    if value is None or isinstance(value, bool):
        return value
    for kind in (str, int, float):  # also str/float subclasses such as TorchVersion and numpy.float64
        if isinstance(value, kind):
            return kind(value)
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy / torch scalars
        return _plain(value.item())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    raise ValueError(f"checkpoint metadata value {value!r} of type {type(value).__name__} is not plain data")


def save(model: nn.Module, path: str | Path, *, name: str, model_kwargs: dict | None = None, **meta) -> Path:
    """Write ``{"model", "model_kwargs", "state_dict", "meta"}``; ``meta`` holds fingerprint, accuracy, seed..."""
    if name not in MODELS:
        raise ValueError(f"name={name!r} is unknown; choose one of {sorted(MODELS)}")
    meta = {"torch": torch.__version__, **meta}
    blob = {"model": name, "model_kwargs": _plain(model_kwargs or {}), "meta": _plain(meta),
            "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, path)
    return path


def load(path: str | Path, *, expected_model: str | None = None,
         fingerprint: str | None = None) -> tuple[nn.Module, dict]:
    """Load a checkpoint written by :func:`save`, returning ``(model in eval mode, metadata)``.

    Uses ``weights_only=True``: a file whose pickle would run code is refused without running it.
    Refuses a checkpoint of another model than ``expected_model``; warns when the checkpoint was
    trained on data with a different ``fingerprint``.
    """
    blob = _read_checkpoint(Path(path))
    name = blob.get("model")
    if expected_model is not None and name != expected_model:
        raise ValueError(f"checkpoint {path} holds model {name!r}, not {expected_model!r}; "
                         f"pass the checkpoint of a {expected_model} model")
    kwargs, meta = _table(blob, "model_kwargs", path), _table(blob, "meta", path)
    try:
        model = build(name, **kwargs)
    except ValueError as exc:
        raise ValueError(f"checkpoint {path} model_kwargs: {exc}") from None
    model.load_state_dict(_checked_state(model, blob["state_dict"], name, path))
    meta = {"model": name, "model_kwargs": kwargs, **meta}
    if fingerprint is not None and meta.get("dataset_fingerprint") not in (None, fingerprint):
        warnings.warn(f"checkpoint {path} was trained on dataset {meta['dataset_fingerprint']}, "
                      f"but the loaded data is {fingerprint}; accuracies may not compare", stacklevel=2)
    return model.eval(), meta


def _table(blob: dict, key: str, path) -> dict:
    value = blob.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"checkpoint {path}: {key} must be a dict with string keys, got {type(value).__name__}; "
                         f"re-create it with `python -m labhelpers train`")
    return value


def _checked_state(model: nn.Module, state, name: str, path) -> dict:
    """``state`` if it has exactly the model's keys, shapes and dtypes and only finite values; else ValueError."""
    where = f"checkpoint {path} state_dict"
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{where} must map parameter names to tensors; re-create it with `python -m labhelpers train`")
    wanted = model.state_dict()
    for problem, keys in (("lacks", [k for k in wanted if k not in state]), ("has extra", [k for k in state if k not in wanted])):
        if keys:
            raise ValueError(f"{where} {problem} key(s) {keys[:3]} for model {name!r}; it is not a checkpoint of this "
                             f"model (its keys: {list(wanted)[:3]}...)")
    for key, tensor in state.items():
        if tensor.shape != wanted[key].shape or tensor.dtype != wanted[key].dtype:
            raise ValueError(f"{where}[{key!r}] is {tensor.dtype} {tuple(tensor.shape)}; model {name!r} with these "
                             f"model_kwargs needs {wanted[key].dtype} {tuple(wanted[key].shape)}")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ValueError(f"{where}[{key!r}] holds NaN/inf values (a diverged training run); retrain the model")
    return state


def _read_checkpoint(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; train one with "
                                f"`python -m labhelpers train --model jsc-tiny --out {path}`")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for unsafe pickles, RuntimeError for corrupt zips
        raise ValueError(f"refusing checkpoint {path}: it is not a plain weights file "
                         f"({type(exc).__name__}); only load checkpoints written by labhelpers.models.save") from None
    if not isinstance(blob, dict) or "state_dict" not in blob or "model" not in blob:
        raise ValueError(f"checkpoint {path} lacks the keys 'model' and 'state_dict' of a labhelpers checkpoint; "
                         f"re-create it with `python -m labhelpers train`")
    if not isinstance(blob["model"], str) or blob["model"] not in MODELS:
        raise ValueError(f"checkpoint {path} model={blob['model']!r} is unknown; a labhelpers checkpoint holds one of "
                         f"{sorted(MODELS)}")
    return blob
