# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Shared fixtures, tolerances and small network builders for the fastbp tests.

The estimator-level datasets are built on first use and shared by the whole
session. They are read-only, so a test that changes its data must copy it
first (and a library call that wrote into its input would fail loudly).
"""

from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_multilabel_classification

from fastbp import BPClassifier, BPRegressor, _core

# For one kernel call or a few epochs, compared with the float64 NumPy reference
# on the same (dtype-rounded) numbers: float64 must agree to rounding (measured
# ~1e-15), float32 to a few dozen float32 ulps (measured ~3e-6). The margins
# leave room for other BLAS builds; long training runs amplify rounding and
# need tolerances of their own.
TOL = {
    np.float64: dict(rtol=1e-12, atol=1e-13),
    np.float32: dict(rtol=2e-5, atol=2e-6),
}

DTYPES = [np.float64, np.float32]

ACTIVATION = {
    "identity": _core.Activation.IDENTITY,
    "logistic": _core.Activation.LOGISTIC,
    "tanh": _core.Activation.TANH,
    "relu": _core.Activation.RELU,
    "exp": _core.Activation.EXP,
    "softmax": _core.Activation.SOFTMAX,
}
LOSS = {
    "squared_error": _core.Loss.SQUARED_ERROR,
    "poisson": _core.Loss.POISSON,
    "log_loss": _core.Loss.LOG_LOSS,
    "binary_log_loss": _core.Loss.BINARY_LOG_LOSS,
}
SOLVER = {"sgd": _core.Solver.SGD, "adam": _core.Solver.ADAM}


@pytest.fixture
def rng():
    """A generator seeded afresh for every test."""
    return np.random.default_rng(0)


def random_network(rng, layer_units, dtype=np.float64, scale=1.0):
    """Glorot-uniform (coefs, intercepts) for layer_units = [n_in, ..., n_out]."""
    coefs, intercepts = [], []
    for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:]):
        bound = scale * np.sqrt(6.0 / (fan_in + fan_out))
        coefs.append(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype))
        intercepts.append(rng.uniform(-bound, bound, fan_out).astype(dtype))
    return coefs, intercepts


def random_data(rng, n_samples, n_features, n_outputs, dtype=np.float64,
                loss="squared_error"):
    """Standard-normal X, and Y: normal targets or, for Poisson, counts with zeros."""
    X = rng.standard_normal((n_samples, n_features)).astype(dtype)
    if loss == "poisson":
        Y = rng.poisson(1.5, (n_samples, n_outputs)).astype(dtype)
    else:
        Y = rng.standard_normal((n_samples, n_outputs)).astype(dtype)
    return X, Y


def zero_state(coefs, intercepts, solver="sgd"):
    """Fresh optimizer state: SGD velocities, or Adam first then second moments."""
    n_moments = 2 if solver == "adam" else 1
    return [np.zeros_like(p) for _ in range(n_moments) for p in coefs + intercepts]


def make_trainer(coefs, intercepts, state=(), max_batch=1, *, activation="relu",
                 out_activation="identity", loss="squared_error", solver="sgd",
                 **hyper):
    """A ``_core.Trainer`` built from names instead of enums; hyper goes through."""
    return _core.Trainer(list(coefs), list(intercepts), list(state), max_batch,
                         ACTIVATION[activation], ACTIVATION[out_activation],
                         LOSS[loss], SOLVER[solver], **hyper)


# ------------------------------------------------- estimator-level datasets

N_SAMPLES, N_FEATURES = 120, 5
# The target kinds every estimator-level feature test runs over.
ESTIMATOR_KINDS = ["regression", "binary", "multiclass", "multilabel"]
CLASSIFIER_KINDS = ESTIMATOR_KINDS[1:]
MULTICLASS_LABELS = np.array(["ant", "bee", "cat"])


def _read_only(*arrays):
    for a in arrays:
        a.flags.writeable = False
    return arrays


@cache
def make_regression_data():
    """Standard-normal X (120 x 5) and y = tanh(X @ w) + noise."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N_SAMPLES, N_FEATURES))
    y = np.tanh(X @ rng.standard_normal(N_FEATURES)) + 0.1 * rng.standard_normal(N_SAMPLES)
    return _read_only(X, y)


@cache
def make_classification_data(kind):
    """Standardized X (120 x 5) and a target of ``kind``: binary integer labels
    {0, 1}, multiclass string labels (three classes), or a 3-label indicator
    matrix in which every label is both on and off somewhere."""
    if kind == "multilabel":
        X, y = make_multilabel_classification(
            n_samples=N_SAMPLES, n_features=N_FEATURES, n_classes=3, random_state=0)
        X = (X - X.mean(0)) / X.std(0)
        assert (y.min(0) == 0).all() and (y.max(0) == 1).all()
    else:
        n_classes = 2 if kind == "binary" else 3
        X, y = make_classification(
            n_samples=N_SAMPLES, n_features=N_FEATURES, n_informative=3,
            n_redundant=0, n_classes=n_classes, random_state=0)
        if kind == "multiclass":
            y = MULTICLASS_LABELS[y]
    return _read_only(np.ascontiguousarray(X), y)


@pytest.fixture(scope="session")
def regression_data():
    """``(X, y)``: a small regression problem, read-only."""
    return make_regression_data()


@pytest.fixture(scope="session")
def classification_data():
    """``{kind: (X, y)}`` for "binary", "multiclass" and "multilabel", read-only."""
    return {kind: make_classification_data(kind) for kind in CLASSIFIER_KINDS}


@dataclass(frozen=True)
class EstimatorCase:
    """One estimator on one target kind, with what its calls need.

    ``partial_fit_kwargs`` holds ``classes`` for a single-column classifier
    target (required on the first ``partial_fit``, allowed on later ones).
    """

    kind: str
    Estimator: type
    X: np.ndarray
    y: np.ndarray
    partial_fit_kwargs: dict = field(default_factory=dict)

    @property
    def is_classifier(self):
        return self.Estimator is BPClassifier

    def __call__(self, **params):
        """A new estimator of this case."""
        return self.Estimator(**params)

    def partial_fit(self, est, X, y, **kwargs):
        return est.partial_fit(X, y, **self.partial_fit_kwargs, **kwargs)

    def n_outputs(self, y=None):
        """The number of output units this target gives the network."""
        y = self.y if y is None else y
        if self.kind == "multiclass":
            return len(np.unique(y))
        return 1 if np.ndim(y) == 1 else np.shape(y)[1]


@cache
def make_estimator_case(kind):
    if kind == "regression":
        return EstimatorCase(kind, BPRegressor, *make_regression_data())
    X, y = make_classification_data(kind)
    kwargs = {} if kind == "multilabel" else {"classes": np.unique(y)}
    return EstimatorCase(kind, BPClassifier, X, y, kwargs)


@pytest.fixture(params=ESTIMATOR_KINDS)
def estimator_case(request):
    """An :class:`EstimatorCase` for the regressor and each classifier target."""
    return make_estimator_case(request.param)


@pytest.fixture(params=CLASSIFIER_KINDS)
def classifier_case(request):
    """An :class:`EstimatorCase` for each classifier target kind."""
    return make_estimator_case(request.param)


@pytest.fixture
def python_epoch_loop(monkeypatch):
    """Run the stochastic solvers' epoch loop in Python, one compiled epoch per
    call of ``_core.train_epoch``, for tests that step into it epoch by epoch
    (without it, a fit that nothing watches runs all its epochs in one call)."""
    from fastbp import _base

    monkeypatch.setattr(_base, "COMPILED_LOOP", False)
