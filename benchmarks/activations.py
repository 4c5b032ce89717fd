# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""What each hidden activation (and dropout) costs: fit time over the relu
fit of the same network, in one process, interleaved over the repeats, best
repeat counts, 1 thread.

Run from the repository root::

    python benchmarks/activations.py [--workloads tiny,friedman] [--repeats N]

The workloads are bench.py's (tiny: diabetes, one layer of 100, batch 32;
friedman: 16,000 rows, 64x64, batch 64), with fewer epochs.
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import _estimator_params, make_data  # noqa: E402

from fastbp import BPRegressor  # noqa: E402

OPTIONS = [("identity", dict(activation="identity")), ("relu", {}),
           ("leaky_relu", dict(activation="leaky_relu")), ("elu", dict(activation="elu")),
           ("selu", dict(activation="selu")), ("softplus", dict(activation="softplus")),
           ("silu", dict(activation="silu")), ("gelu", dict(activation="gelu")),
           ("mish", dict(activation="mish")), ("tanh", dict(activation="tanh")),
           ("relu+dropout=0.2", dict(dropout=0.2))]
SHAPES = {"tiny": ((100,), 32, 200), "friedman": ((64, 64), 64, 5)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default="tiny,friedman")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    print("load average at start: %.2f %.2f %.2f" % os.getloadavg())
    for name in args.workloads.split(","):
        hidden, batch, epochs = SHAPES[name]
        X_train, _, y_train, _ = make_data(name)
        for dtype in (np.float32, np.float64):
            X, y = X_train.astype(dtype), y_train.astype(dtype)
            best = {}
            with threadpool_limits(limits=1), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for _ in range(args.repeats):
                    for label, params in OPTIONS:
                        est = BPRegressor(**{**_estimator_params(hidden, batch, epochs),
                                             **params})
                        start = time.perf_counter()
                        est.fit(X, y)
                        best[label] = min(best.get(label, np.inf),
                                          time.perf_counter() - start)
            print("%-9s %-8s relu %.2f ms/epoch; time / relu's: %s" % (
                name, dtype.__name__, 1e3 * best["relu"] / epochs,
                "  ".join("%s %.2f" % (k, v / best["relu"]) for k, v in best.items())))
    print("load average at end: %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
