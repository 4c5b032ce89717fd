# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""KeyboardInterrupt during training: the model keeps its last completed epoch.

Interruptions are injected deterministically through the module attribute the
estimator calls, ``fastbp._base._core.train_epoch``: a wrapper raises
``KeyboardInterrupt`` on its k-th call, either before running the real epoch
(nothing changed yet) or after it (the epoch's updates are done but not yet
booked). Both must end the same way: ``fit`` warns "Training interrupted" and
returns a model equal to one trained for k - 1 epochs. One test sends a real
SIGINT while the compiled loop runs a long epoch.

A KeyboardInterrupt that escapes ``fit`` would stop the whole pytest session,
so every call that may raise it goes through ``_no_escape``.

The network's epoch loop is shared, so every deterministic test runs over the
regressor and each classifier target kind; the real-SIGINT test, which needs a
big fit, runs on the regressor only.
"""

import copy
import itertools
import os
import signal
import threading
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from fastbp import BPRegressor
from fastbp import _base as regressor_module

INTERRUPTED = "Training interrupted"

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning"
)


@pytest.fixture
def data(estimator_case):
    return estimator_case.X, estimator_case.y


def _no_escape(call, *args, **kwargs):
    """Run a training call; fail the test (not the session) if Ctrl-C escapes."""
    try:
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            result = call(*args, **kwargs)
    except KeyboardInterrupt:  # pragma: no cover - the bug this file is about
        pytest.fail("KeyboardInterrupt escaped the training call")
    return result, [str(w.message) for w in record]


def _interrupt_on_call(monkeypatch, k, when, target="train_epoch"):
    """Make the k-th call of ``_core.<target>`` raise KeyboardInterrupt."""
    # One call per epoch: the per-epoch Python loop (the compiled loop has its
    # own tests below, with real signals).
    monkeypatch.setattr(regressor_module, "COMPILED_LOOP", False)
    real = getattr(regressor_module._core, target)
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(None)
        if len(calls) == k and when == "before":
            raise KeyboardInterrupt
        result = real(*args, **kwargs)
        if len(calls) == k and when == "after":
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(regressor_module._core, target, interrupted)
    return calls


def _glorot(random_state, layer_units):
    """The initial weights, drawn as scikit-learn draws them (relu/tanh)."""
    rs = np.random.RandomState(random_state)
    coefs, intercepts = [], []
    for fan_in, fan_out in itertools.pairwise(layer_units):
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        coefs.append(rs.uniform(-bound, bound, (fan_in, fan_out)))
        intercepts.append(rs.uniform(-bound, bound, fan_out))
    return coefs, intercepts


def _assert_same_params(a, b):
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(p, q)


def _assert_consistent(est, X, n_train):
    """The bookkeeping of a model after a (possibly interrupted) fresh fit."""
    assert est.n_iter_ == len(est.loss_curve_)
    assert est.t_ == est.n_iter_ * n_train
    if est.n_iter_:
        assert est.loss_ == est.loss_curve_[-1]
    if est.early_stopping:
        assert len(est.validation_scores_) == est.n_iter_
        best = max(est.validation_scores_, default=-np.inf)
        assert est.best_validation_score_ == best
    else:
        assert est.best_loss_ == min(est.loss_curve_, default=np.inf)
    assert all(np.isfinite(p).all() for p in est.coefs_ + est.intercepts_)
    _assert_predicts(est, X)


def _assert_predicts(est, X):
    """Finite predictions; for a classifier, labels among classes_ and
    probabilities in [0, 1]."""
    pred = est.predict(X)
    if not hasattr(est, "classes_"):
        assert pred.shape == (X.shape[0],) and np.isfinite(pred).all()
        return
    assert pred.shape[0] == X.shape[0]
    assert np.isin(pred, est.classes_).all()
    proba = est.predict_proba(X)
    assert np.isfinite(proba).all() and (proba >= 0).all() and (proba <= 1).all()


def _n_train(est, n_samples):
    if not est.early_stopping:
        return n_samples
    return n_samples - int(np.ceil(est.validation_fraction * n_samples))


PARAMS = dict(hidden_layer_sizes=(6,), max_iter=8, tol=0, n_iter_no_change=100,
              random_state=0)


@pytest.mark.parametrize("early_stopping", [False, True], ids=["plain", "early"])
@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("k", [2, 5])
def test_interrupted_fit_keeps_last_completed_epoch(monkeypatch, estimator_case, data,
                                                    k, when, solver, early_stopping):
    X, y = data
    params = dict(PARAMS, solver=solver, early_stopping=early_stopping)
    ref = estimator_case(**dict(params, max_iter=k - 1)).fit(X, y)

    calls = _interrupt_on_call(monkeypatch, k, when)
    est = estimator_case(**params)
    result, messages = _no_escape(est.fit, X, y)
    assert result is est
    assert len(calls) == k
    assert any(INTERRUPTED in m for m in messages)

    _assert_consistent(est, X, _n_train(est, len(X)))
    assert est.n_iter_ == k - 1 == ref.n_iter_
    assert est.t_ == ref.t_
    assert est.loss_curve_ == ref.loss_curve_
    assert est.validation_scores_ == ref.validation_scores_
    assert est.best_loss_ == ref.best_loss_
    assert est.best_validation_score_ == ref.best_validation_score_
    _assert_same_params(est, ref)

    # It trains on exactly as if it had been stopped there on purpose
    # (partial_fit has no early stopping: a warm-started fit continues those).
    monkeypatch.undo()
    if early_stopping:
        for model in (est, ref):
            _no_escape(model.set_params(warm_start=True, max_iter=2).fit, X, y)
    else:
        for model in (est, ref):
            _no_escape(model.partial_fit, X, y)
    _assert_same_params(est, ref)
    assert est.t_ == ref.t_ and est.loss_curve_ == ref.loss_curve_


@pytest.mark.parametrize("early_stopping", [False, True], ids=["plain", "early"])
@pytest.mark.parametrize("when", ["before", "after"])
def test_fit_interrupted_in_its_first_epoch(monkeypatch, estimator_case, data, when,
                                             early_stopping):
    # No epoch completed: the model holds its initial weights, has run zero
    # epochs, and can go on training.
    X, y = data
    _interrupt_on_call(monkeypatch, 1, when)
    est = estimator_case(**dict(PARAMS, early_stopping=early_stopping))
    result, messages = _no_escape(est.fit, X, y)
    assert result is est
    assert any(INTERRUPTED in m for m in messages)
    assert est.n_iter_ == 0 and est.loss_curve_ == [] and est.t_ == 0
    _assert_consistent(est, X, _n_train(est, len(X)))
    coefs, intercepts = _glorot(0, [X.shape[1], 6, estimator_case.n_outputs()])
    for p, q in zip(est.coefs_ + est.intercepts_, coefs + intercepts):
        np.testing.assert_array_equal(p, q)

    monkeypatch.undo()
    if early_stopping:
        _no_escape(est.set_params(warm_start=True, max_iter=1).fit, X, y)
    else:
        _no_escape(est.partial_fit, X, y)
    assert est.n_iter_ == 1 and len(est.loss_curve_) == 1
    assert est.t_ == _n_train(est, len(X))
    _assert_predicts(est, X)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("when", ["before", "after"])
def test_interrupted_partial_fit_keeps_the_model(monkeypatch, estimator_case, data, when,
                                                  solver):
    X, y = data
    est = estimator_case(**dict(PARAMS, solver=solver, max_iter=3)).fit(X, y)
    est.partial_fit(X, y)
    twin = copy.deepcopy(est)
    loss_curve, t = list(est.loss_curve_), est.t_

    _interrupt_on_call(monkeypatch, 1, when)
    _, messages = _no_escape(est.partial_fit, X[:50], y[:50])
    assert any(INTERRUPTED in m for m in messages)
    _assert_same_params(est, twin)
    assert est.loss_curve_ == loss_curve and est.t_ == t
    # The call completed no epoch, and n_iter_ counts the epochs of the last call.
    assert est.n_iter_ == 0
    _assert_predicts(est, X)

    # Optimizer state included: the next epoch is the one the twin trains.
    monkeypatch.undo()
    est.partial_fit(X, y)
    twin.partial_fit(X, y)
    _assert_same_params(est, twin)
    assert est.t_ == twin.t_ and est.loss_curve_ == twin.loss_curve_


@pytest.mark.parametrize("when", ["before", "after"])
def test_interrupted_warm_start_fit_keeps_its_completed_epochs(monkeypatch, estimator_case,
                                                               data, when):
    X, y = data
    params = dict(PARAMS, max_iter=4)
    est = estimator_case(**params).fit(X, y).set_params(warm_start=True, max_iter=6)
    ref = estimator_case(**params).fit(X, y).set_params(warm_start=True, max_iter=2)
    ref.fit(X, y)

    _interrupt_on_call(monkeypatch, 3, when)
    _, messages = _no_escape(est.fit, X, y)
    assert any(INTERRUPTED in m for m in messages)
    assert est.n_iter_ == ref.n_iter_ == 2
    assert est.loss_curve_ == ref.loss_curve_ and len(est.loss_curve_) == 6
    assert est.t_ == ref.t_ == 6 * len(X)
    _assert_same_params(est, ref)


@pytest.mark.parametrize("early_stopping", [False, True], ids=["plain", "early"])
def test_interrupt_in_the_epoch_bookkeeping(monkeypatch, estimator_case, data,
                                            early_stopping):
    # Ctrl-C lands in Python between the compiled epoch and the end of its
    # bookkeeping (here: in the verbose print of the epoch's loss). The epoch
    # is then undone as a whole, never half-booked.
    X, y = data
    k = 3
    params = dict(PARAMS, early_stopping=early_stopping)
    ref = estimator_case(**dict(params, max_iter=k - 1)).fit(X, y)
    printed = []

    def print_then_interrupt(*args, **kwargs):
        printed.append(args)
        if sum(str(a[0]).startswith("Iteration") for a in printed) == k:
            raise KeyboardInterrupt

    monkeypatch.setattr(regressor_module, "print", print_then_interrupt, raising=False)
    est = estimator_case(**dict(params, verbose=True))
    _, messages = _no_escape(est.fit, X, y)
    assert any(INTERRUPTED in m for m in messages)
    _assert_consistent(est, X, _n_train(est, len(X)))
    assert est.n_iter_ == k - 1
    assert est.loss_curve_ == ref.loss_curve_ and est.t_ == ref.t_
    assert est.validation_scores_ == ref.validation_scores_
    _assert_same_params(est, ref)


def test_interrupted_lbfgs_fit_is_consistent(monkeypatch, estimator_case, data):
    # L-BFGS has no epochs: an interrupt between its loss evaluations must
    # still leave a usable, consistent model (its last completed iteration),
    # not escape and not leave a half-written one.
    X, y = data
    _interrupt_on_call(monkeypatch, 6, "after", target="loss_grad")
    est = estimator_case(**dict(PARAMS, solver="lbfgs", max_iter=50))
    _, messages = _no_escape(est.fit, X, y)
    assert any(INTERRUPTED in m for m in messages)
    assert 1 <= est.n_iter_ == len(est.loss_curve_) < 6
    assert all(np.isfinite(p).all() for p in est.coefs_ + est.intercepts_)
    _assert_predicts(est, X)


@pytest.mark.parametrize("k", [3, 6])
def test_interrupted_lbfgs_keeps_its_last_iteration(monkeypatch, estimator_case, data, k):
    # The model is exactly the one of an L-BFGS run stopped by max_iter at the
    # last iteration that completed before the interrupt.
    X, y = data
    params = dict(PARAMS, solver="lbfgs", max_iter=50)
    _interrupt_on_call(monkeypatch, k, "after", target="loss_grad")
    est = estimator_case(**params)
    _, messages = _no_escape(est.fit, X, y)
    assert any(INTERRUPTED in m for m in messages)
    monkeypatch.undo()
    ref = estimator_case(**dict(params, max_iter=est.n_iter_)).fit(X, y)
    assert est.n_iter_ == ref.n_iter_ >= 1
    assert est.loss_curve_ == ref.loss_curve_ and est.loss_ == ref.loss_
    _assert_same_params(est, ref)


# ---------------------------------------------------------------- real SIGINT


def _raised_in_core(exc):
    """Was ``exc`` raised from inside the compiled module (not after it returned)?"""
    tb = exc.__traceback__
    while tb is not None:
        if "_core" in os.path.basename(tb.tb_frame.f_code.co_filename):
            return True
        tb = tb.tb_next
    return False


def test_sigint_during_a_long_epoch(monkeypatch, python_epoch_loop):
    # A real Ctrl-C while the compiled loop runs epoch 2 of a big fit. The
    # signal is sent once the loop has provably started that epoch (the
    # weights moved), so it lands inside the compiled call; the loop must
    # notice it between minibatches and stop there, without finishing the
    # epoch. Nothing here reads a clock, but the core checks for signals every
    # 50 ms, so an epoch must last many times that (about half a second here)
    # for the check to come before the epoch ends.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200_000, 20))
    y = np.tanh(X @ rng.standard_normal(20))
    est = BPRegressor(hidden_layer_sizes=(256,), max_iter=50, tol=0,
                      n_iter_no_change=1000, random_state=0)
    real = regressor_module._core.train_epoch
    calls, seen = [], []
    epoch_started = threading.Event()
    end_of_epoch_1 = []

    def train_epoch(*args):
        calls.append(None)
        if len(calls) == 2:
            end_of_epoch_1.extend(p.copy() for p in est.coefs_ + est.intercepts_)
            epoch_started.set()
        try:
            return real(*args)
        except KeyboardInterrupt as exc:
            seen.append(_raised_in_core(exc))
            raise

    def send_sigint():
        epoch_started.wait()
        # Wait (without a clock) until the compiled loop has updated the
        # weights, i.e. it is inside epoch 2, then interrupt it.
        watched = est.intercepts_[-1]
        while np.array_equal(watched, end_of_epoch_1[-1]) and len(calls) == 2:
            pass
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(regressor_module._core, "train_epoch", train_epoch)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    sender = threading.Thread(target=send_sigint, daemon=True)
    try:
        sender.start()
        try:
            with warnings.catch_warnings(record=True) as record:
                warnings.simplefilter("always")
                est.fit(X, y)
                sender.join()
        except KeyboardInterrupt:
            pytest.fail("KeyboardInterrupt escaped fit")
    finally:
        signal.signal(signal.SIGINT, previous)

    assert any(INTERRUPTED in str(w.message) for w in record)
    assert not any(issubclass(w.category, ConvergenceWarning) for w in record)
    # The interrupt cut epoch 2 short: it came out of the compiled loop.
    assert len(calls) == 2
    assert seen == [True], "the signal was only handled after the epoch finished"
    # ...and the model is the one of epoch 1, exactly.
    assert est.n_iter_ == 1 == len(est.loss_curve_)
    assert est.t_ == len(X)
    for p, q in zip(est.coefs_ + est.intercepts_, end_of_epoch_1):
        np.testing.assert_array_equal(p, q)
    assert np.isfinite(est.predict(X[:1000])).all()
    monkeypatch.undo()
    _no_escape(est.partial_fit, X[:1000], y[:1000])
    assert est.t_ == len(X) + 1000 and len(est.loss_curve_) == 2
