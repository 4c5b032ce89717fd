# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Names and the compiled core's enums: the one table every module reads.

The estimators, persistence, ONNX export and the command line all speak of
activations, losses and solvers by their scikit-learn names; this module maps
those names to ``_core``'s enums once, and says which loss belongs to which
output activation.
"""

from . import _core

# Hidden-layer activations a user may choose: scikit-learn's four, then ours.
HIDDEN_ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "leaky_relu", "elu",
                      "selu", "softplus", "gelu", "silu", "mish", "sin")

# Every activation the core computes, by name. ``exp`` and ``softmax`` are
# output activations only.
ACTIVATIONS = {
    "identity": _core.Activation.IDENTITY,
    "logistic": _core.Activation.LOGISTIC,
    "tanh": _core.Activation.TANH,
    "relu": _core.Activation.RELU,
    "exp": _core.Activation.EXP,
    "softmax": _core.Activation.SOFTMAX,
    "leaky_relu": _core.Activation.LEAKY_RELU,
    "elu": _core.Activation.ELU,
    "selu": _core.Activation.SELU,
    "softplus": _core.Activation.SOFTPLUS,
    "gelu": _core.Activation.GELU,
    "silu": _core.Activation.SILU,
    "mish": _core.Activation.MISH,
    "sin": _core.Activation.SIN,
}

# The loss that goes with each output activation. Every pair is a canonical
# link, so the output delta is always ``prediction - y``.
LOSS_FOR_OUTPUT = {
    "identity": _core.Loss.SQUARED_ERROR,
    "exp": _core.Loss.POISSON,
    "logistic": _core.Loss.BINARY_LOG_LOSS,
    "softmax": _core.Loss.LOG_LOSS,
}

# A regressor's ``loss`` parameter picks its default output activation
# (``out_activation=None``).
REGRESSION_OUTPUTS = {"squared_error": "identity", "poisson": "exp",
                      "absolute_error": "identity", "huber": "identity",
                      "quantile": "identity"}
# The regressor's losses.
REGRESSION_LOSSES = {
    "squared_error": _core.Loss.SQUARED_ERROR,
    "poisson": _core.Loss.POISSON,
    "absolute_error": _core.Loss.ABSOLUTE_ERROR,
    "huber": _core.Loss.HUBER,
    "quantile": _core.Loss.QUANTILE,
}
# Output activations a regressor's ``out_activation`` may name.
REGRESSION_OUT_ACTIVATIONS = ("identity", "logistic", "softplus", "exp")

STOCHASTIC_SOLVERS = ("sgd", "adam", "adamw")
# Solvers that train on the whole data set at each step.
FULL_BATCH_SOLVERS = ("lbfgs", "rprop")
SOLVERS = {"sgd": _core.Solver.SGD, "adam": _core.Solver.ADAM,
           "adamw": _core.Solver.ADAMW}

# Optimizer state: one moment per parameter array for SGD (the velocities),
# two for Adam (first, then second moments), each in the order
# ``coefs_ + intercepts_``.
N_MOMENTS = {"sgd": 1, "adam": 2, "adamw": 2}
