"""
Training on a Dask cluster
==========================

:func:`fastbp.dask.fit_incremental` trains over the row blocks of a dask array
(or the partitions of a dask dataframe) with ``partial_fit``. The model travels
to the data: each step runs on the worker that holds its block, so the data are
never gathered onto one machine. ``GridSearchCV`` runs its fits on the cluster
through joblib's Dask backend. Needs the ``dask`` extra.

This example starts a small ``LocalCluster`` in this process
(``processes=False``) so that the documentation builds quickly; with
``processes=True`` (the default) or ``Client("tcp://scheduler-host:8786")`` for
a multi-machine cluster, the same code runs unchanged, with fastbp installed on
the workers.
"""

# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause

import warnings

import dask.array as da
import joblib
from distributed import Client, LocalCluster
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from fastbp import BPRegressor
from fastbp.dask import fit_incremental

warnings.simplefilter("ignore", ConvergenceWarning)  # short fits, on purpose

cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                       dashboard_address=None)
client = Client(cluster)

X = da.random.default_rng(0).normal(size=(40_000, 20), chunks=(5_000, 20))
y = X[:, :5].sum(axis=1)

# %%
# Three passes over the eight blocks, one ``partial_fit`` per block.
est = fit_incremental(BPRegressor(hidden_layer_sizes=(64,), random_state=0),
                      X, y, n_epochs=3)
print("steps:", len(est.loss_curve_), "last loss: %.4f" % est.loss_curve_[-1])

# %%
# A grid search whose fits run on the workers.
X_small, y_small = X[:2000].compute(), y[:2000].compute()
grid = {"alpha": [1e-4, 1e-2], "hidden_layer_sizes": [(16,), (64,)]}
with joblib.parallel_backend("dask"):
    search = GridSearchCV(BPRegressor(max_iter=50, random_state=0), grid,
                          n_jobs=-1, cv=3)
    search.fit(X_small, y_small)
print(search.best_params_)

client.close()
cluster.close()
