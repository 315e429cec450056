"""labhelpers.numerics: the pins, and float64 training that makes Lab 4's numbers independent of MKL's code path.

What float64 does not remove, and the notebooks' tolerances cover instead: ATen's kernel level
(``ATEN_CPU_CAPABILITY=default`` vs avx2/avx512) changes float64 training too (measured: up to 0.0006 in
Lab 4's accuracies; ``benchmarks/numeric_spread.py``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from labhelpers import numerics

TRAIN = """
import json, sys
sys.path.insert(0, {tests!r})
from pathlib import Path
import tempfile
from lab4_data import small_jsc
from labhelpers import training
jsc = small_jsc(Path(tempfile.mkdtemp()))
table = training.train_many([(16, 16), (32, 8), (48, 32)], jsc, training.TrainSettings(epochs=3, batch_size=128),
                            progress=False, dtype=getattr(__import__("torch"), sys.argv[1])).table
print(json.dumps({{"val": table.val_accuracy.tolist(), "loss": table.val_loss.tolist()}}))
"""


def _train(dtype: str, env: dict) -> dict:
    code = TRAIN.format(tests=os.path.join(os.path.dirname(__file__), "_support"))
    out = subprocess.run([sys.executable, "-c", code, dtype], env={**os.environ, **env}, capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)


def test_pins_are_defaults_that_the_user_overrides(monkeypatch):
    monkeypatch.setattr(numerics, "_has_avx2", lambda: True)
    env = {"MKL_CBWR": "COMPATIBLE"}
    assert numerics.pin_environment(env) == {"ATEN_CPU_CAPABILITY": "avx2"}
    assert env == {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "avx2"}
    monkeypatch.setattr(numerics, "_has_avx2", lambda: False)
    assert numerics.pin_environment({}) == {}


def test_platform_info_names_the_numeric_path():
    info = numerics.platform_info()
    assert {"python", "torch", "cpu_capability", "mkl_cbwr", "threads"} <= set(info)


@pytest.mark.skipif(not numerics._has_avx2(), reason="the vector-kernel paths compared here exist on x86-64 with AVX2")
def test_float64_training_does_not_depend_on_mkls_code_path_where_float32_does():
    other = {"MKL_CBWR": "AVX2" if os.environ.get("MKL_CBWR") == "COMPATIBLE" else "COMPATIBLE"}
    a64, b64 = _train("float64", {}), _train("float64", other)
    assert a64["val"] == b64["val"]
    assert max(abs(x - y) for x, y in zip(a64["loss"], b64["loss"])) < 1e-12  # measured: 2.2e-16
    a32, b32 = _train("float32", {}), _train("float32", other)
    assert a32["loss"] != b32["loss"]  # the paths really differ in float32
