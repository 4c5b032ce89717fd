# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Each kernel of ``fastbp._core`` against the plain-NumPy reference, in both dtypes."""

import itertools
import pickle

import numpy as np
import numpy_reference as ref
from numpy.testing import assert_allclose, assert_array_equal
import pytest
from conftest import (
    ACTIVATION,
    DTYPES,
    TOL,
    make_trainer,
    random_data,
    random_network,
    zero_state,
)

from fastbp import _core

HIDDEN = [(), (5,), (4, 3)]
HIDDEN_ACTIVATIONS = ["identity", "logistic", "tanh", "relu"]
OPTIMIZERS = {
    "sgd": dict(solver="sgd", momentum=0.9, nesterov=False),
    "sgd-nesterov": dict(solver="sgd", momentum=0.8, nesterov=True),
    "adam": dict(solver="adam", beta_1=0.8, beta_2=0.99, epsilon=1e-8),
}


def assert_close(actual, desired, dtype, err_msg=""):
    np.testing.assert_allclose(actual, desired, err_msg=err_msg, **TOL[dtype])


def pack(coef_grads, intercept_grads):
    """The layout of loss_grad's grad_out: all coefs raveled, then all intercepts."""
    return np.concatenate([g.ravel() for g in coef_grads + intercept_grads])


def out_activation_for(loss):
    return {"poisson": "exp", "log_loss": "softmax",
            "binary_log_loss": "logistic"}.get(loss, "identity")


def epoch_order(rng, kind, n):
    """(gather, order) for one way of walking the rows."""
    if kind == "consecutive":
        # With gather=False the order must be ignored: hand it a reversed one.
        return False, np.arange(n, dtype=np.intp)[::-1].copy()
    if kind == "permuted":
        return True, rng.permutation(n).astype(np.intp)
    # Repeated rows, some rows left out, more steps than rows.
    return True, rng.integers(0, n, size=n + 4).astype(np.intp)


