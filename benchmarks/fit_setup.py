# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""The fixed cost of a small fit, and the epoch loop in Python vs compiled.

Run from the repository root::

    python benchmarks/fit_setup.py [--repeats N]

In one process, interleaved, best of N (default 300) fits of the diabetes net
((100,), batch 32, 1 thread), for BPRegressor and BPClassifier (a binary
target):

- ``fit, max_iter=1``: one epoch plus everything around it (validation, label
  handling, initialisation, the trainer, the checkpoint), with fastbp's fast
  set-up and with the general paths it skips (scikit-learn's parameter
  validation every fit, ``validate_data``, the label scans), switched in this
  process by patching the same functions the tests patch;
- ``fit, 200 epochs``: the compiled epoch loop vs the per-epoch Python loop
  (``fastbp._base.COMPILED_LOOP = False``), tol=0 so both run every epoch.

Ratios come from one process; the machine's other load moves the absolute
times. Not part of the test suite.
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor
from threadpoolctl import threadpool_limits

from fastbp import BPClassifier, BPRegressor, _base, _classifier


class GeneralPaths:
    """Within the block, every fit takes the set-up paths fastbp skips."""

    def __enter__(self):
        self.saved = (_base.BaseBP._validate_params, _base.BaseBP._validate_fit_data,
                      _classifier._plain_labels)

        def validate_params(est):
            return _base.BaseEstimator._validate_params(est)

        def validate_fit_data(est, X, y, reset, y_kinds, **check_params):
            return _base.validate_data(est, X, y, reset=reset, **check_params)

        _base.BaseBP._validate_params = validate_params
        _base.BaseBP._validate_fit_data = validate_fit_data
        _classifier._plain_labels = lambda y: None
        return self

    def __exit__(self, *exc):
        (_base.BaseBP._validate_params, _base.BaseBP._validate_fit_data,
         _classifier._plain_labels) = self.saved


class PythonLoop:
    def __enter__(self):
        _base.COMPILED_LOOP = False

    def __exit__(self, *exc):
        _base.COMPILED_LOOP = True


class Nothing:
    def __enter__(self):
        pass

    def __exit__(self, *exc):
        pass


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=300)
    args = p.parse_args()
    X, y = load_diabetes(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    y = (y - y.mean()) / y.std()
    labels = (y > 0).astype(np.int64)
    cases = [("BPRegressor", BPRegressor, MLPRegressor, y),
             ("BPClassifier", BPClassifier, MLPClassifier, labels)]
    one = dict(hidden_layer_sizes=(100,), batch_size=32, max_iter=1, random_state=0)
    many = dict(one, max_iter=200, tol=0.0, n_iter_no_change=200)
    variants = {
        "fit, max_iter=1": (one, [("fast set-up", Nothing), ("general paths", GeneralPaths)]),
        "fit, 200 epochs": (many, [("compiled loop", Nothing), ("Python loop", PythonLoop)]),
    }
    best = {}
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for what, (params, modes) in variants.items():
            repeats = args.repeats if params["max_iter"] == 1 else max(5, args.repeats // 30)
            for _ in range(repeats):
                for name, cls, theirs, target in cases:
                    for mode, context in modes:
                        with context():
                            t0 = time.perf_counter()
                            cls(**params).fit(X, target)
                            dt = time.perf_counter() - t0
                        key = (what, name, mode)
                        best[key] = min(best.get(key, np.inf), dt)
                    if params["max_iter"] == 1:
                        t0 = time.perf_counter()
                        theirs(**params).fit(X, target)
                        dt = time.perf_counter() - t0
                        key = (what, name, "scikit-learn")
                        best[key] = min(best.get(key, np.inf), dt)
    print("%-16s %-13s %-15s %10s" % ("", "estimator", "path", "best (us)"))
    for what, (params, modes) in variants.items():
        for name, *_ in cases:
            fast = best[(what, name, modes[0][0])]
            for mode in [m for m, _ in modes] + (
                    ["scikit-learn"] if params["max_iter"] == 1 else []):
                t = best[(what, name, mode)]
                print("%-16s %-13s %-15s %10.1f  %5.2fx the first" % (
                    what, name, mode, 1e6 * t, t / fast))


if __name__ == "__main__":
    main()
