"""Measure how far a lab notebook's printed numbers move between numeric paths (the tolerances' basis).

Executes the notebook once per environment variant, each in a fresh kernel and a sandbox copy of
the project, and compares every checked cell with the first variant:

* ``pinned``: this machine with the package's pins (``labhelpers.numerics``);
* ``aten-default``: ``ATEN_CPU_CAPABILITY=default`` (no vector kernels);
* ``mkl-compatible``: ``MKL_CBWR=COMPATIBLE`` (MKL's most conservative code path);
* ``both``: the two together (the issue's acceptance environment);
* ``one-core``: ``OMP_NUM_THREADS=1`` and the kernel pinned to one CPU (core-count independence).

Prints, per cell that differs: whether the text around the numbers is the same, the largest
absolute difference of a printed float, the number of integers that differ, and the cell's declared
tolerance. Cells not listed are identical in every variant.

    python benchmarks/numeric_spread.py notebooks/lab4_architecture_search.ipynb [--variants pinned both]
    python benchmarks/numeric_spread.py NOTEBOOK --variants both --stored --out runs/spread   # vs the committed outputs
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import nbformat

from labhelpers.nbtools import cells, compare, execute, sandbox

VARIANTS = {
    "pinned": {},
    "aten-default": {"ATEN_CPU_CAPABILITY": "default"},
    "mkl-compatible": {"MKL_CBWR": "COMPATIBLE"},
    "both": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"},
    "one-core": {"OMP_NUM_THREADS": "1"},
}


def run(path: Path, env: dict) -> nbformat.NotebookNode:
    saved, cpus = dict(os.environ), os.sched_getaffinity(0)
    os.environ.update(env)
    if env.get("OMP_NUM_THREADS") == "1":  # the kernel inherits this process's CPU affinity
        os.sched_setaffinity(0, {min(cpus)})
    try:
        with sandbox.sandbox(path.parent) as cwd:
            executed, failure = execute.execute(cells.read(path), cwd, progress=False)
    finally:
        os.sched_setaffinity(0, cpus)
        os.environ.clear()
        os.environ.update(saved)
    if failure:
        raise SystemExit(f"{path.name} failed under {env}: {failure['label']} {failure['message']}")
    return executed


def spread(base, other, patterns) -> dict[int, dict]:
    out = {}
    for index in cells.code_indices(base):
        a = compare.comparable(base.cells[index].outputs, patterns)
        b = compare.comparable(other.cells[index].outputs, patterns)
        if a == b:
            continue
        texts_a = "\n".join(str(v) for key in sorted(a) for v in a[key])
        texts_b = "\n".join(str(v) for key in sorted(b) for v in b[key])
        (lines_a, numbers_a), (lines_b, numbers_b) = compare.skeleton(texts_a), compare.skeleton(texts_b)
        same_text = lines_a == lines_b
        floats, ints = 0.0, 0
        for x, y in zip(numbers_a, numbers_b):
            if re.search(r"[.eE]", x + y):
                floats = max(floats, abs(float(x) - float(y)))
            elif x != y:
                ints += 1
        out[index] = {"same_text": same_text, "max_float_diff": floats, "ints_differ": ints}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--stored", action="store_true", help="compare every variant with the notebook's stored outputs")
    parser.add_argument("--out", type=Path, default=None, help="also write each variant's executed notebook here")
    args = parser.parse_args()
    patterns = compare.sanitize_patterns()
    runs = {"stored": cells.read(args.notebook)} if args.stored else {}
    for name in args.variants:
        start = time.perf_counter()
        runs[name] = run(args.notebook.resolve(), VARIANTS[name])
        print(f"{name}: executed in {time.perf_counter() - start:.0f} s", flush=True)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            nbformat.write(runs[name], args.out / f"{args.notebook.stem}-{name}.ipynb")
    names = list(runs)
    base_name, base = names[0], runs[names[0]]
    print(f"\ndifferences from '{base_name}' (cells not listed are identical):")
    for name in names[1:]:
        found = spread(base, runs[name], patterns)
        print(f"  {name}: {len(found)} cell(s) differ")
        for index, d in found.items():
            declared = compare.declared(base.cells[index].source)
            print(f"    {cells.cell_label(base, index)}: same text {d['same_text']}, "
                  f"max float diff {d['max_float_diff']:.3g}, integers differing {d['ints_differ']}, declared {declared}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
