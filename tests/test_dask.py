# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Dask: incremental training over blocks on a real LocalCluster, GridSearchCV
through joblib's Dask backend, and partial_fit on read-only arrays."""

import copy
import doctest
import logging
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from fastbp import BPClassifier, BPRegressor
from process_workers import partial_fit_in_worker

da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")
fastbp_dask = pytest.importorskip("fastbp.dask")
fit_incremental = fastbp_dask.fit_incremental


@pytest.fixture(scope="module")
def client():
    # Worker processes, as on a real cluster: the model and the blocks are
    # serialised between processes.
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        silence_logs=logging.ERROR,
    ) as cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1200, 6))
    y = np.tanh(X @ rng.standard_normal(6)) + 0.05 * rng.standard_normal(1200)
    return X, y


def _est(**params):
    return BPRegressor(**{"hidden_layer_sizes": (8,), "random_state": 0, **params})


def _key_name(key):
    return key[0] if isinstance(key, tuple) else key


def _partial_fit_blocks(est, X, y, n_blocks, n_epochs, **kwargs):
    bounds = np.linspace(0, len(y), n_blocks + 1).astype(int)
    rows = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    for _ in range(n_epochs):
        for block in rows:
            X_block = X.iloc[block] if hasattr(X, "iloc") else X[block]
            est.partial_fit(X_block, y[block], **kwargs)
    return est


def test_fit_incremental_runs_where_the_blocks_are(client, data):
    X, y = data
    X_dask = da.from_array(X, chunks=(200, 3))  # split by columns too: rejoined
    y_dask = da.from_array(y, chunks=300)  # other row chunks: aligned to X's
    # Put the blocks on the workers, as data loaded by the cluster would be.
    X_dask, y_dask = client.persist([X_dask, y_dask])
    distributed.wait([X_dask, y_dask])
    assert len({w for ws in client.who_has(X_dask).values() for w in ws}) == 2

    with distributed.get_task_stream(client) as stream:
        est = _est()
        returned = fit_incremental(est, X_dask, y_dask, n_epochs=2)
    assert returned is est

    expected = _partial_fit_blocks(_est(), X, y, n_blocks=6, n_epochs=2)
    assert est.loss_curve_ == pytest.approx(expected.loss_curve_, rel=1e-12)
    for a, b in zip(est.coefs_, expected.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    steps = [t for t in stream.data if _key_name(t["key"]).startswith("_partial_fit")]
    assert len(steps) == 12
    assert len({t["worker"] for t in steps}) == 2  # the model went to the data


def test_fit_incremental_on_a_dask_dataframe(client, data):
    X, y = data
    frame = pd.DataFrame(X, columns=["f%d" % i for i in range(6)])
    X_dask = dd.from_pandas(frame, npartitions=4)
    y_dask = dd.from_pandas(pd.Series(y, name="y"), npartitions=4)
    est = fit_incremental(_est(), X_dask, y_dask)
    assert list(est.feature_names_in_) == list(frame.columns)
    expected = _partial_fit_blocks(_est(), frame, y, n_blocks=4, n_epochs=1)
    np.testing.assert_allclose(est.predict(frame), expected.predict(frame), rtol=1e-12)


@pytest.fixture(scope="module")
def labels(data):
    """Three classes, as strings, and a two-label indicator matrix of data's X."""
    X = data[0]
    index = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)
    return np.array(["low", "mid", "high"])[index], np.column_stack(
        [X[:, 0] > 0, X[:, 2] > 0]).astype(np.int64)


def _clf(**params):
    return BPClassifier(**{"hidden_layer_sizes": (8,), "random_state": 0, **params})


