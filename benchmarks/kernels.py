# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""ms per epoch of the tiny and friedman nets under each instruction set of
fastbp's loops, with the small matrix products in BLAS and in fastbp's own
kernel, and the backward product ``delta @ W.T`` as BLAS's transposed call or
on a transposed copy of W.

Run from the repository root, once per OpenBLAS setting::

    env -u OPENBLAS_CORETYPE python benchmarks/kernels.py
    OPENBLAS_CORETYPE=Haswell python benchmarks/kernels.py

In one process, interleaved, best of N fits (BPRegressor, Adam, 1 thread,
tol=0). Every combination trains bitwise the same weights for one product
setting (tests/test_isa.py); the own products give the BLAS weights within
rounding. The line marked ``*`` is what fastbp chooses on its own here. The
baseline instruction set fuses its products' multiply-adds through the C
library (slowly), so it runs them in BLAS only.
Not part of the test suite.
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import load_diabetes, make_friedman1
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_info, threadpool_limits

from fastbp import BPRegressor, _core


def data(name):
    if name == "tiny":
        X, y = load_diabetes(return_X_y=True)
        X, y = X[:353], y[:353]
        return X, y, (100,), 32, 200
    X, y = make_friedman1(16_000, random_state=0)
    return X, y, (64, 64), 64, 10


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--workloads", default="tiny,friedman")
    args = p.parse_args()
    chosen = (_core.get_isa(), _core.get_small_gemm(), _core.get_nn_backward())
    kernels = sorted({lib.get("architecture") for lib in threadpool_info()
                      if lib.get("internal_api") == "openblas"} - {None})
    print("OpenBLAS kernels: %s; fastbp's choice: isa=%s, small products up to %d "
          "multiply-adds in its own kernel, backward products up to %d on W.T"
          % (", ".join(kernels), *chosen))
    big = max(chosen[2], _core.SMALL_GEMM_DEFAULT)
    combos = [(isa, small, nn) for isa in _core.isa_supported()
              for small, nn in ((0, 0), (0, big), (_core.SMALL_GEMM_DEFAULT, big))
              if not (isa == "default" and small)]
    if chosen not in combos:
        combos.append(chosen)
    for name in args.workloads.split(","):
        X, y, hidden, batch, epochs = data(name)
        X = (X - X.mean(0)) / X.std(0)
        y = (y - y.mean()) / y.std()
        best = {}
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for _ in range(args.repeats):
                for dtype in (np.float64, np.float32):
                    Xd = X.astype(dtype)
                    for isa, small, nn in combos:
                        _core.set_isa(isa)
                        _core.set_small_gemm(small)
                        _core.set_nn_backward(nn)
                        t0 = time.perf_counter()
                        BPRegressor(hidden_layer_sizes=hidden, batch_size=batch,
                                    max_iter=epochs, tol=0.0, random_state=0).fit(Xd, y)
                        key = (dtype.__name__, isa, small, nn)
                        best[key] = min(best.get(key, np.inf),
                                        time.perf_counter() - t0)
        _core.set_isa(chosen[0])
        _core.set_small_gemm(chosen[1])
        _core.set_nn_backward(chosen[2])
        print("\n%s (%s, batch %d, %d epochs): ms/epoch, best of %d"
              % (name, hidden, batch, epochs, args.repeats))
        for dtype in ("float64", "float32"):
            base = best[(dtype, "default", 0, 0)]
            for isa, small, nn in combos:
                t = best[(dtype, isa, small, nn)]
                mark = "*" if (isa, small, nn) == chosen else " "
                print("%s %-8s isa %-8s products %-5s backward %-10s %8.4f  "
                      "%5.2fx baseline/BLAS"
                      % (mark, dtype, isa, "own" if small else "BLAS",
                         "W.T copied" if nn else "transposed", 1e3 * t / epochs,
                         base / t))


if __name__ == "__main__":
    main()
