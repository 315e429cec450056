"""``python -m labhelpers metrics``: accuracy, size, MACs/FLOPs, BOPs (and latency) of one configuration."""
from __future__ import annotations

import json

from .common import add_model_arguments, load_evaluator

NAME = "metrics"
HELP = "metrics of one quantization config: accuracy/loss, size_bits, macs, flops, bops per layer and total"


def add_arguments(parser) -> None:
    add_model_arguments(parser, config_required=False,
                        config_help="TOML with [passes.quantize] (default: the float model)")
    parser.add_argument("--latency", action="store_true", help="also time one forward pass (CPU, 1 thread; not hardware latency)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")


def run(args) -> int:
    from .. import metrics
    from ..passes import quantize

    evaluate = load_evaluator(args, with_latency=args.latency)
    pass_args = quantize.load_pass_args(args.config) if args.config else {"by": "type", "default": {"config": {"name": "NA"}}}
    quantized, info = evaluate.transform(evaluate.graph, pass_args)
    totals = evaluate(pass_args)
    layers = metrics.layer_table(quantized)
    checkpoint, jsc = evaluate.checkpoint, evaluate.data
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
