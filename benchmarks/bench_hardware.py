"""Time the hardware flow per design, and check the integer reference over whole Lab 3 spaces.

* **synthesis**: ``labhelpers.hardware.measure`` on a few designs of the shipped spaces (JSC-Tiny grid
  points and JSC-Three-Linear mixed-precision points, seeded), with a fresh cache folder so nothing
  is reused. Prints per design LUTs, FFs, CARRY4, latency in cycles, synthesis and verification
  (Verilator build + run on ``--rows`` rows) seconds, then the medians.
* **--reference**: the integer reference against the fake-quantized PyTorch model on every validation
  row, for every point of the JSC-Tiny grid and the 1,000-point mixed-precision space (minutes);
  prints how many points matched exactly.
* **--modes**: JSC-Tiny at ``configs/jsc_tiny_int8.toml`` in each rounding/overflow pair; per pair the
  validation rows on which the fake-quant PyTorch logits, hls4ml's ``ap_fixed`` emulation (matching
  modes) and the Verilator simulation (``--rows`` rows) equal the integer reference.

    python benchmarks/bench_hardware.py [--designs 4] [--rows 1000] [--reference] [--modes]
"""
from __future__ import annotations

import argparse
import copy
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from labhelpers import data, graph, hardware, models, search
from labhelpers.hardware import hls, integer, rtl, sim
from labhelpers.passes import quantize, quantize_transform_pass

ROOT = Path(__file__).resolve().parent.parent
INT8 = ROOT / "configs" / "jsc_tiny_int8.toml"
MODE_PAIRS = [(r, o) for o in quantize.OVERFLOW for r in quantize.ROUNDING]
SPACES = (ROOT / "configs" / "jsc_tiny_by_name_brute_force.toml", ROOT / "configs" / "jsc_three_linear_mixed_precision.toml")


def space_points(path: Path, n: int | None, seed: int = 0):
    """(float model, [(params, pass_args)]) of a search config: all points, or ``n`` seeded ones."""
    cfg = search.load_config(path)
    points = list(cfg.space.grid())
    if n is not None:
        points = random.Random(seed).sample(points, min(n, len(points)))
    model, _ = models.load(ROOT / cfg.model["checkpoint"])
    return model, [(p, cfg.space.to_config(p)) for p in points]


def synthesis(jsc, designs: int, rows: int) -> None:
    rows_out = []
    with tempfile.TemporaryDirectory() as cache:
        for path in SPACES:
            model, points = space_points(path, designs)
            for params, pass_args in points:
                r = hardware.measure(model, pass_args, jsc, rows=rows, cache_dir=cache)
                rows_out.append(r)
                print(f"{path.stem[:24]:24s} {_short(params):48s} luts={r['luts']:5d} ffs={r['ffs']:5d} "
                      f"carry4={r['carry4']:4d} latency_cycles={r['latency_cycles']} rtl_matches={r['rtl_matches']} "
                      f"synth_s={r['synth_seconds']:.1f} verify_s={r['sim_seconds']:.1f}", flush=True)
    print(f"designs: {len(rows_out)}, all rtl_matches: {all(r['rtl_matches'] for r in rows_out)}, "
          f"rows checked each: {rows_out[0]['rows_checked']}")
    print(f"median synth_seconds: {statistics.median(r['synth_seconds'] for r in rows_out):.1f} "
          f"(min {min(r['synth_seconds'] for r in rows_out):.1f}, max {max(r['synth_seconds'] for r in rows_out):.1f})")
    print(f"median verify seconds (Verilator build + {rows} rows): {statistics.median(r['sim_seconds'] for r in rows_out):.1f}")


def _short(params: dict) -> str:
    return " ".join(f"{k.split('/')[0][-1]}{k.split('/')[1][0]}={v[0]},{v[1]}" for k, v in params.items())


def reference(jsc) -> None:
    x = jsc.split("val")[0]
    for path in SPACES:
        model, points = space_points(path, None)
        g = graph.trace(model)
        matched, start = 0, time.perf_counter()
        for params, pass_args in tqdm(points, desc=path.stem, leave=False):
            q, _ = quantize_transform_pass(g, pass_args)
            with torch.no_grad():
                expected = q(x).double().numpy()
            if np.array_equal(integer.logits(integer.from_graph(q), x), expected):
                matched += 1
            else:
                print(f"MISMATCH {path.name} {params}")
        print(f"{path.name}: integer reference == fake-quant on all {len(x)} val rows for "
              f"{matched}/{len(points)} points ({time.perf_counter() - start:.0f} s)")


