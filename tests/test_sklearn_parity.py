# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Same parameters and random_state as sklearn's MLPRegressor: the same model.

The oracle is the installed scikit-learn. Every activation x solver x
learning-rate schedule x early stopping x 1 or 3 outputs x shuffle, through a
plain fit, a warm-started second fit and repeated partial_fit.

With several outputs sklearn reports the squared error averaged over outputs
while following the gradient of the sum (scikit-learn #8349); fastbp reports the
sum. Those cases use alpha=0 and tol=0, so the stopping rule sees the same
ordering of losses in both, and our loss_curve_ is exactly n_outputs times
sklearn's.
"""

import itertools
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.datasets import make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor

from fastbp import BPRegressor

RTOL = 1e-6
ATOL = 1e-9

ACTIVATIONS = ["identity", "logistic", "tanh", "relu"]
SOLVERS = ["sgd", "adam"]
SCHEDULES = ["constant", "invscaling", "adaptive"]
MODES = ["fit", "warm_start", "partial_fit"]


def _data(n_outputs):
    X, y = make_regression(
        n_samples=90, n_features=4, n_targets=n_outputs, noise=5.0, random_state=0
    )
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    y = (y - y.mean(axis=0)) / y.std(axis=0)
    return X, y


def _params(activation, solver, schedule, early_stopping, n_outputs, shuffle):
    params = dict(
        hidden_layer_sizes=(7, 5),
        activation=activation,
        solver=solver,
        learning_rate=schedule,
        learning_rate_init=0.05 if solver == "sgd" else 0.01,
        batch_size=16,
        max_iter=15,
        shuffle=shuffle,
        early_stopping=early_stopping,
        validation_fraction=0.2,
        random_state=0,
    )
    if n_outputs == 1:
        params.update(alpha=1e-3, tol=1e-4, n_iter_no_change=3)
    else:
        params.update(alpha=0.0, tol=0.0, n_iter_no_change=3)
    return params


def _run(est, mode, X, y):
    """Train est as mode says; return the weights the warm start began from."""
    if mode == "fit":
        est.fit(X, y)
    elif mode == "warm_start":
        est.fit(X, y)
        start = [p.copy() for p in est.coefs_ + est.intercepts_]
        est.set_params(warm_start=True, max_iter=5)
        est.fit(X, y)
        return start
    else:
        for _ in range(3):
            est.partial_fit(X, y)
    return None


def _assert_same_model(ours, theirs, X, n_outputs, compare_weights=True):
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.t_ == theirs.t_
    assert ours.n_layers_ == theirs.n_layers_
    assert ours.n_outputs_ == theirs.n_outputs_
    assert ours.out_activation_ == theirs.out_activation_
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert a.shape == b.shape
        if compare_weights:
            assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    if compare_weights:
        assert_allclose(ours.predict(X), theirs.predict(X), rtol=RTOL, atol=ATOL)
    assert len(ours.loss_curve_) == len(theirs.loss_curve_)
    assert_allclose(
        ours.loss_curve_, n_outputs * np.asarray(theirs.loss_curve_), rtol=RTOL
    )
    assert_allclose(ours.loss_, n_outputs * theirs.loss_, rtol=RTOL)
    if theirs.validation_scores_ is None:
        assert ours.validation_scores_ is None
        assert ours.best_validation_score_ is None
        assert_allclose(ours.best_loss_, n_outputs * theirs.best_loss_, rtol=RTOL)
    else:
        assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=RTOL)
        assert_allclose(
            ours.best_validation_score_, theirs.best_validation_score_, rtol=RTOL
        )
        assert ours.best_loss_ is None and theirs.best_loss_ is None


CASES = list(
    itertools.product(ACTIVATIONS, SOLVERS, SCHEDULES, [False, True], [1, 3],
                      [True, False], MODES)
)


@pytest.mark.parametrize(
    "activation, solver, schedule, early_stopping, n_outputs, shuffle, mode", CASES
)
def test_parity_matrix(activation, solver, schedule, early_stopping, n_outputs,
                       shuffle, mode):
    X, y = _data(n_outputs)
    params = _params(activation, solver, schedule, early_stopping, n_outputs, shuffle)
    ours, theirs = BPRegressor(**params), MLPRegressor(**params)
    if mode == "partial_fit" and early_stopping:
        for est in (ours, theirs):
            with pytest.raises(ValueError, match="partial_fit does not support"):
                est.partial_fit(X, y)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = _run(ours, mode, X, y)
        _run(theirs, mode, X, y)
    second_fit_improved = True
    if mode == "warm_start" and early_stopping:
        second = ours.validation_scores_[-ours.n_iter_:]
        second_fit_improved = max(second) > max(ours.validation_scores_[:-ours.n_iter_])
    _assert_same_model(ours, theirs, X, n_outputs, compare_weights=second_fit_improved)
    if not second_fit_improved:
        # sklearn bug: after an early-stopped fit, coefs_ *is* _best_coefs, so a
        # warm-started fit that never beats the old best score trains the "best"
        # arrays in place and returns its last epoch. fastbp returns the best.
        for ours_p, best in zip(ours.coefs_ + ours.intercepts_, start):
            assert_allclose(ours_p, best, rtol=0, atol=0)
        assert not np.allclose(theirs.coefs_[0], start[0], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("solver", SOLVERS)
def test_parity_default_parameters_on_diabetes(solver):
    """The defaults, on real data, until sklearn's own stopping rule fires."""
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    y = y / y.std()
    params = dict(solver=solver, random_state=0, max_iter=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = BPRegressor(**params).fit(X, y)
        theirs = MLPRegressor(**params).fit(X, y)
    _assert_same_model(ours, theirs, X, 1)


def test_parity_stops_at_the_same_epoch():
    """A loose tol makes both stop early, on the same epoch."""
    X, y = _data(1)
    params = dict(hidden_layer_sizes=(10,), solver="adam", tol=1e-2,
                  n_iter_no_change=2, max_iter=200, random_state=3)
    ours = BPRegressor(**params).fit(X, y)
    theirs = MLPRegressor(**params).fit(X, y)
    assert ours.n_iter_ < 200
    _assert_same_model(ours, theirs, X, 1)


def test_parity_random_state_instance_and_no_hidden_layer():
    """A shared RandomState is consumed identically; () means one neuron layer."""
    X, y = _data(1)
    params = dict(hidden_layer_sizes=(), solver="sgd", max_iter=10, batch_size=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = BPRegressor(random_state=np.random.RandomState(5), **params).fit(X, y)
        theirs = MLPRegressor(random_state=np.random.RandomState(5), **params).fit(X, y)
    assert ours.n_layers_ == 2
    _assert_same_model(ours, theirs, X, 1)


def test_multi_output_loss_is_the_sum_over_outputs():
    """With alpha > 0 the data term scales by n_outputs and the L2 term does not."""
    X, y = _data(3)
    params = dict(hidden_layer_sizes=(6,), solver="sgd", alpha=0.1, max_iter=1,
                  shuffle=False, batch_size=90, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = BPRegressor(**params).fit(X, y)
    # Recompute both terms at the initial weights that fit started from.
    fresh = BPRegressor(**{**params, "max_iter": 1})
    fresh._random_state = np.random.RandomState(0)
    units = [4, 6, 3]
    coefs = [fresh._init_coef(a, b, np.float64) for a, b in zip(units, units[1:])]
    a = X
    for i, (w, b) in enumerate(coefs):
        a = a @ w + b
        if i < len(coefs) - 1:
            a = np.maximum(a, 0)
    data_term = 0.5 * np.sum((a - y) ** 2) / X.shape[0]
    l2_term = 0.5 * 0.1 * sum(np.sum(w**2) for w, _ in coefs) / X.shape[0]
    assert_allclose(ours.loss_curve_[0], data_term + l2_term, rtol=1e-12)
