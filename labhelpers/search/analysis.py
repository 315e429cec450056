"""Sample efficiency: evaluate a space once (:func:`exhaustive`), replay samplers against that table
(:func:`replay`), and summarise how fast each one finds the optimum."""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import optuna
import pandas as pd
from tqdm.auto import tqdm

from .liveness import quiet_optuna
from .objective import Objective
from .samplers import make_sampler
from .space import Space
def exhaustive(space: Space, evaluate: Callable[[Any], dict], *, progress: bool = True) -> pd.DataFrame:
    """Evaluate every point once: the lookup table (params encoded as in Optuna, plus all metrics)."""
    rows = []
    for params in tqdm(space.grid(), total=space.size, desc="exhaustive", disable=not progress, leave=False):
        rows.append({**space.encode(params), **evaluate(space.to_config(params))})
    return pd.DataFrame(rows)


def replay(space: Space, table: pd.DataFrame, column: str, *, samplers=("brute-force", "random", "tpe"),
           seeds=range(20), n_trials: int = 16, progress: bool = True) -> pd.DataFrame:
    """Run each sampler for each seed against the lookup ``table`` (maximising ``column``).

    Returns the long table: sampler, seed, trial (1-based), value, best (best so far) and distinct
    (distinct points visited so far). Nothing is re-evaluated: every trial reads the table.
    """
    names = list(space.choices)
    lookup = dict(zip(map(tuple, table[names].itertuples(index=False)), table[column].astype(float)))
    if len(lookup) != space.size:
        raise ValueError(f"lookup table has {len(lookup)} distinct points, the space {space.size}; run exhaustive() first")
    rows = []
    jobs = [(s, seed) for s in samplers for seed in seeds]
    with quiet_optuna():
        for sampler, seed in tqdm(jobs, desc="replay", disable=not progress, leave=False):
            rows += _replay_one(space, lookup, names, sampler, seed, n_trials)
    return pd.DataFrame(rows)


def _replay_one(space, lookup, names, sampler, seed, n_trials) -> list[dict]:
    study = optuna.create_study(sampler=make_sampler(sampler, space, seed), direction="maximize")
    study.optimize(lambda t: lookup[tuple(space.encode(space.suggest(t))[n] for n in names)], n_trials=n_trials)
    rows, best, seen = [], -math.inf, set()
    for i, t in enumerate(study.trials, start=1):
        best = max(best, t.value)
        seen.add(tuple(t.params[n] for n in names))
        rows.append({"sampler": sampler, "seed": seed, "trial": i, "value": t.value, "best": best, "distinct": len(seen)})
    return rows


def efficiency(curves: pd.DataFrame, optimum: float, *, tol: float = 0.0) -> pd.DataFrame:
    """Per sampler: how many trials each seed needed to come within ``tol`` of ``optimum``.

    Columns: seeds, reached (seeds that got there within the budget), median_trials (``inf`` unless
    more than half got there), mean_regret_final, and distinct_final (mean distinct points visited).
    """
    rows = []
    for sampler, group in curves.groupby("sampler", sort=False):
        per_seed = group.groupby("seed")
        hit = np.array([_first_hit(g, optimum, tol) for _, g in per_seed])
        last = per_seed.tail(1)
        rows.append({"sampler": sampler, "seeds": len(hit), "reached": int(np.isfinite(hit).sum()),
                     "median_trials": float(np.median(hit)), "mean_regret_final": float((optimum - last["best"]).mean()),
                     "distinct_final": float(last["distinct"].mean())})
    return pd.DataFrame(rows).set_index("sampler")


def _first_hit(group: pd.DataFrame, optimum: float, tol: float) -> float:
    hits = group.loc[group["best"] >= optimum - tol - 1e-12, "trial"]
    return float(hits.iloc[0]) if len(hits) else math.inf


def score(table: pd.DataFrame, objective: Objective) -> pd.Series:
    """The single objective value of every row of a metrics table (the scaled sum, or the one metric)."""
    if len(objective.directions) != 1:
        raise ValueError(f"score() needs a single objective; {list(objective.metrics)} are several: set sum_scaled")
    return pd.Series([objective.values(row)[0] for row in table.to_dict("records")], index=table.index, name="score")


def curve_summary(curves: pd.DataFrame, optimum: float) -> pd.DataFrame:
    """Per sampler and trial: mean, median, 10th and 90th percentile of best-so-far; mean and median regret."""
    g = curves.assign(regret=optimum - curves["best"]).groupby(["sampler", "trial"], sort=False)
    return pd.DataFrame({"best_mean": g["best"].mean(), "best_median": g["best"].median(), "best_p10": g["best"].quantile(0.1),
                         "best_p90": g["best"].quantile(0.9), "regret_mean": g["regret"].mean(),
                         "regret_median": g["regret"].median()})
