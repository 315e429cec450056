"""``python -m labhelpers train``: train a registry model and write a checkpoint with metadata."""
from __future__ import annotations

import json

NAME = "train"
HELP = "train a JSC model (seeded) and save a checkpoint with metadata"


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="jsc-tiny or jsc-three-linear")
    parser.add_argument("--dataset", default="sim", choices=["auto", "real", "sim"], help="data source (default sim)")
    parser.add_argument("--path", default=None, help="local data file for --dataset real")
    parser.add_argument("--hidden", type=int, nargs=2, default=None, help="jsc-three-linear hidden widths")
    parser.add_argument("--no-final-relu", action="store_true", help="drop the ReLU after the last Linear")
    parser.add_argument("--epochs", type=int, default=200, help="at most this many epochs (default 200)")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, default=10, help="stop after this many epochs without a better validation loss (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="checkpoint path, e.g. checkpoints/jsc-tiny.pt")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists (e.g. a committed checkpoint)")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from .. import data, metrics, models, validate
    from ..numerics import seed_everything
    from ..training import TrainSettings, train

    validate.refuse_overwrite("--out", [validate.output_file("--out", args.out)], args.force)
    kwargs = {"final_relu": not args.no_final_relu}
    if args.hidden is not None:
        kwargs["hidden"] = list(args.hidden)
    settings = TrainSettings(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                             final_relu=kwargs["final_relu"], patience=args.patience)
    seed_everything(args.seed)
    model = models.build(args.model, **kwargs)  # bad settings fail here, before the data is read
    jsc = data.load_jsc(args.dataset, args.path)
    history = train(model, jsc, settings, progress=not args.no_progress)
    val = metrics.accuracy_loss(model, jsc, "val")
    test = metrics.accuracy_loss(model, jsc, "test")
    meta = {"dataset": jsc.source, "dataset_fingerprint": jsc.fingerprint, "seed": args.seed,
            "epochs_run": len(history), "batch_size": args.batch_size, "lr": args.lr,
            "val_accuracy": val["accuracy"], "test_accuracy": test["accuracy"], "test_loss": test["loss"]}
    models.save(model, args.out, name=args.model, model_kwargs=kwargs, **meta)
    print(json.dumps({"checkpoint": args.out, **meta}, indent=2))
    return 0
