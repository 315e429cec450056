"""The JSC loader: order, splits, scaling, the real-data paths on small files, and errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from labhelpers import data as D
from jsc_fixtures import toy_frame, write_h5, write_openml_cache, write_sim_npz


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LABHELPERS_DATA_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def frame():
    return toy_frame(400)


def test_feature_and_class_order():
    assert D.FEATURES[0] == "j_zlogz" and D.FEATURES[-2:] == ("j_mass_mmdt", "j_multiplicity")
    assert len(D.FEATURES) == 16 and len(set(D.FEATURES)) == 16
    assert D.CLASSES == ("g", "q", "W", "Z", "t")


def test_sim_npz_shapes_and_disjoint_splits(data_home, frame):
    write_sim_npz(data_home / "jsc_sim.npz", frame)
    jsc = D.load_jsc("sim")
    assert jsc.x_train.shape[1] == 16 and jsc.x_train.dtype == torch.float32 and jsc.y_train.dtype == torch.int64
    assert len(jsc.x_train) + len(jsc.x_val) + len(jsc.x_test) == len(frame.drop_duplicates())
    rows = {name: {tuple(r) for r in jsc.split(name)[0].numpy().round(5)} for name in D.SPLITS}
    assert not rows["train"] & rows["val"] and not rows["train"] & rows["test"] and not rows["val"] & rows["test"]


def test_scaler_fitted_on_train_only(data_home, frame):
    write_sim_npz(data_home / "jsc_sim.npz", frame)
    jsc = D.load_jsc("sim")
    np.testing.assert_allclose(jsc.x_train.mean(0).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(jsc.x_train.std(0, unbiased=False).numpy(), 1.0, atol=1e-4)
    assert abs(float(jsc.x_test.mean())) > 1e-4  # test rows were not used to fit the scaler


def test_duplicates_dropped(data_home, frame):
    write_sim_npz(data_home / "jsc_sim.npz", frame.iloc[list(range(100)) * 2])
    assert int(D.load_jsc("sim").summary().loc["total"].sum()) == 100


def test_h5_and_openml_give_the_same_real_data(data_home, frame):
    h5 = D.load_jsc("real", write_h5(data_home / "jsc.h5", frame))
    write_openml_cache(data_home / "openml", frame)
    openml = D.load_jsc("real")
    assert openml.origin == "openml:42468" and h5.source == openml.source == "real"
    assert h5.fingerprint == openml.fingerprint


def test_csv_and_parquet(data_home, frame):
    csv = data_home / "jsc.csv"
    frame.to_csv(csv, index=False)
    parquet = data_home / "jsc.parquet"
    frame.to_parquet(parquet)
    assert D.load_jsc("real", csv).fingerprint == D.load_jsc("real", parquet).fingerprint


def test_auto_prefers_cached_real_else_says_sim(data_home, frame, capsys):
    write_sim_npz(data_home / "jsc_sim.npz", frame)
    assert D.load_jsc("auto").source == "sim"
    assert "simulated" in capsys.readouterr().out
    write_openml_cache(data_home / "openml", frame)
    assert D.load_jsc("auto").source == "real"


def test_real_never_falls_back_to_sim(data_home, frame, monkeypatch):
    write_sim_npz(data_home / "jsc_sim.npz", frame)
    import urllib.request
    from urllib.error import URLError

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setattr("sklearn.datasets._openml.urlopen", offline)
    with pytest.raises(ConnectionError, match="source='sim'"):
        D.load_jsc("real")


@pytest.mark.parametrize("mutate, error, match", [
    (lambda f: f.drop(columns="j_mass_mmdt"), ValueError, "lacks feature columns \\['j_mass_mmdt'\\]"),
    (lambda f: f.drop(columns="class"), ValueError, "has no label"),
    (lambda f: f.assign(j_zlogz=np.nan), ValueError, "NaN/inf.*j_zlogz"),
    (lambda f: f.assign(**{"class": "x"}), ValueError, "unknown labels"),
])
def test_bad_csv_errors(data_home, frame, mutate, error, match):
    path = data_home / "bad.csv"
    mutate(frame).to_csv(path, index=False)
    with pytest.raises(error, match=match):
        D.load_jsc("real", path)


def test_missing_file_and_wrong_key_and_corrupt_cache(data_home, frame):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        D.load_jsc("real", data_home / "nope.h5")
    with pytest.raises(ValueError, match="no dataset 't_allpar_new'"):
        D.load_jsc("real", write_h5(data_home / "k.h5", frame, key="other"))
    (data_home / "jsc_sim.npz").write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="corrupt"):
        D.load_jsc("sim")
    with pytest.raises(FileNotFoundError, match="git checkout"):
        D.load_jsc("sim", data_home / "missing.npz")
    with pytest.raises(ValueError, match="source='web' is unknown"):
        D.load_jsc("web")


def test_batches_cover_every_row_once():
    x, y = torch.arange(10.0)[:, None], torch.arange(10)
    seen = torch.cat([yb for _, yb in D.batches(x, y, 3, generator=torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == list(range(10))
    assert [len(b) for b, _ in D.batches(x, y, 3, shuffle=False)] == [3, 3, 3, 1]
