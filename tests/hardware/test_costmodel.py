"""labhelpers.hardware.costmodel on a synthetic table, and the synthesis table's save/load refusals.

No synthesis runs here: these are arithmetic and file checks (milliseconds)."""
from __future__ import annotations

import itertools

import pandas as pd
import pytest

from labhelpers.hardware import costmodel, table

DIMS = {"fc1": (16, 16), "fc2": (16, 5)}
TRUE = pd.Series({"mn_ba_bw": 0.5, "mn_ba": 1.5, "mn_bw": 2.0, "mn": 3.0})


def _space() -> pd.DataFrame:
    widths = [(2, 1), (4, 2), (6, 3), (8, 4)]
    points = itertools.product(widths, [(3, 1), (5, 2)], [(4, 2), (8, 4)], [(2, 1), (6, 3)])
    names = ["fc1/data_in", "fc1/weight", "fc2/data_in", "fc2/weight"]
    return pd.DataFrame([dict(zip(names, map(str, p))) for p in points])   # formats stored as "(8, 4)", as search does


def test_terms_sum_over_layers():
    terms = costmodel.design_terms({"fc1/data_in": "(8, 4)", "fc1/weight": (3, 1),
                                    "fc2/data_in": (4, 2), "fc2/weight": "(2, 1)"}, DIMS)
    assert terms == {"mn_ba_bw": 256 * 24 + 80 * 8, "mn_ba": 256 * 8 + 80 * 4, "mn_bw": 256 * 3 + 80 * 2, "mn": 336}
    with pytest.raises(ValueError, match="fc2/weight"):
        costmodel.design_terms({"fc1/data_in": (8, 4), "fc1/weight": (3, 1), "fc2/data_in": (4, 2)}, DIMS)


def test_fit_recovers_known_coefficients_and_holdout_errors():
    terms = costmodel.terms_table(_space(), DIMS)
    luts = terms @ TRUE
    fit, held = costmodel.holdout_split(len(terms), 24, 8, seed=0)
    assert len(set(fit) | set(held)) == 24 and not set(fit) & set(held)
    coef = costmodel.fit(terms.loc[fit], luts.loc[fit])
    pd.testing.assert_series_equal(coef, TRUE, check_names=False, atol=1e-9)
    exact = costmodel.errors(costmodel.predict(coef, terms.loc[held]), luts.loc[held])
    assert exact["mae_luts"] == pytest.approx(0, abs=1e-6) and exact["spearman"] == pytest.approx(1)
    measured = pd.Series([100.0, 200.0, 400.0])
    off = costmodel.errors([110.0, 180.0, 400.0], measured)   # errors 10, 20, 0 LUTs = 10 %, 10 %, 0 %
    assert off["mae_luts"] == pytest.approx(10) and off["mean_rel_error"] == pytest.approx(0.2 / 3)
    assert off["max_rel_error"] == pytest.approx(0.1) and off["spearman"] == pytest.approx(1)
    assert costmodel.fit_scale([1, 2, 3], [2, 4, 6]) == pytest.approx(2)


def test_table_load_refuses_other_settings(tmp_path, monkeypatch):
    monkeypatch.setattr(table, "tool_versions", lambda: {"yosys": "test"})   # no tools needed to save
    checkpoint = tmp_path / "m.pt"
    checkpoint.write_bytes(b"weights")
    settings = table.settings({"m": checkpoint}, "f9f4", rows=100)
    rows = pd.DataFrame({"model": ["m"], "design": ["a=(8, 4)"], "luts": [10]})
    path = table.save_table(rows, tmp_path / "t.csv", settings, command="make it")
    pd.testing.assert_frame_equal(table.load_table(path, settings), rows)
    assert table.lookup(rows, "m", ["a=(8, 4)"])["luts"].tolist() == [10]
    with pytest.raises(ValueError, match="rows"):
        table.load_table(path, {**settings, "rows": 1000})
    checkpoint.write_bytes(b"retrained")
    with pytest.raises(ValueError, match="checkpoints"):
        table.load_table(path, table.settings({"m": checkpoint}, "f9f4", rows=100))
    with pytest.raises(ValueError, match="resynthesize"):
        table.lookup(rows, "m", ["a=(4, 2)"])
    with pytest.raises(FileExistsError):
        table.save_table(rows, path, settings, command="again")
