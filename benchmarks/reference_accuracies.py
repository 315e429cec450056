"""Reference test accuracies on the simulated JSC (the figures in data/README.md).

    .venv/bin/python benchmarks/reference_accuracies.py

Same split as the labs (load_jsc("sim")). Prints a markdown table: sklearn LogisticRegression (the
ceiling for a linear model such as JSC-Tiny), HistGradientBoostingClassifier, the two committed
checkpoints, and JSC-Tiny without its final ReLU trained here with the checkpoint recipe.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from labhelpers import data, metrics, models
from labhelpers.numerics import seed_everything
from labhelpers.training import TrainSettings, train

ROOT = Path(__file__).resolve().parent.parent


def sklearn_accuracy(estimator, jsc) -> float:
    estimator.fit(jsc.x_train.numpy(), jsc.y_train.numpy())
    return float(estimator.score(jsc.x_test.numpy(), jsc.y_test.numpy()))


def hinge_features_accuracy(jsc) -> float:
    """Logistic regression on [x, relu(x)]: JSC-Tiny's BatchNorm + ReLU gives it such hinges."""
    def hinge(x):
        return np.hstack([x.numpy(), np.maximum(x.numpy(), 0.0)])

    model = LogisticRegression(max_iter=2000).fit(hinge(jsc.x_train), jsc.y_train.numpy())
    return float(model.score(hinge(jsc.x_test), jsc.y_test.numpy()))


def checkpoint_accuracy(name: str, jsc) -> float:
    model, _ = models.load(ROOT / "checkpoints" / f"{name}.pt", expected_model=name, fingerprint=jsc.fingerprint)
    return metrics.accuracy_loss(model, jsc, "test")["accuracy"]


def tiny_without_final_relu(jsc) -> float:
    seed_everything(0)
    model = models.build("jsc-tiny", final_relu=False)
    train(model, jsc, TrainSettings(epochs=200, patience=10, seed=0), progress=False)
    return metrics.accuracy_loss(model, jsc, "test")["accuracy"]


def main() -> None:
    jsc = data.load_jsc("sim", verbose=False)
    rows = [
        ("LogisticRegression (max_iter=2000)", lambda: sklearn_accuracy(LogisticRegression(max_iter=2000), jsc)),
        ("LogisticRegression on [x, relu(x)] (max_iter=2000)", lambda: hinge_features_accuracy(jsc)),
        ("HistGradientBoostingClassifier (random_state=0)",
         lambda: sklearn_accuracy(HistGradientBoostingClassifier(random_state=0), jsc)),
        ("checkpoints/jsc-tiny.pt (final ReLU, as MASE)", lambda: checkpoint_accuracy("jsc-tiny", jsc)),
        ("JSC-Tiny without final ReLU (seed 0, same recipe)", lambda: tiny_without_final_relu(jsc)),
        ("checkpoints/jsc-three-linear.pt", lambda: checkpoint_accuracy("jsc-three-linear", jsc)),
    ]
    print(f"dataset fingerprint {jsc.fingerprint}, test rows {len(jsc.y_test)}\n")
    print("| model | test accuracy | seconds |\n|---|---|---|")
    for name, fn in rows:
        start = time.perf_counter()
        accuracy = fn()
        print(f"| {name} | {100 * accuracy:.2f}% | {time.perf_counter() - start:.1f} |")


if __name__ == "__main__":
    main()
