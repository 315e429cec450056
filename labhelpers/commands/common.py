"""What the commands that measure one configuration of a trained model share: its arguments and loading."""
from __future__ import annotations


def add_model_arguments(parser, *, config_required: bool, config_help: str) -> None:
    """``--model``, ``--config``, ``--checkpoint``, ``--dataset``, ``--path``, ``--split``."""
    parser.add_argument("--model", required=True, help="jsc-tiny or jsc-three-linear")
    parser.add_argument("--config", required=config_required, default=None, help=config_help)
    parser.add_argument("--checkpoint", default=None, help="default checkpoints/<model>.pt")
    parser.add_argument("--dataset", default="sim", choices=["auto", "real", "sim"], help="data source (default sim)")
    parser.add_argument("--path", default=None, help="local data file for --dataset real")
    parser.add_argument("--split", default="val", choices=["train", "val", "test"])


def _check_model(args) -> None:
    from .. import models

    if args.model not in models.MODELS:
        raise ValueError(f"--model {args.model!r} is unknown; choose one of {sorted(models.MODELS)}")


def load_model_and_data(args):
    """``(model, checkpoint path, data)`` for the parsed arguments; the checkpoint must fit the data."""
    from .. import metrics

    _check_model(args)
    return metrics.load_checkpoint(args.model, args.checkpoint, dataset=args.dataset, data_path=args.path)


def load_evaluator(args, *, with_latency: bool = False):
    """:func:`labhelpers.metrics.load_evaluator` for the parsed arguments."""
    from .. import metrics

    _check_model(args)
    return metrics.load_evaluator(args.model, args.checkpoint, dataset=args.dataset, data_path=args.path,
                                  split=args.split, with_latency=with_latency)
