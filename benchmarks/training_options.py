# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""What the training options cost: fit time with each option over the same fit
without it, in one process, interleaved over the repeats, best repeat counts.

Run from the repository root::

    python benchmarks/training_options.py [--rows N] [--epochs N] [--repeats N]

Each line trains the same network for a fixed number of epochs (``tol=0``,
``n_iter_no_change=inf``) and prints ``time / baseline time``. The options act
once per epoch in Python (a schedule, a forward pass over the validation rows,
a scorer), so their cost is relative to an epoch: largest for small data.
"""

import argparse
import time
import warnings

import numpy as np

from fastbp import BPClassifier, BPRegressor


def _time(make, fit, repeats):
    best = np.inf
    for _ in range(repeats):
        est = make()
        start = time.perf_counter()
        fit(est)
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.rows, 20))
    y = np.tanh(X[:, :5].sum(axis=1))
    n_val = args.rows // 10
    Xt, yt, Xv, yv = X[n_val:], y[n_val:], X[:n_val], y[:n_val]
    labels = np.column_stack([np.digitize(X[:, k], [-1, 0, 1]) for k in range(3)])
    flat = labels @ [16, 4, 1]  # one column of up to 64 classes, for comparison

    base = dict(hidden_layer_sizes=(64,), max_iter=args.epochs, tol=0,
                n_iter_no_change=np.inf, random_state=0)
    cases = {
        "baseline (adam, constant)": (lambda: BPRegressor(**base), lambda e: e.fit(Xt, yt)),
        "learning_rate='cosine', warmup 0.1": (
            lambda: BPRegressor(learning_rate="cosine", warmup_fraction=0.1, **base),
            lambda e: e.fit(Xt, yt)),
        "eval_set (validation_loss_curve_)": (
            lambda: BPRegressor(**base), lambda e: e.fit(Xt, yt, eval_set=(Xv, yv))),
        "early_stopping, default R²": (
            lambda: BPRegressor(early_stopping=True, **base),
            lambda e: e.fit(Xt, yt, eval_set=(Xv, yv))),
        "early_stopping_scoring='neg_mean_squared_error'": (
            lambda: BPRegressor(early_stopping=True,
                                early_stopping_scoring="neg_mean_squared_error", **base),
            lambda e: e.fit(Xt, yt, eval_set=(Xv, yv))),
        "weight_init='he_normal'": (
            lambda: BPRegressor(weight_init="he_normal", **base), lambda e: e.fit(Xt, yt)),
        "n_jobs=1": (lambda: BPRegressor(n_jobs=1, **base), lambda e: e.fit(Xt, yt)),
        "n_jobs=2": (lambda: BPRegressor(n_jobs=2, **base), lambda e: e.fit(Xt, yt)),
    }
    clf_cases = {
        "classifier, 3 label columns (3x4 outputs)": (
            lambda: BPClassifier(**base), lambda e: e.fit(X, labels)),
        "classifier, 1 column of 64 classes": (
            lambda: BPClassifier(**base), lambda e: e.fit(X, flat)),
    }
    times = {name: np.inf for name in {**cases, **clf_cases}}
    for _ in range(args.repeats):
        for name, (make, fit) in {**cases, **clf_cases}.items():
            times[name] = min(times[name], _time(make, fit, 1))
    print("rows=%d, epochs=%d, best of %d" % (args.rows, args.epochs, args.repeats))
    baseline = times["baseline (adam, constant)"]
    for name in cases:
        print("%-50s %7.3fs  x%.3f" % (name, times[name], times[name] / baseline))
    for name in clf_cases:
        print("%-50s %7.3fs" % (name, times[name]))


if __name__ == "__main__":
    main()
