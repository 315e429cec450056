"""JSC data: the real hls4ml jet dataset (OpenML 42468 or a local file) and the committed simulation.

One entry point, :func:`load_jsc`, returns scaled train/val/test tensors, names and a fingerprint.
Preprocessing follows hls4ml/MASE: drop duplicate rows, 80/20 train/test split with
``random_state=42``, ``StandardScaler`` fitted on the training rows only. Unlike MASE (whose JSC
"validation" split returns the training tensors), the validation rows are carved out of train and
are disjoint from it.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch

FEATURES: tuple[str, ...] = (
    "j_zlogz", "j_c1_b0_mmdt", "j_c1_b1_mmdt", "j_c1_b2_mmdt", "j_c2_b1_mmdt", "j_c2_b2_mmdt",
    "j_d2_b1_mmdt", "j_d2_b2_mmdt", "j_d2_a1_b1_mmdt", "j_d2_a1_b2_mmdt", "j_m2_b1_mmdt",
    "j_m2_b2_mmdt", "j_n2_b1_mmdt", "j_n2_b2_mmdt", "j_mass_mmdt", "j_multiplicity",
)
CLASSES: tuple[str, ...] = ("g", "q", "W", "Z", "t")
ONE_HOT_LABELS: tuple[str, ...] = ("j_g", "j_q", "j_w", "j_z", "j_t")  # the h5 file's label columns
OPENML_ID = 42468  # hls4ml_lhc_jets_hlf
H5_KEY = "t_allpar_new"
SOURCES = ("auto", "real", "sim")
SPLITS = ("train", "val", "test")
MIN_ROWS_PER_CLASS = 2  # in each split: every class is learned from, validated and tested on


def data_dir() -> Path:
    """The repo's data/ folder (override with ``LABHELPERS_DATA_DIR``)."""
    return Path(os.environ.get("LABHELPERS_DATA_DIR", Path(__file__).resolve().parent.parent / "data"))


@dataclass
class JSC:
    """Scaled JSC splits as float32 features and int64 class indices."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    source: str
    origin: str
    scaler_mean: np.ndarray = field(repr=False)
    scaler_scale: np.ndarray = field(repr=False)
    feature_names: tuple[str, ...] = FEATURES
    class_names: tuple[str, ...] = CLASSES

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if name not in SPLITS:
            raise ValueError(f"split={name!r} is unknown; choose one of {list(SPLITS)}")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    @property
    def fingerprint(self) -> str:
        """sha256 (first 16 hex digits) over all split arrays: equal fingerprints, equal data."""
        h = hashlib.sha256()
        for name in SPLITS:
            for t in self.split(name):
                h.update(t.numpy().tobytes())
        return h.hexdigest()[:16]

    def summary(self) -> pd.DataFrame:
        """Rows per class (rows) and split (columns)."""
        counts = {s: np.bincount(self.split(s)[1].numpy(), minlength=len(CLASSES)) for s in SPLITS}
        table = pd.DataFrame(counts, index=pd.Index(self.class_names, name="class"))
        table.loc["total"] = table.sum()
        return table


# ----------------------------------------------------------------------------- reading raw tables

def _check_frame(df: pd.DataFrame, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Features and class indices from a table with the 16 features and a label column or one-hot labels."""
    missing = [f for f in FEATURES if f not in df.columns]
    if missing:
        raise ValueError(f"{where} lacks feature columns {missing}; it needs all of {list(FEATURES)}")
    y = _labels(df, where)
    text = [f for f in FEATURES if not pd.api.types.is_numeric_dtype(df[f]) or pd.api.types.is_bool_dtype(df[f])]
    if text:
        raise ValueError(f"{where} feature column {text[0]!r} is not numeric ({df[text[0]].dtype}); "
                         f"every feature must be a number")
    return _check_features(df[list(FEATURES)].to_numpy(dtype=np.float64), where), y


def _check_features(x: np.ndarray, where: str) -> np.ndarray:
    """``x`` as float32 if it is a numeric (N, 16) array without NaN/inf; else ValueError naming the problem."""
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(f"{where} features have dtype {x.dtype}; they must be numbers (float or int)")
    if x.ndim != 2 or x.shape[1] != len(FEATURES):
        raise ValueError(f"{where} features have shape {x.shape}; expected (N, {len(FEATURES)})")
    bad = ~np.isfinite(x)
    if bad.any():
        col = FEATURES[int(np.nonzero(bad.any(axis=0))[0][0])]
        raise ValueError(f"{where} has {int(bad.sum())} NaN/inf feature values (first in column {col!r}); "
                         f"drop or impute those rows before loading")
    return x.astype(np.float32)


