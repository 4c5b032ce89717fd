# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Every solver on a 20,000 x 10 problem: fastbp beside sklearn, in one process.

    python benchmarks/solvers.py [--threads 1] [--repeats 3]

Same parameters and random_state for both; prints fit time (best of repeats),
epochs or iterations, test R² and the speed ratio per solver.
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import make_friedman1
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPRegressor
from threadpoolctl import threadpool_limits

from fastbp import BPRegressor

SOLVERS = {
    "adam": dict(solver="adam", max_iter=30),
    "sgd": dict(solver="sgd", learning_rate_init=0.01, max_iter=30),
    "lbfgs": dict(solver="lbfgs", max_iter=200),
}


def best_fit(cls, params, X, y, repeats):
    best, est = np.inf, None
    for _ in range(repeats):
        est = cls(**params)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y)
        best = min(best, time.perf_counter() - start)
    return best, est


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    X, y = make_friedman1(n_samples=25_000, n_features=10, noise=1.0, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, train_size=20_000, random_state=0
    )
    mean, std = y_train.mean(), y_train.std()
    y_train = (y_train - mean) / std
    print("20,000 x 10 (make_friedman1), hidden (100,), relu, float64, "
          "%d BLAS thread(s), best of %d" % (args.threads, args.repeats))
    header = "%-6s %14s %14s %7s %9s %9s %7s" % (
        "solver", "fastbp fit (s)", "sklearn fit (s)", "iters", "fastbp R2",
        "sklearn R2", "ratio")
    print(header)
    with threadpool_limits(args.threads):
        for name, extra in SOLVERS.items():
            params = dict(hidden_layer_sizes=(100,), random_state=0, **extra)
            t_ours, ours = best_fit(BPRegressor, params, X_train, y_train, args.repeats)
            t_sk, sk = best_fit(MLPRegressor, params, X_train, y_train, args.repeats)
            r2_ours = r2_score(y_test, ours.predict(X_test) * std + mean)
            r2_sk = r2_score(y_test, sk.predict(X_test) * std + mean)
            print("%-6s %14.3f %14.3f %3d/%-3d %9.4f %9.4f %6.1fx" % (
                name, t_ours, t_sk, ours.n_iter_, sk.n_iter_, r2_ours, r2_sk,
                t_sk / t_ours))


if __name__ == "__main__":
    main()
