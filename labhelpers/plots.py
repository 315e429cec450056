"""The few matplotlib figures the notebooks share. Each returns its figure and can save it to a file.

Layered as in d2l: ``_axes`` sets labels/scales, the figure functions draw, ``save`` writes.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd


def save(fig, path: str | Path | None) -> None:
    """Write ``fig`` to ``path`` (PNG, 120 dpi), creating folders; None saves nothing."""
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")


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
                      path: str | Path | None = None, ncols: int = 2):
    """One bar panel per metric column, one bar per configuration (the seed's per-config figure)."""
    nrows = -(-len(columns) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6 * ncols, 3.2 * nrows), squeeze=False)
    labels = list(labels)
    for ax, column in zip(axes.flat, columns):
        ax.bar(range(len(table)), table[column].to_numpy())
        ax.set_xticks(range(len(table)), labels, rotation=90, fontsize=7)
        _axes(ax, ylabel=column)
    for ax in list(axes.flat)[len(columns):]:
        ax.set_visible(False)
    fig.tight_layout()
    save(fig, path)
    return fig


def pareto(table: pd.DataFrame, front: pd.DataFrame, x: str, y: str, *, path: str | Path | None = None,
           xscale: str | None = "log", title: str | None = None):
    """Every configuration as a dot, the Pareto front as a step line through its points."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(table[x], table[y], s=12, alpha=0.4, label="configurations")
    ordered = front.sort_values(x)
    ax.step(ordered[x], ordered[y], where="post", color="C3", marker="o", label="Pareto front")
    if xscale:
        ax.set_xscale(xscale)
    _axes(ax, xlabel=x, ylabel=y, title=title, legend=True)
    fig.tight_layout()
    save(fig, path)
    return fig


def best_so_far(summary: pd.DataFrame, *, ylabel: str = "best so far", path: str | Path | None = None,
                title: str | None = None, regret_scale: str = "symlog"):
    """Left: mean best-so-far per sampler with a 10-90 % band over seeds; right: mean regret.

    ``summary`` is :func:`labhelpers.search.curve_summary` output (index: sampler, trial).
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    for i, (sampler, group) in enumerate(summary.groupby(level="sampler", sort=False)):
        trials = group.index.get_level_values("trial")
        left.plot(trials, group["best_mean"], color=f"C{i}", label=sampler)
        left.fill_between(trials, group["best_p10"], group["best_p90"], color=f"C{i}", alpha=0.2)
        right.plot(trials, group["regret_mean"], color=f"C{i}", label=sampler)
    _axes(left, xlabel="trial", ylabel=ylabel, title=title, legend=True)
    _axes(right, xlabel="trial", ylabel="mean regret (optimum - best so far)", legend=True)
    right.set_yscale(regret_scale, **({"linthresh": 1e-4} if regret_scale == "symlog" else {}))
    fig.tight_layout()
    save(fig, path)
    return fig
