# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Calls that fail leave the estimator as it was; one estimator is never
trained by two threads at once; learning rates too large fail clearly.

Every test runs over both estimators. The state is compared bitwise: every
attribute, every array, the optimizer moments and a RandomState passed as
random_state.
"""

import pickle
import threading
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal
from sklearn.exceptions import ConvergenceWarning

import fastbp._base as base_module
from fastbp import BPClassifier, BPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data(kind, n=60):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 4))
    if kind == "regressor":
        return X, X @ np.array([1.0, -2.0, 0.5, 0.0])
    return X, np.array(["a", "b", "c"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0)]


ESTIMATORS = {"regressor": BPRegressor, "classifier": BPClassifier}


def _fitted(kind, **params):
    X, y = _data(kind)
    defaults = dict(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    est = ESTIMATORS[kind](**{**defaults, **params})
    if params.get("solver") == "lbfgs" or params.get("early_stopping"):
        return est.fit(X, y), X, y
    return est.partial_fit(X, y, **({} if kind == "regressor" else
                                    {"classes": np.unique(y)})), X, y


def assert_same_state(a, b):
    """Bitwise equality of two estimators' __dict__ (deep)."""
    assert set(vars(a)) == set(vars(b)), set(vars(a)) ^ set(vars(b))
    for name in vars(a):
        _assert_same(getattr(a, name), getattr(b, name), name)


def _assert_same(x, y, where):
    if isinstance(x, np.random.RandomState):
        sx, sy = x.get_state(), y.get_state()
        assert sx[0] == sy[0] and sx[2:] == sy[2:], where
        assert_array_equal(sx[1], sy[1])
    elif isinstance(x, np.ndarray):
        assert x.dtype == y.dtype and x.shape == y.shape, where
        assert_array_equal(x, y, err_msg=where)
    elif isinstance(x, dict):
        assert x.keys() == y.keys(), where
        for k in x:
            _assert_same(x[k], y[k], "%s[%r]" % (where, k))
    elif isinstance(x, (list, tuple)):
        assert len(x) == len(y), where
        for i, (p, q) in enumerate(zip(x, y)):
            _assert_same(p, q, "%s[%d]" % (where, i))
    elif hasattr(x, "classes_") and hasattr(x, "y_type_"):  # the label binarizer
        assert_array_equal(x.classes_, y.classes_)
        assert x.y_type_ == y.y_type_
    elif isinstance(x, float) and x != x:
        assert y != y, where
    else:
        assert x == y, where


class _Injected(Exception):
    pass


# The property test records the cases where its exception was raised, so the
# test after it can check that the property was not checked vacuously.
_INJECTED = []


