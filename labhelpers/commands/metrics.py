"""``python -m labhelpers metrics``: accuracy, size, MACs/FLOPs, BOPs (and latency) of one configuration."""
from __future__ import annotations

import json

NAME = "metrics"
HELP = "metrics of one quantization config: accuracy/loss, size_bits, macs, flops, bops per layer and total"


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="jsc-tiny or jsc-three-linear")
    parser.add_argument("--config", default=None, help="TOML with [passes.quantize] (default: the float model)")
    parser.add_argument("--checkpoint", default=None, help="default checkpoints/<model>.pt")
    parser.add_argument("--dataset", default="sim", choices=["auto", "real", "sim"], help="data source (default sim)")
    parser.add_argument("--path", default=None, help="local data file for --dataset real")
    parser.add_argument("--split", default="val", choices=["train", "val", "test"])
    parser.add_argument("--latency", action="store_true", help="also time one forward pass (CPU, 1 thread; not hardware latency)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")


def run(args) -> int:
    from .. import data, graph, metrics, models
    from ..passes import quantize

    if args.model not in models.MODELS:
        raise ValueError(f"--model {args.model!r} is unknown; choose one of {sorted(models.MODELS)}")
    pass_args = quantize.load_pass_args(args.config) if args.config else {"by": "type", "default": {"config": {"name": "NA"}}}
    checkpoint = args.checkpoint or f"checkpoints/{args.model}.pt"
    jsc = data.load_jsc(args.dataset, args.path, verbose=False)
    model, _ = models.load(checkpoint, expected_model=args.model, fingerprint=jsc.fingerprint)
    quantized, info = quantize.quantize_transform_pass(graph.trace(model), pass_args)
    totals = metrics.measure(quantized, jsc, args.split, with_latency=args.latency)
    layers = metrics.layer_table(quantized)
    if args.json:
        out = {"model": args.model, "checkpoint": checkpoint, "dataset": jsc.source, "split": args.split,
               "pass_args": pass_args, "quantized": sorted(info["quantized"]), "totals": totals,
               "layers": json.loads(layers.reset_index().to_json(orient="records"))}
        print(json.dumps(out, indent=2))
        return 0
    print(f"{args.model} ({checkpoint}) on {jsc.source}/{args.split}; quantized: {sorted(info['quantized']) or 'none'}")
    print(layers.to_string())
    print("\n".join(f"{k:>16}: {v:.6g}" for k, v in totals.items()))
    return 0
