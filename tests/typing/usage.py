# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""A small typed program using fastbp's public API, checked with ``mypy --strict``
by ``tests/test_typing.py`` (and run by it, so it stays a working program)."""

import os
import tempfile

import numpy as np
from numpy.typing import NDArray

import fastbp
from fastbp import BPClassifier, BPRegressor


def regress(X: NDArray[np.float64], y: NDArray[np.float64]) -> float:
    est: BPRegressor = BPRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    est = est.fit(X, y)
    est = est.partial_fit(X, y, sample_weight=np.ones(len(y)))
    pred: NDArray[np.floating] = est.predict(X)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.npz")
        est.save(path)
        loaded = fastbp.load(path)
        same = np.array_equal(loaded.predict(X), pred)
    assert same
    return est.score(X, y)


def classify(X: NDArray[np.float64], labels: list[str]) -> NDArray[np.floating]:
    clf = BPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    clf = clf.fit(X, labels)
    clf = clf.partial_fit(X, labels)
    predicted: NDArray[np.generic] = clf.predict(X)
    assert len(predicted) == len(labels)
    log_proba = clf.predict_log_proba(X)
    assert not isinstance(log_proba, list)  # one column of labels
    assert log_proba.shape[0] == len(labels)
    proba = clf.predict_proba(X)
    assert not isinstance(proba, list)
    return proba


def main() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = X.sum(axis=1)
    print("R²", regress(X, y))
    labels = ["yes" if v > 0 else "no" for v in y]
    print("proba", classify(X, labels).shape)
    version: str = fastbp.__version__
    print(version)


if __name__ == "__main__":
    main()
