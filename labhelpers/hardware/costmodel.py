"""A per-layer LUT cost model, fitted by least squares on synthesized designs (Lab 3, task 5).

Synthesis costs seconds per design, so a 1,000-point space is searched on an *estimate*. The model is
BOPs with its terms weighed apart: a dense layer with ``n_in`` inputs, ``n_out`` outputs, ``in_bits``-bit
inputs and ``weight_bits``-bit constant weights is ``n_in * n_out`` constant multiplications, each an
adder graph whose size grows with both widths. Per layer (units: connection·bits, or connections)::

    mn_ba_bw = n_in * n_out * in_bits * weight_bits      (Baskin BOPs' product term)
    mn_ba    = n_in * n_out * in_bits
    mn_bw    = n_in * n_out * weight_bits
    mn       = n_in * n_out                               (the accumulator and log2 terms, per connection)

A design's terms are summed over its layers, and ``LUTs ~= terms @ coefficients`` with one coefficient
(LUTs per unit term) shared by all layers::

    >>> terms = costmodel.terms_table(params_table, {"fc1": (16, 16)})     # doctest: +SKIP
    >>> coef = costmodel.fit(terms.loc[train], luts.loc[train])              # doctest: +SKIP
    >>> costmodel.errors(costmodel.predict(coef, terms.loc[test]), luts.loc[test])  # doctest: +SKIP

:func:`fit_scale` is the baseline it is compared with: LUTs proportional to one proxy (e.g. BOPs).
"""
from __future__ import annotations

import ast

import numpy as np
import pandas as pd

TERMS = ("mn_ba_bw", "mn_ba", "mn_bw", "mn")

__all__ = ["TERMS", "layer_terms", "design_terms", "terms_table", "fit", "predict", "fit_scale", "errors",
           "holdout_split"]


def layer_terms(n_in: int, n_out: int, in_bits: int, weight_bits: int) -> dict[str, float]:
    """The four cost terms of one dense layer (see the module docstring; units: connection·bits)."""
    mn = float(n_in * n_out)
    return {"mn_ba_bw": mn * in_bits * weight_bits, "mn_ba": mn * in_bits, "mn_bw": mn * weight_bits, "mn": mn}


def design_terms(params: dict, dims: dict[str, tuple[int, int]]) -> dict[str, float]:
    """Terms summed over the layers of one design.

    ``params``: ``"<layer>/data_in"`` and ``"<layer>/weight"`` -> (width, frac_width), as tuples or their
    string form ``"(8, 4)"`` (how search tables store them); ``dims``: layer -> (n_in, n_out).
    """
    total = dict.fromkeys(TERMS, 0.0)
    for layer, (n_in, n_out) in dims.items():
        widths = [_width(params, f"{layer}/{part}") for part in ("data_in", "weight")]
        for name, value in layer_terms(n_in, n_out, *widths).items():
            total[name] += value
    return total


def _width(params: dict, key: str) -> int:
    if key not in params:
        raise ValueError(f"design has no {key!r}; it has {sorted(params)}")
    value = params[key]
    value = ast.literal_eval(value) if isinstance(value, str) else value
    return int(value[0])


def terms_table(table: pd.DataFrame, dims: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """:func:`design_terms` for every row of ``table`` (same index), one column per term."""
    return pd.DataFrame([design_terms(row, dims) for row in table.to_dict("records")], index=table.index,
                        columns=list(TERMS))


def fit(terms: pd.DataFrame, luts) -> pd.Series:
    """Least-squares coefficients (LUTs per unit of each term) of ``luts ~= terms @ coef``.

    Terms that are constant multiples of each other (e.g. ``mn`` when every design has the same layer
    sizes) are resolved by the minimum-norm solution; the predictions are unaffected.
    """
    coef, *_ = np.linalg.lstsq(terms.to_numpy(float), np.asarray(luts, float), rcond=None)
    return pd.Series(coef, index=terms.columns, name="luts_per_unit")


def predict(coef: pd.Series, terms: pd.DataFrame) -> pd.Series:
    """Estimated LUTs of each design (``terms @ coef``)."""
    return pd.Series(terms[coef.index].to_numpy(float) @ coef.to_numpy(float), index=terms.index, name="luts_est")


def fit_scale(proxy, luts) -> float:
    """The baseline: the one factor ``k`` (LUTs per unit of ``proxy``) of ``luts ~= k * proxy``, least squares."""
    proxy, luts = np.asarray(proxy, float), np.asarray(luts, float)
    return float(proxy @ luts / (proxy @ proxy))


def errors(estimated, measured) -> dict[str, float]:
    """How far estimates are from measurements: ``mae_luts`` (mean |error|, LUTs), ``mean_rel_error``
    (mean |error| / measured, a fraction), ``max_rel_error`` and ``spearman`` (rank correlation, -1..1)."""
    estimated, measured = pd.Series(np.asarray(estimated, float)), pd.Series(np.asarray(measured, float))
    absolute = (estimated - measured).abs()
    relative = absolute / measured
    return {"mae_luts": float(absolute.mean()), "mean_rel_error": float(relative.mean()),
            "max_rel_error": float(relative.max()), "spearman": float(estimated.corr(measured, method="spearman"))}


def holdout_split(n_points: int, n_sample: int, n_holdout: int, seed: int) -> tuple[list[int], list[int]]:
    """A seeded random sample of ``n_sample`` of ``n_points`` indices, split into (fit, held-out) lists.

    The last ``n_holdout`` of the sample are held out. The same arguments give the same lists anywhere.
    """
    if not 0 < n_holdout < n_sample <= n_points:
        raise ValueError(f"need 0 < n_holdout ({n_holdout}) < n_sample ({n_sample}) <= n_points ({n_points})")
    order = np.random.default_rng(seed).permutation(n_points)[:n_sample].tolist()
    return order[:n_sample - n_holdout], order[n_sample - n_holdout:]