def modes(jsc, rows: int) -> None:
    """Per mode pair and design: validation rows on which PyTorch, hls4ml and Verilator equal the integer reference.

    JSC-Tiny at int8 (``configs/jsc_tiny_int8.toml``, full flow with synthesis) and JSC-Three-Linear at
    data_in (4, 2), weight (2, 1), bias (8, 4) (Verilator only), whose two requantizations between
    layers use the modes too. hls4ml gets the float weights; where it differs, ``hls4ml text==int``
    compares it with our reference of the weights as hls4ml prints them (``hls.text_moved_codes``).
    """
    x = jsc.split("val")[0]
    base = quantize.load_pass_args(INT8)["linear"]["config"]
    narrow = {**base, "data_in_width": 4, "data_in_frac_width": 2, "weight_width": 2, "weight_frac_width": 1}
    designs = [("jsc-tiny", base), ("jsc-three-linear", narrow)]
    print(f"{'design':16s} {'rounding':12s} {'overflow':9s} {'ap_fixed':19s} rows  pytorch==int  hls4ml==int  "
          f"moved_codes  hls4ml_text==int  verilator==int  luts  rows_with_wrapped_inputs")
    with tempfile.TemporaryDirectory() as cache:
        for name, config in designs:
            model, _ = models.load(ROOT / "checkpoints" / f"{name}.pt")
            for rounding, overflow in MODE_PAIRS:
                pass_args = {"by": "type", "linear": {"config": {**config, "rounding": rounding, "overflow": overflow}}}
                q, _ = quantize_transform_pass(graph.trace(model), pass_args)
                design = integer.from_graph(q)
                reference = integer.logits(design, x)
                with torch.no_grad():
                    pytorch = q(x).double().numpy()
                emulated = hls.logits(q, x)
                printed, _ = quantize_transform_pass(graph.trace(_as_printed(model, config)), pass_args)
                x_codes = integer.input_codes(design, x[:rows])
                if name == "jsc-tiny":
                    r = hardware.measure(model, pass_args, jsc, rows=rows, cache_dir=cache)
                    rtl_same, luts = r["rows_checked"] - r["mismatched_rows"], r["luts"]
                else:
                    written = rtl.write(design, Path(cache) / f"{rounding}-{overflow}")
                    rtl_same, luts = _same(sim.simulate(written, x_codes), integer.forward_codes(design, x_codes)), "-"
                ap = f"{hls.AP_MODES[rounding]},{hls.AP_MODES[overflow]}"
                print(f"{name:16s} {rounding:12s} {overflow:9s} {ap:19s} {len(x)}  {_same(pytorch, reference):12d}  "
                      f"{_same(emulated, reference):11d}  {hls.text_moved_codes(q):11d}  "
                      f"{_same(emulated, integer.logits(integer.from_graph(printed), x)):16d}  "
                      f"{rtl_same:9d} of {rows}  {luts!s:>4}  {int((integer.input_codes(design, x) < 0).any(axis=1).sum())}",
                      flush=True)


def _same(a, b) -> int:
    return int(np.all(a == b, axis=1).sum())


def _as_printed(model, config: dict):
    """A copy of ``model`` whose Linear weights and biases are what hls4ml's header text holds ('{:.{f}f}')."""
    printed = copy.deepcopy(model)
    for linear in (m for m in printed.modules() if isinstance(m, torch.nn.Linear)):
        for field in ("weight", "bias"):
            t, f = getattr(linear, field), config[f"{field}_frac_width"]
            text = [float(f"{v:.{f}f}") for v in t.detach().flatten().tolist()]
            t.data = torch.tensor(text, dtype=t.dtype).reshape(t.shape)
    return printed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--designs", type=int, default=3, help="designs per space (default 3)")
    parser.add_argument("--rows", type=int, default=1000, help="rows simulated per design (default 1000)")
    parser.add_argument("--reference", action="store_true", help="check the integer reference over whole spaces")
    parser.add_argument("--modes", action="store_true", help="cross-check each rounding/overflow mode pair")
    args = parser.parse_args()
    jsc = data.load_jsc("sim", verbose=False)
    if args.modes:
        modes(jsc, args.rows)
    elif args.reference:
        reference(jsc)
    else:
        synthesis(jsc, args.designs, args.rows)


if __name__ == "__main__":
    main()
