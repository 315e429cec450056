"""The few matplotlib figures the notebooks share. Each draws on given axes (or new ones) and returns them.

Layered as in d2l: ``_axes`` sets labels/scales, the plot functions draw, :func:`save` writes. As in
d2l's ``plot`` and Optuna's matplotlib plots, every function takes ``ax=None`` (``axes=None`` for
the two-panel and many-panel figures) and returns what it drew on; saving is a separate step::

    ax = plots.pareto(table, front, "bops", "accuracy")
    plots.save(ax, "imgs/lab3_pareto_tiny.png")
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .validate import one_of


def save(fig_or_ax, path: str | Path) -> Path:
    """Write the figure of ``fig_or_ax`` (a Figure, an Axes or an array of Axes) to ``path`` (PNG, 120 dpi).

    Creates missing folders and returns the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _figure(fig_or_ax).savefig(path, dpi=120, bbox_inches="tight")
    return path


def _figure(fig_or_ax):
    if isinstance(fig_or_ax, plt.Figure):
        return fig_or_ax
    first = np.ravel(fig_or_ax)[0] if isinstance(fig_or_ax, (np.ndarray, list, tuple)) else fig_or_ax
    return first.figure


def _new_axes(ax, figsize, nrows: int = 1, ncols: int = 1):
    """``ax`` if given; else new axes on a new figure of ``figsize`` (an array when there are several)."""
    if ax is not None:
        return ax
    axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False)[1]
    return axes[0, 0] if axes.size == 1 else axes


def _finish(ax, created: bool):
    if created:
        _figure(ax).tight_layout()
    return ax


def _axes(ax, xlabel=None, ylabel=None, title=None, yscale=None, legend=False):
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if yscale:
        ax.set_yscale(yscale)
    if legend:
        ax.legend()
    ax.grid(alpha=0.3)


# ============================================================================= Lab 3

