# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Backpropagation against finite differences, and one training step worked by hand."""

import numpy as np
import pytest
from conftest import DTYPES, TOL, make_trainer, random_data, random_network, zero_state
from sklearn.exceptions import ConvergenceWarning

from fastbp import BPRegressor, _core

# Central differences with h = 1e-5 on losses of order 1 carry a rounding error
# of about eps / h ~ 1e-11 and a truncation error of about h**2 ~ 1e-10.
FD_STEP = 1e-5
FD_TOL = dict(rtol=1e-6, atol=1e-9)


def finite_difference_gradient(trainer, X, Y, params, h=FD_STEP):
    """Central differences of loss_grad's own loss, packed as loss_grad packs."""
    scratch = np.empty(sum(p.size for p in params))
    packed = []
    for p in params:
        flat = p.reshape(-1)  # a view: the trainer reads p through its pointer
        for k in range(flat.size):
            saved = flat[k]
            flat[k] = saved + h
            up = _core.loss_grad(trainer, X, Y, scratch)
            flat[k] = saved - h
            down = _core.loss_grad(trainer, X, Y, scratch)
            flat[k] = saved
            packed.append((up - down) / (2 * h))
    return np.array(packed)


def rows_away_from_kinks(X, Y, coefs, intercepts, margin=0.05):
    """Keep the rows whose hidden pre-activations all stay margin away from 0.

    A relu network is smooth there, and the h-perturbations of the finite
    differences move no pre-activation across its kink.
    """
    keep = np.ones(X.shape[0], dtype=bool)
    a = X
    for W, b in zip(coefs[:-1], intercepts[:-1]):
        z = a @ W + b
        keep &= (np.abs(z) > margin).all(axis=1)
        a = np.maximum(z, 0)
    return np.ascontiguousarray(X[keep]), np.ascontiguousarray(Y[keep])


def check_against_finite_differences(rng, hidden, activation, loss, alpha,
                                     n_outputs):
    out_activation = "exp" if loss == "poisson" else "identity"
    X, Y = random_data(rng, 40, 3, n_outputs, loss=loss)
    coefs, intercepts = random_network(rng, [3, *hidden, n_outputs], scale=0.7)
    if activation == "relu" and hidden:
        X, Y = rows_away_from_kinks(X, Y, coefs, intercepts)
        # Enough rows are left, and they switch some first-layer units off and
        # others on, so the relu mask is exercised.
        z = X @ coefs[0] + intercepts[0]
        assert X.shape[0] >= 20 and (z > 0).any() and (z < 0).any()
    # max_batch = 8 < n: loss and gradient are summed over blocks of rows.
    trainer = make_trainer(coefs, intercepts, (), 8, activation=activation,
                           out_activation=out_activation, loss=loss, alpha=alpha)
    params = coefs + intercepts
    grad = np.empty(sum(p.size for p in params))
    _core.loss_grad(trainer, X, Y, grad)
    numerical = finite_difference_gradient(trainer, X, Y, params)
    assert np.abs(grad).max() > 1e-2
    np.testing.assert_allclose(grad, numerical, **FD_TOL)


@pytest.mark.parametrize("hidden", [(5,), (4, 3)])
@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
@pytest.mark.parametrize("alpha", [0.0, 0.5])
@pytest.mark.parametrize("n_outputs", [1, 3])
def test_gradient_matches_finite_differences(rng, hidden, activation, loss, alpha,
                                             n_outputs):
    check_against_finite_differences(rng, hidden, activation, loss, alpha,
                                     n_outputs)


@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
@pytest.mark.parametrize("alpha", [0.0, 0.5])
@pytest.mark.parametrize("n_outputs", [1, 3])
def test_gradient_without_hidden_layer_matches_finite_differences(
        rng, loss, alpha, n_outputs):
    check_against_finite_differences(rng, (), "relu", loss, alpha, n_outputs)


