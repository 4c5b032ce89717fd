# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Hardening of ``fastbp._core``: what a hostile or careless caller can do.

- Memory the kernels trust (CSR structure, row orders) belongs to ``_core`` for
  the whole call: corrupting the caller's arrays changes nothing.
- Thread budgets above ``MAX_THREADS`` are capped, never refused.
- Every activation propagates NaN, as NumPy (and so scikit-learn) does.
- Ctrl-C stops ``predict`` and ``loss_grad`` between row blocks.
"""

import os
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import numpy_reference as ref
import pytest
import scipy.sparse as sp
from conftest import (
    ACTIVATION,
    DTYPES,
    make_trainer,
    random_data,
    random_network,
    zero_state,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from fastbp import _core

# --------------------------------------------------------------------------
# The kernels read private copies of everything that indexes memory
# --------------------------------------------------------------------------


def _csr(X, index_dtype):
    m = sp.csr_matrix(X)
    return m.data.copy(), m.indices.astype(index_dtype), m.indptr.astype(index_dtype)


def _run_all(rows, X_shape, Y, coefs, intercepts, order):
    """predict, loss_grad and two train_epoch calls on fresh copies of the net."""
    out = np.empty((X_shape[0], Y.shape[1]))
    _core.predict(rows, coefs, intercepts, ACTIVATION["tanh"], ACTIVATION["identity"],
                  out)
    c, b = [p.copy() for p in coefs], [p.copy() for p in intercepts]
    trainer = make_trainer(c, b, (), 4, activation="tanh", dense_input=False)
    grad = np.empty(sum(p.size for p in c + b))
    value = _core.loss_grad(trainer, rows, Y, grad)
    state = zero_state(c, b)
    trainer = make_trainer(c, b, state, 4, activation="tanh", dense_input=False,
                           n_threads=2)
    epochs = [_core.train_epoch(trainer, rows, Y, order, gather, 4, 0.1, 0)
              for gather in (True, False)]
    return [out, value, grad, epochs] + c + b + state


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64, np.intp])
def test_csr_rows_do_not_read_the_callers_index_arrays(rng, index_dtype):
    X, Y = random_data(rng, 13, 5, 2)
    X[X < 0.5] = 0
    coefs, intercepts = random_network(rng, [5, 4, 2])
    order = rng.permutation(13).astype(np.intp)
    data, indices, indptr = _csr(X, index_dtype)
    rows = _core.Rows.csr(data, indices, indptr, 5)
    before = _run_all(rows, X.shape, Y, coefs, intercepts, order)

    # Out of range everywhere: a kernel that read these would crash.
    indices[:] = np.iinfo(index_dtype).max
    indptr[:] = np.iinfo(index_dtype).max
    indptr[::2] = np.iinfo(index_dtype).min
    after = _run_all(rows, X.shape, Y, coefs, intercepts, order)

    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)


def test_csr_rows_validate_what_they_keep(rng):
    # The copy is taken before the checks, so a structure that is bad in the
    # caller's arrays is refused whatever their dtype.
    data = np.ones(3)
    for indices, indptr in [([0, 1, 9], [0, 2, 3]), ([0, -1, 2], [0, 2, 3]),
                            ([0, 1, 2], [0, 3, 2, 3]), ([0, 1, 2], [1, 2, 3])]:
        for dtype in (np.int32, np.int64):
            with pytest.raises(ValueError):
                _core.Rows.csr(data, np.array(indices, dtype), np.array(indptr, dtype),
                               4)


def test_rows_and_trainer_cannot_be_initialised_twice(rng):
    # Re-running __init__ would swap the arrays under a call in progress (a
    # signal handler runs in the middle of one).
    X, Y = random_data(rng, 6, 3, 2)
    rows = _core.Rows(X)
    with pytest.raises(TypeError):
        rows.__init__(X[:2].copy())
    assert rows.shape == (6, 3)
    coefs, intercepts = random_network(rng, [3, 2])
    trainer = make_trainer(coefs, intercepts, (), 4)
    with pytest.raises(TypeError):
        trainer.__init__([np.ones((9, 9))], [np.ones(9)], [], 100, 0, 0, 0, 0)
    assert trainer.layer_units == [3, 2]


def _big_epoch_problem():
    rng = np.random.default_rng(0)
    X, Y = random_data(rng, 40_000, 30, 2)
    coefs, intercepts = random_network(rng, [30, 128, 2])
    return X, Y, coefs, intercepts


@pytest.mark.parametrize("sparse", [False, True])
def test_row_order_and_csr_corrupted_during_an_epoch(sparse):
    # A signal handler runs in the middle of an epoch (the loop polls for
    # signals) and corrupts the order array and the caller's CSR indices. The
    # epoch must go on with what it validated, exactly as without the handler.
    results = []
    for corrupt in (False, True):
        X, Y, coefs, intercepts = _big_epoch_problem()
        rows = X
        if sparse:
            data, indices, indptr = _csr(X, np.int64)
            rows = _core.Rows.csr(data, indices, indptr, 30)
        order = np.random.default_rng(1).permutation(len(X)).astype(np.intp)
        state = zero_state(coefs, intercepts)
        trainer = make_trainer(coefs, intercepts, state, 32, activation="tanh",
                               dense_input=not sparse)
        start = intercepts[-1].copy()
        running, seen = [False], []

        def handler(signum, frame):
            seen.append(running[0])
            order[:] = 10**15
            if sparse:
                indices[:] = 10**15

        def send():
            while np.array_equal(intercepts[-1], start):
                pass
            os.kill(os.getpid(), signal.SIGUSR1)

        previous = signal.signal(signal.SIGUSR1, handler)
        sender = threading.Thread(target=send, daemon=True)
        try:
            if corrupt:
                sender.start()
            running[0] = True
            result = _core.train_epoch(trainer, rows, Y, order, True, 32, 0.01, 0)
            running[0] = False
            if corrupt:
                sender.join()
        finally:
            signal.signal(signal.SIGUSR1, previous)
        if corrupt:
            assert seen and seen[0], "the handler ran only after the epoch"
        results.append([result] + coefs + intercepts)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------


def test_max_threads_is_capped():
    assert 1 <= _core.max_threads() <= _core.MAX_THREADS
    assert _core.MAX_THREADS >= 256
    if not _core.OPENMP:
        assert _core.max_threads() == 1


def test_more_openmp_threads_than_the_cap():
    # OMP_NUM_THREADS above the cap must give a capped budget and a fit that
    # runs, on a network large enough that the fit uses its own threads.
    code = textwrap.dedent("""
        import numpy as np
        import warnings
        from fastbp import BPRegressor, _core
        expected = _core.MAX_THREADS if _core.OPENMP else 1
        assert _core.max_threads() == expected, _core.max_threads()
        rng = np.random.default_rng(0)
        X = rng.standard_normal((300, 64))
        y = X[:, 0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = BPRegressor(hidden_layer_sizes=(64,), batch_size=256, max_iter=2,
                              random_state=0).fit(X, y)
        assert np.isfinite(est.predict(X)).all()
        print("ok")
    """)
    env = dict(os.environ, OMP_NUM_THREADS=str(_core.MAX_THREADS + 1),
               OMP_WAIT_POLICY="passive")
    result = subprocess.run([sys.executable, "-c", code], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_trainer_accepts_the_cap(rng):
    coefs, intercepts = random_network(rng, [3, 2])
    trainer = make_trainer(coefs, intercepts, (), 4, n_threads=_core.MAX_THREADS)
    assert trainer.n_threads == _core.MAX_THREADS
    with pytest.raises(ValueError, match="n_threads"):
        make_trainer(coefs, intercepts, (), 4, n_threads=_core.MAX_THREADS + 1)


# --------------------------------------------------------------------------
# NaN goes in, NaN comes out
# --------------------------------------------------------------------------

HIDDEN_ACTIVATIONS = ["identity", "logistic", "tanh", "relu"]
OUT_ACTIVATIONS = HIDDEN_ACTIVATIONS + ["exp", "softmax"]


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    activation=st.sampled_from(HIDDEN_ACTIVATIONS),
    out_activation=st.sampled_from(OUT_ACTIVATIONS),
    hidden=st.lists(st.integers(1, 4), max_size=2),
    where=st.sampled_from(["input", "coef", "intercept"]),
    sparse=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_nan_propagates_like_numpy(dtype, activation, out_activation, hidden, where,
                                   sparse, seed):
    # The oracle is plain NumPy, where NaN survives every activation
    # (np.maximum(nan, 0) is nan): the kernels must give NaN exactly where it does.
    rng = np.random.default_rng(seed)
    n_outputs = 3
    X, _ = random_data(rng, 5, 3, n_outputs, dtype)
    coefs, intercepts = random_network(rng, [3, *hidden, n_outputs], dtype)
    if where == "input":
        X[rng.integers(5), rng.integers(3)] = np.nan
    elif where == "coef":
        c = coefs[rng.integers(len(coefs))]
        c[rng.integers(c.shape[0]), rng.integers(c.shape[1])] = np.nan
    else:
        b = intercepts[rng.integers(len(intercepts))]
        b[rng.integers(b.size)] = np.nan
    expected = ref.forward(X, coefs, intercepts, activation, out_activation)[-1]
    out = np.empty((5, n_outputs), dtype=dtype)
    if sparse:
        m = sp.csr_matrix(np.where(X == 0, 1, X))  # every entry stored
        rows = _core.Rows.csr(m.data, m.indices, m.indptr, 3)
        expected = ref.forward(m.toarray(), coefs, intercepts, activation,
                               out_activation)[-1]
    else:
        rows = X
    _core.predict(rows, coefs, intercepts, ACTIVATION[activation],
                  ACTIVATION[out_activation], out)
    assert np.isnan(expected).any()
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", OUT_ACTIVATIONS)
def test_each_activation_maps_nan_to_nan(dtype, activation):
    # NaN in the intercept reaches one unit of one layer only: no GEMM mixes it
    # into the other units (0 * NaN is NaN), except through softmax's row sum.
    X = np.array([[0.5, 1.0], [-0.0, -2.0]], dtype=dtype)
    coefs = [np.eye(2, dtype=dtype)]
    intercepts = [np.array([np.nan, 0.0], dtype=dtype)]
    out = np.empty((2, 2), dtype=dtype)
    _core.predict(X, coefs, intercepts, ACTIVATION["identity"], ACTIVATION[activation],
                  out)
    expected = ref.forward(X, coefs, intercepts, "identity", activation)[-1]
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    assert np.isnan(out[:, 0]).all()


# --------------------------------------------------------------------------
# Ctrl-C in predict and loss_grad
# --------------------------------------------------------------------------


def _raised_in_core(exc):
    """Was ``exc`` raised from inside the compiled module (not after it returned)?"""
    tb = exc.__traceback__
    while tb is not None:
        if os.path.basename(tb.tb_frame.f_code.co_filename).startswith("_core."):
            return True
        tb = tb.tb_next
    return False


def _interrupt_when(started, call):
    """Run call() in the main thread; send SIGINT once started() is true.

    Returns the KeyboardInterrupt, which must come from inside the call.
    """
    def send():
        while not started():
            pass
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    sender = threading.Thread(target=send, daemon=True)
    caught = None
    try:
        try:
            sender.start()
            call()
            sender.join()
        except KeyboardInterrupt as exc:
            caught = exc
        try:
            sender.join()
        except KeyboardInterrupt as exc:  # pragma: no cover - a late signal
            caught = caught or exc
    finally:
        signal.signal(signal.SIGINT, previous)
    assert caught is not None, "no KeyboardInterrupt"
    return caught


def _slow_network():
    """A network whose forward pass over 50k rows takes seconds."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50_000, 20))
    coefs, intercepts = random_network(rng, [20, 512, 512, 1])
    return X, coefs, intercepts


def test_ctrl_c_stops_predict():
    X, coefs, intercepts = _slow_network()
    out = np.full((X.shape[0], 1), np.nan)
    exc = _interrupt_when(
        lambda: not np.isnan(out[0, 0]),
        lambda: _core.predict(X, coefs, intercepts, ACTIVATION["relu"],
                              ACTIVATION["identity"], out))
    assert _raised_in_core(exc), "the signal was only handled after predict"
    assert np.isnan(out[-1, 0])


def test_ctrl_c_stops_loss_grad():
    X, coefs, intercepts = _slow_network()
    Y = np.zeros((X.shape[0], 1))
    trainer = make_trainer(coefs, intercepts, (), 64, activation="relu")
    grad = np.full(sum(p.size for p in coefs + intercepts), np.nan)
    exc = _interrupt_when(lambda: not np.isnan(grad[0]),
                          lambda: _core.loss_grad(trainer, X, Y, grad))
    assert _raised_in_core(exc), "the signal was only handled after loss_grad"
    # The trainer still works after the interruption.
    small = np.ascontiguousarray(X[:10])
    value = _core.loss_grad(trainer, small, Y[:10], grad)
    assert np.isfinite(value) and np.isfinite(grad).all()
