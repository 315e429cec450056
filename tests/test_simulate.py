"""The committed simulated JSC (data/jsc_sim.npz): format, balance, seeds, and bit-exact regeneration."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from labhelpers.data import CLASSES, FEATURES
from labhelpers.simulate import PYTHIA_SEED_MAX, generate_chunk, plan_chunks, simulate

DATA = Path(os.environ.get("LABHELPERS_SIM_NPZ") or Path(__file__).resolve().parents[1] / "data" / "jsc_sim.npz")
N_CHECK = 50  # rows regenerated per class; acceptance is event-ordered, so a chunk prefix is reproducible


@pytest.fixture(scope="module")
def sim():
    assert DATA.exists(), f"missing {DATA}"
    with np.load(DATA) as d:  # no allow_pickle: meta is a plain unicode string
        out = {k: d[k] for k in d.files}
    out["meta"] = json.loads(str(out["meta"]))
    return out


def test_arrays(sim):
    n = sim["meta"]["n_jets"]
    assert sim["X"].shape == (n, len(FEATURES)) and sim["X"].dtype == np.float32
    assert sim["y"].shape == (n,) and sim["y"].dtype == np.int64
    assert sim["chunk_seed"].shape == (n,) and sim["chunk_seed"].dtype == np.int64
    assert sim["chunk_index"].shape == (n,) and sim["chunk_index"].dtype == np.int32
    assert np.isfinite(sim["X"]).all()
    assert np.bincount(sim["y"], minlength=len(CLASSES)).tolist() == [n // len(CLASSES)] * len(CLASSES)
    assert np.all(np.diff(sim["y"]) >= 0), "rows must be ordered by label"
    mult = sim["X"][:, FEATURES.index("j_multiplicity")]
    assert np.array_equal(mult, np.round(mult)) and mult.min() >= 2


def test_meta(sim):
    m = sim["meta"]
    assert m["features"] == list(FEATURES) and m["classes"] == list(CLASSES)
    assert m["n_per_class"] * len(CLASSES) == m["n_jets"] == len(sim["y"])
    assert isinstance(m["seed"], int) and isinstance(m["chunk_size"], int)
    for pkg in ("pythia8mc", "fastjet", "numpy"):
        assert m["versions"][pkg]
    assert m["settings"]["pTHat_GeV"] and "nan_policy" in m["settings"]
    assert m["jets_dropped_nonfinite"] == sum(c["jets_dropped_nonfinite"] for c in m["per_class"].values())


def test_chunk_seeds_follow_scheme(sim):
    m = sim["meta"]
    tasks = plan_chunks(m["n_jets"], m["seed"], m["chunk_size"])
    assert len(tasks) == m["n_chunks"]
    seeds = np.concatenate([np.full(n, s, np.int64) for _, _, s, n in tasks])
    index = np.concatenate([np.arange(n, dtype=np.int32) for _, _, _, n in tasks])
    labels = np.concatenate([np.full(n, lab, np.int64) for lab, _, _, n in tasks])
    assert np.array_equal(seeds, sim["chunk_seed"])
    assert np.array_equal(index, sim["chunk_index"])
    assert np.array_equal(labels, sim["y"])
    assert 1 <= seeds.min() and seeds.max() <= PYTHIA_SEED_MAX


@pytest.mark.parametrize("label,chunk", [(0, 1), (4, 0)])  # a gluon chunk and a top chunk
def test_regenerate_rows_exactly(sim, label, chunk):
    pytest.importorskip("pythia8mc")
    pytest.importorskip("fastjet")
    tasks = [t for t in plan_chunks(sim["meta"]["n_jets"], sim["meta"]["seed"], sim["meta"]["chunk_size"])
             if t[0] == label and t[1] == chunk]
    (_, _, chunk_seed, _), = tasks
    rows = np.flatnonzero((sim["y"] == label) & (sim["chunk_seed"] == chunk_seed))[:N_CHECK]
    assert np.array_equal(sim["chunk_index"][rows], np.arange(N_CHECK))
    X = generate_chunk(label, chunk_seed, N_CHECK)
    assert X.dtype == np.float32 and X.shape == (N_CHECK, len(FEATURES))
    assert np.array_equal(X, sim["X"][rows])


@pytest.mark.parametrize("kwargs", [dict(n_jets=7), dict(n_jets=0), dict(n_jets=10, seed=-1),
                                    dict(n_jets=10, workers=0), dict(n_jets=10, chunk_size=0)])
def test_simulate_rejects_bad_input(tmp_path, kwargs):
    kwargs = {"seed": 1, "out": tmp_path / "x.npz", **kwargs}
    with pytest.raises(ValueError):
        simulate(**kwargs)


@pytest.mark.parametrize("args", [(5, 1, 10), (0, 0, 10), (0, PYTHIA_SEED_MAX + 1, 10), (0, 1, 0)])
def test_generate_chunk_rejects_bad_input(args):
    with pytest.raises(ValueError):
        generate_chunk(*args)
