"""Training: the settings (:class:`TrainSettings`), the single-network loop, and the batched trainer.

Inside, imports flow one way: ``settings`` <- ``loop`` <- ``batched``.

* :class:`TrainSettings` (frozen, ``from_toml``, ``to_dict``): the one home of epochs, batch size,
  lr, seed, init seeds, final ReLU, training rows and patience.
* :func:`train`: one network, in place (``labhelpers.training.loop``).
* :func:`train_many`: many JSC-Three-Linear widths at once, each ending as if trained alone with
  :func:`train` (``labhelpers.training.batched``).
"""
from .batched import Trained, plan_buckets, train_many
from .loop import check_loss, train
from .settings import TrainSettings, subsample

__all__ = ["TrainSettings", "Trained", "check_loss", "plan_buckets", "subsample", "train", "train_many"]
