"""``python -m labhelpers hardware``: LUTs, flip-flops and latency of one quantized design, verified in RTL."""
from __future__ import annotations

import json

from .common import add_model_arguments, load_model_and_data

NAME = "hardware"
HELP = ("synthesize one quantized config (da4ml Verilog, Yosys for Xilinx 7-series) and check it "
        "bit for bit in Verilator against the integer reference: luts, ffs, carry4, latency_cycles")


FIRST = ("luts", "ffs", "carry4", "latency_cycles", "rtl_matches", "rows_checked", "synth_seconds", "cached")


def add_arguments(parser) -> None:
    add_model_arguments(parser, config_required=True,
                        config_help="TOML with [passes.quantize]; every Linear must be 'integer'")
    parser.add_argument("--rows", type=int, default=1000, help="rows simulated and compared (default 1000)")
    parser.add_argument("--latency-cutoff", type=float, default=None, help="da4ml's per-stage delay (default 5)")
    parser.add_argument("--timeout", type=float, default=None, help="synthesis timeout in seconds (default 600)")
    parser.add_argument("--no-cache", action="store_true", help="ignore cached results (runs/hardware-cache)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of key: value lines")


def run(args) -> int:
    from .. import hardware
    from ..passes import quantize

    pass_args = quantize.load_pass_args(args.config)
    model, checkpoint, jsc = load_model_and_data(args)
    options = {k: v for k, v in (("latency_cutoff", args.latency_cutoff), ("timeout_s", args.timeout)) if v is not None}
    result = hardware.measure(model, pass_args, jsc, split=args.split, rows=args.rows,
                              use_cache=not args.no_cache, **options)
    out = {"model": args.model, "config": args.config, "checkpoint": checkpoint, "dataset": jsc.source,
           "split": args.split, **{k: result[k] for k in FIRST}, **result}
    if args.json:
        print(json.dumps(out, indent=2, sort_keys=False))
    else:
        for key, value in out.items():
            if key != "cells":
                print(f"{key}: {_text(value)}")
    return 0


def _text(value) -> str:
    """JSON spelling (true, null, lists) for a key: value line; seconds rounded to 0.01."""
    if isinstance(value, str):
        return value
    return f"{value:.2f}" if isinstance(value, float) else json.dumps(value)
