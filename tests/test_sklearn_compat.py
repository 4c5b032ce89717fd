# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""BPRegressor as a scikit-learn citizen: estimator checks, meta-estimators,
cloning and persistence."""

import pickle

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import make_regression
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastbp import BPRegressor

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning"
)


@pytest.fixture
def data():
    X, y = make_regression(
        n_samples=120, n_features=4, n_informative=4, noise=1.0, random_state=0
    )
    return X, y / np.std(y)


def _assert_same_params(a, b):
    assert len(a.coefs_) == len(b.coefs_)
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(p, q)


# --------------------------------------------------------------- estimator checks


@parametrize_with_checks(
    [
        BPRegressor(max_iter=100, random_state=0),
        BPRegressor(
            solver="sgd", hidden_layer_sizes=(20,), max_iter=100, random_state=0
        ),
    ]
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_tags_say_multi_output():
    tags = BPRegressor().__sklearn_tags__()
    assert tags.target_tags.multi_output is True
    assert tags.target_tags.single_output is True
    assert tags.target_tags.required is True
    assert tags.estimator_type == "regressor"
    assert tags.input_tags.sparse is True
    assert tags.input_tags.allow_nan is False
    # sklearn's own tag is the known bug we fix.
    assert MLPRegressor().__sklearn_tags__().target_tags.multi_output is False


def test_get_params_match_mlpregressor():
    # A drop-in replacement: every MLPRegressor parameter with the same default,
    # in the same order; fastbp's own parameters come after them, keyword-only.
    import inspect

    theirs = MLPRegressor().get_params()
    ours = BPRegressor().get_params()
    assert {k: ours[k] for k in theirs} == theirs
    names = list(inspect.signature(BPRegressor).parameters)
    assert names[:len(theirs)] == list(inspect.signature(MLPRegressor).parameters)
    for name in names[len(theirs):]:
        assert inspect.signature(BPRegressor).parameters[name].kind == (
            inspect.Parameter.KEYWORD_ONLY)


# ------------------------------------------------------------- meta-estimators


def test_pipeline(data):
    X, y = data
    X = 100.0 * X + 50.0
    model = BPRegressor(
        hidden_layer_sizes=(8,), learning_rate_init=0.01, max_iter=100, random_state=0
    )
    pipe = make_pipeline(StandardScaler(), model).fit(X, y)
    scaler = StandardScaler().fit(X)
    direct = clone(model).fit(scaler.transform(X), y)
    np.testing.assert_allclose(pipe.predict(X), direct.predict(scaler.transform(X)))
    assert pipe.score(X, y) > 0.9


def test_grid_search(data):
    X, y = data
    grid = GridSearchCV(
        BPRegressor(max_iter=30, random_state=0),
        {"hidden_layer_sizes": [(3,), (8,)], "alpha": [1e-4, 1e-2]},
        cv=3,
    ).fit(X, y)
    assert len(grid.cv_results_["params"]) == 4
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()
    assert isinstance(grid.best_estimator_, BPRegressor)
    best = grid.best_params_
    assert grid.best_estimator_.coefs_[0].shape == (X.shape[1],) + best[
        "hidden_layer_sizes"
    ]
    refit = BPRegressor(max_iter=30, random_state=0, **best).fit(X, y)
    np.testing.assert_array_equal(grid.predict(X), refit.predict(X))


def test_clone(data):
    X, y = data
    est = BPRegressor(hidden_layer_sizes=(4,), alpha=0.01, max_iter=20, random_state=0)
    est.fit(X, y)
    cloned = clone(est)
    assert cloned.get_params() == est.get_params()
    assert not hasattr(cloned, "coefs_")
    cloned.fit(X, y)
    # Same parameters and seed: the same weights, and the original is untouched.
    _assert_same_params(cloned, est)
    assert cloned.coefs_[0] is not est.coefs_[0]


def test_cross_validate(data):
    X, y = data
    result = cross_validate(
        BPRegressor(
            hidden_layer_sizes=(8,),
            learning_rate_init=0.01,
            max_iter=100,
            random_state=0,
        ),
        X,
        y,
        cv=3,
        return_estimator=True,
    )
    assert result["test_score"].shape == (3,)
    assert np.all(result["test_score"] > 0.5)
    assert len({id(e) for e in result["estimator"]}) == 3
    assert all(e.n_iter_ >= 1 for e in result["estimator"])


def test_transformed_target_regressor(data):
    X, y = data
    y = 1000.0 * y + 5000.0
    model = BPRegressor(
        hidden_layer_sizes=(8,), learning_rate_init=0.01, max_iter=100, random_state=0
    )
    ttr = TransformedTargetRegressor(regressor=model, transformer=StandardScaler())
    ttr.fit(X, y)
    scaler = StandardScaler().fit(y.reshape(-1, 1))
    inner = clone(model).fit(X, scaler.transform(y.reshape(-1, 1)).ravel())
    expected = scaler.inverse_transform(inner.predict(X).reshape(-1, 1)).ravel()
    np.testing.assert_allclose(ttr.predict(X), expected, rtol=1e-12)
    assert ttr.score(X, y) > 0.9


# ------------------------------------------------------------------ persistence


def _pickle_round_trip(est, tmp_path):
    return pickle.loads(pickle.dumps(est))


def _joblib_round_trip(est, tmp_path):
    path = tmp_path / "model.joblib"
    joblib.dump(est, path)
    return joblib.load(path)


def _joblib_mmap_round_trip(est, tmp_path):
    path = tmp_path / "model.joblib"
    joblib.dump(est, path)
    loaded = joblib.load(path, mmap_mode="r")
    # The point of this case: the fitted arrays come back as read-only memmaps.
    assert isinstance(loaded.coefs_[0], np.memmap)
    assert not loaded.coefs_[0].flags.writeable
    return loaded


@pytest.mark.parametrize(
    "round_trip",
    [_pickle_round_trip, _joblib_round_trip, _joblib_mmap_round_trip],
    ids=["pickle", "joblib", "joblib-mmap"],
)
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_persistence_round_trip_then_partial_fit(round_trip, solver, data, tmp_path):
    X, y = data
    est = BPRegressor(hidden_layer_sizes=(6, 4), solver=solver, max_iter=15,
                      random_state=0).fit(X, y)
    pred = est.predict(X)

    loaded = round_trip(est, tmp_path)
    assert type(loaded) is BPRegressor
    assert loaded.get_params() == est.get_params()
    np.testing.assert_array_equal(loaded.predict(X), pred)
    assert loaded.n_iter_ == est.n_iter_ and loaded.t_ == est.t_
    assert loaded.loss_curve_ == est.loss_curve_

    loaded.partial_fit(X, y)
    est.partial_fit(X, y)
    # partial_fit works after loading and moves the model ...
    assert not np.array_equal(loaded.predict(X), pred)
    # ... exactly as it moves the original: the optimizer state was carried over.
    _assert_same_params(loaded, est)
    assert loaded.t_ == est.t_
    assert loaded.loss_ == est.loss_

    # And they stay in step over a second call.
    loaded.partial_fit(X, y)
    est.partial_fit(X, y)
    _assert_same_params(loaded, est)


def test_round_trip_does_not_share_memory(data, tmp_path):
    X, y = data
    est = BPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X, y)
    loaded = pickle.loads(pickle.dumps(est))
    before = [c.copy() for c in est.coefs_]
    loaded.partial_fit(X, y)
    for c, b in zip(est.coefs_, before):
        np.testing.assert_array_equal(c, b)


def test_mmap_loaded_model_keeps_file_read_only(data, tmp_path):
    X, y = data
    est = BPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X, y)
    path = tmp_path / "model.joblib"
    joblib.dump(est, path)
    loaded = joblib.load(path, mmap_mode="r")
    loaded.partial_fit(X, y)
    # Training the memory-mapped model must not write through to the file.
    reloaded = joblib.load(path)
    _assert_same_params(reloaded, est)


def test_partial_fit_unavailable_for_lbfgs():
    assert not hasattr(BPRegressor(solver="lbfgs"), "partial_fit")
    assert hasattr(BPRegressor(solver="sgd"), "partial_fit")
    assert hasattr(BPRegressor(solver="adam"), "partial_fit")
    with pytest.raises(AttributeError, match="partial_fit"):
        BPRegressor(solver="lbfgs").partial_fit
