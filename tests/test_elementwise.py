# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""fastbp's own exp, expm1, log1p, tanh and logistic (_simd_kernels.h), which
the activation loops of logistic, tanh, leaky_relu, elu, selu, softplus, gelu,
silu and mish run on every instruction set: against NumPy over dense sweeps and at the edges, and
bitwise the same on every instruction set."""

import numpy as np
import pytest

from fastbp import _core

SUPPORTED = _core.isa_supported()
# The own functions are this many ulp from NumPy's at most (NumPy's are within
# about an ulp of the exact result; the own ones measure at 2).
MAX_ULP = 4


@pytest.fixture
def restore_isa():
    before = _core.get_isa()
    yield
    _core.set_isa(before)


def _sweep(dtype, lo, hi):
    """A dense grid over [lo, hi], a finer one around 0 and the range
    reduction's steps, and tiny and subnormal arguments."""
    tiny = np.finfo(dtype).tiny
    parts = [np.linspace(lo, hi, 400_001), np.linspace(-1, 1, 100_001),
             np.log(2) * (np.arange(-40, 41)[:, None] + np.linspace(-0.5, 0.5, 101)).ravel(),
             np.array([tiny, -tiny, tiny / 8, -tiny / 8, 1e-30, -1e-30])]
    x = np.concatenate(parts).astype(dtype)
    return x[(x >= lo) & (x <= hi)]


def _ulps(got, want, dtype):
    """|got - want| in units of the last place of want (float64 arithmetic)."""
    spacing = np.spacing(np.abs(want).astype(dtype)).astype(np.float64)
    return np.abs(got.astype(np.float64) - want.astype(np.float64)) / spacing


def _expit(x):
    return 1 / (1 + np.exp(-x))


# (function, NumPy's, the range where the result is finite and not 0)
CASES = {
    np.float64: [("exp", np.exp, -708.0, 709.7), ("expm1", np.expm1, -40.0, 709.7),
                 ("log1p", np.log1p, 0.0, 1.0), ("tanh", np.tanh, -30.0, 30.0),
                 ("logistic", _expit, -700.0, 40.0)],
    np.float32: [("exp", np.exp, -87.0, 88.7), ("expm1", np.expm1, -20.0, 88.7),
                 ("log1p", np.log1p, 0.0, 1.0), ("tanh", np.tanh, -15.0, 15.0),
                 ("logistic", _expit, -85.0, 20.0)],
}


@pytest.mark.parametrize("isa", SUPPORTED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_own_math_is_a_few_ulp_from_numpy(restore_isa, isa, dtype):
    _core.set_isa(isa)
    for name, ref, lo, hi in CASES[dtype]:
        x = _sweep(dtype, lo, hi)
        got = _core.elementwise_math(name, x)
        assert got.dtype == dtype
        # float32 against the float64 result rounded once to float32.
        want = ref(x.astype(np.float64)).astype(dtype)
        ulps = _ulps(got, want, dtype)
        worst = int(np.argmax(ulps))
        assert ulps[worst] <= MAX_ULP, (name, x[worst], got[worst], want[worst])
        # The own functions hold their shape: each rises (tanh to an ulp, where
        # e / (e + 2) rounds next to +-1).
        ordered = got[np.argsort(x, kind="stable")]
        slack = (np.spacing(np.maximum(np.abs(ordered[1:]), np.abs(ordered[:-1])))
                 if name == "tanh" else 0)
        assert np.all(np.diff(ordered) >= -slack), name


@pytest.mark.parametrize("isa", SUPPORTED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_own_math_edges(restore_isa, isa, dtype):
    _core.set_isa(isa)
    big = np.finfo(dtype).max
    x = np.array([np.nan, np.inf, -np.inf, 1000, -1000, big, -big, 0.0, -0.0], dtype=dtype)
    exp = _core.elementwise_math("exp", x)
    np.testing.assert_array_equal(exp, np.array(
        [np.nan, np.inf, 0, np.inf, 0, np.inf, 0, 1, 1], dtype=dtype))
    expm1 = _core.elementwise_math("expm1", x)
    np.testing.assert_array_equal(expm1, np.array(
        [np.nan, np.inf, -1, np.inf, -1, np.inf, -1, 0, 0], dtype=dtype))
    # Where exp overflows and underflows, as NumPy's (subnormals to a few ulp of
    # the smallest subnormal).
    with np.errstate(over="ignore", under="ignore"):
        edge = np.concatenate([np.linspace(-760, -700, 20001), np.linspace(700, 720, 20001)]
                              if dtype == np.float64 else
                              [np.linspace(-110, -80, 20001), np.linspace(85, 95, 20001)])
        edge = edge.astype(dtype)
        want = np.exp(edge.astype(np.float64)).astype(dtype)
    got = _core.elementwise_math("exp", edge)
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    assert np.all(np.abs(got[finite].astype(np.float64) - want[finite])
                  <= MAX_ULP * np.spacing(np.abs(want[finite])).astype(np.float64))
    log1p = _core.elementwise_math("log1p", np.array([0, 1, np.nan], dtype=dtype))
    np.testing.assert_array_equal(log1p, np.array([0, np.log(2), np.nan], dtype=dtype))
    # tanh and logistic: NaN stays, the limits are exact, a zero keeps its sign.
    tanh = _core.elementwise_math("tanh", x)
    np.testing.assert_array_equal(tanh, np.array(
        [np.nan, 1, -1, 1, -1, 1, -1, 0, -0.0], dtype=dtype))
    assert np.signbit(tanh[-1]) and not np.signbit(tanh[-2])
    logistic = _core.elementwise_math("logistic", x)
    np.testing.assert_array_equal(logistic, np.array(
        [np.nan, 1, 0, 1, 0, 1, 0, 0.5, 0.5], dtype=dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_own_math_is_the_same_on_every_instruction_set(restore_isa, dtype):
    if len(SUPPORTED) < 2:
        pytest.skip("this machine runs one instruction set only: %s" % SUPPORTED)
    x = np.concatenate([_sweep(dtype, -120, 100), [np.nan, np.inf, -np.inf]]).astype(dtype)
    u = np.linspace(0, 1, 100_003).astype(dtype)
    results = {}
    for isa in SUPPORTED:
        _core.set_isa(isa)
        results[isa] = [_core.elementwise_math(f, x) for f in ("exp", "expm1", "tanh",
                                                                 "logistic")]
        results[isa].append(_core.elementwise_math("log1p", u))
    for isa, outs in results.items():
        for got, base in zip(outs, results["default"]):
            np.testing.assert_array_equal(got.view(np.uint8), base.view(np.uint8),
                                          err_msg=isa)


def test_elementwise_math_refuses_bad_input():
    with pytest.raises(ValueError, match="function must be"):
        _core.elementwise_math("log", np.ones(3))
    with pytest.raises(ValueError, match="1-D float32 or float64"):
        _core.elementwise_math("exp", np.ones((2, 2)))
    with pytest.raises(ValueError, match="1-D float32 or float64"):
        _core.elementwise_math("exp", np.ones(3, dtype=np.int64))
    with pytest.raises(ValueError, match="0 <= x <= 1"):
        _core.elementwise_math("log1p", np.array([0.5, 1.5]))
    assert _core.elementwise_math("exp", np.empty(0)).shape == (0,)
