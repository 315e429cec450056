"""Scale-out: one Optuna study, many worker processes, on Optuna's own storages.

``python -m labhelpers search --config c.toml --workers N`` starts N worker processes on one study (each
one is the same command with ``--workers 1``). The same command on another machine, against the same
PostgreSQL ``--storage``, adds workers there; give it ``--worker-index`` past the first machine's workers
(e.g. 4 after ``--workers 4``), since a worker's sampler seed is ``seed + worker index`` (except for the
grid sampler: its workers share one seed, so that they agree on the order of the grid).

Crash safety is the single-process loop's (:mod:`.trials`): a killed worker loses only its running
trial, which the next trial of any worker fails and re-queues (Optuna's heartbeat questions, answered for
a journal file by :mod:`.liveness`). Exhaustive samplers across N workers: a run that ends without a
killed worker leaves every point with a finished trial; a point is evaluated twice only when two workers
draw it at the same moment (:func:`labhelpers.search.trials.claim`), and :func:`labhelpers.search.budget.coverage`
counts every trial of every point. Parallel runs are not trial-order deterministic; for brute force, the
set of evaluated points and the metrics of each point are.
"""
from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .budget import budget, status
from .config import SearchConfig, config_context
from .kinds import get_kind
from .liveness import HEARTBEAT_S, quiet_optuna
from .runner import DEFAULT_RUN_ROOT
from .samplers import sampler_seed
from .storage import check_shared, get_storage
from .study import SearchResult, open_study, results, study_context
from .trials import prepare


@dataclass
class Launch:
    """The outcome of :func:`launch`: the study's results and each worker's exit code."""

    result: SearchResult
    exit_codes: dict[int, int]   # worker index -> exit code (negative: killed by that signal)

    def failures(self) -> list[str]:
        """One phrase per worker that did not exit cleanly."""
        out = []
        for index, code in self.exit_codes.items():
            if code < 0:
                out.append(f"worker {index} was killed by {signal.Signals(-code).name}")
            elif code:
                out.append(f"worker {index} exited with status {code}")
        return out


def launch(cfg: SearchConfig, worker_argv: list[str], *, workers: int, storage, study_name: str,
           run_root: str | Path = DEFAULT_RUN_ROOT, first_worker: int = 0, heartbeat_s: float = HEARTBEAT_S,
           progress: bool = True, poll_s: float = 0.5, checkpoint: str | None = None,
           dataset: str | None = None) -> Launch:
    """Start ``workers`` processes on one study and wait for them; write the run folder at the end.

    ``worker_argv`` is the command of one worker (e.g. ``python -m labhelpers search ... --workers 1``)
    without ``--worker-index``; worker k gets ``--worker-index first_worker + k``. ``storage`` is a spec of
    :func:`labhelpers.search.storage.get_storage` that the workers share. Before they start, this process
    creates the study with its context (from the config and its evaluator, with the workers' ``checkpoint``
    and ``dataset`` overrides), so that workers do not race to create tables and a study of that name made
    for another config is refused before any worker starts, and runs :func:`labhelpers.search.trials.prepare`.
    """
    check_shared(workers, storage)
    run_dir = Path(run_root) / study_name
    evaluate = get_kind(cfg.kind).evaluator(cfg, checkpoint=checkpoint, dataset=dataset)
    context = study_context(cfg.space, cfg.objective, cfg.sampler, config_context(cfg, evaluate))
    with quiet_optuna():
        store = get_storage(storage, run_dir, heartbeat_s=heartbeat_s)
        study = open_study(cfg.space, cfg.objective, cfg.sampler, sampler_seed(cfg.sampler, cfg.seed), study_name,
                           store, context, run_dir)
        total, points = budget(cfg.space, cfg.sampler, cfg.n_trials)
        prepare(study, points)
        procs = {first_worker + k: subprocess.Popen([*worker_argv, "--worker-index", str(first_worker + k)])
                 for k in range(workers)}
        try:
            _watch(procs, study, total, points, progress, poll_s)
        finally:
            for proc in procs.values():  # only on an interrupt of this process: don't leave workers behind
                if proc.poll() is None:
                    proc.terminate()
            codes = {k: proc.wait() for k, proc in procs.items()}
        result = results(study, cfg.space, cfg.objective, run_dir)
    return Launch(result, codes)


def _watch(procs: dict, study, total: int, points, progress: bool, poll_s: float) -> None:
    """Wait for the workers; the progress bar counts the study's COMPLETE trials towards the budget."""
    with tqdm(total=total, desc=f"{study.study_name} ({len(procs)} workers)", disable=not progress, leave=False) as bar:
        while any(p.poll() is None for p in procs.values()):
            time.sleep(poll_s)
            if progress:
                with contextlib.suppress(Exception):  # a storage hiccup must not stop the workers
                    bar.n = total - status(study, total, points).missing
                    bar.refresh()