def _check_same_classifier(est, expected, X):
    np.testing.assert_array_equal(est.classes_, expected.classes_)
    assert est.loss_curve_ == pytest.approx(expected.loss_curve_, rel=1e-12)
    np.testing.assert_allclose(est.predict_proba(X), expected.predict_proba(X),
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(est.predict(X), expected.predict(X))


def test_classifier_finds_its_classes_on_the_cluster(client, data, labels):
    X, y = data[0], labels[0]
    # "high" rows last: the first blocks hold only two of the three classes.
    order = np.argsort(y == "high", kind="stable")
    X, y = X[order], y[order]
    assert set(y[:200]) < set(y)
    X_dask, y_dask = da.from_array(X, chunks=(200, 6)), da.from_array(y, chunks=200)
    X_dask, y_dask = client.persist([X_dask, y_dask])
    with distributed.get_task_stream(client) as stream:
        est = fit_incremental(_clf(), X_dask, y_dask, n_epochs=2)
    expected = _partial_fit_blocks(_clf(), X, y, n_blocks=6, n_epochs=2,
                                   classes=np.unique(y))
    _check_same_classifier(est, expected, X)
    steps = [t for t in stream.data if _key_name(t["key"]).startswith("_partial_fit")]
    assert len(steps) == 12 and len({t["worker"] for t in steps}) == 2


def test_classifier_on_a_dask_dataframe_with_given_classes(client, data, labels):
    X, y = data[0], labels[0]
    frame = pd.DataFrame(X, columns=["f%d" % i for i in range(6)])
    X_dask = dd.from_pandas(frame, npartitions=3)
    y_dask = dd.from_pandas(pd.Series(y, name="y"), npartitions=3)
    classes = ["high", "low", "mid", "none"]  # a class no row holds
    est = fit_incremental(_clf(solver="sgd"), X_dask, y_dask, classes=classes)
    assert list(est.classes_) == classes
    assert list(est.feature_names_in_) == list(frame.columns)
    expected = _partial_fit_blocks(_clf(solver="sgd"), frame, y, n_blocks=3,
                                   n_epochs=1, classes=classes)
    _check_same_classifier(est, expected, frame)


def test_multilabel_classifier_needs_no_classes(client, data, labels):
    X, Y = data[0], labels[1]
    X_dask, Y_dask = da.from_array(X, chunks=(400, 6)), da.from_array(Y, chunks=400)
    est = fit_incremental(_clf(), X_dask, Y_dask)
    expected = _partial_fit_blocks(_clf(), X, Y, n_blocks=3, n_epochs=1)
    _check_same_classifier(est, expected, X)
    assert est.predict(X).shape == (len(X), 2)


def test_fitted_classifier_continues(data, labels):
    # A fitted classifier knows its classes: no pass over y, and the same
    # results as more partial_fit calls.
    X, y = data[0], labels[0]
    X_dask, y_dask = da.from_array(X, chunks=(600, 6)), da.from_array(y, chunks=600)
    start = _clf().partial_fit(X[:100], y[:100], classes=np.unique(y))
    est = fit_incremental(copy.deepcopy(start), X_dask, y_dask)
    expected = _partial_fit_blocks(start, X, y, n_blocks=2, n_epochs=1)
    _check_same_classifier(est, expected, X)


def test_docstring_examples_hold():
    # Dask's local scheduler runs the examples of fit_incremental.
    runner = doctest.DocTestRunner()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for test in doctest.DocTestFinder().find(fit_incremental, globs={}):
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0 and result.failed == 0


def test_fit_incremental_shuffles_blocks_reproducibly(data):
    # Dask's local scheduler: no Client needed.
    X, y = data
    X_dask, y_dask = da.from_array(X, chunks=(300, 6)), da.from_array(y, chunks=300)
    runs = [fit_incremental(_est(), X_dask, y_dask, n_epochs=2, shuffle_blocks=True,
                            random_state=seed) for seed in (1, 1, 2)]
    assert runs[0].loss_curve_ == runs[1].loss_curve_
    assert runs[0].loss_curve_ != runs[2].loss_curve_


def test_fit_incremental_errors(data):
    X, y = data
    X_dask, y_dask = da.from_array(X, chunks=300), da.from_array(y, chunks=300)
    with pytest.raises(TypeError, match="takes a dask array or dask DataFrame"):
        fit_incremental(_est(), X, y)
    match = "has no partial_fit .BPRegressor and BPClassifier have it"
    with pytest.raises(TypeError, match=match):
        fit_incremental(_est(solver="lbfgs"), X_dask, y_dask)
    with pytest.raises(TypeError, match=match):
        fit_incremental(_clf(solver="lbfgs"), X_dask, y_dask > 0)
    with pytest.raises(ValueError, match="classes is for classifiers"):
        fit_incremental(_est(), X_dask, y_dask, classes=[0, 1])
    with pytest.raises(ValueError, match="rows"):
        fit_incremental(_est(), X_dask, y_dask[:-1])
    with pytest.raises(ValueError, match="early_stopping"):
        fit_incremental(_est(early_stopping=True), X_dask, y_dask)


def test_grid_search_on_the_cluster(client, data):
    X, y = data[0][:300], data[1][:300]
    grid = {"hidden_layer_sizes": [(4,), (8,)], "alpha": [1e-4, 1e-1]}
    search = GridSearchCV(_est(max_iter=15), grid, cv=3, n_jobs=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with distributed.get_task_stream(client) as stream:
            with joblib.parallel_backend("dask"):
                search.fit(X, y)
        local = GridSearchCV(_est(max_iter=15), grid, cv=3).fit(X, y)
    # The cross-validation fits ran as tasks on the cluster's workers.
    fits = [t for t in stream.data if "_fit_and_score" in str(_key_name(t["key"]))]
    assert fits
    assert {t["worker"] for t in fits} <= set(client.scheduler_info()["workers"])
    np.testing.assert_allclose(search.cv_results_["mean_test_score"],
                               local.cv_results_["mean_test_score"], rtol=1e-12)
    assert search.best_params_ == local.best_params_


# ------------------------------------------------------ read-only arrays


def test_partial_fit_on_read_only_arrays(data, tmp_path):
    X, y = data
    np.save(tmp_path / "X.npy", X)
    X_map = np.load(tmp_path / "X.npy", mmap_mode="r")
    y_ro = y.copy()
    y_ro.setflags(write=False)
    assert not X_map.flags.writeable
    est = _est().partial_fit(X_map, y_ro).partial_fit(X_map[:100], y_ro[:100])
    expected = _est().partial_fit(X, y).partial_fit(X[:100], y[:100])
    for a, b in zip(est.coefs_, expected.coefs_):
        np.testing.assert_array_equal(a, b)


def test_partial_fit_in_loky_workers(data):
    X, y = data
    results = joblib.Parallel(n_jobs=2, backend="loky", max_nbytes="1K")(
        joblib.delayed(partial_fit_in_worker)(_est(), X, y) for _ in range(2)
    )
    expected = _est().partial_fit(X, y)
    for est, kind in results:
        assert kind == "memmap"
        np.testing.assert_allclose(est.predict(X), expected.predict(X), rtol=1e-12)
