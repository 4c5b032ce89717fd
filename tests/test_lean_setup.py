# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""The fast set-up of a fit: each shortcut against the general path it skips.

- parameter validation is cached per setting: a setting that fails still
  fails every time, and a cached one is one that passed;
- plain float arrays skip ``validate_data``: the same arrays, the same
  ``n_features_in_`` and ``feature_names_in_``, the same errors otherwise;
- integer, boolean and string labels skip scikit-learn's label scans: the
  same classes, binarizer, encoded target and errors as the general path.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import LabelBinarizer

from fastbp import BPClassifier, BPRegressor, _base, _classifier

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning"
)


def test_a_bad_setting_fails_every_time():
    X, y = np.zeros((4, 2)), np.arange(4.0)
    for _ in range(3):
        with pytest.raises(ValueError, match="alpha"):
            BPRegressor(alpha=-1.0).fit(X, y)
    # A cached good setting does not hide a bad one that differs in type only.
    BPRegressor(max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="max_iter"):
        BPRegressor(max_iter=1.0).fit(X, y)
    with pytest.raises((ValueError, TypeError)):
        BPRegressor(hidden_layer_sizes=[0]).fit(X, y)


def test_settings_are_validated_once(monkeypatch):
    seen = []
    real = _base.BaseEstimator._validate_params

    def counting(self):
        seen.append(self.get_params()["alpha"])
        return real(self)

    monkeypatch.setattr(_base.BaseEstimator, "_validate_params", counting)
    monkeypatch.setattr(_base, "_VALID_PARAMS", {})
    X, y = np.random.default_rng(0).standard_normal((20, 3)), np.arange(20.0)
    for alpha in (0.5, 0.5, 0.25, 0.5):
        BPRegressor(alpha=alpha, max_iter=1, hidden_layer_sizes=(2,)).fit(X, y)
    assert seen == [0.5, 0.25]
    # Unhashable values are validated every time.
    for _ in range(2):
        BPRegressor(hidden_layer_sizes=[2], max_iter=1).fit(X, y)
    assert len(seen) == 4


def _force_general(m):
    """Make every fit take scikit-learn's validation and label handling."""

    def general(self, X, y, reset, y_kinds, **check_params):
        return _base.validate_data(self, X, y, reset=reset, **check_params)

    m.setattr(_base.BaseBP, "_validate_fit_data", general)
    m.setattr(_classifier, "_plain_labels", lambda y: None)


def _outcome(call):
    """What a call returns or raises, comparably."""
    try:
        return ("ok", call())
    except Exception as exc:  # noqa: BLE001 - the exception is the outcome
        return (type(exc), str(exc))


def _validated(est, X, y, incremental=False, reset=True, **kw):
    X2, Y = est._validate_input(X, y, incremental, reset, **kw)
    binarizer = getattr(est, "_label_binarizer", None)
    state = None if binarizer is None else (
        binarizer.y_type_, binarizer.sparse_input_, list(binarizer.classes_),
        binarizer.classes_.dtype)
    return (X2 is X, X2.dtype, Y.dtype, Y.tolist(), est.n_features_in_,
            hasattr(est, "feature_names_in_"), state)


LABELS = {
    "int binary": np.array([0, 1] * 6),
    "int multiclass": np.array([3, 1, 2, 7] * 3, dtype=np.int32),
    "uint8": np.array([2, 9, 4] * 4, dtype=np.uint8),
    "bool": np.array([True, False, False] * 4),
    "strings": np.array(["b", "a", "cc"] * 4),
    "string binary": np.array(["yes", "no"] * 6),
    "one class": np.full(12, 4),
    "one string": np.full(12, "x"),
    "float labels": np.array([0.0, 1.0, 2.0] * 4),
    "column": np.array([[1], [2], [3]] * 4),
    "multilabel": np.array([[1, 0], [0, 1], [1, 1]] * 4),
    "nan": np.array([0.0, np.nan, 1.0] * 4),
    "continuous": np.linspace(0, 1, 12),
    "objects": np.array(["a", "b", 3] * 4, dtype=object),
}
X_PLAIN = np.random.default_rng(1).standard_normal((12, 3))


