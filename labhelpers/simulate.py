"""Simulated Jet Substructure Classification (JSC) data: Pythia 8 + FastJet at generator level.

Recipe (one chunk = one Pythia instance with its own seed):

* 13 TeV pp, MPI and hadronization on, ``PhaseSpace:pTHatMin/Max = 950/1150`` GeV.
* g: ``HardQCD:gg2gg``, ``HardQCD:qqbar2gg``;  q: ``HardQCD:qqbar2qqbarNew``, ``HardQCD:gg2qqbar``,
  ``HardQCD:qq2qq``;  W: ``WeakDoubleBoson:ffbar2WW``;  Z: ``WeakDoubleBoson:ffbar2gmZgmZ`` with
  ``WeakZ0:gmZmode = 2``;  t: ``Top:gg2ttbar``, ``Top:qqbar2ttbar``.  W and Z decay to quarks only.
* Anti-kT R=0.8 jets of all final-state particles except neutrinos.  A jet is kept when
  800 < pT < 1300 GeV, |eta| < 2.5 and it lies within Delta R < 0.8 of a *target*:
  g: an outgoing hard-process parton (|status| 23) that is a gluon;  q: one that is a u/d/s quark;
  W/Z/t: the last copy of a W/Z/top in the event record (the copy that decays).
  Every jet of the event that passes is kept (a dijet event usually gives two jets, a WW/ZZ/ttbar
  event up to two); jets are appended in event order and, within an event, by decreasing pT.
* Features (``labhelpers.data.FEATURES``): sum z log z (z = pT_i / pT_jet) and the constituent
  multiplicity of the ungroomed jet; on the mMDT-groomed jet (SoftDrop beta=0, z_cut=0.1, R0=0.8 on
  the C/A reclustering of the jet's constituents) the groomed mass and the energy-correlation ratios
  C1 (beta 0,1,2), C2, D2, generalized D2 with alpha=1, M2, N2 (beta 1,2).
* Jets whose groomed jet has a single constituent give 0/0 ratios; they are dropped (counted).

Acceptance is decided event by event in generation order, so for a given (label, chunk_seed) the first
k rows of ``generate_chunk(label, seed, n)`` equal ``generate_chunk(label, seed, k)`` for k <= n.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from labhelpers.data import CLASSES, FEATURES
from labhelpers.validate import is_int, non_negative_int, positive_int

PT_HAT_MIN, PT_HAT_MAX = 950.0, 1150.0
JET_R = 0.8
JET_PT_MIN, JET_PT_MAX = 800.0, 1300.0
JET_ABS_ETA_MAX = 2.5
MATCH_DR = 0.8
SOFTDROP = {"beta": 0.0, "symmetry_cut": 0.1, "R0": 0.8}
RECLUSTER_R = 2.0  # C/A radius for reclustering one jet's constituents (> max pairwise distance 1.6)
PYTHIA_SEED_MAX = 900_000_000
NEUTRINOS = (12, 14, 16)
LIGHT_QUARKS = (1, 2, 3)

_COMMON = [
    "Beams:eCM = 13000.",
    "PartonLevel:MPI = on",
    "HadronLevel:all = on",
    f"PhaseSpace:pTHatMin = {PT_HAT_MIN}",
    f"PhaseSpace:pTHatMax = {PT_HAT_MAX}",
    "Print:quiet = on",
    "Next:numberCount = 0",
    "Random:setSeed = on",
]
_W_HADRONIC = ["24:onMode = off", "24:onIfAny = 1 2 3 4 5"]
PROCESSES: dict[str, list[str]] = {
    "g": ["HardQCD:gg2gg = on", "HardQCD:qqbar2gg = on"],
    "q": ["HardQCD:qqbar2qqbarNew = on", "HardQCD:gg2qqbar = on", "HardQCD:qq2qq = on",
          "HardQCD:nQuarkNew = 3"],
    "W": ["WeakDoubleBoson:ffbar2WW = on", *_W_HADRONIC],
    "Z": ["WeakDoubleBoson:ffbar2gmZgmZ = on", "WeakZ0:gmZmode = 2",
          "23:onMode = off", "23:onIfAny = 1 2 3 4 5"],
    "t": ["Top:gg2ttbar = on", "Top:qqbar2ttbar = on", *_W_HADRONIC],
}
# (func, beta, alpha) for exclusive_jets_energy_correlator, in FEATURES order (after j_zlogz).
_ECF = {
    "j_c1_b0_mmdt": ("c1", 0, 0), "j_c1_b1_mmdt": ("c1", 1, 0), "j_c1_b2_mmdt": ("c1", 2, 0),
    "j_c2_b1_mmdt": ("c2", 1, 0), "j_c2_b2_mmdt": ("c2", 2, 0),
    "j_d2_b1_mmdt": ("d2", 1, 0), "j_d2_b2_mmdt": ("d2", 2, 0),
    "j_d2_a1_b1_mmdt": ("generalizedd2", 1, 1), "j_d2_a1_b2_mmdt": ("generalizedd2", 2, 1),
    "j_m2_b1_mmdt": ("m2", 1, 0), "j_m2_b2_mmdt": ("m2", 2, 0),
    "j_n2_b1_mmdt": ("n2", 1, 0), "j_n2_b2_mmdt": ("n2", 2, 0),
}
SETTINGS = {
    "eCM_GeV": 13000, "pTHat_GeV": [PT_HAT_MIN, PT_HAT_MAX], "mpi": True, "hadronization": True,
    "processes": PROCESSES, "jet_algorithm": "antikt", "jet_R": JET_R,
    "jet_pt_GeV": [JET_PT_MIN, JET_PT_MAX], "jet_abs_eta_max": JET_ABS_ETA_MAX,
    "inputs": "final-state particles except neutrinos (12, 14, 16)",
    "match": f"Delta R < {MATCH_DR} to g: hard-process (|status| 23) gluon; q: hard-process u/d/s; "
             "W/Z/t: last copy of W/Z/top; every passing jet per event kept",
    "grooming": {"algorithm": "mMDT = SoftDrop on C/A reclustered constituents", **SOFTDROP},
    "energy_correlators": {k: {"func": f, "beta": b, "alpha": a} for k, (f, b, a) in _ECF.items()},
    "nan_policy": "drop jets with any non-finite feature (groomed jet with one constituent)",
}


def _require_sim():
    """Import the optional simulation stack, or fail with an actionable message."""
    try:
        import awkward as ak
        import fastjet
        import pythia8mc
    except ImportError as exc:  # pragma: no cover - depends on environment
        raise ImportError(
            f"simulation needs pythia8mc and fastjet ({exc.name} is missing): pip install -e '.[sim]'"
        ) from exc
    return pythia8mc, fastjet, ak


_BANNER_DONE = False


def _silence_fastjet_banner(fastjet, ak) -> None:
    """FastJet prints its banner to C stdout on first use; swallow it once per process."""
    global _BANNER_DONE
    if _BANNER_DONE:
        return
    _BANNER_DONE = True
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            parts = ak.Array([[{"px": 1.0, "py": 0.0, "pz": 0.0, "E": 1.0}]])
            fastjet.ClusterSequence(parts, fastjet.JetDefinition(fastjet.antikt_algorithm, 0.4)).inclusive_jets()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _check_label(label) -> int:
    if not is_int(label) or not 0 <= label < len(CLASSES):
        raise ValueError(f"label must be an int in 0..{len(CLASSES) - 1} (index into CLASSES={CLASSES}), got {label!r}")
    return int(label)


def _make_pythia(pythia8mc, label: int, chunk_seed: int):
    p = pythia8mc.Pythia("", False)
    for s in [*_COMMON, f"Random:seed = {chunk_seed}", *PROCESSES[CLASSES[label]]]:
        if not p.readString(s):
            raise RuntimeError(f"Pythia rejected setting {s!r}")
    if not p.init():
        raise RuntimeError("Pythia initialisation failed")
    return p


def _targets(ak, prt, cls: str):
    """Per-event (eta, phi) of the objects a jet must be matched to."""
    if cls in ("g", "q"):
        hard = prt[abs(prt.status) == 23]
        sel = (hard.id == 21) if cls == "g" else ((abs(hard.id) >= 1) & (abs(hard.id) <= 3))
        t = hard[sel]
    else:
        pdg = {"W": 24, "Z": 23, "t": 6}[cls]
        # last copy = the one whose first daughter is not another copy of itself
        last = prt.id[prt.daughter1] != prt.id
        t = prt[(abs(prt.id) == pdg) & last]
    return _eta_phi(ak, t.p.px, t.p.py, t.p.pz)


def _eta_phi(ak, px, py, pz):
    pt = np.sqrt(px**2 + py**2)
    return np.arcsinh(pz / pt), np.arctan2(py, px), pt


def _features(fastjet, ak, const, jet_pt):
    """Feature matrix (n, 16) float64 for a list of jets given as constituents (n * var * px,py,pz,E)."""
    ca = fastjet.JetDefinition(fastjet.cambridge_algorithm, RECLUSTER_R)
    cpt = np.sqrt(const.px**2 + const.py**2)
    z = cpt / jet_pt
    zlogz = ak.to_numpy(ak.sum(z * np.log(z), axis=1))
    mult = ak.to_numpy(ak.num(const, axis=1)).astype(np.float64)

    cs = fastjet.ClusterSequence(const, ca)
    sd = cs.exclusive_jets_softdrop_grooming(njets=1, **SOFTDROP)
    mass = ak.to_numpy(sd.msoftdrop)
    groomed = ak.zip({"px": sd.constituents.px, "py": sd.constituents.py,
                      "pz": sd.constituents.pz, "E": sd.constituents.E})
    cs_g = fastjet.ClusterSequence(groomed, ca)
    cols = {"j_zlogz": zlogz, "j_mass_mmdt": mass, "j_multiplicity": mult}
    with np.errstate(all="ignore"):
        for name, (func, beta, alpha) in _ECF.items():
            cols[name] = ak.to_numpy(cs_g.exclusive_jets_energy_correlator(
                njets=1, func=func, beta=beta, alpha=alpha))
    return np.stack([np.asarray(cols[f], dtype=np.float64) for f in FEATURES], axis=1)


def _generate_chunk(label: int, chunk_seed: int, n_jets: int) -> tuple[np.ndarray, dict]:
    label = _check_label(label)
    n_jets = positive_int("n_jets", n_jets)
    if not is_int(chunk_seed) or not 1 <= chunk_seed <= PYTHIA_SEED_MAX:
        raise ValueError(f"chunk_seed must be an int in 1..{PYTHIA_SEED_MAX} (Pythia's range; 0 means clock), got {chunk_seed!r}")
    pythia8mc, fastjet, ak = _require_sim()
    _silence_fastjet_banner(fastjet, ak)
    cls = CLASSES[label]
    t0 = time.perf_counter()
    pythia = _make_pythia(pythia8mc, label, int(chunk_seed))
    akt = fastjet.JetDefinition(fastjet.antikt_algorithm, JET_R)

    rows, n_have, n_events, n_matched, n_dropped = [], 0, 0, 0, 0
    jets_per_event = 1.8  # running estimate, only used to size the next batch (not the result)
    while n_have < n_jets:
        need = n_jets - n_have
        batch = int(min(200, max(10, math.ceil(1.05 * need / max(jets_per_event, 0.05)))))
        ev = pythia.nextBatch(batch)
        n_events += len(ev)
        if n_events > 100 * n_jets + 2000:
            raise RuntimeError(f"class {cls}: only {n_have} jets from {n_events} events; acceptance broken?")
        if len(ev) == 0:
            continue
        prt = ev.prt
        aid = abs(prt.id)
        vis = prt[(prt.status > 0) & (aid != NEUTRINOS[0]) & (aid != NEUTRINOS[1]) & (aid != NEUTRINOS[2])]
        parts = ak.zip({"px": vis.p.px, "py": vis.p.py, "pz": vis.p.pz, "E": vis.p.e})
        cs = fastjet.ClusterSequence(parts, akt)
        jets = cs.inclusive_jets(min_pt=JET_PT_MIN)
        const = cs.constituents(min_pt=JET_PT_MIN)
        jeta, jphi, jpt = _eta_phi(ak, jets.px, jets.py, jets.pz)
        order = ak.argsort(jpt, axis=1, ascending=False, stable=True)
        jets, const, jeta, jphi, jpt = jets[order], const[order], jeta[order], jphi[order], jpt[order]

        teta, tphi, _ = _targets(ak, prt, cls)
        pairs_j = ak.cartesian([jeta, teta], axis=1, nested=True)
        pairs_p = ak.cartesian([jphi, tphi], axis=1, nested=True)
        deta = pairs_j["0"] - pairs_j["1"]
        dphi = (pairs_p["0"] - pairs_p["1"] + np.pi) % (2 * np.pi) - np.pi
        dr_min = ak.fill_none(ak.min(np.sqrt(deta**2 + dphi**2), axis=2), np.inf)
        keep = (jpt > JET_PT_MIN) & (jpt < JET_PT_MAX) & (abs(jeta) < JET_ABS_ETA_MAX) & (dr_min < MATCH_DR)
        n_sel = int(ak.sum(keep))
        jets_per_event = 0.5 * jets_per_event + 0.5 * (n_sel / len(ev))
        if n_sel == 0:
            continue
        sel_const = ak.flatten(const[keep], axis=1)
        sel_pt = ak.to_numpy(ak.flatten(jpt[keep], axis=1))
        X = _features(fastjet, ak, sel_const, sel_pt)
        good = np.isfinite(X).all(axis=1)
        n_matched += n_sel
        n_dropped += int((~good).sum())
        X = X[good]
        rows.append(X)
        n_have += len(X)
    X = np.concatenate(rows, axis=0)[:n_jets].astype(np.float32)
    stats = {"events": n_events, "jets_matched": n_matched, "jets_dropped_nonfinite": n_dropped,
             "seconds": time.perf_counter() - t0}
    return X, stats


def generate_chunk(label: int, chunk_seed: int, n_jets: int) -> np.ndarray:
    """Exactly ``n_jets`` accepted jets of class ``CLASSES[label]`` as float32 (n_jets, 16) in FEATURES order.

    Deterministic in (label, chunk_seed, n_jets); a prefix of a chunk is reproduced by a smaller n_jets.
    """
    return _generate_chunk(label, chunk_seed, n_jets)[0]


def chunk_seed_for(seed: int, label: int, chunk: int) -> int:
    """Pythia seed (1..900000000) of chunk ``chunk`` of class ``label`` for run seed ``seed``."""
    state = np.random.SeedSequence([int(seed), int(label), int(chunk)]).generate_state(2, dtype=np.uint64)
    return int(state[0] % np.uint64(PYTHIA_SEED_MAX)) + 1


def plan_chunks(n_jets: int, seed: int, chunk_size: int = 500) -> list[tuple[int, int, int, int]]:
    """List of (label, chunk_index, chunk_seed, n) ordered by (label, chunk)."""
    per_class = n_jets // len(CLASSES)
    tasks = []
    for label in range(len(CLASSES)):
        for c, start in enumerate(range(0, per_class, chunk_size)):
            tasks.append((label, c, chunk_seed_for(seed, label, c), min(chunk_size, per_class - start)))
    seeds = [t[2] for t in tasks]
    if len(set(seeds)) != len(seeds):  # astronomically unlikely; fail loudly rather than duplicate jets
        raise RuntimeError("chunk seed collision; choose another seed")
    return tasks


def _worker(task):
    label, chunk, chunk_seed, n = task
    X, stats = _generate_chunk(label, chunk_seed, n)
    return label, chunk, chunk_seed, X, stats


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {"python": platform.python_version()}
    for pkg in ("pythia8mc", "fastjet", "awkward", "numpy", "labhelpers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def simulate(n_jets: int, seed: int, out: str | Path, workers: int = 2, chunk_size: int = 500,
             progress: bool = True) -> Path:
    """Generate a balanced simulated JSC set (n_jets/5 per class) and write it as a compressed npz.

    Arrays: X float32 (N, 16) raw features in FEATURES order, y int64 class index, chunk_seed int64,
    chunk_index int32 (row within its chunk), meta (JSON string). Rows are ordered by (label, chunk).
    """
    n_jets = positive_int("n_jets", n_jets)
    if n_jets % len(CLASSES):
        raise ValueError(f"n_jets must be a positive multiple of {len(CLASSES)} (balanced classes), got {n_jets}")
    seed = non_negative_int("seed", seed)
    workers = positive_int("workers", workers)
    chunk_size = positive_int("chunk_size", chunk_size)
    out = Path(out)
    if out.suffix != ".npz":
        raise ValueError(f"out must be a .npz path, got {str(out)!r}")
    _require_sim()
    from tqdm.auto import tqdm

    tasks = plan_chunks(n_jets, seed, chunk_size)
    results = {}
    t0 = time.perf_counter()
    bar = tqdm(total=n_jets, unit="jet", desc="simulate JSC", disable=not progress)
    try:
        if workers == 1:
            it = map(_worker, tasks)
            pool = None
        else:
            import multiprocessing as mp
            # fork where available: no `if __name__ == "__main__"` guard needed in the caller's script
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            pool = mp.get_context(method).Pool(workers)
            it = pool.imap_unordered(_worker, tasks)
        for label, chunk, chunk_seed, X, stats in it:
            results[(label, chunk)] = (chunk_seed, X, stats)
            bar.update(len(X))
        if pool is not None:
            pool.close()
            pool.join()
    finally:
        bar.close()
        if workers > 1 and pool is not None:
            pool.terminate()
    wall = time.perf_counter() - t0

    keys = sorted(results)
    X = np.concatenate([results[k][1] for k in keys], axis=0)
    y = np.concatenate([np.full(len(results[k][1]), k[0], np.int64) for k in keys])
    cseed = np.concatenate([np.full(len(results[k][1]), results[k][0], np.int64) for k in keys])
    cidx = np.concatenate([np.arange(len(results[k][1]), dtype=np.int32) for k in keys])
    assert X.shape == (n_jets, len(FEATURES)) and np.isfinite(X).all()

    per_class_stats = {}
    for label, cls in enumerate(CLASSES):
        st = [results[k][2] for k in keys if k[0] == label]
        per_class_stats[cls] = {
            "n": int((y == label).sum()),
            "chunks": len(st),
            "events": sum(s["events"] for s in st),
            "jets_matched": sum(s["jets_matched"] for s in st),
            "jets_dropped_nonfinite": sum(s["jets_dropped_nonfinite"] for s in st),
            "cpu_seconds": round(sum(s["seconds"] for s in st), 1),
            "median_mass_mmdt": float(np.median(X[y == label, FEATURES.index("j_mass_mmdt")])),
        }
    meta = {
        "dataset": "simulated JSC (labhelpers.simulate)",
        "features": list(FEATURES), "classes": list(CLASSES),
        "n_jets": n_jets, "n_per_class": n_jets // len(CLASSES), "seed": int(seed),
        "chunk_size": chunk_size, "n_chunks": len(tasks),
        "chunk_seed_scheme": "np.random.SeedSequence([seed, label, chunk]).generate_state(2, uint64)[0] "
                             "% 900000000 + 1",
        "row_order": "(label, chunk, chunk_index)",
        "settings": SETTINGS, "versions": _versions(), "per_class": per_class_stats,
        "jets_dropped_nonfinite": sum(s["jets_dropped_nonfinite"] for s in per_class_stats.values()),
        "workers": workers, "wall_seconds": round(wall, 1), "jets_per_second": round(n_jets / wall, 1),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, X=X, y=y, chunk_seed=cseed, chunk_index=cidx, meta=np.array(json.dumps(meta)))
    return out
