# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Same parameters and random_state as sklearn's MLPClassifier: the same model.

The oracle is the installed scikit-learn. Every activation x stochastic solver
x learning-rate schedule x early stopping x target type (binary, multiclass,
multilabel) x shuffle, through a plain fit, a warm-started second fit and
repeated partial_fit; and L-BFGS for every activation and target type.
"""

import itertools
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_classification, make_multilabel_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from fastbp import BPClassifier

RTOL = 1e-6
ATOL = 1e-9

ACTIVATIONS = ["identity", "logistic", "tanh", "relu"]
SOLVERS = ["sgd", "adam"]
SCHEDULES = ["constant", "invscaling", "adaptive"]
TARGETS = ["binary", "multiclass", "multilabel"]
MODES = ["fit", "warm_start", "partial_fit"]


def _data(target):
    if target == "multilabel":
        X, y = make_multilabel_classification(
            n_samples=90, n_features=4, n_classes=3, random_state=0
        )
    else:
        X, y = make_classification(
            n_samples=90, n_features=4, n_informative=3, n_redundant=0,
            n_classes=2 if target == "binary" else 3, random_state=0,
        )
        # String labels for the multiclass case: decoding is part of parity.
        if target == "multiclass":
            y = np.array(["ant", "bee", "cat"])[y]
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X, y


def _params(activation, solver, schedule, early_stopping, shuffle):
    return dict(
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
        alpha=1e-3,
        tol=1e-4,
        n_iter_no_change=3,
        random_state=0,
    )


def _classes(y):
    return np.arange(y.shape[1]) if y.ndim == 2 else np.unique(y)


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
            est.partial_fit(X, y, classes=_classes(y))
    return None


def assert_same_classifier(ours, theirs, X, compare_weights=True):
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.t_ == theirs.t_
    assert ours.n_layers_ == theirs.n_layers_
    assert ours.n_outputs_ == theirs.n_outputs_
    assert ours.out_activation_ == theirs.out_activation_
    assert_array_equal(ours.classes_, theirs.classes_)
    assert ours.classes_.dtype == theirs.classes_.dtype
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert a.shape == b.shape
        if compare_weights:
            assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    if compare_weights:
        assert_allclose(ours.predict_proba(X), theirs.predict_proba(X),
                        rtol=RTOL, atol=ATOL)
        assert_array_equal(ours.predict(X), theirs.predict(X))
    assert len(ours.loss_curve_) == len(theirs.loss_curve_)
    assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=RTOL)
    assert_allclose(ours.loss_, theirs.loss_, rtol=RTOL)
    if theirs.validation_scores_ is None:
        assert ours.validation_scores_ is None
        assert ours.best_validation_score_ is None
        assert_allclose(ours.best_loss_, theirs.best_loss_, rtol=RTOL)
    else:
        assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=RTOL)
        assert_allclose(ours.best_validation_score_, theirs.best_validation_score_,
                        rtol=RTOL)
        assert ours.best_loss_ is None and theirs.best_loss_ is None


CASES = list(itertools.product(ACTIVATIONS, SOLVERS, SCHEDULES, [False, True],
                               TARGETS, [True, False], MODES))


@pytest.mark.parametrize(
    "activation, solver, schedule, early_stopping, target, shuffle, mode", CASES
)
def test_parity_matrix(activation, solver, schedule, early_stopping, target,
                       shuffle, mode):
    X, y = _data(target)
    params = _params(activation, solver, schedule, early_stopping, shuffle)
    ours, theirs = BPClassifier(**params), MLPClassifier(**params)
    if mode == "partial_fit" and early_stopping:
        for est in (ours, theirs):
            with pytest.raises(ValueError, match="partial_fit does not support"):
                est.partial_fit(X, y, classes=_classes(y))
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = _run(ours, mode, X, y)
        _run(theirs, mode, X, y)
    second_fit_improved = True
    if mode == "warm_start" and early_stopping:
        second = ours.validation_scores_[-ours.n_iter_:]
        second_fit_improved = max(second) > max(ours.validation_scores_[:-ours.n_iter_])
    assert_same_classifier(ours, theirs, X, compare_weights=second_fit_improved)
    if not second_fit_improved:
        # sklearn bug (as for the regressor): a warm-started fit that never
        # beats the old best score trains sklearn's best weights in place and
        # returns its last epoch. fastbp returns the best weights.
        for ours_p, best in zip(ours.coefs_ + ours.intercepts_, start):
            assert_array_equal(ours_p, best)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_parity_lbfgs(activation, target):
    X, y = _data(target)
    params = dict(hidden_layer_sizes=(6,), activation=activation, solver="lbfgs",
                  max_iter=30, alpha=1e-3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = BPClassifier(**params).fit(X, y)
        theirs = MLPClassifier(**params).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_
    assert_array_equal(ours.classes_, theirs.classes_)
    assert_allclose(ours.loss_, theirs.loss_, rtol=RTOL)
    assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-5, atol=1e-8)
    assert_array_equal(ours.predict(X), theirs.predict(X))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parity_defaults_on_digits(dtype):
    """The defaults on real data (sklearn's digits), in both dtypes."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(dtype)
    params = dict(random_state=0, max_iter=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = BPClassifier(**params).fit(X, y)
        theirs = MLPClassifier(**params).fit(X, y)
    rtol = RTOL if dtype == np.float64 else 2e-3
    assert ours.coefs_[0].dtype == dtype
    assert ours.n_iter_ == theirs.n_iter_
    assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=rtol)
    assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=rtol,
                    atol=1e-9 if dtype == np.float64 else 1e-4)


def test_parity_with_sample_weight_full_batch():
    """Full-batch weighted training equals sklearn's (which normalises by the
    batch's weight sum: the same thing when the batch is the whole data)."""
    X, y = _data("multiclass")
    w = np.random.default_rng(0).uniform(0.2, 2.0, len(y))
    params = dict(hidden_layer_sizes=(5,), solver="sgd", batch_size=90, max_iter=10,
                  random_state=0, shuffle=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = BPClassifier(**params).fit(X, y, sample_weight=w)
        theirs = MLPClassifier(**params).fit(X, y, sample_weight=w)
    assert_same_classifier(ours, theirs, X)
