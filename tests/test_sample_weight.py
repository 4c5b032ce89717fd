# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""sample_weight: exact weighted semantics, errors, and metadata routing.

The semantics (full-batch weights are duplicated or dropped rows; weights of 1
are no weights, bitwise) hold for any network, so they run over the regressor
and every classifier target kind.
"""

import numpy as np
import pytest
import sklearn
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.model_selection import cross_validate
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conftest import N_SAMPLES
from fastbp import BPRegressor, _core

ignore_convergence = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning"
)
SOLVERS = ["lbfgs", "sgd", "adam"]


@pytest.fixture(scope="module")
def integer_weights():
    """Integer weights 0..3 for the shared datasets' rows, the first one 0."""
    w = np.random.default_rng(0).integers(0, 4, size=N_SAMPLES).astype(float)
    w[0] = 0.0
    return w


@pytest.fixture(scope="module")
def data(regression_data, integer_weights):
    return (*regression_data, integer_weights)


def _outputs(est, X):
    """What the network computes: predictions, or a classifier's probabilities."""
    return est.predict_proba(X) if hasattr(est, "predict_proba") else est.predict(X)


def _params(solver, n_rows, **extra):
    # Full batch: one batch holds every row, so duplication is exact.
    params = dict(solver=solver, hidden_layer_sizes=(6,), activation="tanh",
                  batch_size=max(n_rows, 1), shuffle=False, max_iter=15,
                  learning_rate_init=0.05, alpha=1e-3, random_state=0, tol=0.0,
                  n_iter_no_change=1000)
    params.update(extra)
    return params


@ignore_convergence
@pytest.mark.parametrize("solver", SOLVERS)
def test_integer_weights_equal_duplicated_rows(estimator_case, integer_weights, solver):
    case, w = estimator_case, integer_weights
    X, y = case.X, case.y
    reps = w.astype(int)
    X_rep, y_rep = np.repeat(X, reps, axis=0), np.repeat(y, reps, axis=0)
    weighted = case(**_params(solver, len(X_rep))).fit(X, y, sample_weight=w)
    repeated = case(**_params(solver, len(X_rep))).fit(X_rep, y_rep)
    assert_allclose(_outputs(weighted, X), _outputs(repeated, X), rtol=1e-9, atol=1e-10)
    assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-9)


@ignore_convergence
@pytest.mark.parametrize("solver", SOLVERS)
def test_zero_weights_equal_dropped_rows(estimator_case, solver):
    X, y = estimator_case.X, estimator_case.y
    w = np.ones(len(X))
    w[::3] = 0.0
    keep = w > 0
    n = int(keep.sum())
    weighted = estimator_case(**_params(solver, len(X))).fit(X, y, sample_weight=w)
    dropped = estimator_case(**_params(solver, n)).fit(X[keep], y[keep])
    assert_allclose(_outputs(weighted, X), _outputs(dropped, X), rtol=1e-9, atol=1e-10)


@ignore_convergence
@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("shuffle", [True, False])
def test_unit_weights_equal_no_weights_exactly(estimator_case, solver, shuffle):
    X, y = estimator_case.X, estimator_case.y
    params = _params(solver, 8, shuffle=shuffle)
    plain = estimator_case(**params).fit(X, y)
    ones = estimator_case(**params).fit(X, y, sample_weight=np.ones(len(X)))
    assert_allclose(_outputs(ones, X), _outputs(plain, X), rtol=0, atol=0)
    if estimator_case.is_classifier:
        assert_array_equal(ones.predict(X), plain.predict(X))
    assert ones.loss_curve_ == plain.loss_curve_


@ignore_convergence
@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("alpha", [0.0, 0.2])
def test_uniform_weights_equal_no_weights(data, solver, alpha):
    """Weights c on every row are c copies of the data: the L2 term, relative
    to the total weight, shrinks by c (exactly as duplicating would)."""
    X, y, _ = data
    c = 3.7
    params = _params(solver, 8, shuffle=True)
    plain = BPRegressor(**{**params, "alpha": alpha / c}).fit(X, y)
    scaled = BPRegressor(**{**params, "alpha": alpha}).fit(
        X, y, sample_weight=np.full(len(X), c))
    assert_allclose(scaled.predict(X), plain.predict(X), rtol=1e-8, atol=1e-9)


@ignore_convergence
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_full_batch_weighted_fit_reproduces_sklearn(data, solver):
    """With one batch, sklearn's per-batch normalisation is the exact one."""
    X, y, w = data
    params = _params(solver, len(X))
    ours = BPRegressor(**params).fit(X, y, sample_weight=w)
    theirs = MLPRegressor(**params).fit(X, y, sample_weight=w)
    assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-6)
    assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-6)


