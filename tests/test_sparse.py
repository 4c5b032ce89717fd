# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Sparse X: the first layer reads CSR rows in place; results match dense."""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose

from fastbp import BPRegressor

ignore_convergence = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning"
)
CONTAINERS = [sp.csr_matrix, sp.csc_matrix, sp.csr_array, sp.csc_array]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 30))
    X[rng.uniform(size=X.shape) < 0.8] = 0.0
    X[5] = 0.0  # an empty row
    y = np.column_stack([X[:, :5].sum(1), np.tanh(X[:, 5:10].sum(1))])
    return X, y


@ignore_convergence
@pytest.mark.parametrize("solver", ["lbfgs", "sgd", "adam"])
@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("early_stopping", [False, True])
def test_sparse_fit_matches_dense(data, solver, container, early_stopping):
    X, y = data
    params = dict(solver=solver, hidden_layer_sizes=(7,), batch_size=16, max_iter=10,
                  early_stopping=early_stopping, random_state=0)
    dense = BPRegressor(**params).fit(X, y)
    sparse = BPRegressor(**params).fit(container(X), y)
    assert sparse.n_iter_ == dense.n_iter_
    for a, b in zip(sparse.coefs_ + sparse.intercepts_, dense.coefs_ + dense.intercepts_):
        assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert_allclose(sparse.predict(container(X)), dense.predict(X), rtol=1e-10, atol=1e-12)
    assert_allclose(dense.predict(container(X)), dense.predict(X), rtol=1e-12, atol=1e-13)


@ignore_convergence
def test_sparse_float32_and_partial_fit(data):
    X, y = data
    Xs = sp.csr_matrix(X.astype(np.float32))
    est = BPRegressor(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    est.partial_fit(Xs, y.astype(np.float32))
    est.partial_fit(Xs, y.astype(np.float32))
    assert est.coefs_[0].dtype == np.float32
    dense = BPRegressor(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    dense.partial_fit(X.astype(np.float32), y.astype(np.float32))
    dense.partial_fit(X.astype(np.float32), y.astype(np.float32))
    assert_allclose(est.predict(Xs), dense.predict(X.astype(np.float32)), rtol=1e-5,
                    atol=1e-6)


def test_sparse_is_never_densified_whole(data, monkeypatch):
    X, y = data
    Xs = sp.csr_matrix(X)

    def refuse(*args, **kwargs):
        raise AssertionError("X was densified")

    monkeypatch.setattr(sp.csr_matrix, "toarray", refuse)
    monkeypatch.setattr(sp.csr_matrix, "todense", refuse)
    est = BPRegressor(hidden_layer_sizes=(5,), max_iter=2, random_state=0).fit(Xs, y)
    assert est.predict(Xs).shape == y.shape


def test_sparse_rows_reject_bad_structure():
    from fastbp import _core

    data = np.ones(3)
    with pytest.raises(ValueError, match="out of range"):
        _core.Rows.csr(data, np.array([0, 1, 9]), np.array([0, 2, 3]), 4)
    with pytest.raises(ValueError, match="inconsistent CSR"):
        _core.Rows.csr(data, np.array([0, 1, 2]), np.array([0, 2, 2]), 4)
    with pytest.raises(ValueError, match="inconsistent CSR"):
        _core.Rows.csr(data, np.array([0, 1, 2]), np.array([0, 3, 2, 3]), 4)
