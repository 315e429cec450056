"""``python -m labhelpers hardware``: LUTs, flip-flops and latency of one quantized design, verified in RTL."""
from __future__ import annotations

import json

NAME = "hardware"
HELP = ("synthesize one quantized config (da4ml Verilog, Yosys for Xilinx 7-series) and check it "
        "bit for bit in Verilator against the integer reference: luts, ffs, carry4, latency_cycles")


FIRST = ("luts", "ffs", "carry4", "latency_cycles", "rtl_matches", "rows_checked", "synth_seconds", "cached")


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="jsc-tiny or jsc-three-linear")
    parser.add_argument("--config", required=True, help="TOML with [passes.quantize]; every Linear must be 'integer'")
    parser.add_argument("--checkpoint", default=None, help="default checkpoints/<model>.pt")
    parser.add_argument("--dataset", default="sim", choices=["auto", "real", "sim"], help="data source (default sim)")
    parser.add_argument("--path", default=None, help="local data file for --dataset real")
    parser.add_argument("--split", default="val", choices=["train", "val", "test"])
    parser.add_argument("--rows", type=int, default=1000, help="rows simulated and compared (default 1000)")
    parser.add_argument("--latency-cutoff", type=float, default=None, help="da4ml's per-stage delay (default 5)")
    parser.add_argument("--timeout", type=float, default=None, help="synthesis timeout in seconds (default 600)")
    parser.add_argument("--no-cache", action="store_true", help="ignore cached results (runs/hardware-cache)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of key: value lines")


def run(args) -> int:
    from .. import data, hardware, models
    from ..passes import quantize

    if args.model not in models.MODELS:
        raise ValueError(f"--model {args.model!r} is unknown; choose one of {sorted(models.MODELS)}")
    pass_args = quantize.load_pass_args(args.config)
    checkpoint = args.checkpoint or f"checkpoints/{args.model}.pt"
    jsc = data.load_jsc(args.dataset, args.path, verbose=False)
    model, _ = models.load(checkpoint, expected_model=args.model, fingerprint=jsc.fingerprint)
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