@pytest.mark.parametrize("name", list(LABELS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_first_fit_input_is_the_general_paths(monkeypatch, name, dtype):
    y = LABELS[name]
    X = X_PLAIN.astype(dtype)
    fast = _outcome(lambda: _validated(BPClassifier(), X, y))
    with monkeypatch.context() as m:
        _force_general(m)
        general = _outcome(lambda: _validated(BPClassifier(), X, y))
    # The fast path hands X on as it is; validate_data may or may not.
    assert fast[0] == general[0]
    if fast[0] == "ok":
        assert fast[1][1:] == general[1][1:]
    else:
        assert fast == general


LATER = {
    "same classes": np.array([1, 2, 3] * 4),
    "subset": np.array([1, 3] * 6),
    "one of them": np.full(12, 2),
    "unseen": np.array([1, 2, 5] * 4),
    "strings for ints": np.array(["1", "2", "3"] * 4),
    "multilabel": np.array([[1, 0], [0, 1], [1, 1]] * 4),
}


@pytest.mark.parametrize("name", list(LATER))
@pytest.mark.parametrize("mode", ["warm_start", "partial_fit", "partial_fit_first"])
def test_later_calls_check_labels_as_the_general_path(monkeypatch, name, mode):
    y0 = np.array([1, 2, 3] * 4)
    y = LATER[name]

    def run():
        est = BPClassifier(hidden_layer_sizes=(2,), max_iter=1, random_state=0)
        if mode == "partial_fit_first":
            return _validated(est, X_PLAIN, y, incremental=True, reset=True,
                              classes=np.array([3, 2, 1]))
        est.fit(X_PLAIN, y0)
        if mode == "warm_start":
            est.set_params(warm_start=True)
            return _validated(est, X_PLAIN, y, reset=False)
        return _validated(est, X_PLAIN, y, incremental=True, reset=False)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = _outcome(run)
        with monkeypatch.context() as m:
            _force_general(m)
            general = _outcome(run)
    assert fast[0] == general[0]
    if fast[0] == "ok":
        assert fast[1][1:] == general[1][1:]
    else:
        assert fast == general


def test_classes_that_do_not_sort_like_the_labels_use_the_binarizer():
    # A loaded model's classes_ need not be sorted; the encoding still maps
    # each label to its own column.
    est = BPClassifier(hidden_layer_sizes=(2,), max_iter=1, random_state=0)
    est.fit(X_PLAIN, np.array([1, 2, 3] * 4))
    est.classes_ = np.array([3, 1, 2])
    binarizer = LabelBinarizer()
    binarizer.classes_, binarizer.y_type_, binarizer.sparse_input_ = (
        est.classes_, "multiclass", False)
    est._label_binarizer = binarizer
    est.set_params(warm_start=True)
    y = np.array([1, 2, 3, 3])
    _, Y = est._validate_input(X_PLAIN[:4], y, False, False)
    np.testing.assert_array_equal(Y, binarizer.transform(y))


@pytest.mark.parametrize("case", ["names then plain", "plain then fewer columns",
                                  "nan", "inf y", "fortran", "int X", "3-d y"])
def test_regressor_input_is_the_general_paths(monkeypatch, case):
    X = X_PLAIN.copy()
    y = np.arange(12.0)
    est = BPRegressor(hidden_layer_sizes=(2,), max_iter=1, random_state=0)
    first, later = None, (X, y)
    if case == "names then plain":
        first = (pd.DataFrame(X, columns=list("abc")), y)
    elif case == "plain then fewer columns":
        first, later = (X, y), (X[:, :2].copy(), y)
    elif case == "nan":
        X[3, 1] = np.nan
    elif case == "inf y":
        y[2] = np.inf
    elif case == "fortran":
        later = (np.asfortranarray(X), y)
    elif case == "int X":
        later = (X.astype(int), y)
    elif case == "3-d y":
        later = (X, y.reshape(12, 1, 1))

    def run():
        model = BPRegressor(**est.get_params())
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            if first is not None:
                model.fit(*first)
            out = model._validate_input(*later, False, first is None)
        return (out[0].dtype, out[0].tolist(), out[1].tolist(), model.n_features_in_,
                list(getattr(model, "feature_names_in_", [])),
                sorted(str(w.message) for w in record))

    fast = _outcome(run)
    with monkeypatch.context() as m:
        _force_general(m)
        general = _outcome(run)
    assert fast == general
