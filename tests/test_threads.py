# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Threads: predict releases the GIL, and concurrent use gives serial results.

Nothing here reads a clock. Whether the GIL is released is observed through
the order of events: with a huge switch interval the interpreter never takes
the GIL away from a running thread, so a waiting thread runs only when the
running one gives the GIL up by itself, as a ``with nogil:`` block does.
"""

import copy
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_info

from conftest import CLASSIFIER_KINDS, ESTIMATOR_KINDS, make_estimator_case
from fastbp import BPClassifier, BPRegressor
from fastbp import _base as regressor_module

N_THREADS = 16

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning"
)


def _data(rng, n_samples=300, n_features=8, n_outputs=1):
    X = rng.standard_normal((n_samples, n_features))
    W = rng.standard_normal((n_features, n_outputs))
    Y = np.tanh(X @ W) + 0.1 * rng.standard_normal((n_samples, n_outputs))
    return X, Y[:, 0] if n_outputs == 1 else Y


# The multiclass classifier (softmax, string labels) is in the default run; the
# binary and multilabel ones (logistic output) take a second each in the
# sixteen-thread tests and are marked slow.
FITTED_KINDS = [
    kind if kind in ("regression", "multiclass") else pytest.param(
        kind, marks=pytest.mark.slow)
    for kind in ESTIMATOR_KINDS
]


@pytest.fixture(scope="module", params=FITTED_KINDS)
def fitted(request):
    if request.param == "regression":
        Estimator = BPRegressor
        X, y = _data(np.random.default_rng(0), n_outputs=2)
    else:
        case = make_estimator_case(request.param)
        Estimator, X, y = case.Estimator, case.X, case.y
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return Estimator(hidden_layer_sizes=(32, 16), activation="tanh",
                         max_iter=5, random_state=0).fit(X, y)


def _methods(est, log=False):
    """The predicting methods of ``est``: predict, and a classifier's
    probabilities (and, with ``log``, their logarithm, which is computed from
    them)."""
    names = ["predict"]
    if hasattr(est, "predict_proba"):
        names += ["predict_proba"] + ["predict_log_proba"] * log
    return [getattr(est, name) for name in names]


def _runs_while_inside(monkeypatch, est, X, inner, method="predict"):
    """Does another thread get to run while ``inner`` (in place of
    ``_core.predict``) runs inside ``est.<method>(X)`` on a worker thread?"""
    entered = threading.Event()
    state = {"done": False}

    def wrapper(*args):
        entered.set()
        try:
            return inner(*args)
        finally:
            state["done"] = True

    monkeypatch.setattr(regressor_module._core, "predict", wrapper)
    interval = sys.getswitchinterval()
    # No preemption: the GIL now changes hands only when a thread lets it go.
    sys.setswitchinterval(1000.0)
    try:
        worker = threading.Thread(target=getattr(est, method), args=(X,))
        worker.start()
        # Waiting releases the GIL; once the worker sets the event, this thread
        # needs the GIL back, which it gets only when the worker gives it up.
        entered.wait()
        inside = not state["done"]
        worker.join()
    finally:
        sys.setswitchinterval(interval)
        monkeypatch.undo()
    return inside


def test_predict_releases_the_gil(monkeypatch, fitted):
    X = np.random.default_rng(1).standard_normal((20_000, fitted.n_features_in_))
    for method in _methods(fitted):
        _assert_releases_the_gil(monkeypatch, fitted, X, method.__name__)


def _assert_releases_the_gil(monkeypatch, fitted, X, method):
    real = regressor_module._core.predict

    def holds_the_gil(*args):
        # Pure bytecode: never lets the GIL go.
        total = 0
        for i in range(300_000):
            total += i

    # The probe itself: a kernel that keeps the GIL is never overtaken.
    assert not _runs_while_inside(monkeypatch, fitted, X, holds_the_gil, method)
    # The real kernel is. The nogil section must still be running when the
    # woken thread gets scheduled, which on a loaded machine may take a retry;
    # a kernel holding the GIL would fail every time.
    assert any(_runs_while_inside(monkeypatch, fitted, X, real, method)
               for _ in range(5))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sixteen_threads_predict_like_one(fitted, dtype):
    rng = np.random.default_rng(2)
    # Different sizes per thread: some below one block of rows, some above.
    width = fitted.n_features_in_
    inputs = [rng.standard_normal((n, width)).astype(dtype)
              for n in rng.integers(1, 3000, size=N_THREADS)]
    inputs[0] = rng.standard_normal((10_000, width)).astype(dtype)
    before = copy.deepcopy((fitted.coefs_, fitted.intercepts_))
    methods = _methods(fitted)
    serial = [[method(X) for method in methods] for X in inputs]
    start = threading.Barrier(N_THREADS)

    def predict(X):
        start.wait()
        return [[method(X) for method in methods] for _ in range(3)]

    with ThreadPoolExecutor(N_THREADS) as pool:
        results = list(pool.map(predict, inputs))
    for expected, got in zip(serial, results):
        for preds in got:
            for pred, exp in zip(preds, expected):
                if exp.dtype.kind == "f":
                    assert pred.dtype == dtype
                assert pred.dtype == exp.dtype and pred.shape == exp.shape
                np.testing.assert_array_equal(pred, exp)
    # Predicting never writes to the model, even when it casts it for float32.
    for a, b in zip(fitted.coefs_ + fitted.intercepts_, before[0] + before[1]):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == np.float64


def test_sixteen_threads_predict_the_same_rows(fitted):
    X = np.random.default_rng(3).standard_normal((3000, fitted.n_features_in_))
    methods = _methods(fitted, log=True)
    expected = [method(X) for method in methods]
    start = threading.Barrier(N_THREADS)

    def predict(_):
        start.wait()
        return [method(X) for method in methods]

    with ThreadPoolExecutor(N_THREADS) as pool:
        for preds in pool.map(predict, range(N_THREADS)):
            for pred, exp in zip(preds, expected):
                np.testing.assert_array_equal(pred, exp)


def _fit_one(spec):
    """Fit ``(params, X, y[, Estimator])``; the estimator defaults to BPRegressor."""
    params, X, y, *Estimator = spec
    Estimator = Estimator[0] if Estimator else BPRegressor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return Estimator(**params).fit(X, y)


_VARIANTS = [
        dict(solver="adam"),
        dict(solver="sgd", momentum=0.9),
        dict(solver="sgd", learning_rate="adaptive"),
        dict(early_stopping=True),
        dict(activation="tanh", batch_size=32),
        dict(activation="logistic", alpha=0.1),
        dict(hidden_layer_sizes=()),
        dict(shuffle=False),
]


def _specs():
    rng = np.random.default_rng(4)
    variants = _VARIANTS
    specs = []
    for i, variant in enumerate(variants):
        dtype = np.float32 if i % 2 else np.float64
        X, y = _data(rng, n_samples=200 + 37 * i, n_outputs=1 + i % 3)
        params = dict(hidden_layer_sizes=(12,), max_iter=15, random_state=i)
        params.update(variant)
        specs.append((params, X.astype(dtype), y.astype(dtype)))
    return specs


def _assert_same_model(a, b):
    assert a.n_iter_ == b.n_iter_ and a.t_ == b.t_
    assert a.loss_curve_ == b.loss_curve_
    assert a.validation_scores_ == b.validation_scores_
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert p.dtype == q.dtype
        np.testing.assert_array_equal(p, q)


def _classifier_specs():
    """The same variants, for BPClassifier on each target kind in turn."""
    specs = []
    for i, variant in enumerate(_VARIANTS):
        case = make_estimator_case(CLASSIFIER_KINDS[i % 3])
        dtype = np.float32 if i % 2 else np.float64
        params = dict(hidden_layer_sizes=(12,), max_iter=15, random_state=i)
        params.update(variant)
        specs.append((params, case.X.astype(dtype), case.y, BPClassifier))
    return specs


@pytest.mark.parametrize("make_specs", [_specs, _classifier_specs],
                         ids=["regressor", "classifier"])
def test_parallel_fits_equal_serial_fits(make_specs):
    specs = make_specs()
    serial = [_fit_one(spec) for spec in specs]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(_fit_one, specs))
    for a, b in zip(parallel, serial):
        _assert_same_model(a, b)


@pytest.mark.parametrize("kind", ["regression", "multiclass"])
def test_parallel_fits_and_predicts_on_one_dataset(kind):
    # Several models sharing one read-only X while others predict from it.
    if kind == "regression":
        rng = np.random.default_rng(5)
        X, y = _data(rng, n_samples=400)
        X.flags.writeable = False
        Estimator = BPRegressor
    else:
        case = make_estimator_case(kind)  # read-only already
        X, y, Estimator = case.X, case.y, case.Estimator
    specs = [(dict(hidden_layer_sizes=(8,), max_iter=10, random_state=s), X, y,
              Estimator) for s in range(6)]
    serial = [_fit_one(spec) for spec in specs]
    expected = [m.predict(X) for m in serial]
    with ThreadPoolExecutor(6) as pool:
        fits = [pool.submit(_fit_one, spec) for spec in specs]
        predictions = [pool.submit(m.predict, X) for m in serial]
        for future, model in zip(fits, serial):
            _assert_same_model(future.result(), model)
        for future, pred in zip(predictions, expected):
            np.testing.assert_array_equal(future.result(), pred)


def _blas_threads():
    return sorted((i["filepath"], i["num_threads"])
                  for i in threadpool_info() if i["user_api"] == "blas")


def test_parallel_fits_leave_blas_threads_as_they_were(monkeypatch, python_epoch_loop):
    # Small networks pin BLAS to one thread for the duration of a fit. BLAS
    # thread counts are process-wide, so overlapping fits must not restore
    # each other's limits in the wrong order. Here fit A starts first and
    # finishes first while fit B runs: when both are done, the count must be
    # the one from before A.
    X, y = _data(np.random.default_rng(6), n_samples=100)
    real = regressor_module._core.train_epoch
    a_inside, b_inside, a_done = threading.Event(), threading.Event(), threading.Event()
    # The waits have a timeout only so that an implementation that runs fits
    # one at a time cannot hang the suite; the assertion does not depend on it.
    patience = 10.0

    def train_epoch(*args):
        name = threading.current_thread().name
        if name == "fit-a" and not a_inside.is_set():
            a_inside.set()
            b_inside.wait(patience)
        elif name == "fit-b" and not b_inside.is_set():
            b_inside.set()
            a_done.wait(patience)
        return real(*args)

    def fit():
        name = threading.current_thread().name
        if name == "fit-b":
            a_inside.wait(patience)
        try:
            _fit_one((dict(hidden_layer_sizes=(4,), max_iter=2, random_state=0), X, y))
        finally:
            if name == "fit-a":
                a_done.set()

    monkeypatch.setattr(regressor_module._core, "train_epoch", train_epoch)
    # The process's own BLAS setting (more than one thread on CI's 2 cores).
    before = _blas_threads()
    assert before
    threads = [threading.Thread(target=fit, name=name) for name in ("fit-a", "fit-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert a_inside.is_set() and b_inside.is_set() and a_done.is_set()
    assert _blas_threads() == before


def test_second_thread_is_refused_by_every_classifier_entry_point(monkeypatch,
                                                                  classifier_case,
                                                                  python_epoch_loop):
    # While one thread fits a classifier, every other entry point called from
    # another thread raises RuntimeError, and the fit carries on untouched.
    # (test_transactions covers fit, partial_fit and predict for both estimators.)
    case = classifier_case
    X, y = case.X, case.y
    params = dict(hidden_layer_sizes=(5,), max_iter=4, tol=0, n_iter_no_change=99,
                  random_state=0)
    ref = _fit_one((params, X, y, BPClassifier))
    est = _fit_one((params, X, y, BPClassifier))
    inside, release = threading.Event(), threading.Event()
    real = regressor_module._core.train_epoch

    def paused(*args):
        if not inside.is_set():
            inside.set()
            release.wait(30)
        return real(*args)

    def refit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y)

    monkeypatch.setattr(regressor_module._core, "train_epoch", paused)
    worker = threading.Thread(target=refit)
    worker.start()
    try:
        assert inside.wait(30)
        calls = {
            "fit": lambda: est.fit(X, y),
            "partial_fit": lambda: case.partial_fit(est, X, y),
            "predict": lambda: est.predict(X),
            "predict_proba": lambda: est.predict_proba(X),
            "predict_log_proba": lambda: est.predict_log_proba(X),
            "score": lambda: est.score(X, y),
        }
        for name, call in calls.items():
            with pytest.raises(RuntimeError, match="another thread is fitting"):
                call()
    finally:
        release.set()
        worker.join(30)
    _assert_same_model(est, ref)
