"""Synthesis results as a committed table (Lab 3, task 5): synthesize many designs, save, load, look up.

Synthesis takes seconds per design, so Lab 3 reads its figures from ``data/lab3_synthesis.csv`` unless
its parameter ``resynthesize = True``. The CSV has one row per design (``model``, ``design`` = the
search point as ``key=value`` text, then ``FIGURES``); ``<name>.json`` beside it holds the settings
that decide the figures (:func:`load_table` refuses a table made with other ones), the tool versions,
the platform and the command that made it::

    >>> rows = table.synthesize(model, {"in(8, 4)": pass_args}, jsc, model_name="jsc-tiny")  # doctest: +SKIP
    >>> table.save_table(rows, "data/lab3_synthesis.csv", settings, command="...")          # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from .. import validate
from ..numerics import platform_info
from . import DEFAULT_ROWS, FAMILY, measure, rtl, tool_versions

FIGURES = ("luts", "ffs", "carry4", "latency_cycles", "rtl_matches", "rows_checked", "synth_seconds", "sim_seconds")

__all__ = ["FIGURES", "design_key", "settings", "synthesize", "save_table", "load_table", "lookup"]


def design_key(params: dict) -> str:
    """One design's key: ``"name=value"`` pairs of its search point, sorted by name, joined by spaces."""
    return " ".join(f"{name}={value}" for name, value in sorted(params.items()))


def settings(checkpoints: dict[str, str | Path], dataset_fingerprint: str, *, rows: int = DEFAULT_ROWS,
             latency_cutoff: float = rtl.DEFAULT_LATENCY_CUTOFF) -> dict:
    """What decides a table's figures: model name -> checkpoint sha256 (first 16 hex digits), the dataset,
    the validation rows simulated, the pipeline's latency cutoff and the FPGA family."""
    digests = {name: hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16] for name, path in checkpoints.items()}
    return {"checkpoints": digests, "dataset_fingerprint": dataset_fingerprint, "rows": rows,
            "latency_cutoff": latency_cutoff, "family": FAMILY}


def synthesize(model, designs: dict[str, dict], data, *, model_name: str, rows: int = DEFAULT_ROWS,
               latency_cutoff: float = rtl.DEFAULT_LATENCY_CUTOFF, progress: bool = True) -> pd.DataFrame:
    """:func:`labhelpers.hardware.measure` for each ``design key -> pass_args``; one row per design.

    Columns: ``model`` (``model_name``), ``design``, then ``FIGURES`` (LUTs, flip-flops, CARRY4, cycles,
    Verilator == integer reference, rows checked, seconds of Yosys and of Verilator). Cached designs
    return at once, with the seconds of their first synthesis.
    """
    out = []
    for key, pass_args in tqdm(designs.items(), desc=f"synthesis {model_name}", disable=not progress, leave=False):
        result = measure(model, pass_args, data, rows=rows, latency_cutoff=latency_cutoff)
        out.append({"model": model_name, "design": key, **{name: result[name] for name in FIGURES}})
    return pd.DataFrame(out, columns=["model", "design", *FIGURES])


def save_table(table: pd.DataFrame, path: str | Path, settings: dict, *, command: str, force: bool = False) -> Path:
    """Write ``table`` (CSV) and ``path``.json: ``settings``, tool versions, platform and ``command``."""
    path = Path(path)
    validate.refuse_overwrite("synthesis table", [path, path.with_suffix(".json")], force)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    meta = {"settings": settings, "rows": len(table), "tools": tool_versions(), "platform": platform_info(),
            "command": command}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


def load_table(path: str | Path, settings: dict) -> pd.DataFrame:
    """The table of :func:`save_table`; ValueError if it was made with other ``settings``.

    Tool versions are provenance, not settings: loading needs no Yosys, and the figures are those of the
    versions recorded in the JSON.
    """
    path = validate.table_made_with("synthesis table", path, settings,
                                    make="synthesize it (the notebook's resynthesize = True)",
                                    redo="resynthesize it (resynthesize = True)")
    return pd.read_csv(path)


def lookup(table: pd.DataFrame, model_name: str, keys) -> pd.DataFrame:
    """The rows of ``table`` for ``model_name`` and these design ``keys``, in their order (index: the keys).

    ValueError naming the first missing design: the table was made for another sample or front.
    """
    rows = table[table["model"] == model_name].set_index("design")
    missing = [k for k in keys if k not in rows.index]
    if missing:
        raise ValueError(f"synthesis table has no {model_name} design {missing[0]!r} ({len(missing)} missing); "
                         "resynthesize it (resynthesize = True)")
    return rows.loc[list(keys)]
