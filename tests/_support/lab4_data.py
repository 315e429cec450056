"""A small learnable JSC stand-in for the Lab 4 tests (seconds, not minutes)."""
import numpy as np

from labhelpers import data


def small_jsc(tmp_path, n_rows: int = 4000, seed: int = 0):
    """Gaussian blobs, one per class, in the 16-feature npz format of the simulated JSC."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, n_rows)
    centres = rng.normal(0.0, 1.0, (5, 16))
    x = (rng.normal(0.0, 1.5, (n_rows, 16)) + centres[y]).astype(np.float32)
    path = tmp_path / "jsc_small.npz"
    np.savez(path, X=x, y=y)
    return data.load_jsc("sim", path, verbose=False)
