"""
Against MLPRegressor
====================

``BPRegressor`` takes ``MLPRegressor``'s parameters and, for the same
``random_state``, trains the same model. This example times both on the same
networks and checks that they agree. It is deliberately small so that the
documentation builds quickly; ``benchmarks/bench.py`` in the repository is the
full benchmark (more workloads, both dtypes, threads, GFLOP/s), and
:ref:`benchmarks` explains it.

The times are measured on the machine that built these pages, each the best of
three fits.
"""

# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause

import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_friedman1
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor

from fastbp import BPRegressor

warnings.simplefilter("ignore", ConvergenceWarning)  # short fits, on purpose

X, y = make_friedman1(n_samples=2000, n_features=10, random_state=0)
y = (y - y.mean()) / y.std()


def best_time(cls, params, repeats=3):
    """The shortest of ``repeats`` fits, and the model of the last one."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model = cls(**params).fit(X, y)
        times.append(time.perf_counter() - start)
    return min(times), model


layouts = [(16,), (64,), (64, 64)]
results = []
for layout in layouts:
    params = dict(hidden_layer_sizes=layout, max_iter=5, random_state=0)
    t_bp, bp = best_time(BPRegressor, params)
    t_mlp, mlp = best_time(MLPRegressor, params)
    gap = np.abs(bp.predict(X) - mlp.predict(X)).max()
    results.append((t_bp, t_mlp))
    print("%-8s fastbp %6.1f ms  sklearn %6.1f ms  ratio %4.1fx  "
          "max prediction difference %.1e"
          % (layout, 1e3 * t_bp, 1e3 * t_mlp, t_mlp / t_bp, gap))

# %%
# Five epochs of Adam on 2,000 rows per fit. Lower is faster.
fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
positions = np.arange(len(layouts))
ax.bar(positions - 0.2, [1e3 * r[0] for r in results], width=0.4, label="fastbp")
ax.bar(positions + 0.2, [1e3 * r[1] for r in results], width=0.4,
       label="scikit-learn MLPRegressor")
ax.set_xticks(positions, [str(layout) for layout in layouts])
ax.set(xlabel="hidden_layer_sizes", ylabel="fit time (ms)")
ax.legend()
plt.show()
