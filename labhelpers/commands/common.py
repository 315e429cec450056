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


def load_model_and_data(args):
    """``(model, checkpoint path, data)`` for the parsed arguments; the checkpoint must fit the data."""
    from .. import data, models

    if args.model not in models.MODELS:
        raise ValueError(f"--model {args.model!r} is unknown; choose one of {sorted(models.MODELS)}")
    checkpoint = args.checkpoint or f"checkpoints/{args.model}.pt"
    jsc = data.load_jsc(args.dataset, args.path, verbose=False)
    model, _ = models.load(checkpoint, expected_model=args.model, fingerprint=jsc.fingerprint)
    return model, checkpoint, jsc
