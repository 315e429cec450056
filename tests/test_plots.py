"""Plot helpers that carry uncertainty: heat maps of means with standard errors, Pareto fronts with error bars."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from labhelpers import plots  # noqa: E402

MEANS = pd.DataFrame([[0.600, 0.630], [0.636, 0.640]], index=pd.Index([16, 32], name="h1"),
                     columns=pd.Index([16, 32], name="h2"))
SE = pd.DataFrame(0.002, index=MEANS.index, columns=MEANS.columns)


def _outlined(ax) -> set[tuple[int, int]]:
    """(row, column) of every outlined cell."""
    return {(round(p.get_y() + 0.5), round(p.get_x() + 0.5)) for p in ax.patches if isinstance(p, plt.Rectangle)}


def test_heatmap_outlines_the_cells_within_two_standard_errors_of_the_best():
    ax = plots.heatmap(MEANS, se=SE, title="acc")
    # best 0.640 at (1, 1); 0.636 is 0.004 below, within 2 * sqrt(2) * 0.002 = 0.0057; 0.630 is not
    assert _outlined(ax) == {(1, 1), (1, 0)}
    assert "within 2 standard errors" in ax.get_title()
    plt.close("all")


def test_heatmap_colour_scale_spans_at_least_ten_standard_errors():
    close = pd.DataFrame([[0.639, 0.640]], index=[16], columns=[16, 32])
    ax = plots.heatmap(close, se=pd.DataFrame(0.002, index=close.index, columns=close.columns))
    low, high = ax.images[0].get_clim()
    assert high - low == pytest.approx(0.02) and (low + high) / 2 == pytest.approx(0.6395)
    ax = plots.heatmap(close)  # without standard errors: the data's own range
    assert ax.images[0].get_clim() == pytest.approx((0.639, 0.640))
    plt.close("all")


def test_heatmap_refuses_standard_errors_of_another_shape():
    with pytest.raises(ValueError, match="se must be a table with the rows and columns"):
        plots.heatmap(MEANS, se=SE.iloc[:1])
    plt.close("all")


def test_pareto_draws_error_bars_on_every_point_and_names_a_missing_column():
    table = pd.DataFrame({"bops": [1e3, 2e3, 4e3], "acc": [0.5, 0.6, 0.55], "acc_se": [0.01, 0.02, 0.03]})
    front = table.iloc[[0, 1]]
    ax = plots.pareto(table, front, "bops", "acc", yerr="acc_se")
    bars = [c for c in ax.collections if isinstance(c, matplotlib.collections.LineCollection)]
    segments = [np.asarray(seg) for c in bars for seg in c.get_segments()]
    lengths = sorted(round(float(s[1, 1] - s[0, 1]), 6) for s in segments)
    assert lengths == sorted([0.02, 0.04, 0.06] + [0.02, 0.04])  # +-se on 3 points, and again on the 2 of the front
    with pytest.raises(ValueError, match="yerr='missing' is not a column"):
        plots.pareto(table, front, "bops", "acc", yerr="missing")
    plt.close("all")