# --------------------------------------------------------------------------
# One SGD step worked by hand
# --------------------------------------------------------------------------
# A single neuron y = w x + b (no hidden layer) on two samples,
# (x, y) = (1, 3) and (2, 5), from w = 0.5, b = 0, one batch of both samples,
# learning rate 0.1:
#   predictions    p  = w x + b                       = (0.5, 1.0)
#   output deltas  d  = p - y                         = (-2.5, -4.0)
#   batch loss        = (0.5 * 2.5**2 + 0.5 * 4**2) / 2 = (3.125 + 8) / 2 = 5.5625
#   gradients      dw = (1 * -2.5 + 2 * -4.0) / 2     = -10.5 / 2 = -5.25
#                  db = (-2.5 + -4.0) / 2             = -3.25
#   plain step     w  = 0.5 - 0.1 * -5.25             = 1.025
#                  b  = 0.0 - 0.1 * -3.25             = 0.325
#   loss_sum          = batch loss * 2 samples        = 11.125
X_HAND = [[1.0], [2.0]]
Y_HAND = [3.0, 5.0]

HAND_STEPS = {
    # name: (Trainer arguments, initial velocities (w, b),
    #        expected w, b, loss_sum, velocities after)
    "plain": (dict(momentum=0.0, alpha=0.0), (0.0, 0.0),
              1.025, 0.325, 11.125, (0.525, 0.325)),
    # alpha = 0.2 adds alpha * w = 0.1 to the summed weight gradient:
    #   dw = (-10.5 + 0.2 * 0.5) / 2 = -5.2, w = 0.5 + 0.52 = 1.02; b as before.
    #   batch loss = 5.5625 + 0.2 / (2 * 2) * 0.5**2 = 5.5625 + 0.0125 = 5.575,
    #   loss_sum = 11.15.
    "l2": (dict(momentum=0.0, alpha=0.2), (0.0, 0.0),
           1.02, 0.325, 11.15, (0.52, 0.325)),
    # Classical momentum 0.5 from velocities (0.1, -0.2):
    #   v_w = 0.5 * 0.1 + 0.525 = 0.575,    w = 0.5 + 0.575 = 1.075
    #   v_b = 0.5 * -0.2 + 0.325 = 0.225,   b = 0.0 + 0.225 = 0.225
    "momentum": (dict(momentum=0.5, nesterov=False, alpha=0.0), (0.1, -0.2),
                 1.075, 0.225, 11.125, (0.575, 0.225)),
    # Nesterov momentum 0.9 from zero velocities:
    #   v_w = 0.525, w = 0.5 + (0.9 * 0.525 + 0.525) = 0.5 + 0.9975 = 1.4975
    #   v_b = 0.325, b = 0.0 + (0.9 * 0.325 + 0.325) = 0.6175
    "nesterov": (dict(momentum=0.9, nesterov=True, alpha=0.0), (0.0, 0.0),
                 1.4975, 0.6175, 11.125, (0.525, 0.325)),
}


def hand_neuron(dtype, velocities=(0.0, 0.0)):
    """The neuron at w = 0.5, b = 0, its SGD velocities, and the two samples."""
    coefs = [np.array([[0.5]], dtype=dtype)]
    intercepts = [np.array([0.0], dtype=dtype)]
    state = [np.array([[velocities[0]]], dtype=dtype),
             np.array([velocities[1]], dtype=dtype)]
    X = np.array(X_HAND, dtype=dtype)
    Y = np.array(Y_HAND, dtype=dtype).reshape(-1, 1)
    return coefs, intercepts, state, X, Y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gather", [False, True])