def metrics_by_config(table: pd.DataFrame, columns: list[str], labels: list[str] | pd.Series, *,
                      axes=None, ncols: int = 2) -> np.ndarray:
    """One bar panel per metric column, one bar per configuration (the seed's per-config figure).

    ``axes``: an array of at least ``len(columns)`` Axes, or None for a new figure. Returns the 2-D array of Axes.
    """
    nrows = -(-len(columns) // ncols)
    created = axes is None
    axes = np.atleast_2d(_new_axes(axes, (6 * ncols, 3.2 * nrows), nrows, ncols))
    labels = list(labels)
    for ax, column in zip(axes.flat, columns):
        ax.bar(range(len(table)), table[column].to_numpy())
        ax.set_xticks(range(len(table)), labels, rotation=90, fontsize=7)
        _axes(ax, ylabel=column)
    for ax in list(axes.flat)[len(columns):]:
        ax.set_visible(False)
    return _finish(axes, created)


def pareto(table: pd.DataFrame, front: pd.DataFrame, x: str, y: str, *, ax=None,
           xscale: str | None = "log", title: str | None = None, yerr: str | None = None):
    """Every configuration as a dot, the Pareto front as a step line through its points. Returns the Axes.

    ``yerr``: a column of ``table`` and ``front`` (e.g. the standard error of a mean over seeds), drawn as
    error bars, so that a front of means shows how far each point could move.
    """
    created = ax is None
    ax = _new_axes(ax, (6, 4))
    ax.scatter(table[x], table[y], s=12, alpha=0.4, label="configurations")
    if yerr is not None:
        for frame in (table, front):
            if yerr not in frame.columns:
                raise ValueError(f"yerr={yerr!r} is not a column of the table and the front; add it or pass None")
        ax.errorbar(table[x], table[y], yerr=table[yerr], fmt="none", ecolor="C0", alpha=0.4, capsize=2)
    ordered = front.sort_values(x)
    ax.step(ordered[x], ordered[y], where="post", color="C3", marker="o",
            label="Pareto front" + (f" (bars: ±1 {yerr})" if yerr else ""))
    if yerr is not None:
        ax.errorbar(ordered[x], ordered[y], yerr=ordered[yerr], fmt="none", ecolor="C3", capsize=3)
    if xscale:
        ax.set_xscale(xscale)
    _axes(ax, xlabel=x, ylabel=y, title=title, legend=True)
    return _finish(ax, created)


def best_so_far(summary: pd.DataFrame, *, ylabel: str = "best so far", axes=None,
                title: str | None = None, regret_scale: str = "symlog", center: str = "mean") -> np.ndarray:
    """Left: ``center`` ("mean" or "median") best-so-far per sampler with a 10-90 % band over seeds; right:
    the same ``center`` of the regret. Pick the centre the tables beside the figure quote.

    ``summary`` is :func:`labhelpers.search.curve_summary` output (index: sampler, trial). ``axes``:
    two Axes (left, right), or None for a new figure. Returns the two Axes.
    """
    one_of("center", center, ("mean", "median"))
    created = axes is None
    axes = np.ravel(_new_axes(axes, (12, 4), 1, 2))
    left, right = axes
    for i, (sampler, group) in enumerate(summary.groupby(level="sampler", sort=False)):
        trials = group.index.get_level_values("trial")
        left.plot(trials, group[f"best_{center}"], color=f"C{i}", label=sampler)
        left.fill_between(trials, group["best_p10"], group["best_p90"], color=f"C{i}", alpha=0.2)
        right.plot(trials, group[f"regret_{center}"], color=f"C{i}", label=sampler)
    _axes(left, xlabel="trial", ylabel=ylabel, title=title, legend=True)
    _axes(right, xlabel="trial", ylabel=f"{center} regret (optimum - best so far)", legend=True)
    right.set_yscale(regret_scale, **({"linthresh": 1e-4} if regret_scale == "symlog" else {}))
    return _finish(axes, created)


def versus(table: pd.DataFrame, x: str, y: str, *, ax=None, label: str | None = None, xscale: str | None = None,
           title: str | None = None):
    """``y`` against ``x``, one dot per row (e.g. measured LUTs against BOPs). Returns the Axes."""
    created = ax is None
    ax = _new_axes(ax, (6, 4))
    ax.scatter(table[x], table[y], s=16, alpha=0.7, label=label)
    if xscale:
        ax.set_xscale(xscale)
    _axes(ax, xlabel=x, ylabel=y, title=title, legend=label is not None)
    return _finish(ax, created)


def estimated_vs_measured(estimated, measured, *, ax=None, label: str | None = None, unit: str = "LUTs",
                          title: str | None = None):
    """Estimates against measurements with the diagonal y = x (on it: a perfect estimate). Returns the Axes."""
    created = ax is None
    ax = _new_axes(ax, (5, 5))
    estimated, measured = np.asarray(estimated, float), np.asarray(measured, float)
    ax.scatter(measured, estimated, s=16, alpha=0.7, label=label)
    span = [min(estimated.min(), measured.min()), max(estimated.max(), measured.max())]
    ax.plot(span, span, color="grey", linewidth=1)
    _axes(ax, xlabel=f"measured {unit}", ylabel=f"estimated {unit}", title=title, legend=label is not None)
    return _finish(ax, created)


# ============================================================================= Lab 4

def training_curves(history: pd.DataFrame, by: str, *, value: str = "val_accuracy", ax=None,
                    title: str | None = None):
    """``value`` per epoch, one line per value of ``by`` (e.g. the channel multiplier). Returns the Axes."""
    created = ax is None
    ax = _new_axes(ax, (6, 4))
    for key, group in history.groupby(by, sort=True):
        ax.plot(group["epoch"], group[value], marker=".", label=f"{by} = {key}")
    _axes(ax, xlabel="epoch", ylabel=value, title=title, legend=True)
    return _finish(ax, created)


def accuracy_vs(summaries: dict[str, pd.DataFrame], *, y: str = "val_accuracy", ax=None,
                title: str | None = None, xlabel: str | None = None):
    """Mean +- standard deviation of ``y`` over init seeds against each summary's index, one line per label.

    ``summaries`` maps a label to a :func:`labhelpers.nas.seed_summary` table (columns ``<y>_mean``,
    ``<y>_std``), e.g. accuracy vs channel multiplier for two model variants. Returns the Axes.
    """
    created = ax is None
    ax = _new_axes(ax, (6, 4))
    for label, table in summaries.items():
        ax.errorbar(table.index, table[f"{y}_mean"], yerr=table[f"{y}_std"].fillna(0), marker="o", capsize=3,
                    label=label)
        ax.set_xticks(table.index.tolist())
    _axes(ax, xlabel=xlabel or next(iter(summaries.values())).index.name, ylabel=f"{y} (mean +- std over seeds)",
          title=title, legend=True)
    return _finish(ax, created)


def heatmap(pivot: pd.DataFrame, *, ax=None, title: str | None = None,
            fmt: str | None = "{:.3f}", label: str = "val_accuracy", se: pd.DataFrame | None = None):
    """A pivot table (rows x columns) as a colour map, e.g. accuracy over (h1, h2); ``fmt=None``: no numbers.

    ``se``: the standard errors of the cells (same shape), when they are means over seeds. Then the colour
    scale spans at least 10 mean standard errors, so that a gap within the noise is never a large step of
    colour, and the cells within 2 standard errors of the best (of their gap to it) are outlined.
    Returns the Axes (its colour bar belongs to the same figure).
    """
    created = ax is None
    ax = _new_axes(ax, (6, 5))
    values = pivot.to_numpy(float)
    low, high = np.nanmin(values), np.nanmax(values)
    if se is not None:
        errors = _same_shape(se, pivot)
        span = max(high - low, 10 * float(np.nanmean(errors)))
        low, high = (low + high - span) / 2, (low + high + span) / 2
    image = ax.imshow(values, origin="lower", cmap="viridis", aspect="auto", vmin=low, vmax=high)
    if se is not None:
        best = np.unravel_index(np.nanargmax(values), values.shape)
        tied = values[best] - values <= 2 * np.sqrt(errors ** 2 + errors[best] ** 2)
        for i, j in zip(*np.nonzero(tied)):
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="white", linewidth=2))
        title = f"{title or ''}{chr(10) if title else ''}outlined: within 2 standard errors of the best"
    ax.set_xticks(range(pivot.shape[1]), pivot.columns.tolist())
    ax.set_yticks(range(pivot.shape[0]), pivot.index.tolist())
    for i in range(pivot.shape[0] if fmt else 0):
        for j in range(pivot.shape[1]):
            ax.text(j, i, fmt.format(pivot.iat[i, j]), ha="center", va="center", color="white", fontsize=8)
    ax.figure.colorbar(image, ax=ax, label=label)
    ax.set_xlabel(pivot.columns.name or "")
    ax.set_ylabel(pivot.index.name or "")
    if title:
        ax.set_title(title)
    return _finish(ax, created)


def _same_shape(se: pd.DataFrame, pivot: pd.DataFrame) -> np.ndarray:
    if not isinstance(se, pd.DataFrame) or se.shape != pivot.shape or list(se.index) != list(pivot.index) \
            or list(se.columns) != list(pivot.columns):
        raise ValueError(f"se must be a table with the rows and columns of the heat map ({pivot.shape[0]} x "
                         f"{pivot.shape[1]}), e.g. the same pivot of the standard errors")
    return se.to_numpy(float)
