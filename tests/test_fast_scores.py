# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""The estimators' ``score`` skips scikit-learn's target checks for plain
arrays; the value must be scikit-learn's to the last bit, and anything not
plain must still go through scikit-learn (its errors and warnings)."""

import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, r2_score

from fastbp import BPClassifier, BPRegressor
from fastbp._base import BaseBP
from fastbp._regressor import _plain_r2

pytestmark = pytest.mark.filterwarnings(
    "ignore:overflow encountered:RuntimeWarning",
    "ignore:invalid value encountered:RuntimeWarning")


def _r2_cases():
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        for shape in [(2,), (7,), (300,), (2, 1), (50, 3), (9, 2)]:
            y = rng.standard_normal(shape).astype(dtype)
            yield y, (y + 0.3 * rng.standard_normal(shape)).astype(dtype)
            yield y, y.copy()  # a perfect prediction
            const = np.full(shape, 1.5, dtype=dtype)
            yield const, (const + rng.standard_normal(shape)).astype(dtype)
            yield const, const.copy()
            big = (y * 1e30).astype(dtype)
            yield big, (big * 1.01).astype(dtype)
        # Columns of a 2-D target that are constant, perfect and neither.
        y = rng.standard_normal((40, 3)).astype(dtype)
        y[:, 0] = 2.0
        p = y + rng.standard_normal(y.shape).astype(dtype)
        p[:, 1] = y[:, 1]
        yield y, p


@pytest.mark.parametrize("case", list(range(len(list(_r2_cases())))))
def test_plain_r2_is_scikit_learns_to_the_bit(case):
    y, p = list(_r2_cases())[case]
    got = _plain_r2(y, p)
    assert got is not None
    assert isinstance(got, float)
    assert got == r2_score(y, p) or (np.isnan(got) and np.isnan(r2_score(y, p)))


@pytest.mark.parametrize("y, p", [
    (np.array([1.0]), np.array([1.0])),                        # one row
    (np.array([1.0, np.nan]), np.array([1.0, 2.0])),           # not finite
    (np.array([1.0, 2.0]), np.array([1.0, 2.0], np.float32)),  # mixed dtypes
    (np.array([1, 2]), np.array([1.0, 2.0])),                  # integer target
    (np.arange(6.0).reshape(3, 2)[:, ::-1], np.ones((3, 2))),  # not contiguous
    ([1.0, 2.0], np.array([1.0, 2.0])),                        # a list
    (np.ones(3), np.ones((3, 1))),                             # shapes differ
])
def test_plain_r2_leaves_the_rest_to_scikit_learn(y, p):
    assert _plain_r2(y, p) is None


def test_regressor_score_matches_r2_score_and_keeps_its_errors():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((60, 4))
    y = X @ rng.standard_normal(4)
    est = BPRegressor(hidden_layer_sizes=(5,), max_iter=30, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    assert est.score(X, y) == r2_score(y, est.predict(X))
    assert est.score(X, list(y)) == r2_score(y, est.predict(X))
    with pytest.raises(ValueError, match="NaN"):
        est.score(X, np.where(np.arange(60) == 3, np.nan, y))
    with pytest.warns(Warning, match="less than two samples"):
        assert np.isnan(est.score(X[:1], y[:1]))


@pytest.mark.parametrize("labels", [
    np.array([0, 1]), np.array([3, 7, 9]), np.array([False, True]),
    np.array(["cat", "dog", "emu"]), np.array([0.0, 1.0]),
    np.array(["a", "b"], dtype=object),
])
def test_classifier_score_matches_accuracy_score(labels):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((80, 3))
    y = labels[(X[:, 0] > 0).astype(int) % len(labels)]
    y[::7] = labels[-1]
    est = BPClassifier(hidden_layer_sizes=(4,), max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    pred = est.predict(X)
    assert est.score(X, y) == accuracy_score(y, pred)
    assert est.score(X, list(y)) == accuracy_score(y, pred)
    w = rng.uniform(0.5, 2.0, 80)
    assert est.score(X, y, sample_weight=w) == accuracy_score(y, pred, sample_weight=w)


def test_classifier_score_keeps_scikit_learns_target_errors():
    X = np.random.default_rng(3).standard_normal((30, 2))
    y = np.array([0, 1] * 15)
    est = BPClassifier(hidden_layer_sizes=(3,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    with pytest.raises(ValueError, match="continuous"):
        est.score(X, np.linspace(0, 1, 30))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        est.score(X, y[:-1])


def test_parameter_names_are_read_once_per_class_and_init():
    names = BPRegressor._get_param_names()
    assert names == sorted(BPRegressor().get_params())
    assert BPRegressor._get_param_names() is not names  # a fresh list each time
    assert "hidden_layer_sizes" in names and "classes" not in names

    class Narrow(BPRegressor):
        def __init__(self, hidden_layer_sizes=(3,), extra=1):
            super().__init__(hidden_layer_sizes=hidden_layer_sizes)
            self.extra = extra

    assert Narrow._get_param_names() == ["extra", "hidden_layer_sizes"]
    assert BPRegressor._get_param_names() == names
    assert issubclass(Narrow, BaseBP)