@pytest.mark.parametrize("kind", ESTIMATORS)
@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    solver=st.sampled_from(["sgd", "adam", "lbfgs"]),
    mode=st.sampled_from(["warm_start", "partial_fit"]),
    early_stopping=st.booleans(),
    fail_at=st.integers(1, 4),
    where=st.sampled_from(["train_epoch", "loss_grad", "print", "predict"]),
    rng_instance=st.booleans(),
)
def test_any_exception_after_training_started_changes_nothing(
    kind, solver, mode, early_stopping, fail_at, where, rng_instance
):
    """Whatever raises, at whatever point of a call: the state is as before."""
    if mode == "partial_fit" and (solver == "lbfgs" or early_stopping):
        return
    random_state = np.random.RandomState(0) if rng_instance else 0
    est, X, y = _fitted(kind, solver=solver, early_stopping=early_stopping,
                        random_state=random_state, verbose=where == "print")
    before = pickle.loads(pickle.dumps(est))
    target = base_module if where == "print" else base_module._core
    real = getattr(target, where, print)
    calls = []

    def failing(*args, **kwargs):
        calls.append(None)
        if len(calls) == fail_at:
            raise _Injected
        return real(*args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(target, where, failing, raising=False)
    # One call of train_epoch per epoch: the per-epoch Python loop.
    mp.setattr(base_module, "COMPILED_LOOP", False)
    if mode == "warm_start":
        for e in (est, before):
            e.set_params(warm_start=True, max_iter=6, tol=0, n_iter_no_change=99)
    try:
        if mode == "warm_start":
            est.fit(X, y)
        else:
            est.partial_fit(X, y)
    except _Injected:
        assert_same_state(est, before)
        _INJECTED.append((kind, solver, mode, where))
    else:
        # This configuration never reaches the injected point.
        assert len(calls) < fail_at
    finally:
        mp.undo()


def test_injections_reached_every_kind_of_failure_point():
    reached = {(kind, where) for kind, _, _, where in _INJECTED}
    for kind in ESTIMATORS:
        for where in ("train_epoch", "loss_grad", "print", "predict"):
            assert (kind, where) in reached, (kind, where)


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_broken_pipe_while_printing_changes_nothing(kind, monkeypatch):
    est, X, y = _fitted(kind, verbose=True)
    before = pickle.loads(pickle.dumps(est))
    lines = []

    def broken(*args, **kwargs):
        lines.append(args)
        if len(lines) == 3:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(base_module, "print", broken, raising=False)
    est.set_params(warm_start=True, max_iter=5)
    before.set_params(warm_start=True, max_iter=5)
    with pytest.raises(BrokenPipeError):
        est.fit(X, y)
    assert_same_state(est, before)


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_warning_turned_error_on_warm_start_changes_nothing(kind):
    est, X, y = _fitted(kind)
    est.set_params(warm_start=True, max_iter=2)
    before = pickle.loads(pickle.dumps(est))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with pytest.raises(ConvergenceWarning):
            est.fit(X, y)
    assert_same_state(est, before)


@pytest.mark.parametrize("kind", ESTIMATORS)
@pytest.mark.parametrize("power_t", [1e6, 1e300])
def test_huge_power_t_gives_a_zero_rate_not_an_overflow(kind, power_t):
    X, y = _data(kind)
    est = ESTIMATORS[kind](hidden_layer_sizes=(5,), solver="sgd",
                           learning_rate="invscaling", power_t=power_t,
                           max_iter=4, random_state=0).fit(X, y)
    assert est._optimizer_state["learning_rate"] == 0.0
    # With a zero rate nothing moves after the first epoch: the velocity decays.
    assert all(np.isfinite(c).all() for c in est.coefs_)


@pytest.mark.parametrize("kind", ESTIMATORS)
@pytest.mark.parametrize("lr", [1e6, 1e10])
def test_adam_with_an_absurd_rate_never_passes_silently(kind, lr):
    """Finite garbage is flagged: a warning says the model is useless."""
    X, y = _data(kind, n=200)
    est = ESTIMATORS[kind](hidden_layer_sizes=(5,), learning_rate_init=lr,
                           max_iter=30, random_state=0)
    with pytest.warns(ConvergenceWarning, match="most likely useless"):
        est.fit(X, y)


# ------------------------------------------------------------- threads


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_second_thread_cannot_fit_or_predict_while_one_fits(kind, monkeypatch,
                                                          python_epoch_loop):
    """The first fit carries on untouched; the others get a clear RuntimeError."""
    X, y = _data(kind)
    est = ESTIMATORS[kind](hidden_layer_sizes=(5,), max_iter=4, tol=0,
                           n_iter_no_change=99, random_state=0)
    ref = ESTIMATORS[kind](**est.get_params()).fit(X, y)
    est.fit(X, y)  # fitted, so predict has a model to refuse from
    inside, release = threading.Event(), threading.Event()
    real = base_module._core.train_epoch

    def paused(*args):
        if not inside.is_set():
            inside.set()
            release.wait(30)
        return real(*args)

    monkeypatch.setattr(base_module._core, "train_epoch", paused)
    errors = []
    worker = threading.Thread(target=lambda: est.fit(X, y))
    worker.start()
    assert inside.wait(30)
    for call in (lambda: est.fit(X, y), lambda: est.predict(X),
                 lambda: est.partial_fit(X, y)):
        with pytest.raises(RuntimeError, match="another thread is fitting") as info:
            call()
        errors.append(info.value)
    release.set()
    worker.join(30)
    assert len(errors) == 3
    assert est.n_iter_ == 4
    assert_array_equal(est.predict(X), ref.predict(X))


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_concurrent_fits_of_one_estimator_never_corrupt_it(kind):
    """Without pausing anything: every fit either completes or is refused, and
    the model is always one that a single fit produces."""
    X, y = _data(kind)
    params = dict(hidden_layer_sizes=(5,), max_iter=15, tol=0, n_iter_no_change=99,
                  random_state=0)
    est = ESTIMATORS[kind](**params)
    ref = ESTIMATORS[kind](**params).fit(X, y)
    outcomes = []

    def work():
        for _ in range(5):
            try:
                est.fit(X, y)
                outcomes.append("fit")
            except RuntimeError:
                outcomes.append("refused")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert "fit" in outcomes and len(outcomes) == 20
    assert est.n_iter_ == 15
    assert_array_equal(est.predict(X), ref.predict(X))
