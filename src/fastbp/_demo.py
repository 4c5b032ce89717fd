# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""``fastbp demo``: the single neuron, then fastbp beside scikit-learn.

Part 2 fits BPRegressor and MLPRegressor on diabetes, part 3 BPClassifier and
MLPClassifier on digits, each pair with the same parameters and random_state,
so each pair trains the same model and only the fit time differs.
"""

import time
import warnings

import numpy as np
from sklearn.datasets import load_diabetes, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import StandardScaler

from ._classifier import BPClassifier
from ._regressor import BPRegressor


def single_neuron(out=print):
    """Train z = w*x + b on y = 2x + noise and show it recovering w = 2, b = 0."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(200, 1))
    y = 2 * X[:, 0] + 0.05 * rng.standard_normal(200)
    # Plain full-batch gradient descent: no momentum, one batch per epoch.
    neuron = BPRegressor(
        hidden_layer_sizes=(),
        solver="sgd",
        learning_rate_init=0.5,
        momentum=0.0,
        batch_size=200,
        alpha=0.0,
        tol=1e-8,
        n_iter_no_change=20,
        max_iter=500,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        neuron.fit(X, y)
    w, b = float(neuron.coefs_[0][0, 0]), float(neuron.intercepts_[0][0])
    out("1. The single neuron z = w*x + b, trained by gradient descent on y = 2x + noise")
    out("   epochs %d, loss %.5f -> w = %.4f, b = %.4f" % (neuron.n_iter_, neuron.loss_, w, b))
    return w, b


def side_by_side(out=print, repeats=3):
    """Fit BPRegressor and MLPRegressor with the same parameters on diabetes."""
    X, y = load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    y_mean, y_std = y_train.mean(), y_train.std()
    y_train_s = (y_train - y_mean) / y_std
    params = dict(
        hidden_layer_sizes=(100,),
        batch_size=32,
        alpha=1.0,
        max_iter=200,
        random_state=0,
    )
    rows = []
    for name, cls in (("fastbp BPRegressor", BPRegressor), ("sklearn MLPRegressor", MLPRegressor)):
        best, est = _best_fit(cls, params, X_train, y_train_s, repeats)
        r2 = r2_score(y_test, est.predict(X_test) * y_std + y_mean)
        rows.append((name, best, est.n_iter_, r2))
    out("2. Diabetes (442 x 10, shipped with scikit-learn): hidden (100,), adam,")
    out("   batch 32, alpha 1; best of %d fits each, same random_state" % repeats)
    out("   %-22s %12s %7s %9s" % ("estimator", "fit time (s)", "epochs", "test R2"))
    for name, seconds, epochs, r2 in rows:
        out("   %-22s %12.4f %7d %9.4f" % (name, seconds, epochs, r2))
    ratio = rows[1][1] / rows[0][1]
    out("   speed ratio (sklearn time / fastbp time): %.1fx" % ratio)
    return rows, ratio


def _best_fit(cls, params, X, y, repeats):
    """The fastest of ``repeats`` fits, and the last fitted model."""
    best = np.inf
    for _ in range(repeats):
        est = cls(**params)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y)
        best = min(best, time.perf_counter() - start)
    return best, est


def classify_digits(out=print, repeats=3):
    """Fit BPClassifier and MLPClassifier with the same parameters on digits."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    params = dict(hidden_layer_sizes=(100,), batch_size=32, random_state=0)
    rows = []
    for name, cls in (("fastbp BPClassifier", BPClassifier),
                      ("sklearn MLPClassifier", MLPClassifier)):
        seconds, est = _best_fit(cls, params, X_train, y_train, repeats)
        rows.append((name, seconds, est.n_iter_, est.score(X_test, y_test)))
    out("3. Digits (1797 x 64, 10 classes, shipped with scikit-learn): hidden (100,),")
    out("   adam, batch 32; best of %d fits each, same random_state" % repeats)
    out("   %-22s %12s %7s %9s" % ("estimator", "fit time (s)", "epochs", "test acc"))
    for name, seconds, epochs, accuracy in rows:
        out("   %-22s %12.4f %7d %9.4f" % (name, seconds, epochs, accuracy))
    ratio = rows[1][1] / rows[0][1]
    out("   speed ratio (sklearn time / fastbp time): %.1fx" % ratio)
    return rows, ratio


def main(out=print):
    single_neuron(out)
    out("")
    side_by_side(out)
    out("")
    classify_digits(out)
    return 0
