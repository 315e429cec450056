"""Models, fx node names, pass-config resolution and safe checkpoints (training: tests/training/)."""
from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn

from labhelpers import data as D, graph as G, models as M
from jsc_fixtures import toy_frame, write_sim_npz


@pytest.fixture
def jsc(tmp_path, monkeypatch):
    monkeypatch.setenv("LABHELPERS_DATA_DIR", str(tmp_path))
    write_sim_npz(tmp_path / "jsc_sim.npz", toy_frame(600))
    return D.load_jsc("sim")


def test_fx_node_names_and_types():
    g = G.trace(M.build("jsc-three-linear"))
    assert g.node_names == [f"seq_blocks_{i}" for i in range(8)]
    types = g.node_types()
    assert [types[f"seq_blocks_{i}"] for i in (0, 1, 2, 6, 7)] == ["batch_norm1d", "relu", "linear", "linear", "relu"]
    assert all(not m.inplace for m in g.modules.values() if isinstance(m, nn.ReLU))


def test_jsc_tiny_and_no_final_relu_variant():
    assert G.trace(M.build("jsc-tiny")).node_names == [f"seq_blocks_{i}" for i in range(4)]
    plain = M.build("jsc-tiny", final_relu=False)
    assert isinstance(plain.seq_blocks[-1], nn.Linear)
    assert (plain.eval()(torch.randn(64, 16)) < 0).any()  # logits may be negative without the ReLU


def test_unknown_model_and_bad_hidden():
    with pytest.raises(ValueError, match="model='jsc-huge' is unknown"):
        M.build("jsc-huge")
    with pytest.raises(ValueError, match="two positive integer widths"):
        M.build("jsc-three-linear", hidden=(16,))


def test_pass_config_by_type_name_and_default_leaves_caller_dict_unchanged():
    g = G.trace(M.build("jsc-three-linear"))
    by_type = {"by": "type", "default": {"config": {"name": None}}, "linear": {"config": {"name": "integer", "w": 8}}}
    by_name = {"by": "name", "default": {"config": {"w": 4}}, "seq_blocks_4": {"config": {"w": 2}}}
    before = copy.deepcopy((by_type, by_name))
    assert G.validate_pass_args(g, by_type, types={"linear"}) == "type"
    assert G.node_config(by_type, "seq_blocks_2", "linear") == {"name": "integer", "w": 8}
    assert G.node_config(by_type, "seq_blocks_0", "batch_norm1d") == {"name": None}
    assert G.validate_pass_args(g, by_name) == "name"
    assert G.node_config(by_name, "seq_blocks_4", "linear") == {"w": 2}
    assert G.node_config(by_name, "seq_blocks_6", "linear") == {"w": 4}
    G.node_config(by_type, "seq_blocks_2", "linear")["w"] = 99  # a returned config is a copy
    assert (by_type, by_name) == before
    assert G.node_config({"by": "name"}, "seq_blocks_2", "linear") is None


@pytest.mark.parametrize("args, match", [
    ({"by": "node"}, "'by'.*'type' or 'name'"),
    ({"by": "name", "seq_blocks_9": {"config": {}}}, "'seq_blocks_9' is not a node name"),
    ({"by": "type", "conv2d": {"config": {}}}, "'conv2d' is not a node type"),
    ({"by": "type", "linear": {"w": 8}}, "must be a table with a 'config'"),
])
def test_bad_pass_args(args, match):
    with pytest.raises(ValueError, match=match):
        G.validate_pass_args(G.trace(M.build("jsc-tiny")), args, types={"linear"})


def test_replace_module_on_a_copy_leaves_original():
    g = G.trace(M.build("jsc-tiny"))
    h = g.copy()
    h.replace_module("seq_blocks_2", nn.Linear(16, 5, bias=False))
    assert h.modules["seq_blocks_2"].bias is None and g.modules["seq_blocks_2"].bias is not None
    assert h(torch.randn(4, 16)).shape == (4, 5)


def test_checkpoint_round_trip_and_checks(tmp_path, jsc):
    model = M.build("jsc-three-linear", hidden=[32, 8])
    path = M.save(model, tmp_path / "m.pt", name="jsc-three-linear", model_kwargs={"hidden": [32, 8]},
                  dataset_fingerprint=jsc.fingerprint, test_accuracy=0.5, seed=0)
    loaded, meta = M.load(path, expected_model="jsc-three-linear", fingerprint=jsc.fingerprint)
    assert meta["test_accuracy"] == 0.5 and meta["model_kwargs"] == {"hidden": [32, 8]}
    x = torch.randn(8, 16)
    assert torch.equal(loaded(x), model.eval()(x))
    with pytest.raises(ValueError, match="holds model 'jsc-three-linear', not 'jsc-tiny'"):
        M.load(path, expected_model="jsc-tiny")
    with pytest.warns(UserWarning, match="trained on dataset"):
        M.load(path, fingerprint="0000")


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("touch pwned",))


def test_checkpoint_with_code_is_refused_without_running_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"model": "jsc-tiny", "state_dict": {}, "payload": _Evil()}, path)
    with pytest.raises(ValueError, match="refusing checkpoint"):
        M.load(path)
    assert not (tmp_path / "pwned").exists()
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="lacks the keys|refusing"):
        M.load(tmp_path / "plain.pkl")
