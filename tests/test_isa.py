# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Runtime instruction-set dispatch of the optimizer loops (_simd.h).

Every copy of the loops must give bitwise the weights of the baseline copy:
each test trains the same model under every instruction set this machine
runs and compares the results exactly. ``FASTBP_ISA`` pins a set at import.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from fastbp import _core

SUPPORTED = _core.isa_supported()


@pytest.fixture
def restore_isa():
    before = _core.get_isa()
    yield
    _core.set_isa(before)


def _train(case, isa, dtype, **params):
    _core.set_isa(isa)
    X = case.X.astype(dtype)
    est = case(hidden_layer_sizes=(9, 5), max_iter=6, batch_size=13, tol=0,
               random_state=0, alpha=1e-2, **params)
    est.fit(X, case.y)
    case.partial_fit(est, X, case.y)
    return est


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("solver", [
    dict(solver="adam"),
    dict(solver="sgd", nesterovs_momentum=True, learning_rate_init=0.05),
    dict(solver="sgd", nesterovs_momentum=False, learning_rate_init=0.05),
])
def test_every_instruction_set_trains_the_same_weights(estimator_case, restore_isa,
                                                       dtype, solver):
    if len(SUPPORTED) < 2:
        pytest.skip("this machine runs one instruction set only: %s" % SUPPORTED)
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        models = {isa: _train(estimator_case, isa, dtype, **solver) for isa in SUPPORTED}
    base = models["default"]
    for isa, est in models.items():
        assert est.loss_curve_ == base.loss_curve_, isa
        for p, q in zip(est.coefs_ + est.intercepts_, base.coefs_ + base.intercepts_):
            assert p.dtype == dtype
            np.testing.assert_array_equal(p, q, err_msg=isa)
        for m, n in zip(est._optimizer_state["moments"], base._optimizer_state["moments"]):
            np.testing.assert_array_equal(m, n, err_msg=isa)


def test_set_isa_refuses_what_it_cannot_run(restore_isa):
    assert _core.get_isa() in SUPPORTED
    assert SUPPORTED[0] == "default" == _core.isa_names()[0]
    with pytest.raises(ValueError, match="unknown instruction set"):
        _core.set_isa("sse9")
    for name in _core.isa_names():
        if name in SUPPORTED:
            assert _core.set_isa(name) == name
        else:
            with pytest.raises(ValueError, match="does not run"):
                _core.set_isa(name)
    assert _core.set_isa("best") == SUPPORTED[-1]


@pytest.mark.parametrize("value", ["default", "avx2", "avx512", "", "best", "nonsense"])
def test_fastbp_isa_pins_the_instruction_set(value):
    env = dict(os.environ, FASTBP_ISA=value)
    code = ("import warnings; warnings.simplefilter('always')\n"
            "import fastbp._core as c; print(c.get_isa())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    got = out.stdout.strip()
    if value in SUPPORTED:
        assert got == value
        assert "FASTBP_ISA" not in out.stderr
    else:
        assert got == SUPPORTED[-1]
        if value in ("", "best"):
            assert "FASTBP_ISA" not in out.stderr
        else:
            assert "FASTBP_ISA=%s ignored" % value in out.stderr
