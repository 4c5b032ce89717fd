# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""pandas and polars DataFrames in fit and predict, and the notebook HTML repr."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning

from fastbp import BPRegressor

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
