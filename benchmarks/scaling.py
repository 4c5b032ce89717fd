# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""What holds two workers back: the machine, the GIL, or the search around
the fits.

Run from the repository root::

    python benchmarks/scaling.py [--fits N] [--candidates N]

Three measurements, each of the diabetes net ((100,), batch 32, 100 epochs,
tol=0, 1 BLAS thread):

- ``processes``: N fits in one process alone, then in each of two processes
  at once (no GIL between them: what the two cores give each other);
- ``threads``: the same with two threads of one process (the fits release the
  GIL for their epochs);
- ``search``: a GridSearchCV of the bench's many-candidate search (Adam's
  alpha x learning rate x beta_1, 3 folds) with n_jobs=1, and with n_jobs=2
  on threads: the fits plus scikit-learn's work around them;
- ``grid``: bench.py's GridSearchCV line (6 candidates x 4 folds) with
  n_jobs=1 and 2 on threads, at 100 epochs (as bench.py runs it) and 400.

Each row is the best of 3 rounds; per-fit times are milliseconds. Run it under
both OpenBLAS settings (``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`` and
``OPENBLAS_CORETYPE=Haswell``). Not part of the test suite.
"""

import argparse
import multiprocessing as mp
import os
import sys
import threading
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _data():
    import bench

    return bench._tiny_task("regression")


def _model():
    from fastbp import BPRegressor

    return BPRegressor(hidden_layer_sizes=(100,), batch_size=32, max_iter=100, tol=0,
                       n_iter_no_change=100, random_state=0)


def _fits(n, X, y):
    """Seconds per fit over n fits of one model."""
    est = _model()
    t0 = time.perf_counter()
    for _ in range(n):
        est.fit(X, y)
    return (time.perf_counter() - t0) / n


def _process_worker(n, queue):
    from threadpoolctl import threadpool_limits

    warnings.simplefilter("ignore")
    X, y = _data()
    with threadpool_limits(1):
        _fits(1, X, y)
        queue.put(_fits(n, X, y))


def _alone_and_side_by_side(round_of):
    """{1: seconds, 2: seconds}: per k workers, the best over 3 rounds of the
    slowest worker's per-fit seconds; round_of(k) runs one round."""
    return {k: min(max(round_of(k)) for _ in range(3)) for k in (1, 2)}


def processes(n):
    """Per-fit seconds alone and side by side, in separate processes."""
    ctx = mp.get_context("spawn")

    def round_of(k):
        queue = ctx.Queue()
        procs = [ctx.Process(target=_process_worker, args=(n, queue)) for _ in range(k)]
        for p in procs:
            p.start()
        times = [queue.get() for _ in procs]
        for p in procs:
            p.join()
        return times

    return _alone_and_side_by_side(round_of)


def threads(n, X, y):
    """Per-fit seconds alone and side by side, in two threads of this process."""
    _fits(1, X, y)

    def round_of(k):
        times = []
        workers = [threading.Thread(target=lambda: times.append(_fits(n, X, y)))
                   for _ in range(k)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return times

    return _alone_and_side_by_side(round_of)


def search(n_candidates, X, y):
    """Seconds of the many-candidate search with n_jobs=1 and 2 (threads)."""
    import joblib
    from sklearn.model_selection import GridSearchCV

    import bench
    from fastbp import BPRegressor

    space = bench._search_space(n_candidates)
    out = {}
    for n_jobs in (1, 2):
        best = None
        for _ in range(3):
            model = BPRegressor(hidden_layer_sizes=(100,), batch_size=32, max_iter=200,
                                random_state=bench.SEED)
            t0 = time.perf_counter()
            with joblib.parallel_backend("threading"):
                GridSearchCV(model, space, cv=3, n_jobs=n_jobs).fit(X, y)
            seconds = time.perf_counter() - t0
            best = seconds if best is None else min(best, seconds)
        out[n_jobs] = best
    return out


def grid(epochs, X, y):
    """Seconds of bench.py's GridSearchCV line (6 candidates x 4 folds) at the
    given epochs, with n_jobs=1 and 2 (threads): the same grid with longer
    fits shows how much of the gap is the fixed work of each task."""
    import joblib
    from sklearn.model_selection import GridSearchCV

    import bench
    from fastbp import BPRegressor

    space = {"hidden_layer_sizes": [(50,), (100,), (50, 50)], "alpha": [1e-4, 1e-3]}
    out = {}
    for _ in range(5):
        for n_jobs in (1, 2):
            model = BPRegressor(**bench._estimator_params((100,), 32, epochs))
            t0 = time.perf_counter()
            with joblib.parallel_backend("threading"):
                GridSearchCV(model, space, cv=4, n_jobs=n_jobs).fit(X, y)
            seconds = time.perf_counter() - t0
            out[n_jobs] = min(out.get(n_jobs, np.inf), seconds)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fits", type=int, default=40)
    parser.add_argument("--candidates", type=int, default=100)
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    warnings.simplefilter("ignore")
    X, y = _data()
    print("OPENBLAS_CORETYPE=%s" % os.environ.get("OPENBLAS_CORETYPE"))
    p = processes(args.fits)
    print("processes: %.2f ms per fit alone, %.2f side by side (side by side costs "
          "%.2fx alone)" % (1e3 * p[1], 1e3 * p[2], p[2] / p[1]))
    with threadpool_limits(1):
        t = threads(args.fits, X, y)
        print("threads:   %.2f ms per fit alone, %.2f side by side (side by side costs "
              "%.2fx alone)" % (1e3 * t[1], 1e3 * t[2], t[2] / t[1]))
        s = search(args.candidates, X, y)
        print("search:    %.2f s with n_jobs=1, %.2f s with n_jobs=2 (%.2fx)"
              % (s[1], s[2], s[1] / s[2]))
        for epochs in (100, 400):
            g = grid(epochs, X, y)
            print("grid, %d epochs: %.3f s with n_jobs=1, %.3f s with n_jobs=2 (%.2fx)"
                  % (epochs, g[1], g[2], g[1] / g[2]))


if __name__ == "__main__":
    main()
