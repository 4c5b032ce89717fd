# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Model files written by earlier releases load and predict as they did.

``tests/fixtures/models-VERSION/`` holds what ``tests/fixtures/make_models.py``
wrote with that release: each model, the rows it was asked about and what it
answered. The installed fastbp must load every one of them and give the same
answers (labels exactly; numbers to rounding, as the kernels may be
reorganised between releases).
"""

import glob
import os

import numpy as np
import pytest

import fastbp

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
MODELS = sorted(glob.glob(os.path.join(FIXTURES, "models-*", "*_expected.npz")))
TOL = {np.float64: dict(rtol=1e-12, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-6)}


def test_fixtures_are_there():
    # The fixtures ship in the sdist and the repository: an empty glob would
    # make the test below pass vacuously.
    names = {os.path.basename(p)[: -len("_expected.npz")] for p in MODELS}
    assert {"regressor_float64", "regressor_float32", "classifier_strings"} <= names


@pytest.mark.parametrize(
    "expected_path", MODELS,
    ids=[os.path.relpath(p, FIXTURES)[: -len("_expected.npz")] for p in MODELS])
def test_saved_model_predicts_the_same(expected_path):
    stem = expected_path[: -len("_expected.npz")]
    model = fastbp.load(stem + ".npz")
    X = np.load(stem + "_X.npy", allow_pickle=False)
    expected = np.load(expected_path, allow_pickle=False)
    pred = model.predict(X)
    if "predict_proba" in expected:
        assert pred.dtype == expected["predict"].dtype
        np.testing.assert_array_equal(pred, expected["predict"])
        proba = model.predict_proba(X)
        assert proba.dtype == expected["predict_proba"].dtype
        np.testing.assert_allclose(proba, expected["predict_proba"],
                                   **TOL[proba.dtype.type])
    else:
        assert pred.dtype == expected["predict"].dtype == X.dtype
        np.testing.assert_allclose(pred, expected["predict"], **TOL[pred.dtype.type])
    # A loaded model goes on training where the saved one stood.
    model.partial_fit(X, model.predict(X))