def _check_class_indices(y: np.ndarray, where: str) -> np.ndarray:
    """``y`` as int64 if it holds integer class indices 0..4; float or out-of-range labels are refused."""
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{where} labels y have dtype {y.dtype}; they must be integer class indices "
                         f"0..{len(CLASSES) - 1} ({', '.join(CLASSES)})")
    outside = y[(y < 0) | (y >= len(CLASSES))]
    if len(outside):
        raise ValueError(f"{where} label {int(outside[0])} is out of range; class indices must lie in "
                         f"0..{len(CLASSES) - 1} ({', '.join(CLASSES)})")
    return y.astype(np.int64)


def _labels(df: pd.DataFrame, where: str) -> np.ndarray:
    if "class" in df.columns:
        lookup = {c.lower(): i for i, c in enumerate(CLASSES)}
        names = df["class"].astype(str).str.strip().str.lower()
        unknown = sorted(set(names) - set(lookup))
        if unknown:
            raise ValueError(f"{where} column 'class' has unknown labels {unknown[:5]}; expected {list(CLASSES)}")
        return names.map(lookup).to_numpy(dtype=np.int64)
    if all(c in df.columns for c in ONE_HOT_LABELS):
        onehot = df[list(ONE_HOT_LABELS)].to_numpy()
        if not np.all(onehot.sum(axis=1) == 1):
            raise ValueError(f"{where} one-hot label columns {list(ONE_HOT_LABELS)} do not sum to 1 in every row")
        return onehot.argmax(axis=1).astype(np.int64)
    raise ValueError(f"{where} has no label: add a 'class' column ({list(CLASSES)}) or one-hot columns {list(ONE_HOT_LABELS)}")


def read_table(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Raw features and labels from a local .h5 (key ``t_allpar_new``), .parquet or .csv file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"JSC file {path} does not exist; pass the path of the hls4ml .h5, a .parquet or a .csv export")
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        return _check_frame(_read_h5(path), str(path))
    if suffix == ".parquet":
        return _check_frame(pd.read_parquet(path), str(path))
    if suffix == ".csv":
        return _check_frame(pd.read_csv(path), str(path))
    raise ValueError(f"JSC file {path} has suffix {suffix!r}; use .h5/.hdf5, .parquet or .csv")


def _read_h5(path: Path) -> pd.DataFrame:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if H5_KEY not in f:
                raise ValueError(f"{path} has no dataset {H5_KEY!r} (found {sorted(f.keys())}); "
                                 f"use the hls4ml JSC h5 file that MASE downloads")
            table = f[H5_KEY][()]
    except OSError as exc:
        raise ValueError(f"{path} is not a readable HDF5 file ({exc}); download it again") from None
    if table.dtype.names is None:
        raise ValueError(f"{path}:{H5_KEY} is not a table with named columns; use the hls4ml JSC h5 file")
    return pd.DataFrame({name: table[name] for name in table.dtype.names})


def openml_cache() -> Path:
    """Where scikit-learn caches OpenML downloads (data/openml/, git-ignored)."""
    return data_dir() / "openml"


def openml_is_cached(cache: Path | None = None) -> bool:
    cache = cache if cache is not None else openml_cache()
    return (cache / "openml" / "openml.org" / "api" / "v1" / "json" / "data" / f"{OPENML_ID}.gz").is_file()


