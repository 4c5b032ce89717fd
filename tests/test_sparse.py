# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Sparse X: the first layer reads CSR rows in place; results match dense.

Sparse input is the network's business, so every test runs over the regressor
and each classifier target kind.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal


ignore_convergence = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning"
)
CONTAINERS = [sp.csr_matrix, sp.csc_matrix, sp.csr_array, sp.csc_array]


@pytest.fixture
def data(estimator_case):
    """The case's X with most entries zero and one empty row, and its y."""
    X = np.array(estimator_case.X)
    X[np.abs(X) < 0.8] = 0.0
    X[5] = 0.0  # an empty row
    return X, estimator_case.y


def _outputs(est, X):
    """What the network computes: predictions, or a classifier's probabilities."""
    return est.predict_proba(X) if hasattr(est, "predict_proba") else est.predict(X)


@ignore_convergence
@pytest.mark.parametrize("solver", ["lbfgs", "sgd", "adam"])
@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("early_stopping", [False, True])
def test_sparse_fit_matches_dense(estimator_case, data, solver, container,
                                  early_stopping):
    X, y = data
    params = dict(solver=solver, hidden_layer_sizes=(7,), batch_size=16, max_iter=10,
                  early_stopping=early_stopping, random_state=0)
    dense = estimator_case(**params).fit(X, y)
    sparse = estimator_case(**params).fit(container(X), y)
    assert sparse.n_iter_ == dense.n_iter_
    for a, b in zip(sparse.coefs_ + sparse.intercepts_, dense.coefs_ + dense.intercepts_):
        assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert_allclose(_outputs(sparse, container(X)), _outputs(dense, X), rtol=1e-10,
                    atol=1e-12)
    assert_allclose(_outputs(dense, container(X)), _outputs(dense, X), rtol=1e-12,
                    atol=1e-13)
    if estimator_case.is_classifier:
        assert_array_equal(sparse.predict(container(X)), dense.predict(X))


@ignore_convergence
def test_sparse_float32_and_partial_fit(estimator_case, data):
    X, y = data
    # A regressor's targets follow X's dtype; a classifier's labels are labels.
    y = y.astype(np.float32) if not estimator_case.is_classifier else y
    Xs = sp.csr_matrix(X.astype(np.float32))
    est = estimator_case(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    estimator_case.partial_fit(est, Xs, y)
    estimator_case.partial_fit(est, Xs, y)
    assert est.coefs_[0].dtype == np.float32
    dense = estimator_case(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    estimator_case.partial_fit(dense, X.astype(np.float32), y)
    estimator_case.partial_fit(dense, X.astype(np.float32), y)
    assert _outputs(est, Xs).dtype == np.float32
    assert_allclose(_outputs(est, Xs), _outputs(dense, X.astype(np.float32)), rtol=1e-5,
                    atol=1e-6)


def test_sparse_is_never_densified_whole(estimator_case, data, monkeypatch):
    X, y = data
    Xs = sp.csr_matrix(X)
    toarray, todense = sp.csr_matrix.toarray, sp.csr_matrix.todense

    # Only X itself is refused: a classifier's label binarizer builds (and
    # densifies) a small sparse indicator of y, which is fine.
    def refuse(real):
        def densify(self, *args, **kwargs):
            if self.shape == X.shape:
                raise AssertionError("X was densified")
            return real(self, *args, **kwargs)
        return densify

    monkeypatch.setattr(sp.csr_matrix, "toarray", refuse(toarray))
    monkeypatch.setattr(sp.csr_matrix, "todense", refuse(todense))
    est = estimator_case(hidden_layer_sizes=(5,), max_iter=2, random_state=0).fit(Xs, y)
    assert est.predict(Xs).shape == y.shape
    if estimator_case.is_classifier:
        assert est.predict_proba(Xs).shape[0] == len(y)


def test_sparse_rows_reject_bad_structure():
    from fastbp import _core

    data = np.ones(3)
    with pytest.raises(ValueError, match="out of range"):
        _core.Rows.csr(data, np.array([0, 1, 9]), np.array([0, 2, 3]), 4)
    with pytest.raises(ValueError, match="inconsistent CSR"):
        _core.Rows.csr(data, np.array([0, 1, 2]), np.array([0, 2, 2]), 4)
    with pytest.raises(ValueError, match="inconsistent CSR"):
        _core.Rows.csr(data, np.array([0, 1, 2]), np.array([0, 3, 2, 3]), 4)
