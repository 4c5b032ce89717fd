# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""fastbp: fast backpropagation neural networks on the CPU."""

from importlib.metadata import PackageNotFoundError, version

from ._classifier import BPClassifier
from ._persist import load
from ._pipeline_persist import save
from ._plot import TrainingCurveDisplay
from ._regressor import BPRegressor

try:
    __version__ = version("fastbp")
except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
    __version__ = "0.0.0+unknown"

__all__ = ["BPClassifier", "BPRegressor", "TrainingCurveDisplay", "load", "save", "__version__"]
