# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""solver='lbfgs': parity with sklearn, float32 kept, curves and verbose output.

Parity and the multi-output objective are the regressor's; the rest holds for
any network and runs over the regressor and every classifier target kind.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.datasets import make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor

from fastbp import BPClassifier, BPRegressor

ignore_convergence = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning"
)


@pytest.fixture(scope="module")
def data():
    """Two standardized regression targets (the parity tests' own data)."""
    X, y = make_regression(n_samples=150, n_features=5, n_targets=2, noise=1.0,
                           random_state=0)
    X = (X - X.mean(0)) / X.std(0)
    return X, y / y.std(0)


@ignore_convergence
@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
def test_lbfgs_reproduces_sklearn(data, activation):
    """Single output only: with several, sklearn's lbfgs objective is the mean
    over outputs while its gradient is of the sum (scikit-learn #8349), so the
    line searches see an inconsistent function and the paths part."""
    X, y = data
    y = y[:, 0]
    params = dict(solver="lbfgs", hidden_layer_sizes=(8,), activation=activation,
                  alpha=1e-3, max_iter=30, random_state=0)
    ours = BPRegressor(**params).fit(X, y)
    theirs = MLPRegressor(**params).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_
    assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-6, atol=1e-9)
    assert_allclose(ours.loss_, theirs.loss_, rtol=1e-6)


@ignore_convergence
def test_lbfgs_multi_output_objective_is_consistent(data):
    """Our reported loss is the objective whose gradient L-BFGS follows: the
    squared error summed over outputs, so it never rises between iterations."""
    X, y = data
    alpha = 1e-3
    params = dict(solver="lbfgs", hidden_layer_sizes=(8,), activation="tanh",
                  alpha=alpha, max_iter=40, random_state=0)
    ours = BPRegressor(**params).fit(X, y)
    assert np.all(np.diff(ours.loss_curve_) <= 1e-12)
    l2 = 0.5 * alpha * sum(np.sum(c**2) for c in ours.coefs_) / len(X)
    summed = 0.5 * np.sum((ours.predict(X) - y) ** 2) / len(X) + l2
    assert_allclose(ours.loss_, summed, rtol=1e-10)


def _outputs(est, X):
    """What the network computes: predictions, or a classifier's probabilities."""
    return est.predict_proba(X) if hasattr(est, "predict_proba") else est.predict(X)


@ignore_convergence
def test_lbfgs_fills_loss_curve_and_prints(estimator_case, capsys):
    X, y = estimator_case.X, estimator_case.y
    est = estimator_case(solver="lbfgs", hidden_layer_sizes=(6,), max_iter=12,
                         verbose=True, random_state=0).fit(X, y)
    assert len(est.loss_curve_) == est.n_iter_ == 12
    assert est.loss_curve_[-1] <= est.loss_curve_[0]
    assert est.best_loss_ == min(est.loss_curve_)
    out = capsys.readouterr().out
    assert out.count("Iteration ") == 12
    assert "Iteration 12, loss = " in out


@ignore_convergence
def test_lbfgs_float32_stays_float32(estimator_case):
    X, y = estimator_case.X, estimator_case.y
    X32 = X.astype(np.float32)
    # A regressor's targets follow X's dtype; a classifier's labels stay labels.
    y32 = y if estimator_case.is_classifier else y.astype(np.float32)
    params = dict(solver="lbfgs", hidden_layer_sizes=(6,), max_iter=20, random_state=0)
    est32 = estimator_case(**params).fit(X32, y32)
    est64 = estimator_case(**params).fit(X, y)
    assert all(p.dtype == np.float32 for p in est32.coefs_ + est32.intercepts_)
    assert est32.predict(X32).dtype == (y.dtype if estimator_case.is_classifier
                                        else np.float32)
    assert _outputs(est32, X32).dtype == np.float32
    assert _outputs(est64, X).dtype == np.float64
    assert_allclose(_outputs(est32, X32), _outputs(est64, X), rtol=1e-2, atol=1e-2)


def test_lbfgs_max_iter_and_max_fun_bound_the_work(estimator_case):
    X, y = estimator_case.X, estimator_case.y
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        est = estimator_case(solver="lbfgs", max_iter=3, random_state=0).fit(X, y)
    assert est.n_iter_ == 3
    with pytest.warns(ConvergenceWarning):
        est = estimator_case(solver="lbfgs", max_fun=4, random_state=0).fit(X, y)
    assert est.n_iter_ <= 4


@ignore_convergence
def test_lbfgs_warm_start_continues(estimator_case):
    X, y = estimator_case.X, estimator_case.y
    est = estimator_case(solver="lbfgs", hidden_layer_sizes=(6,), max_iter=5,
                         random_state=0).fit(X, y)
    first = est.loss_
    est.set_params(warm_start=True).fit(X, y)
    assert len(est.loss_curve_) == 10
    assert est.loss_ < first


@pytest.mark.parametrize("Estimator", [BPRegressor, BPClassifier])
def test_lbfgs_has_no_partial_fit(Estimator):
    assert not hasattr(Estimator(solver="lbfgs"), "partial_fit")


@ignore_convergence
def test_lbfgs_stopped_by_a_callback(estimator_case):
    """A callback that asks to stop ends L-BFGS after that iteration."""
    pytest.importorskip("sklearn.callback")
    from sklearn.callback import FitCallback  # noqa: F401

    class StopAfter:
        def __init__(self, n):
            self.n = n

        def setup(self, estimator, context):
            pass

        def on_fit_task_begin(self, estimator, context, **kwargs):
            pass

        def on_fit_task_end(self, estimator, context, **kwargs):
            return estimator.n_iter_ >= self.n

        def teardown(self, estimator, context):
            pass

    X, y = estimator_case.X, estimator_case.y
    est = estimator_case(solver="lbfgs", max_iter=50, random_state=0)
    est.set_callbacks(StopAfter(4))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est.fit(X, y)
    assert est.n_iter_ == 4