def read_openml(cache: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """OpenML 42468 through ``sklearn.datasets.fetch_openml``, cached under ``cache`` (downloads once)."""
    from sklearn.datasets import fetch_openml

    cache = cache if cache is not None else openml_cache()
    try:
        bunch = fetch_openml(data_id=OPENML_ID, data_home=str(cache), as_frame=True, parser="auto", n_retries=1)
    except OSError as exc:  # URLError when offline; also a cache that is corrupt and cannot be re-downloaded
        raise ConnectionError(f"could not load OpenML {OPENML_ID} from cache {cache} nor download it "
                              f"({type(exc).__name__}: {exc}); connect to the internet once (delete {cache} if "
                              f"it is corrupt), or pass path=<hls4ml .h5/.parquet/.csv>, or use source='sim'") from None
    target = bunch.target_names[0] if bunch.target_names else "class"
    return _check_frame(bunch.frame.rename(columns={target: "class"}), f"OpenML {OPENML_ID}")


_SIM_ORIGIN = "data/jsc_sim.npz"  # printed instead of the absolute path, so notebook outputs don't vary by machine


def sim_path() -> Path:
    return data_dir() / "jsc_sim.npz"


def read_sim(path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The committed Pythia 8 + FastJet simulation (see data/README.md)."""
    path = Path(path) if path is not None else sim_path()
    if not path.is_file():
        raise FileNotFoundError(f"simulated JSC {path} is missing; restore it with `git checkout -- {path}` "
                                f"or regenerate it with `python -m labhelpers data simulate`")
    try:
        with np.load(path, allow_pickle=False) as npz:
            x, y = npz["X"], npz["y"]
    except Exception as exc:
        raise ValueError(f"simulated JSC {path} is corrupt ({type(exc).__name__}: {exc}); "
                         f"restore it with `git checkout -- {path}`") from None
    if x.ndim != 2 or x.shape[1] != len(FEATURES) or y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"simulated JSC {path} has X {x.shape} and y {y.shape}; expected (N, 16) and (N,)")
    where = f"simulated JSC {path}"
    return _check_features(x, where), _check_class_indices(y, where)


# ----------------------------------------------------------------------------- preprocessing

def preprocess(x: np.ndarray, y: np.ndarray, *, val_fraction: float = 0.2) -> dict[str, np.ndarray]:
    """Drop duplicates, 80/20 train/test (random_state 42), val carved from train, scaler on train only."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction!r} must lie strictly between 0 and 1, e.g. 0.2")
    table = pd.DataFrame(x).assign(label=y).drop_duplicates()
    x, y = table.drop(columns="label").to_numpy(np.float32), table["label"].to_numpy(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=42)
    x_train, x_val, y_train, y_val = train_test_split(x_train, y_train, test_size=val_fraction, random_state=42)
    scaler = StandardScaler().fit(x_train)
    out = {"mean": scaler.mean_, "scale": scaler.scale_}
    for name, xs, ys in (("train", x_train, y_train), ("val", x_val, y_val), ("test", x_test, y_test)):
        out[f"x_{name}"] = scaler.transform(xs).astype(np.float32)
        out[f"y_{name}"] = ys
    return out


def load_jsc(source: str = "auto", path: str | Path | None = None, *, val_fraction: float = 0.2,
             verbose: bool = True) -> JSC:
    """Load JSC as scaled tensors.

    source:
      - ``"sim"``: the committed simulation in data/jsc_sim.npz (or ``path``, an npz with X and y);
      - ``"real"``: the hls4ml dataset, from ``path`` (.h5/.parquet/.csv) or OpenML 42468 (downloaded
        once into data/openml/). Never falls back to simulated data: errors say what to do instead;
      - ``"auto"``: real when ``path`` is given or OpenML is already cached, else the simulation,
        with a one-line notice saying which.
    """
    if source not in SOURCES:
        raise ValueError(f"source={source!r} is unknown; choose one of {list(SOURCES)}")
    x, y, source, origin = _read_source(source, path, verbose)
    arrays = preprocess(x, y, val_fraction=val_fraction)
    _check_rows_per_class(arrays, origin)
    tensors = {k: torch.from_numpy(v) for k, v in arrays.items() if k[:2] in ("x_", "y_")}
    return JSC(**tensors, source=source, origin=origin, scaler_mean=arrays["mean"], scaler_scale=arrays["scale"])


def _read_source(source: str, path, verbose: bool):
    if source == "sim":
        return (*read_sim(path), "sim", str(path) if path is not None else _SIM_ORIGIN)
    if path is not None:
        return (*read_table(path), "real", str(path))
    if source == "real" or openml_is_cached():
        return (*read_openml(), "real", f"openml:{OPENML_ID}")
    if verbose:
        print(f"JSC: using the simulated dataset data/{sim_path().name} (for the real hls4ml data run "
              f"load_jsc('real') once online, or pass path=<hls4ml .h5>)")
    return (*read_sim(), "sim", _SIM_ORIGIN)


def _check_rows_per_class(arrays: dict, origin: str) -> None:
    for split in SPLITS:
        counts = np.bincount(arrays[f"y_{split}"], minlength=len(CLASSES))
        if counts.min() < MIN_ROWS_PER_CLASS:
            cls = CLASSES[int(counts.argmin())]
            raise ValueError(f"JSC data {origin}: class {cls!r} has {int(counts.min())} row(s) in the {split} split; "
                             f"every class needs at least {MIN_ROWS_PER_CLASS} rows in each of train/val/test "
                             f"(splits are 64/16/20% of the distinct rows): give more data")


# ----------------------------------------------------------------------------- batches

def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool = True,
            generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches by tensor slicing (one gather per epoch), not a per-sample DataLoader."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be a positive integer, e.g. 512")
    if shuffle:
        order = torch.randperm(len(x), generator=generator)
        x, y = x[order], y[order]
    for start in range(0, len(x), batch_size):
        yield x[start:start + batch_size], y[start:start + batch_size]


def describe(data: JSC) -> str:
    """A short printable description: source, fingerprint and rows per class and split."""
    return f"JSC source={data.source} ({data.origin}) fingerprint={data.fingerprint}\n{data.summary().to_string()}"