# --------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
@pytest.mark.parametrize("out_activation", ["identity", "exp"])
def test_predict_matches_reference(rng, dtype, hidden, activation, out_activation):
    X, _ = random_data(rng, 23, 4, 2, dtype)
    coefs, intercepts = random_network(rng, [4, *hidden, 2], dtype)
    out = np.full((23, 2), np.nan, dtype=dtype)
    _core.predict(X, coefs, intercepts, ACTIVATION[activation],
                  ACTIVATION[out_activation], out)
    expected = ref.forward(X, coefs, intercepts, activation, out_activation)[-1]
    assert_close(out, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", [(), (3,), (7, 2)])
def test_predict_in_blocks_matches_reference(rng, dtype, hidden):
    # predict works in blocks of 65536 // (widest hidden layer) rows, so 70_000
    # rows make 2 blocks without a hidden layer, 4 with 3 units and 8 with 7,
    # the last one partial each time.
    n = 70_000
    X, _ = random_data(rng, n, 2, 2, dtype)
    coefs, intercepts = random_network(rng, [2, *hidden, 2], dtype)
    out = np.full((n, 2), np.nan, dtype=dtype)
    _core.predict(X, coefs, intercepts, ACTIVATION["tanh"], ACTIVATION["identity"],
                  out)
    expected = ref.forward(X, coefs, intercepts, "tanh", "identity")[-1]
    assert_close(out, expected, dtype)


@pytest.mark.parametrize(
    "case",
    ["x_columns", "chain", "intercept", "out_rows", "out_columns", "no_layers",
     "intercept_count"],
)
def test_predict_rejects_bad_shapes(rng, case):
    X, _ = random_data(rng, 5, 3, 2)
    coefs, intercepts = random_network(rng, [3, 4, 2])
    out = np.empty((5, 2))
    if case == "x_columns":
        X = X[:, :2].copy()
    elif case == "chain":
        coefs[1] = np.ones((3, 2))
    elif case == "intercept":
        intercepts[0] = np.ones(3)
    elif case == "out_rows":
        out = np.empty((4, 2))
    elif case == "out_columns":
        out = np.empty((5, 3))
    elif case == "no_layers":
        coefs, intercepts = [], []
    else:
        intercepts = intercepts[:1]
    with pytest.raises(ValueError):
        _core.predict(X, coefs, intercepts, ACTIVATION["relu"],
                      ACTIVATION["identity"], out)


# --------------------------------------------------------------------------
# loss_grad
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
@pytest.mark.parametrize("alpha", [0.0, 0.3])
@pytest.mark.parametrize("max_batch", [7, 30])
def test_loss_grad_matches_reference(rng, dtype, hidden, activation, loss, alpha,
                                     max_batch):
    # max_batch=7 sums the gradients of 5 blocks (the last of 2 rows); 30 is one.
    n, out_activation = 30, out_activation_for(loss)
    X, Y = random_data(rng, n, 4, 3, dtype, loss)
    coefs, intercepts = random_network(rng, [4, *hidden, 3], dtype, scale=0.5)
    before = [p.copy() for p in coefs + intercepts]
    trainer = make_trainer(coefs, intercepts, (), max_batch, activation=activation,
                           out_activation=out_activation, loss=loss, alpha=alpha)
    grad = np.full(sum(p.size for p in before), np.nan, dtype=dtype)

    value = _core.loss_grad(trainer, X, Y, grad)

    expected, coef_grads, intercept_grads = ref.loss_and_grads(
        X, Y, coefs, intercepts, activation, out_activation, loss, alpha)
    assert isinstance(value, float)
    assert_close(value, expected, dtype)
    assert_close(grad, pack(coef_grads, intercept_grads), dtype)
    for p, p0 in zip(coefs + intercepts, before):
        np.testing.assert_array_equal(p, p0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_grad_poisson_zero_counts(rng, dtype):
    # y = 0 contributes exactly pred to the half Poisson deviance.
    X, _ = random_data(rng, 12, 3, 2, dtype)
    Y = np.zeros((12, 2), dtype=dtype)
    coefs, intercepts = random_network(rng, [3, 4, 2], dtype, scale=0.5)
    trainer = make_trainer(coefs, intercepts, (), 12, activation="tanh",
                           out_activation="exp", loss="poisson")
    grad = np.empty(3 * 4 + 4 * 2 + 4 + 2, dtype=dtype)
    value = _core.loss_grad(trainer, X, Y, grad)
    pred = ref.forward(X, coefs, intercepts, "tanh", "exp")[-1]
    assert_close(value, pred.sum() / 12, dtype)


@pytest.mark.parametrize("case", ["x_columns", "y_columns", "y_rows", "grad_size",
                                  "no_rows"])
def test_loss_grad_rejects_bad_shapes(rng, case):
    X, Y = random_data(rng, 6, 3, 2)
    coefs, intercepts = random_network(rng, [3, 4, 2])
    trainer = make_trainer(coefs, intercepts, (), 6)
    grad = np.empty(3 * 4 + 4 * 2 + 4 + 2)
    if case == "x_columns":
        X = np.ones((6, 4))
    elif case == "y_columns":
        Y = np.ones((6, 1))
    elif case == "y_rows":
        Y = Y[:5].copy()
    elif case == "grad_size":
        grad = grad[:-1].copy()
    else:
        X, Y = X[:0].copy(), Y[:0].copy()
    with pytest.raises(ValueError):
        _core.loss_grad(trainer, X, Y, grad)


def test_loss_grad_rejects_other_dtype(rng):
    X, Y = random_data(rng, 6, 3, 2, np.float32)
    coefs, intercepts = random_network(rng, [3, 4, 2], np.float64)
    trainer = make_trainer(coefs, intercepts, (), 6)
    with pytest.raises(TypeError):
        _core.loss_grad(trainer, X, Y, np.empty(3 * 4 + 4 * 2 + 4 + 2, np.float32))


# --------------------------------------------------------------------------
# train_epoch
# --------------------------------------------------------------------------


def run_both(rng, dtype, hidden, activation, optimizer, rows, batch_size, *,
             n=30, loss="squared_error", alpha=1e-2, n_epochs=2, adam_t=0):
    """Train n_epochs with the kernel and with the reference; compare after each."""
    hyper = dict(OPTIMIZERS[optimizer])
    solver = hyper.pop("solver")
    lr = 0.01 if solver == "adam" else 0.05
    out_activation = out_activation_for(loss)
    X, Y = random_data(rng, n, 4, 2, dtype, loss)
    if loss in LOG_LOSSES:
        Y = class_targets(rng, n, 2, loss, dtype)
    coefs, intercepts = random_network(rng, [4, *hidden, 2], dtype, scale=0.5)
    state = zero_state(coefs, intercepts, solver)
    # Nonzero starting moments, as in a later epoch of a fit.
    for s in state:
        s[...] = rng.uniform(0, 0.1, s.shape) if solver == "adam" else (
            rng.uniform(-0.1, 0.1, s.shape))
    trainer = make_trainer(coefs, intercepts, state, batch_size,
                           activation=activation, out_activation=out_activation,
                           loss=loss, solver=solver, alpha=alpha, **hyper)
    ref_coefs, ref_intercepts, ref_state = (
        ref.as64(coefs), ref.as64(intercepts), ref.as64(state))
    t = ref_t = adam_t
    for epoch in range(n_epochs):
        gather, order = epoch_order(rng, rows, n)
        loss_sum, coef_sq, intercept_sq, t = _core.train_epoch(
            trainer, X, Y, order, gather, batch_size, lr, t)
        ref_rows = order if gather else np.arange(n)
        expected = ref.train_epoch(
            X.astype(np.float64), Y.astype(np.float64), ref_rows, ref_coefs,
            ref_intercepts, ref_state, batch_size, lr, ref_t, activation=activation,
            out_activation=out_activation, loss=loss, solver=solver, alpha=alpha,
            **hyper)
        ref_t = expected[3]
        msg = "epoch %d" % epoch
        assert t == ref_t
        assert_close(loss_sum, expected[0], dtype, msg)
        assert_close(coef_sq, expected[1], dtype, msg)
        assert_close(intercept_sq, expected[2], dtype, msg)
        for got, want in zip(coefs + intercepts + state,
                             ref_coefs + ref_intercepts + ref_state):
            assert got.dtype == dtype
            assert_close(got, want, dtype, msg)
    return t


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("activation", ["relu", "logistic"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("rows", ["consecutive", "permuted", "repeated"])
@pytest.mark.parametrize("batch_size", [5, 7])
def test_train_epoch_matches_reference(rng, dtype, hidden, activation, optimizer,
                                       rows, batch_size):
    # n = 30 rows: batches of 5 divide them, batches of 7 leave a batch of 2
    # (or of 6 for the 34 repeated rows).
    t = run_both(rng, dtype, hidden, activation, optimizer, rows, batch_size,
                 adam_t=3)
    n_steps = 30 + 4 * (rows == "repeated")
    batches_per_epoch = -(-n_steps // batch_size)
    assert t == (3 + 2 * batches_per_epoch if optimizer == "adam" else 3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("hidden", [(), (5,)])
def test_train_epoch_poisson_matches_reference(rng, dtype, optimizer, hidden):
    run_both(rng, dtype, hidden, "tanh", optimizer, "permuted", 8, loss="poisson")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_size", [1, 4, 30])
def test_train_epoch_is_its_batches(rng, dtype, batch_size):
    # An epoch is the same as one call per batch, and its loss_sum adds, per
    # batch, n_batch * data loss plus 0.5 * alpha * sum(W**2) at the weights
    # that batch started from; each call's coef_sq gives those weights.
    n, alpha = 10, 0.7
    X, Y = random_data(rng, n, 3, 2, dtype)
    order = rng.permutation(n).astype(np.intp)
    coefs, intercepts = random_network(rng, [3, 4, 2], dtype)
    nets = [(coefs, intercepts), ([c.copy() for c in coefs],
                                  [b.copy() for b in intercepts])]
    states = [zero_state(c, b, "sgd") for c, b in nets]
    trainers = [make_trainer(c, b, s, batch_size, activation="tanh", alpha=alpha)
                for (c, b), s in zip(nets, states)]
    whole = _core.train_epoch(trainers[0], X, Y, order, True, batch_size, 0.1, 0)

    coef_sq = sum(np.sum(np.float64(W) ** 2) for W in nets[1][0])
    total = 0.0
    for start in range(0, n, batch_size):
        batch = order[start:start + batch_size]
        data_loss = ref.data_loss(
            np.float64(Y[batch]),
            ref.forward(X[batch], *nets[1], "tanh", "identity")[-1],
            "squared_error")
        expected_part = len(batch) * data_loss + 0.5 * alpha * coef_sq
        part, coef_sq, _, _ = _core.train_epoch(trainers[1], X, Y, batch, True,
                                                batch_size, 0.1, 0)
        assert_close(part, expected_part, dtype)
        total += part
    assert_close(whole[0], total, dtype)
    assert_close(whole[1], coef_sq, dtype)
    for got, want in zip(nets[0][0] + nets[0][1], nets[1][0] + nets[1][1]):
        assert_close(got, want, dtype)


@pytest.mark.parametrize("gather", [True, False])
def test_train_epoch_without_rows(rng, gather):
    # An empty epoch leaves everything alone; coef_sq and intercept_sq are
    # documented as the sums of squares after the epoch, i.e. of the untouched
    # parameters.
    coefs, intercepts = random_network(rng, [3, 2, 1])
    state = zero_state(coefs, intercepts, "adam")
    before = [p.copy() for p in coefs + intercepts]
    trainer = make_trainer(coefs, intercepts, state, 4, solver="adam")
    X = np.empty((0 if not gather else 5, 3))
    Y = np.empty((X.shape[0], 1))
    result = _core.train_epoch(trainer, X, Y, np.empty(0, dtype=np.intp), gather,
                               4, 0.1, 7)
    for p, p0 in zip(coefs + intercepts, before):
        np.testing.assert_array_equal(p, p0)
    assert result[0] == 0.0
    assert result[3] == 7
    assert result[1] == pytest.approx(sum(np.sum(W**2) for W in coefs), rel=1e-12)
    assert result[2] == pytest.approx(sum(np.sum(b**2) for b in intercepts),
                                      rel=1e-12)


def test_train_epoch_rejects_other_dtype(rng):
    X, Y = random_data(rng, 6, 3, 2, np.float32)
    coefs, intercepts = random_network(rng, [3, 4, 2], np.float64)
    trainer = make_trainer(coefs, intercepts, zero_state(coefs, intercepts), 6)
    with pytest.raises(TypeError):
        _core.train_epoch(trainer, X, Y, np.arange(6), True, 6, 0.1, 0)


@pytest.mark.parametrize("case", ["x_columns", "y_columns", "y_rows", "batch_zero",
                                  "batch_too_large", "no_state"])
def test_train_epoch_rejects_bad_arguments(rng, case):
    X, Y = random_data(rng, 6, 3, 2)
    coefs, intercepts = random_network(rng, [3, 4, 2])
    state = zero_state(coefs, intercepts)
    batch_size = 3
    if case == "x_columns":
        X = np.ones((6, 4))
    elif case == "y_columns":
        Y = np.ones((6, 3))
    elif case == "y_rows":
        Y = Y[:5].copy()
    elif case == "batch_zero":
        batch_size = 0
    elif case == "batch_too_large":
        batch_size = 4
    else:
        state = []
    trainer = make_trainer(coefs, intercepts, state, 3)
    before = [p.copy() for p in coefs + intercepts]
    with pytest.raises(ValueError):
        _core.train_epoch(trainer, X, Y, np.arange(6), True, batch_size, 0.1, 0)
    for p, p0 in zip(coefs + intercepts, before):
        np.testing.assert_array_equal(p, p0)


# --------------------------------------------------------------------------
# Read-only and memory-mapped inputs
# --------------------------------------------------------------------------


@pytest.fixture(params=["read-only", "memmap"])
def freeze(request, tmp_path):
    """Turn an array into a read-only copy or a read-only np.memmap of it."""
    counter = itertools.count()

    def frozen(a):
        if request.param == "read-only":
            a = a.copy()
            a.setflags(write=False)
            return a
        path = tmp_path / ("a%d.dat" % next(counter))
        writer = np.memmap(path, dtype=a.dtype, mode="w+", shape=a.shape)
        writer[...] = a
        writer.flush()
        del writer
        return np.memmap(path, dtype=a.dtype, mode="r", shape=a.shape)

    return frozen


@pytest.mark.parametrize("dtype", DTYPES)
def test_predict_read_only_inputs(rng, freeze, dtype):
    X, _ = random_data(rng, 40, 3, 2, dtype)
    coefs, intercepts = random_network(rng, [3, 5, 2], dtype)
    out = np.empty((40, 2), dtype=dtype)
    frozen_X = freeze(X)
    assert not frozen_X.flags.writeable
    _core.predict(frozen_X, [freeze(c) for c in coefs],
                  [freeze(b) for b in intercepts], ACTIVATION["relu"],
                  ACTIVATION["identity"], out)
    assert_close(out, ref.forward(X, coefs, intercepts, "relu", "identity")[-1],
                 dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_grad_read_only_inputs(rng, freeze, dtype):
    X, Y = random_data(rng, 40, 3, 2, dtype)
    coefs, intercepts = random_network(rng, [3, 5, 2], dtype)
    trainer = make_trainer(coefs, intercepts, (), 16, activation="tanh", alpha=0.1)
    grad = np.empty(sum(p.size for p in coefs + intercepts), dtype=dtype)
    value = _core.loss_grad(trainer, freeze(X), freeze(Y), grad)
    expected, coef_grads, intercept_grads = ref.loss_and_grads(
        X, Y, coefs, intercepts, "tanh", "identity", "squared_error", 0.1)
    assert_close(value, expected, dtype)
    assert_close(grad, pack(coef_grads, intercept_grads), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gather", [True, False])
def test_train_epoch_read_only_inputs(rng, freeze, dtype, gather):
    X, Y = random_data(rng, 40, 3, 2, dtype)
    order = rng.permutation(40).astype(np.intp)
    coefs, intercepts = random_network(rng, [3, 5, 2], dtype)
    state = zero_state(coefs, intercepts, "adam")
    ref_params, ref_state = ref.as64(coefs + intercepts), ref.as64(state)
    trainer = make_trainer(coefs, intercepts, state, 16, solver="adam", alpha=0.1)
    got = _core.train_epoch(trainer, freeze(X), freeze(Y), freeze(order), gather,
                            16, 0.01, 0)
    expected = ref.train_epoch(
        np.float64(X), np.float64(Y), order if gather else np.arange(40),
        ref_params[:2], ref_params[2:], ref_state, 16, 0.01, 0, solver="adam",
        alpha=0.1)
    assert got[3] == expected[3] == 3
    assert_close(got[:3], expected[:3], dtype)
    assert_close(np.concatenate([p.ravel() for p in coefs + intercepts]),
                 np.concatenate([p.ravel() for p in ref_params]), dtype)


# --------------------------------------------------------------------------
# Trainer
# --------------------------------------------------------------------------


def test_trainer_attributes(rng):
    coefs, intercepts = random_network(rng, [3, 4, 2], np.float32)
    trainer = make_trainer(coefs, intercepts, zero_state(coefs, intercepts, "adam"),
                           9, activation="tanh", solver="adam")
    assert trainer.layer_units == [3, 4, 2]
    assert trainer.n_layers == 2
    assert trainer.max_batch == 9
    assert trainer.single
    assert trainer.activation == _core.Activation.TANH
    assert trainer.solver == _core.Solver.ADAM
    with pytest.raises(TypeError):
        pickle.dumps(trainer)


def _non_writable(a):
    a = a.copy()
    a.setflags(write=False)
    return a


# Each case edits (coefs, intercepts, state) of a [3, 4, 2] float64 network with
# SGD state, and says which error the Trainer must raise.
TRAINER_CASES = {
    "no_layers": (lambda c, b, s: ([], [], []), ValueError),
    "intercept_count": (lambda c, b, s: (c, b[:1], s), ValueError),
    "broken_chain": (lambda c, b, s: ([c[0], np.ones((3, 2))], b, s), ValueError),
    "intercept_shape": (lambda c, b, s: (c, [np.ones(3), b[1]], s), ValueError),
    "coef_1d": (lambda c, b, s: ([c[0].ravel(), c[1]], b, s), ValueError),
    "integer_dtype": (lambda c, b, s: ([x.astype(np.int64) for x in c], b, s),
                      TypeError),
    "mixed_dtypes": (lambda c, b, s: ([c[0], c[1].astype(np.float32)], b, s),
                     ValueError),
    "intercept_dtype": (lambda c, b, s: (c, [b[0], b[1].astype(np.float32)], s),
                        ValueError),
    "coef_not_writable": (lambda c, b, s: ([c[0], _non_writable(c[1])], b, s),
                          ValueError),
    "intercept_not_writable": (lambda c, b, s: (c, [_non_writable(b[0]), b[1]], s),
                               ValueError),
    "coef_fortran": (lambda c, b, s: ([np.asfortranarray(c[0]), c[1]], b, s),
                     ValueError),
    "state_count": (lambda c, b, s: (c, b, s[:-1]), ValueError),
    "state_shape": (lambda c, b, s: (c, b, [s[1], s[0]] + s[2:]), ValueError),
    "state_dtype": (lambda c, b, s: (c, b, [x.astype(np.float32) for x in s]),
                    ValueError),
    "state_not_writable": (lambda c, b, s: (c, b, s[:-1] + [_non_writable(s[-1])]),
                           ValueError),
}


@pytest.mark.parametrize("case", list(TRAINER_CASES))
def test_trainer_rejects_bad_parameters(rng, case):
    coefs, intercepts = random_network(rng, [3, 4, 2])
    edit, error = TRAINER_CASES[case]
    coefs, intercepts, state = edit(coefs, intercepts, zero_state(coefs, intercepts))
    with pytest.raises(error):
        make_trainer(coefs, intercepts, state, 4)


@pytest.mark.parametrize("max_batch", [0, -1])
def test_trainer_rejects_bad_max_batch(rng, max_batch):
    coefs, intercepts = random_network(rng, [3, 2])
    with pytest.raises(ValueError):
        make_trainer(coefs, intercepts, zero_state(coefs, intercepts), max_batch)


def test_trainer_rejects_one_moment_for_adam(rng):
    coefs, intercepts = random_network(rng, [3, 4, 2])
    with pytest.raises(ValueError):
        make_trainer(coefs, intercepts, zero_state(coefs, intercepts, "sgd"), 4,
                     solver="adam")


# ------------------------------------------------------------ threaded batches


def _threaded_epochs(rng_seed, n_threads, dtype, solver, gather, sparse=False,
                     loss="squared_error"):
    """Two epochs of a Trainer that splits each batch over n_threads."""
    import scipy.sparse as sp

    rng = np.random.default_rng(rng_seed)
    coefs, intercepts = random_network(rng, [6, 9, 7, 2], dtype)
    X, Y = random_data(rng, 53, 6, 2, dtype)
    if loss in LOG_LOSSES:
        Y = class_targets(rng, 53, 2, loss, dtype)
    state = zero_state(coefs, intercepts, solver)
    trainer = make_trainer(coefs, intercepts, state, 16, activation="tanh",
                           out_activation=out_activation_for(loss), loss=loss,
                           solver=solver, alpha=0.01, n_threads=n_threads,
                           dense_input=not sparse)
    rows = _core.Rows.csr(*(lambda m: (m.data, m.indices, m.indptr))(
        sp.csr_matrix(X)), 6) if sparse else X
    order = rng.permutation(53).astype(np.intp)
    t, results = 0, []
    for _ in range(2):
        loss, wsq, isq, t = _core.train_epoch(trainer, rows, Y, order, gather, 16,
                                              0.01, t)
        results.append(loss)
    return coefs + intercepts + state, results


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("gather", [True, False])
@pytest.mark.parametrize("n_threads", [2, 3, 20])
def test_threaded_batches_match_one_thread(dtype, solver, gather, n_threads):
    """Shares of a batch summed in thread order: the one-thread result up to
    rounding (20 threads leave some shares of the 5-row last batch empty)."""
    one, loss_one = _threaded_epochs(0, 1, dtype, solver, gather)
    many, loss_many = _threaded_epochs(0, n_threads, dtype, solver, gather)
    for a, b in zip(many, one):
        assert_allclose(a, b, **TOL[dtype])
    assert_allclose(loss_many, loss_one, **TOL[dtype])


@pytest.mark.parametrize("sparse", [False, True])
def test_threaded_batches_are_bitwise_reproducible(sparse):
    first, loss_first = _threaded_epochs(1, 2, np.float64, "adam", True, sparse)
    again, loss_again = _threaded_epochs(1, 2, np.float64, "adam", True, sparse)
    for a, b in zip(first, again):
        assert_array_equal(a, b)
    assert loss_first == loss_again


def test_trainer_rejects_bad_thread_counts(rng):
    coefs, intercepts = random_network(rng, [3, 2])
    for bad in (0, -1, 1000):
        with pytest.raises(ValueError, match="n_threads"):
            make_trainer(coefs, intercepts, (), 4, n_threads=bad)


# --------------------------------------------------------------------------
# Classifier kernels: softmax, log loss, binary log loss
# --------------------------------------------------------------------------

LOG_LOSSES = {"log_loss": "softmax", "binary_log_loss": "logistic"}


def class_targets(rng, n, n_outputs, loss, dtype):
    """One-hot rows for log_loss (or 0/1 for one output); 0/1 labels otherwise."""
    if loss == "log_loss" and n_outputs > 1:
        return np.eye(n_outputs, dtype=dtype)[rng.integers(0, n_outputs, n)]
    return rng.integers(0, 2, (n, n_outputs)).astype(dtype)


def csr_rows(X):
    import scipy.sparse as sp

    m = sp.csr_matrix(X)
    return _core.Rows.csr(m.data, m.indices, m.indptr, X.shape[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("out_activation", ["softmax", "logistic"])
@pytest.mark.parametrize("sparse", [False, True])
def test_predict_probabilities_match_reference(rng, dtype, hidden, out_activation,
                                               sparse):
    X, _ = random_data(rng, 23, 4, 3, dtype)
    X[X < 0.3] = 0  # mostly zeros, so CSR has empty and partial rows
    coefs, intercepts = random_network(rng, [4, *hidden, 3], dtype, scale=2.0)
    out = np.full((23, 3), np.nan, dtype=dtype)
    _core.predict(csr_rows(X) if sparse else X, coefs, intercepts,
                  ACTIVATION["tanh"], ACTIVATION[out_activation], out)
    expected = ref.forward(X, coefs, intercepts, "tanh", out_activation)[-1]
    assert_close(out, expected, dtype)
    if out_activation == "softmax":
        assert_close(out.sum(axis=1), np.ones(23), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_is_stable_for_large_inputs(dtype):
    # exp(1000) overflows both dtypes: only the max-shifted form stays finite.
    X = np.array([[1000.0, 999.0, -1000.0], [-1e4, -1e4, -1e4]], dtype=dtype)
    out = np.empty((2, 3), dtype=dtype)
    _core.predict(X, [np.eye(3, dtype=dtype)], [np.zeros(3, dtype=dtype)],
                  ACTIVATION["identity"], ACTIVATION["softmax"], out)
    assert_close(out, ref.softmax(X.astype(np.float64)), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("loss", list(LOG_LOSSES))
@pytest.mark.parametrize("n_outputs", [1, 3])
@pytest.mark.parametrize("alpha", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("sparse", [False, True])
def test_loss_grad_log_losses_match_reference(rng, dtype, hidden, loss, n_outputs,
                                              alpha, weighted, sparse):
    # max_batch=7 sums the loss and gradients of 5 blocks of rows.
    n, out_activation = 30, LOG_LOSSES[loss]
    if n_outputs == 1:
        out_activation = "logistic"  # scikit-learn's binary case, for both losses
    X, _ = random_data(rng, n, 4, n_outputs, dtype)
    Y = class_targets(rng, n, n_outputs, loss, dtype)
    w = rng.uniform(0, 2, n).astype(dtype) if weighted else None
    coefs, intercepts = random_network(rng, [4, *hidden, n_outputs], dtype, scale=0.8)
    trainer = make_trainer(coefs, intercepts, (), 7, activation="tanh",
                           out_activation=out_activation, loss=loss, alpha=alpha,
                           dense_input=not sparse)
    grad = np.full(sum(p.size for p in coefs + intercepts), np.nan, dtype=dtype)

    value = _core.loss_grad(trainer, csr_rows(X) if sparse else X, Y, grad, w)

    expected, coef_grads, intercept_grads = ref.loss_and_grads(
        X, Y, coefs, intercepts, "tanh", out_activation, loss, alpha, w)
    assert_close(value, expected, dtype)
    assert_close(grad, pack(coef_grads, intercept_grads), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", list(LOG_LOSSES))
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("hidden", [(), (5,)])
@pytest.mark.parametrize("rows", ["consecutive", "repeated"])
def test_train_epoch_log_losses_match_reference(rng, dtype, loss, optimizer, hidden,
                                                rows):
    run_both(rng, dtype, hidden, "relu", optimizer, rows, 7, loss=loss)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", list(LOG_LOSSES))
@pytest.mark.parametrize("sparse", [False, True])
def test_weighted_sgd_step_with_log_losses_matches_reference(rng, dtype, loss, sparse):
    # One batch of all rows: the step is lr times the weighted full-batch
    # gradient when weight_scale is the batch's mean weight.
    n, lr, alpha = 12, 0.1, 0.2
    X, _ = random_data(rng, n, 4, 3, dtype)
    Y = class_targets(rng, n, 3, loss, dtype)
    w = rng.uniform(0, 2, n).astype(dtype)
    coefs, intercepts = random_network(rng, [4, 5, 3], dtype)
    _, coef_grads, intercept_grads = ref.loss_and_grads(
        X, Y, coefs, intercepts, "tanh", LOG_LOSSES[loss], loss, alpha, w)
    expected = [p - lr * g for p, g in zip(ref.as64(coefs + intercepts),
                                           coef_grads + intercept_grads)]
    state = zero_state(coefs, intercepts)
    trainer = make_trainer(coefs, intercepts, state, n, activation="tanh",
                           out_activation=LOG_LOSSES[loss], loss=loss, alpha=alpha,
                           momentum=0.0, dense_input=not sparse)
    _core.train_epoch(trainer, csr_rows(X) if sparse else X, Y,
                      np.arange(n, dtype=np.intp), False, n, lr, 0, w,
                      float(np.mean(w, dtype=np.float64)))
    for got, want in zip(coefs + intercepts, expected):
        assert_close(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", list(LOG_LOSSES))
@pytest.mark.parametrize("sparse", [False, True])
def test_threaded_log_losses_match_one_thread(dtype, loss, sparse):
    one, loss_one = _threaded_epochs(2, 1, dtype, "adam", True, sparse, loss)
    many, loss_many = _threaded_epochs(2, 3, dtype, "adam", True, sparse, loss)
    for a, b in zip(many, one):
        assert_allclose(a, b, **TOL[dtype])
    assert_allclose(loss_many, loss_one, **TOL[dtype])


def _eye_trainer(n_outputs, dtype, loss, out_activation="identity"):
    """A one-layer identity network: its predictions are its input rows."""
    coefs = [np.eye(n_outputs, dtype=dtype)]
    intercepts = [np.zeros(n_outputs, dtype=dtype)]
    return make_trainer(coefs, intercepts, (), 64, out_activation=out_activation,
                        loss=loss)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", list(LOG_LOSSES))
@pytest.mark.parametrize("n_outputs", [1, 3])
@pytest.mark.parametrize("weighted", [False, True])
def test_log_losses_equal_sklearn_on_given_probabilities(rng, dtype, loss, n_outputs,
                                                         weighted):
    # Probabilities fed straight through an identity layer, including values
    # that hit the clip at eps and 1 - eps of the dtype (0, 1, and tiny
    # distances from them), with targets of both values.
    from sklearn.neural_network import _base

    eps = np.finfo(dtype).eps
    edge = np.array([0.0, 1.0, eps / 3, 1 - eps / 3, 1e-30, eps, 1 - eps, 0.5])
    n = 40
    P = rng.uniform(0, 1, (n, n_outputs))
    P.flat[: edge.size] = edge
    if loss == "log_loss" and n_outputs > 1:
        P[8:] /= P[8:].sum(axis=1, keepdims=True)
    P = P.astype(dtype)
    Y = class_targets(rng, n, n_outputs, loss, dtype)
    Y[:8] = np.resize(np.eye(2, dtype=dtype), (8, n_outputs)) if n_outputs > 1 else (
        np.arange(8).reshape(-1, 1) % 2)
    w = rng.uniform(0, 2, n).astype(dtype) if weighted else None
    trainer = _eye_trainer(n_outputs, dtype, loss)
    grad = np.empty(n_outputs * n_outputs + n_outputs, dtype=dtype)

    value = _core.loss_grad(trainer, P, Y, grad, w)

    expected = getattr(_base, loss)(Y, P, w)
    assert np.isfinite(value)
    np.testing.assert_allclose(value, expected,
                               rtol=1e-6 if dtype == np.float32 else 1e-13)


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_loss_ignores_zero_targets_like_xlogy(dtype):
    # A zero target contributes nothing, even where its probability is 0
    # (log 0 = -inf would make 0 * log 0 NaN).
    P = np.array([[1.0, 0.0, 0.0]], dtype=dtype)
    Y = np.array([[1.0, 0.0, 0.0]], dtype=dtype)
    grad = np.empty(12, dtype=dtype)
    value = _core.loss_grad(_eye_trainer(3, dtype, "log_loss"), P, Y, grad)
    assert value == pytest.approx(-np.log1p(-np.finfo(dtype).eps), rel=1e-6)