def test_minibatch_gradient_is_scaled_by_the_mean_weight(data):
    """One epoch of plain SGD, checked against the weighted formula by hand."""
    X, y, w = data
    lr, batch = 0.1, 16
    est = BPRegressor(solver="sgd", hidden_layer_sizes=(), momentum=0.0, alpha=0.0,
                      batch_size=batch, shuffle=False, max_iter=1,
                      learning_rate_init=lr, random_state=0)
    est.partial_fit(X, y, sample_weight=w)
    coef0 = BPRegressor(solver="sgd", hidden_layer_sizes=(), random_state=0)
    coef0._random_state = np.random.RandomState(0)
    W, b = coef0._init_coef(X.shape[1], 1, np.float64)
    W, b = W.copy(), b.copy()
    w_mean = w.mean()
    for start in range(0, len(X), batch):
        sl = slice(start, start + batch)
        delta = (X[sl] @ W + b - y[sl, None]) * w[sl, None]
        scale = len(X[sl]) * w_mean
        W = W - lr * (X[sl].T @ delta) / scale
        b = b - lr * delta.sum(0) / scale
    assert_allclose(est.coefs_[0], W, rtol=1e-12)
    assert_allclose(est.intercepts_[0], b, rtol=1e-12)


@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_weighted_gradient_matches_finite_differences(data, loss, alpha):
    X, y, w = data
    y = np.abs(y) if loss == "poisson" else y
    rng = np.random.default_rng(1)
    units = [X.shape[1], 5, 1]
    coefs = [rng.normal(scale=0.5, size=(a, b)) for a, b in zip(units, units[1:])]
    intercepts = [rng.normal(scale=0.5, size=b) for b in units[1:]]
    out_act = _core.Activation.EXP if loss == "poisson" else _core.Activation.IDENTITY
    loss_id = _core.Loss.POISSON if loss == "poisson" else _core.Loss.SQUARED_ERROR
    trainer = _core.Trainer(coefs, intercepts, [], 7, _core.Activation.TANH, out_act,
                            loss_id, _core.Solver.SGD, alpha=alpha)
    params = coefs + intercepts
    Y = np.ascontiguousarray(y.reshape(-1, 1))
    grad = np.empty(sum(p.size for p in params))

    def unpack(theta):
        offset = 0
        for p in params:
            p.ravel()[:] = theta[offset:offset + p.size]
            offset += p.size

    def f(theta):
        unpack(theta)
        return _core.loss_grad(trainer, X, Y, grad, w)

    def g(theta):
        unpack(theta)
        _core.loss_grad(trainer, X, Y, grad, w)
        return grad.copy()

    theta0 = np.concatenate([p.ravel() for p in params])
    analytic = g(theta0)
    step = 1e-5
    central = np.empty_like(theta0)
    for k in range(theta0.size):
        e = np.zeros_like(theta0)
        e[k] = step
        central[k] = (f(theta0 + e) - f(theta0 - e)) / (2 * step)
    assert_allclose(analytic, central, rtol=1e-6, atol=1e-8)
    # And the weighted loss is the weighted mean of the per-row losses.
    unpack(theta0)
    total = _core.loss_grad(trainer, X, Y, grad, w)
    rows = [_core.loss_grad(trainer, X[i:i + 1], Y[i:i + 1], grad.copy() * 0) for i in
            range(len(X))]
    l2 = 0.5 * alpha * sum(np.sum(c**2) for c in coefs)
    per_row = np.array(rows) - l2  # each single-row loss carries l2 / 1
    assert_allclose(total, (w @ per_row + l2) / w.sum(), rtol=1e-10)


@pytest.mark.parametrize(
    "weights, match",
    [
        (lambda n: -np.ones(n), "Negative values in data passed to"),
        (lambda n: np.full(n, np.nan), "Input sample_weight contains NaN"),
        (lambda n: np.ones(n + 1), "sample_weight.shape == "),
        (lambda n: np.zeros(n), "Sample weights must contain at least one non-zero"),
    ],
)
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_bad_weights_raise(estimator_case, weights, match, method):
    X, y = estimator_case.X, estimator_case.y
    est = estimator_case(solver="sgd", max_iter=2)
    kwargs = estimator_case.partial_fit_kwargs if method == "partial_fit" else {}
    with pytest.raises(ValueError, match=match):
        getattr(est, method)(X, y, sample_weight=weights(len(X)), **kwargs)
    assert not hasattr(est, "coefs_")
    assert not hasattr(est, "classes_")


@ignore_convergence
def test_sample_weight_routed_through_pipeline_and_cross_validate(data):
    X, y, w = data
    with sklearn.config_context(enable_metadata_routing=True):
        est = BPRegressor(**_params("lbfgs", len(X))).set_fit_request(sample_weight=True)
        est.set_score_request(sample_weight=True)
        pipe = make_pipeline(StandardScaler().set_fit_request(sample_weight=False), est)
        pipe.fit(X, y, sample_weight=w)
        direct = BPRegressor(**_params("lbfgs", len(X))).fit(
            StandardScaler().fit_transform(X), y, sample_weight=w)
        assert_allclose(pipe[-1].coefs_[0], direct.coefs_[0], rtol=1e-10)
        unweighted = make_pipeline(StandardScaler(), BPRegressor(**_params("lbfgs", len(X))))
        unweighted.fit(X, y)
        assert not np.allclose(pipe[-1].coefs_[0], unweighted[-1].coefs_[0])
        scores = cross_validate(pipe, X, y, cv=3, params={"sample_weight": w})
        assert np.isfinite(scores["test_score"]).all()
