# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Shared fixtures, tolerances and small network builders for the fastbp tests."""

import numpy as np
import pytest

from fastbp import _core

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
