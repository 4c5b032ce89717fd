# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""loss='poisson': exp output, half Poisson deviance, for every solver."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.linear_model import PoissonRegressor
from sklearn.neural_network import MLPRegressor

from fastbp import BPRegressor

ignore_convergence = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning"
)


@pytest.fixture(scope="module")
def counts():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = rng.poisson(np.exp(X @ np.array([0.3, -0.2, 0.1]) + 0.5)).astype(float)
    return X, y


def test_no_hidden_layer_lbfgs_is_poisson_glm(counts):
    X, y = counts
    ours = BPRegressor(loss="poisson", solver="lbfgs", hidden_layer_sizes=(),
                       alpha=0.0, tol=1e-10, max_iter=1000, random_state=0).fit(X, y)
    glm = PoissonRegressor(alpha=0.0, tol=1e-10, max_iter=1000).fit(X, y)
    assert ours.out_activation_ == "exp"
    assert_allclose(ours.predict(X), glm.predict(X), rtol=1e-4)
    assert_allclose(ours.coefs_[0].ravel(), glm.coef_, rtol=1e-4, atol=1e-5)


@ignore_convergence
@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("shuffle", [True, False])
def test_poisson_stochastic_reproduces_sklearn(counts, solver, shuffle):
    X, y = counts
    params = dict(loss="poisson", solver=solver, hidden_layer_sizes=(5,),
                  activation="tanh", learning_rate_init=0.01, batch_size=32,
                  max_iter=8, shuffle=shuffle, random_state=0)
    ours = BPRegressor(**params).fit(X, y)
    theirs = MLPRegressor(**params).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_
    assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-6)
    assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-6)


@ignore_convergence
@pytest.mark.parametrize("solver", ["lbfgs", "sgd", "adam"])
def test_poisson_predictions_are_positive_and_fit_the_mean(counts, solver):
    X, y = counts
    est = BPRegressor(loss="poisson", solver=solver, hidden_layer_sizes=(4,),
                      learning_rate_init=0.01, max_iter=100, random_state=0).fit(X, y)
    pred = est.predict(X)
    assert (pred > 0).all()
    # The canonical link balances the predictions with the data on average.
    assert_allclose(pred.mean(), y.mean(), rtol=0.15)
