"""Small files in the real JSC formats (hls4ml h5, OpenML cache, CSV), made by the tests themselves."""
from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from labhelpers.data import CLASSES, FEATURES, H5_KEY, ONE_HOT_LABELS, OPENML_ID


def toy_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Features shifted by class so that a model can learn them; labels as 'class' names."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(CLASSES), n)
    x = rng.normal(size=(n, len(FEATURES))) + y[:, None]
    frame = pd.DataFrame(x.astype(np.float32), columns=list(FEATURES))
    frame["class"] = [CLASSES[i] for i in y]
    return frame


def write_h5(path: Path, frame: pd.DataFrame, key: str = H5_KEY) -> Path:
    """The layout MASE downloads: a structured array with features and one-hot j_g..j_t columns."""
    import h5py

    labels = frame["class"].map({c: i for i, c in enumerate(CLASSES)}).to_numpy()
    names = list(FEATURES) + list(ONE_HOT_LABELS) + ["j_pt"]
    table = np.zeros(len(frame), dtype=[(n, "<f4") for n in names])
    for f in FEATURES:
        table[f] = frame[f]
    for i, col in enumerate(ONE_HOT_LABELS):
        table[col] = labels == i
    table["j_pt"] = 1000.0
    with h5py.File(path, "w") as f:
        f.create_dataset(key, data=table)
    return path


def write_openml_cache(cache: Path, frame: pd.DataFrame) -> Path:
    """What ``fetch_openml(data_id=42468, data_home=cache)`` leaves on disk, for a small frame.

    OpenML's labels are lower case (g, q, t, w, z), as in the real dataset.
    """
    root = cache / "openml" / "openml.org"
    arff = _arff(frame).encode()
    file_url = f"https://api.openml.org/data/v1/download/999/hls4ml_lhc_jets_hlf.arff"
    description = {"data_set_description": {
        "id": str(OPENML_ID), "name": "hls4ml_lhc_jets_hlf", "version": "1", "format": "ARFF",
        "status": "active", "description": "test fixture", "url": file_url, "file_id": "999",
        "md5_checksum": hashlib.md5(arff).hexdigest(), "default_target_attribute": "class"}}
    features = [{"index": str(i), "name": f, "data_type": "numeric", "is_target": "false", "is_ignore": "false",
                 "is_row_identifier": "false", "number_of_missing_values": "0"} for i, f in enumerate(FEATURES)]
    features.append({"index": str(len(FEATURES)), "name": "class", "data_type": "nominal",
                     "nominal_value": ["g", "q", "t", "w", "z"], "is_target": "true", "is_ignore": "false",
                     "is_row_identifier": "false", "number_of_missing_values": "0"})
    qualities = {"data_qualities": {"quality": [{"name": "NumberOfInstances", "value": f"{len(frame)}.0"}]}}
    api = root / "api" / "v1" / "json" / "data"
    _gz(api / f"{OPENML_ID}.gz", json.dumps(description).encode())
    _gz(api / "features" / f"{OPENML_ID}.gz", json.dumps({"data_features": {"feature": features}}).encode())
    _gz(api / "qualities" / f"{OPENML_ID}.gz", json.dumps(qualities).encode())
    _gz(root / "data" / "v1" / "download" / "999" / "hls4ml_lhc_jets_hlf.arff.gz", arff)
    return cache


def _arff(frame: pd.DataFrame) -> str:
    lines = ["@RELATION hls4ml_lhc_jets_hlf", ""]
    lines += [f"@ATTRIBUTE {f} NUMERIC" for f in FEATURES]
    lines += ["@ATTRIBUTE class {g,q,t,w,z}", "", "@DATA"]
    for row in frame.itertuples(index=False):
        values = [repr(float(v)) for v in row[:-1]]
        lines.append(",".join(values + [str(row[-1]).lower()]))
    return "\n".join(lines) + "\n"


def _gz(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(payload)


def write_sim_npz(path: Path, frame: pd.DataFrame) -> Path:
    labels = frame["class"].map({c: i for i, c in enumerate(CLASSES)}).to_numpy(np.int64)
    np.savez_compressed(path, X=frame[list(FEATURES)].to_numpy(np.float32), y=labels)
    return path
