"""Seeded training of one network (labhelpers.training.train): same seed, same weights; it learns."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from labhelpers import data as D, metrics, models as M, numerics, training as T
from jsc_fixtures import toy_frame, write_sim_npz


@pytest.fixture
def jsc(tmp_path, monkeypatch):
    monkeypatch.setenv("LABHELPERS_DATA_DIR", str(tmp_path))
    write_sim_npz(tmp_path / "jsc_sim.npz", toy_frame(600))
    return D.load_jsc("sim")


def _trained(jsc, seed):
    numerics.seed_everything(seed)
    model = M.build("jsc-three-linear", final_relu=False)
    history = T.train(model, jsc, T.TrainSettings(epochs=4, batch_size=32, lr=1e-2, seed=seed), progress=False)
    return model, history


def test_same_seed_same_weights_different_seed_different(jsc):
    a, ha = _trained(jsc, 3)
    b, hb = _trained(jsc, 3)
    c, _ = _trained(jsc, 4)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert ha.equals(hb) and list(ha.columns) == ["train_loss", "val_loss", "val_accuracy"]
    assert not torch.equal(a.seq_blocks[2].weight, c.seq_blocks[2].weight)


def test_training_learns_and_evaluate_is_plain_accuracy(jsc):
    model, history = _trained(jsc, 0)
    x, y = jsc.split("val")
    result = metrics.accuracy_loss_xy(model, x, y, batch_size=7)  # small batches: the metric must not depend on batching
    assert result["accuracy"] == pytest.approx((model(x).argmax(1) == y).float().mean().item(), abs=1e-6)
    assert result["loss"] == pytest.approx(nn.functional.cross_entropy(model(x), y).item(), rel=1e-5)
    assert metrics.accuracy_loss_xy(model, x, y) == pytest.approx(result)  # nothing accumulates between calls
    assert result["accuracy"] > 0.5  # toy classes are separable


def test_bad_training_arguments(jsc):
    with pytest.raises(ValueError, match="epochs=0"):
        T.train(M.build("jsc-tiny"), jsc, T.TrainSettings(epochs=0))
    with pytest.raises(ValueError, match="seed=-1"):
        numerics.seed_everything(-1)
