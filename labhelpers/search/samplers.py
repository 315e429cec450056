"""Seeded Optuna samplers by name, and the exhaustive ones made safe against trials killed while sampling."""
from __future__ import annotations

from typing import Callable

import optuna

from .. import validate
from .space import Space


class SpaceBruteForce(optuna.samplers.BruteForceSampler):
    """Optuna's BruteForceSampler, blind to finished trials that hold only some of the space's parameters.

    Optuna builds its tree from every trial, FAIL included. A trial whose worker was killed while sampling
    holds, say, 3 of 6 parameters; in the tree it ends a branch early, and every later draw through that
    branch raises ``ValueError: param_name mismatch`` (the study is poisoned for good). Here such a trial
    is left out of the tree: its point is still unvisited, so it is drawn again like any other.
    """

    def __init__(self, names, seed: int | None = None):
        super().__init__(seed=seed)
        self._names = frozenset(names)

    def _populate_tree(self, tree, trials, params) -> None:
        whole = [t for t in trials if not t.state.is_finished() or self._names <= t.params.keys()]
        optuna.samplers.BruteForceSampler._populate_tree(tree, whole, params)


class SpaceGrid(optuna.samplers.GridSampler):
    """Optuna's GridSampler, which counts a grid point as visited only by a finished trial holding all of
    its parameters (a trial killed while sampling leaves its point to be drawn again, as above)."""

    def __init__(self, space: Space, seed: int | None = None):
        super().__init__(space.optuna_grid(), seed=seed)
        self._names = frozenset(space.choices)

    def _get_unvisited_grid_ids(self, study: optuna.Study) -> list[int]:
        visited, running = set(), set()
        for t in study._storage.get_all_trials(study._study_id, deepcopy=False):
            if "grid_id" not in t.system_attrs or not self._same_search_space(t.system_attrs["search_space"]):
                continue
            if t.state.is_finished() and self._names <= t.params.keys():
                visited.add(t.system_attrs["grid_id"])
            elif t.state == optuna.trial.TrialState.RUNNING:
                running.add(t.system_attrs["grid_id"])
        every = set(range(self._n_min_trials))
        return list(every - visited - running or every - visited)


SamplerFactory = Callable[[Space, int], optuna.samplers.BaseSampler]

# The search strategies, in one explicit map: name -> factory(space, seed). register_sampler adds one.
SAMPLERS: dict[str, SamplerFactory] = {
    "brute-force": lambda space, seed: SpaceBruteForce(space.choices, seed=seed),
    "grid": lambda space, seed: SpaceGrid(space, seed=seed),
    "random": lambda space, seed: optuna.samplers.RandomSampler(seed=seed),
    "tpe": lambda space, seed: optuna.samplers.TPESampler(seed=seed),
    "nsga2": lambda space, seed: optuna.samplers.NSGAIISampler(seed=seed),
}
EXHAUSTIVE = {"brute-force", "grid"}  # samplers that stop once every point was visited
BUILT_IN = frozenset(SAMPLERS)


def register_sampler(name: str, factory: SamplerFactory, *, exhaustive: bool = False) -> SamplerFactory:
    """Make ``sampler = name`` a search strategy of :func:`labhelpers.search.run`, the TOML configs and the CLI.

    ``factory(space, seed)`` returns a fresh Optuna sampler (any ``optuna.samplers.BaseSampler``).
    ``exhaustive=True`` says the strategy visits each point once: the run's budget is then capped at the
    space's size and trials whose evaluation failed are re-queued, as for ``brute-force``. Registering a
    name again replaces it (re-running a notebook cell); the built-in names cannot be replaced. From the
    CLI, ``--import MODULE`` imports a module that calls this function.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"sampler name {name!r} must be a non-empty string")
    if name in BUILT_IN:
        raise ValueError(f"sampler {name!r} is built in; register yours under another name, e.g. 'my-{name}'")
    if not callable(factory):
        raise ValueError(f"sampler {name!r}: factory must be callable as factory(space, seed), got {factory!r}")
    SAMPLERS[name] = factory
    (EXHAUSTIVE.add if exhaustive else EXHAUSTIVE.discard)(name)
    return factory


def check_sampler(name: str, where: str = "") -> str:
    """``name`` if it names a sampler; else ValueError listing the samplers."""
    if name not in SAMPLERS:
        raise ValueError(f"{where}sampler={name!r} is unknown; choose one of {list(SAMPLERS)}")
    return name


def make_sampler(name: str, space: Space, seed: int) -> optuna.samplers.BaseSampler:
    """A seeded Optuna sampler by name: brute-force, grid, random, tpe, nsga2 or a registered one."""
    check_sampler(name)
    validate.non_negative_int("seed", seed)
    return SAMPLERS[name](space, seed)


def sampler_seed(sampler: str, seed: int, worker: int = 0) -> int:
    """The sampler seed of worker ``worker`` of a study: ``seed + worker``; grid workers share ``seed`` (one
    grid order). A single process is worker 0: its seed is ``seed``."""
    if not validate.is_int(worker) or worker < 0:
        raise ValueError(f"worker index {worker!r} must be a non-negative integer")
    return seed if sampler == "grid" else seed + worker
