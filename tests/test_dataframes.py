# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""pandas and polars DataFrames in fit and predict (features, targets, string
and categorical labels), and the notebook HTML repr."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning

from fastbp import BPClassifier, BPRegressor

COLUMNS = ["age", "income", "score"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 3))
    Y = np.column_stack([X @ [1.0, 0.5, -1.0], np.tanh(X[:, 0])])
    return X, Y


def _fit(X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = BPRegressor(hidden_layer_sizes=(5,), max_iter=10, random_state=0)
        return est.fit(X, y)


def test_pandas_in_fit_and_predict(data):
    X, Y = data
    frame = pd.DataFrame(X, columns=COLUMNS)
    est = _fit(frame, pd.Series(Y[:, 0], name="target"))
    assert list(est.feature_names_in_) == COLUMNS
    reference = _fit(X, Y[:, 0])
    pred = est.predict(frame)
    assert isinstance(pred, np.ndarray) and pred.shape == (100,)
    np.testing.assert_array_equal(pred, reference.predict(X))

    with pytest.raises(ValueError, match="feature names"):
        est.predict(frame[["income", "age", "score"]])
    with pytest.raises(ValueError, match="feature names"):
        est.predict(frame.rename(columns={"age": "years"}))
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        est.predict(X)


def test_pandas_multi_output_and_float32(data):
    X, Y = data
    frame = pd.DataFrame(X, columns=COLUMNS).astype("float32")
    targets = pd.DataFrame(Y, columns=["a", "b"]).astype("float32")
    est = _fit(frame, targets)
    assert est.n_outputs_ == 2 and est.coefs_[0].dtype == np.float32
    pred = est.predict(frame)
    assert pred.shape == (100, 2) and pred.dtype == np.float32


def test_polars_in_fit_and_predict(data):
    pl = pytest.importorskip("polars")
    X, Y = data
    frame = pl.DataFrame({name: X[:, i] for i, name in enumerate(COLUMNS)})
    est = _fit(frame, pl.Series("target", Y[:, 0]))
    assert list(est.feature_names_in_) == COLUMNS
    np.testing.assert_array_equal(est.predict(frame), _fit(X, Y[:, 0]).predict(X))
    with pytest.raises(ValueError, match="feature names"):
        est.predict(frame.select(["score", "age", "income"]))


# ------------------------------------------------------------ BPClassifier

LABELS = np.array(["cat", "dog", "eel"])


def _labels(X):
    return LABELS[(X[:, 0] > 0).astype(int) + (X[:, 2] > 0.5)]


def _fit_clf(X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = BPClassifier(hidden_layer_sizes=(5,), max_iter=10, random_state=0)
        return clf.fit(X, y)


@pytest.fixture(scope="module")
def reference(data):
    """The classifier fitted on plain NumPy arrays."""
    X = data[0]
    return _fit_clf(X, _labels(X))


def _check_like_reference(clf, frame, X, reference):
    np.testing.assert_array_equal(clf.classes_, reference.classes_)
    pred = clf.predict(frame)
    assert isinstance(pred, np.ndarray) and pred.shape == (len(X),)
    np.testing.assert_array_equal(pred, reference.predict(X))
    np.testing.assert_array_equal(clf.predict_proba(frame), reference.predict_proba(X))
    assert clf.score(frame, reference.predict(X)) == 1.0


@pytest.mark.parametrize("dtype", ["object", "string", "category"])
def test_pandas_string_and_categorical_labels(data, reference, dtype):
    X = data[0]
    frame = pd.DataFrame(X, columns=COLUMNS)
    y = pd.Series(_labels(X), name="animal").astype(dtype)
    clf = _fit_clf(frame, y)
    assert list(clf.feature_names_in_) == COLUMNS
    _check_like_reference(clf, frame, X, reference)

    shuffled = frame[["income", "age", "score"]]
    for method in (clf.predict, clf.predict_proba, clf.predict_log_proba):
        with pytest.raises(ValueError, match="feature names"):
            method(shuffled)
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(frame.rename(columns={"age": "years"}))
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        clf.predict(X)


def test_pandas_categorical_with_unused_category(data, reference):
    # A category no row holds is not a class, as with np.unique of the labels.
    X = data[0]
    y = pd.Series(pd.Categorical(_labels(X), categories=["ant", *LABELS]))
    clf = _fit_clf(pd.DataFrame(X, columns=COLUMNS), y)
    assert list(clf.classes_) == list(LABELS)
    _check_like_reference(clf, pd.DataFrame(X, columns=COLUMNS), X, reference)


def test_pandas_partial_fit_with_categorical_classes(data, reference):
    X = data[0]
    frame = pd.DataFrame(X, columns=COLUMNS)
    y = pd.Series(pd.Categorical(_labels(X)))
    clf = BPClassifier(hidden_layer_sizes=(5,), random_state=0)
    clf.partial_fit(frame.iloc[:50], y.iloc[:50], classes=y.cat.categories)
    clf.partial_fit(frame.iloc[50:], y.iloc[50:])
    expected = BPClassifier(hidden_layer_sizes=(5,), random_state=0)
    expected.partial_fit(X[:50], _labels(X)[:50], classes=LABELS)
    expected.partial_fit(X[50:], _labels(X)[50:])
    np.testing.assert_array_equal(clf.classes_, LABELS)
    np.testing.assert_array_equal(clf.predict_proba(frame), expected.predict_proba(X))


def test_pandas_multilabel_frame_and_float32(data):
    X = data[0]
    frame = pd.DataFrame(X, columns=COLUMNS).astype("float32")
    Y = pd.DataFrame({"a": X[:, 0] > 0, "b": X[:, 1] > 0}).astype(int)
    clf = _fit_clf(frame, Y)
    assert clf.n_outputs_ == 2 and clf.coefs_[0].dtype == np.float32
    np.testing.assert_array_equal(clf.classes_, [0, 1])
    pred = clf.predict(frame)
    assert pred.shape == (100, 2)
    proba = clf.predict_proba(frame)
    assert proba.shape == (100, 2) and proba.dtype == np.float32
    np.testing.assert_array_equal(pred, (proba > 0.5).astype(pred.dtype))


@pytest.mark.parametrize("categorical", [False, True], ids=["string", "categorical"])
def test_polars_classifier(data, reference, categorical):
    pl = pytest.importorskip("polars")
    X = data[0]
    frame = pl.DataFrame({name: X[:, i] for i, name in enumerate(COLUMNS)})
    y = pl.Series("animal", _labels(X))
    if categorical:
        y = y.cast(pl.Categorical)
    clf = _fit_clf(frame, y)
    assert list(clf.feature_names_in_) == COLUMNS
    _check_like_reference(clf, frame, X, reference)
    with pytest.raises(ValueError, match="feature names"):
        clf.predict_proba(frame.select(["score", "age", "income"]))


def _visible_text(html):
    body = html[html.find("</style>"):]
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


def test_html_repr_for_notebooks(data):
    X, Y = data
    est = BPRegressor(hidden_layer_sizes=(7, 3), solver="sgd")
    text = _visible_text(est._repr_html_())
    assert "BPRegressor" in text and "Not fitted" in text
    assert "hidden_layer_sizes" in text and "solver" in text
    fitted = _fit(pd.DataFrame(X, columns=COLUMNS), Y[:, 0])
    text = _visible_text(fitted._repr_html_())
    assert "Fitted" in text and "Not fitted" not in text
    assert "coefs_" in text and "feature_names_in_" in text
    # What Jupyter asks for: the HTML next to the plain-text repr.
    bundle = fitted._repr_mimebundle_()
    assert "Fitted" in _visible_text(bundle["text/html"])
    assert bundle["text/plain"] == repr(fitted)