@pytest.mark.parametrize("step", list(HAND_STEPS))
def test_one_sgd_step_by_hand(dtype, gather, step):
    hyper, velocities, w, b, loss_sum, new_velocities = HAND_STEPS[step]
    coefs, intercepts, state, X, Y = hand_neuron(dtype, velocities)
    trainer = make_trainer(coefs, intercepts, state, 2, solver="sgd", **hyper)
    got = _core.train_epoch(trainer, X, Y, np.array([0, 1], dtype=np.intp), gather,
                            2, 0.1, 0)
    tol = TOL[dtype]
    assert coefs[0][0, 0] == pytest.approx(w, rel=tol["rtol"])
    assert intercepts[0][0] == pytest.approx(b, rel=tol["rtol"])
    assert state[0][0, 0] == pytest.approx(new_velocities[0], rel=tol["rtol"])
    assert state[1][0] == pytest.approx(new_velocities[1], rel=tol["rtol"])
    assert got[0] == pytest.approx(loss_sum, rel=tol["rtol"])
    assert got[1] == pytest.approx(w**2, rel=tol["rtol"])
    assert got[2] == pytest.approx(b**2, rel=tol["rtol"])
    assert got[3] == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_grad_by_hand(dtype):
    # The same neuron, full batch: loss 5.5625, dw = -5.25, db = -3.25.
    coefs, intercepts, _, X, Y = hand_neuron(dtype)
    trainer = make_trainer(coefs, intercepts, (), 1)  # blocks of one row each
    grad = np.empty(2, dtype=dtype)
    loss = _core.loss_grad(trainer, X, Y, grad)
    assert loss == pytest.approx(5.5625, rel=TOL[dtype]["rtol"])
    np.testing.assert_allclose(grad, [-5.25, -3.25], **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_adam_step_by_hand(dtype):
    # Adam's first step (t = 1) from zero moments, beta_1 = 0.9, beta_2 = 0.999
    # and epsilon negligible (1e-30):
    #   m = 0.1 g,  v = 0.001 g**2,  step = lr * sqrt(1 - 0.999) / (1 - 0.9)
    #   update = -step * m / sqrt(v)
    #          = -lr * sqrt(0.001) / 0.1 * 0.1 g / (sqrt(0.001) |g|) = -lr * sign(g)
    # so with g = (-5.25, -3.25) each parameter moves up by lr = 0.1:
    #   w = 0.6, b = 0.1;  m = (-0.525, -0.325);
    #   v = (0.001 * 27.5625, 0.001 * 10.5625) = (0.0275625, 0.0105625).
    coefs, intercepts, _, X, Y = hand_neuron(dtype)
    state = zero_state(coefs, intercepts, "adam")
    trainer = make_trainer(coefs, intercepts, state, 2, solver="adam", beta_1=0.9,
                           beta_2=0.999, epsilon=1e-30)
    got = _core.train_epoch(trainer, X, Y, np.array([0, 1], dtype=np.intp), False,
                            2, 0.1, 0)
    rtol = TOL[dtype]["rtol"]
    assert got[3] == 1
    assert got[0] == pytest.approx(11.125, rel=rtol)
    assert coefs[0][0, 0] == pytest.approx(0.6, rel=rtol)
    assert intercepts[0][0] == pytest.approx(0.1, rel=rtol)
    np.testing.assert_allclose([state[0][0, 0], state[1][0]], [-0.525, -0.325],
                               rtol=rtol)
    np.testing.assert_allclose([state[2][0, 0], state[3][0]], [0.0275625, 0.0105625],
                               rtol=rtol)


def hand_regressor(**params):
    """The estimator that takes exactly the hand-worked plain step per epoch."""
    return BPRegressor(hidden_layer_sizes=(), solver="sgd", momentum=0, batch_size=2,
                       shuffle=False, max_iter=1, alpha=0, learning_rate_init=0.1,
                       random_state=0, **params)


def set_hand_weights(est):
    est.coefs_ = [np.array([[0.5]])]
    est.intercepts_ = [np.array([0.0])]


def assert_hand_step(est, dtype):
    # After the plain step w = 1.025, b = 0.325, the predictions are
    # 1.025 * 1 + 0.325 = 1.35 and 1.025 * 2 + 0.325 = 2.375.
    rtol = TOL[dtype]["rtol"]
    assert est.coefs_[0].dtype == dtype
    assert est.coefs_[0][0, 0] == pytest.approx(1.025, rel=rtol)
    assert est.intercepts_[0][0] == pytest.approx(0.325, rel=rtol)
    assert est.loss_ == pytest.approx(5.5625, rel=rtol)
    assert est.loss_curve_[-1] == est.loss_
    assert est.n_iter_ == 1
    np.testing.assert_allclose(est.predict(np.array(X_HAND, dtype=dtype)),
                               [1.35, 2.375], rtol=rtol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_sgd_step_by_hand_partial_fit(dtype):
    X, y = np.array(X_HAND, dtype=dtype), np.array(Y_HAND, dtype=dtype)
    est = hand_regressor()
    with pytest.warns(ConvergenceWarning):
        est.fit(X, y)  # a fitted model with its optimizer state
    t_before = est.t_
    set_hand_weights(est)
    est.partial_fit(X, y)
    assert_hand_step(est, dtype)
    assert est.t_ == t_before + 2


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_sgd_step_by_hand_warm_start(dtype):
    X, y = np.array(X_HAND, dtype=dtype), np.array(Y_HAND, dtype=dtype)
    est = hand_regressor(warm_start=True)
    with pytest.warns(ConvergenceWarning):
        est.fit(X, y)
    set_hand_weights(est)
    with pytest.warns(ConvergenceWarning):
        est.fit(X, y)
    assert_hand_step(est, dtype)
    assert len(est.loss_curve_) == 2


# --------------------------------------------------------------------------
# Classifier losses: softmax + log loss, logistic + binary log loss
# --------------------------------------------------------------------------

CLASSIFIER_OUTPUT = {"log_loss": "softmax", "binary_log_loss": "logistic"}


def classification_problem(rng, hidden, loss, n_outputs, weighted, dtype=np.float64):
    """Data, targets, weights and network of a small classification problem."""
    X, _ = random_data(rng, 40, 3, n_outputs, dtype)
    if loss == "log_loss":
        Y = np.eye(n_outputs, dtype=dtype)[rng.integers(0, n_outputs, 40)]
    else:
        Y = rng.integers(0, 2, (40, n_outputs)).astype(dtype)
    w = rng.uniform(0.1, 2, 40).astype(dtype) if weighted else None
    coefs, intercepts = random_network(rng, [3, *hidden, n_outputs], dtype, scale=0.7)
    return X, Y, w, coefs, intercepts


def weighted_finite_differences(trainer, X, Y, w, params, h=FD_STEP):
    """Central differences of loss_grad's own (weighted) loss."""
    scratch = np.empty(sum(p.size for p in params))
    packed = []
    for p in params:
        flat = p.reshape(-1)
        for k in range(flat.size):
            saved = flat[k]
            flat[k] = saved + h
            up = _core.loss_grad(trainer, X, Y, scratch, w)
            flat[k] = saved - h
            down = _core.loss_grad(trainer, X, Y, scratch, w)
            flat[k] = saved
            packed.append((up - down) / (2 * h))
    return np.array(packed)


@pytest.mark.parametrize("hidden", [(), (4,), (4, 3)])
@pytest.mark.parametrize("loss, n_outputs", [("log_loss", 3), ("log_loss", 2),
                                             ("binary_log_loss", 1),
                                             ("binary_log_loss", 3)])
@pytest.mark.parametrize("alpha", [0.0, 0.5])
@pytest.mark.parametrize("weighted", [False, True])
def test_classifier_gradient_matches_finite_differences(rng, hidden, loss, n_outputs,
                                                        alpha, weighted):
    # Away from the clip (these probabilities stay inside [1e-6, 1 - 1e-6]),
    # the clipped loss is the smooth one whose gradient is w (p - y).
    X, Y, w, coefs, intercepts = classification_problem(rng, hidden, loss, n_outputs,
                                                        weighted)
    trainer = make_trainer(coefs, intercepts, (), 8, activation="tanh",
                           out_activation=CLASSIFIER_OUTPUT[loss], loss=loss,
                           alpha=alpha)
    params = coefs + intercepts
    grad = np.empty(sum(p.size for p in params))
    _core.loss_grad(trainer, X, Y, grad, w)
    numerical = weighted_finite_differences(trainer, X, Y, w, params)
    assert np.abs(grad).max() > 1e-2
    np.testing.assert_allclose(grad, numerical, **FD_TOL)


@pytest.mark.parametrize("loss, n_outputs", [("log_loss", 3), ("binary_log_loss", 2)])
@pytest.mark.parametrize("weighted", [False, True])
def test_classifier_gradient_float32_close_to_float64(rng, loss, n_outputs, weighted):
    # Finite differences mean little in float32; its gradient must instead be
    # the float64 one (checked above against finite differences) up to rounding.
    X, Y, w, coefs, intercepts = classification_problem(rng, (5,), loss, n_outputs,
                                                        weighted)
    grads = {}
    for dtype in DTYPES:
        cast = [np.array(p, dtype=dtype) for p in coefs + intercepts]
        trainer = make_trainer(cast[:2], cast[2:], (), 16, activation="tanh",
                               out_activation=CLASSIFIER_OUTPUT[loss], loss=loss,
                               alpha=0.1)
        grads[dtype] = np.empty(sum(p.size for p in cast), dtype=dtype)
        _core.loss_grad(trainer, X.astype(dtype), Y.astype(dtype), grads[dtype],
                        None if w is None else w.astype(dtype))
    np.testing.assert_allclose(grads[np.float32], grads[np.float64], rtol=1e-4,
                               atol=1e-5)
