"""Self-checks for students, in the style of MIT 6.5940's labs: fixed small inputs, expected values
worked out by hand, an assert, and a printed "passed".

Each ``check_*`` takes the student's function, runs it on the fixed cases and raises an
``AssertionError`` that shows the case, the expected and the obtained value.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def _compare(name: str, args: tuple, got, expected, tol: float = 0.0) -> None:
    got_list = got.tolist() if isinstance(got, torch.Tensor) else got
    ok = (math.isclose(got_list, expected, rel_tol=tol, abs_tol=tol) if isinstance(expected, float) and tol
          else got_list == expected)
    assert ok, f"{name}{args}: expected {expected}, got {got_list}"


# ============================================================================= Lab 3

# (width, frac_width, inputs, expected): ties round to even, values saturate at the ends of the range.
FIXED_POINT_CASES = (
    (4, 2, [0.1, 0.125, 0.375, -0.375, 1.9, -3.0], [0.0, 0.0, 0.5, -0.5, 1.75, -2.0]),
    (3, 0, [2.5, 3.5, -4.4, 0.49], [2.0, 3.0, -4.0, 0.0]),
    (3, 3, [0.3, 1.0, -1.0], [0.25, 0.375, -0.5]),
    (8, 4, [0.03125, 0.09375, 7.99, -8.5], [0.0, 0.125, 7.9375, -8.0]),
)


def check_fixed_point(fn) -> None:
    """``fn(x, width, frac_width)`` must return clamp(round(x 2^f), -2^(w-1), 2^(w-1)-1) / 2^f."""
    for width, frac, x, expected in FIXED_POINT_CASES:
        _compare("fixed_point", (x, width, frac), fn(torch.tensor(x), width, frac), expected)
    print("fixed-point quantizer check passed")


# (n_in, n_out, weight_width, bias_width) -> bits of weights and biases
SIZE_CASES = (((16, 5, 32, 32), 2720), ((16, 5, 8, 8), 680), ((16, 16, 4, 8), 1152), ((3, 2, 1, 2), 10))


def check_size_bits(fn) -> None:
    """``fn(n_in, n_out, weight_width, bias_width)``: bits to store a dense layer's weights and biases."""
    for args, expected in SIZE_CASES:
        _compare("linear_size_bits", args, fn(*args), expected)
    print("size check passed")


# (n_in, n_out) -> FLOPs of one input row, 1 MAC = 2 FLOPs
FLOP_CASES = (((16, 5), 160), ((16, 16), 512), ((3, 7), 42))


def check_flops(fn) -> None:
    """``fn(n_in, n_out)``: FLOPs of a dense layer on one row; also cross-checked with FlopCounterMode."""
    for args, expected in FLOP_CASES:
        with FlopCounterMode(display=False) as counter:
            nn.Linear(*args)(torch.zeros(1, args[0]))
        assert counter.get_total_flops() == expected, f"FlopCounterMode disagrees with the expected {expected}"
        _compare("linear_flops", args, fn(*args), expected)
    print("FLOPs check passed")


# (n_in, n_out, b_a, b_w) -> Baskin et al. BOPs m*n*(b_a*b_w + b_a + b_w + log2 n)
BOPS_CASES = (((16, 5, 32, 32), 87360.0), ((16, 5, 8, 8), 6720.0), ((16, 16, 4, 2), 4608.0),
              ((10, 3, 8, 4), 30 * (44 + math.log2(10))))


def check_bops(fn) -> None:
    """``fn(n_in, n_out, b_a, b_w)``: bit operations of a dense layer (Baskin et al.)."""
    for args, expected in BOPS_CASES:
        _compare("dense_bops", args, float(fn(*args)), expected, tol=1e-9)
    print("BOPs check passed")
