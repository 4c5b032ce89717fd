# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Peak memory of ``BPRegressor.fit`` on a 2,000,000 x 100 float32 X (800 MB).

The promise (issue 5): fit never makes a full copy of X, for shuffling, for the
validation split or for a dtype change, so the peak resident set stays within
about 1.5 x the size of X.

Each configuration runs in a fresh child process under ``/usr/bin/time -v``
(``apt-get install time`` if it is missing), and its "Maximum resident set
size" is compared with the size of X. A baseline child builds the same X and y
and imports everything, without fitting, so the cost of fit itself is the
difference. With ``--trace``, each child also runs tracemalloc (NumPy reports
its buffers to it) and prints the allocation sites alive at the highest traced
point of the fit: that is where any copy of X would show up.

Usage::

    python benchmarks/peak_memory.py                 # all configurations
    python benchmarks/peak_memory.py --trace         # plus allocation sites
    python benchmarks/peak_memory.py --n-samples 200000   # a quick smaller run

The exact command of every child is printed, so any line can be rerun alone.
"""

import argparse
import os
import re
import shlex
import subprocess
import sys
import threading

TIME = "/usr/bin/time"
MB = 1 << 20

CONFIGS = {
    "baseline (X, y, imports; no fit)": ["--no-fit"],
    "fit, 1 epoch": ["--max-iter", "1"],
    "fit, 2 epochs": ["--max-iter", "2"],
    "fit, 2 epochs, early_stopping": ["--max-iter", "2", "--early-stopping"],
    "fit, 1 epoch, shuffle=False": ["--max-iter", "1", "--no-shuffle"],
    "partial_fit, 1 epoch": ["--max-iter", "1", "--partial-fit"],
    # Not part of the promise: a Fortran-ordered X is made C-contiguous once.
    "fit, 1 epoch, Fortran-ordered X": ["--max-iter", "1", "--fortran"],
}


def _child(args):
    import warnings

    import numpy as np

    from fastbp import BPRegressor

    rng = np.random.default_rng(0)
    # Drawn straight into float32: no float64 temporary of X's size.
    if args.fortran:
        X = rng.standard_normal((args.n_features, args.n_samples), dtype=np.float32).T
    else:
        X = rng.standard_normal((args.n_samples, args.n_features), dtype=np.float32)
    y = X[:, :10].sum(axis=1, dtype=np.float32) + rng.standard_normal(
        args.n_samples, dtype=np.float32)
    print("X: %s %s, %.1f MB, %s" % (X.shape, X.dtype, X.nbytes / MB,
                                     "F order" if args.fortran else "C order"), flush=True)
    if args.no_fit:
        return
    est = BPRegressor(hidden_layer_sizes=(args.hidden,), max_iter=args.max_iter,
                      shuffle=not args.no_shuffle, early_stopping=args.early_stopping,
                      random_state=0)
    tracer = _Tracer() if args.trace else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if args.partial_fit:
            est.partial_fit(X, y)
        else:
            est.fit(X, y)
    if tracer is not None:
        tracer.report()
    print("fitted: n_iter_=%d, t_=%d, loss_=%.4g" % (est.n_iter_, est.t_, est.loss_))


class _Tracer:
    """Keep the tracemalloc snapshot taken at the highest traced size.

    A thread samples while fit runs (the epochs release the GIL), so copies
    that live through an epoch are caught; brief ones show in the peak only.
    """

    def __init__(self, every=0.02):
        import tracemalloc

        self.tracemalloc = tracemalloc
        tracemalloc.start(12)
        self.best, self.best_size = None, -1
        self.stop = threading.Event()
        self.every = every
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self):
        while not self.stop.wait(self.every):
            size = self.tracemalloc.get_traced_memory()[0]
            if size > self.best_size:
                self.best_size, self.best = size, self.tracemalloc.take_snapshot()

    def report(self):
        self.stop.set()
        self.thread.join()
        current, peak = self.tracemalloc.get_traced_memory()
        self.tracemalloc.stop()
        print("tracemalloc during fit: peak %.1f MB above the start, %.1f MB "
              "still held at the end" % (peak / MB, current / MB))
        if self.best is None:
            return
        print("allocation sites alive at the highest sample (%.1f MB), >= 1 MB:"
              % (self.best_size / MB))
        for stat in self.best.statistics("traceback")[:8]:
            if stat.size < MB:
                break
            print("  %.1f MB in %d block(s), allocated at:" % (stat.size / MB,
                                                               stat.count))
            for line in stat.traceback.format(limit=4, most_recent_first=True):
                print("    " + line)


def _run(label, extra, args):
    cmd = [TIME, "-v", sys.executable, os.path.abspath(__file__), "--child",
           "--n-samples", str(args.n_samples), "--n-features", str(args.n_features),
           "--hidden", str(args.hidden), *extra]
    if args.trace:
        cmd.append("--trace")
    print("$ " + shlex.join(cmd), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    sys.stdout.write("".join("    " + line + "\n" for line in proc.stdout.splitlines()))
    if proc.returncode:
        sys.stdout.write(proc.stderr)
        raise SystemExit("the child failed (%d)" % proc.returncode)
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)",
                            proc.stderr).group(1))
    return peak_kb * 1024


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=2_000_000)
    parser.add_argument("--n-features", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-fit", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--max-iter", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--early-stopping", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-shuffle", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--partial-fit", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fortran", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)
    if not os.access(TIME, os.X_OK):
        raise SystemExit("%s is missing: apt-get install time" % TIME)

    x_bytes = args.n_samples * args.n_features * 4
    peaks = {label: _run(label, extra, args) for label, extra in CONFIGS.items()}
    base = peaks["baseline (X, y, imports; no fit)"]
    print()
    print("X: %d x %d float32 = %.0f MB; target: peak RSS <= 1.5 x X = %.0f MB"
          % (args.n_samples, args.n_features, x_bytes / MB, 1.5 * x_bytes / MB))
    print("%-36s %10s %8s %14s" % ("configuration", "peak MB", "peak/X", "fit adds MB"))
    for label, peak in peaks.items():
        print("%-36s %10.0f %8.2f %14.0f" % (label, peak / MB, peak / x_bytes,
                                             (peak - base) / MB))
    worst = max(peak for label, peak in peaks.items() if "Fortran" not in label)
    print("worst peak / X, C-ordered X = %.2f (%s)"
          % (worst / x_bytes, "within 1.5" if worst <= 1.5 * x_bytes else "OVER 1.5"))


if __name__ == "__main__":
    main()
