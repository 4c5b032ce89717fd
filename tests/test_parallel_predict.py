# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Predict with its row blocks shared by OpenMP threads.

The blocks are the same whatever the thread count, so the outputs must be
bitwise those of one thread, for dense and CSR input and both dtypes; the
oracle for one thread is NumPy's forward pass.
"""

import numpy as np
import pytest
import scipy.sparse as sp

from fastbp import _core, _threads
from fastbp._solvers import as_rows


def _net(rng, units, dtype):
    coefs = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype)
             for a, b in zip(units, units[1:])]
    intercepts = [rng.standard_normal(b).astype(dtype) for b in units[1:]]
    return coefs, intercepts


@pytest.mark.skipif(not _core.OPENMP, reason="a serial build has no threads")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_threads_give_the_one_thread_outputs(dtype, sparse):
    rng = np.random.default_rng(0)
    units = [12, 300, 7, 2]  # 65536 // 300 = 218 rows per block
    coefs, intercepts = _net(rng, units, dtype)
    X = rng.standard_normal((5000, units[0])).astype(dtype)
    rows = X
    if sparse:
        X[rng.random(X.shape) < 0.7] = 0
        X = sp.csr_matrix(X)
        rows = as_rows(X)
    outs = {}
    for n_threads in (1, 2, 3, 7):
        out = np.full((X.shape[0], units[-1]), np.nan, dtype=dtype)
        _core.predict(rows, coefs, intercepts, _core.Activation.TANH,
                      _core.Activation.IDENTITY, out, n_threads=n_threads)
        outs[n_threads] = out
    for out in outs.values():
        np.testing.assert_array_equal(out, outs[1])
    dense = X.toarray() if sparse else X
    expected = dense.astype(np.float64)
    for l, (c, b) in enumerate(zip(coefs, intercepts)):
        expected = expected @ c.astype(np.float64) + b
        if l < len(coefs) - 1:
            expected = np.tanh(expected)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(outs[1], expected, rtol=tol, atol=tol)


def test_predict_split_rule():
    units = [10, 64, 64, 1]
    assert _threads.predict_split(units, 10) == 1
    assert _threads.predict_split(units, _threads.PIN_PREDICT_ROWS - 1) == 1
    many = _threads.predict_split(units, 1_000_000)
    assert many == max(1, min(_core.max_threads(), 1_000_000 // 1024 // 2))
    # An n_jobs budget caps the threads, and rows still decide below it.
    assert _threads.predict_split(units, 1_000_000, 3) == 3
    assert _threads.predict_split(units, 1_000_000, 1) == 1
    assert _threads.predict_split(units, 3 * 1024, 8) == 1


@pytest.mark.skipif(not _core.OPENMP, reason="a serial build has no threads")
@pytest.mark.parametrize("estimator", ["regressor", "classifier"])
def test_n_jobs_shares_the_row_blocks(estimator, monkeypatch):
    # An explicit n_jobs runs the blocks on that many OpenMP threads (it used
    # to leave them to one thread and BLAS): the outputs stay bitwise those of
    # one thread and of the automatic choice.
    from fastbp import BPClassifier, BPRegressor

    rng = np.random.default_rng(1)
    X = rng.standard_normal((6000, 8))
    y = X[:, 0] > 0 if estimator == "classifier" else X[:, 0]
    cls = BPClassifier if estimator == "classifier" else BPRegressor
    model = cls(hidden_layer_sizes=(40,), max_iter=2, random_state=0).fit(X[:500], y[:500])
    used = []
    real = _core.predict

    def spy(*args, **kwargs):
        used.append(args[7] if len(args) > 7 else kwargs.get("n_threads", 1))
        return real(*args, **kwargs)

    monkeypatch.setattr(_core, "predict", spy)
    outs = {}
    for n_jobs in (None, 1, 2):
        model.set_params(n_jobs=n_jobs)
        outs[n_jobs] = (model.predict_proba(X) if estimator == "classifier"
                        else model.predict(X))
    for out in outs.values():
        np.testing.assert_array_equal(out, outs[1])
    assert used[1] == 1
    assert used[2] == 2
