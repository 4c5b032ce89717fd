# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""The epoch loop in one compiled call (``_core.train_epochs``).

A fit that nothing watches from Python runs all its epochs in one compiled
call: the shuffles drawn from the MT19937 state as ``RandomState.shuffle``
draws them, the stopping rule on the training loss, the schedules, the
per-epoch checkpoint. Oracles: numpy's own shuffle, and the per-epoch Python
loop (``COMPILED_LOOP = False``), which the sklearn parity tests check against
scikit-learn; every fitted attribute and the random state after the call must
be bitwise equal.
"""

import signal
import warnings

import numpy as np
import pytest
from sklearn.datasets import make_regression
from sklearn.exceptions import ConvergenceWarning

from fastbp import BPRegressor, _base, _core


@pytest.mark.parametrize("seed", range(12))
def test_shuffle_rows_is_randomstate_shuffle(seed):
    sizes = [0, 1, 2, 3, 7, 32, 100, 353, 623, 624, 625, 1000, 4097, 70_001]
    rs = np.random.RandomState(seed)
    # Start anywhere in the state, with or without a cached Gaussian.
    rs.random_sample(seed * 37)
    if seed % 2:
        rs.standard_normal()
    twin = np.random.RandomState()
    twin.set_state(rs.get_state())
    for n in sizes:
        x = np.arange(n, dtype=np.intp) * 5 - 3
        expected = x.copy()
        twin.shuffle(expected)
        _core.shuffle_rows(x, rs)
        np.testing.assert_array_equal(x, expected)
        after, twin_after = rs.get_state(), twin.get_state()
        np.testing.assert_array_equal(after[1], twin_after[1])
        assert after[2:] == twin_after[2:]


_FITTED = ("coefs_", "intercepts_", "loss_", "loss_curve_", "best_loss_", "n_iter_",
           "t_", "_no_improvement_count")


def _assert_same_model(a, b):
    for name in _FITTED:
        x, y = getattr(a, name), getattr(b, name)
        if name in ("coefs_", "intercepts_"):
            for p, q in zip(x, y):
                assert p.dtype == q.dtype
                np.testing.assert_array_equal(p, q)
        else:
            assert x == y or (x != x and y != y), name
    sa, sb = a._optimizer_state, b._optimizer_state
    assert sa["t"] == sb["t"] and sa["learning_rate"] == sb["learning_rate"]
    for m, n in zip(sa["moments"], sb["moments"]):
        np.testing.assert_array_equal(m, n)


def _both_loops(monkeypatch, run):
    """run(use) with the compiled loop and with the Python loop; ``use`` must
    be called around each training call so the test can tell which loop ran."""
    outcomes = []
    for compiled in (True, False):
        monkeypatch.setattr(_base, "COMPILED_LOOP", compiled)
        calls = {"epochs": 0, "epoch": 0}
        real_epochs, real_epoch = _core.train_epochs, _core.train_epoch

        def epochs(*args, **kwargs):
            calls["epochs"] += 1
            return real_epochs(*args, **kwargs)

        def epoch(*args, **kwargs):
            calls["epoch"] += 1
            return real_epoch(*args, **kwargs)

        monkeypatch.setattr(_core, "train_epochs", epochs)
        monkeypatch.setattr(_core, "train_epoch", epoch)
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            result = run()
        outcomes.append((result, sorted(str(w.message) for w in record), dict(calls)))
        monkeypatch.setattr(_core, "train_epochs", real_epochs)
        monkeypatch.setattr(_core, "train_epoch", real_epoch)
    (compiled, c_warn, c_calls), (python, p_warn, p_calls) = outcomes
    assert c_calls["epoch"] == 0 and c_calls["epochs"] >= 1
    assert p_calls["epochs"] == 0 and p_calls["epoch"] >= 1
    assert c_warn == p_warn
    return compiled, python


SCHEDULES = [
    dict(solver="adam"),
    dict(solver="sgd", learning_rate="constant", nesterovs_momentum=False),
    dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.05),
    dict(solver="sgd", learning_rate="adaptive", tol=1e-2, n_iter_no_change=2,
         learning_rate_init=0.05),
    dict(solver="adam", learning_rate="invscaling", schedule_adam=True,
         learning_rate_init=0.01),
    dict(solver="adam", learning_rate="adaptive", schedule_adam=True, tol=1e-2,
         n_iter_no_change=2),
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: "-".join(map(str, s.values()))[:30])
@pytest.mark.parametrize("stop", ["max_iter", "tol"])
@pytest.mark.parametrize("shuffle", [True, False])
def test_compiled_loop_is_the_python_loop(monkeypatch, estimator_case, schedule, stop,
                                          shuffle):
    X, y = estimator_case.X, estimator_case.y
    params = dict(hidden_layer_sizes=(7,), batch_size=16, max_iter=15, shuffle=shuffle)
    if stop == "max_iter":
        params.update(tol=0, n_iter_no_change=100)
    else:
        params.update(tol=0.1, n_iter_no_change=2)
    params.update(schedule)

    def run():
        est = estimator_case(**params, random_state=np.random.RandomState(3))
        est.fit(X, y)
        return est, est.random_state.get_state()

    (c, c_rng), (p, p_rng) = _both_loops(monkeypatch, run)
    _assert_same_model(c, p)
    assert c_rng[2] == p_rng[2]
    np.testing.assert_array_equal(c_rng[1], p_rng[1])
    if stop == "tol" and schedule.get("learning_rate") != "adaptive":
        assert c.n_iter_ < 15  # the stopping rule did end the fit


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_compiled_loop_continues_like_the_python_loop(monkeypatch, estimator_case, solver):
    # warm_start, partial_fit and sample weights, with a float32 model.
    X = estimator_case.X.astype(np.float32)
    y = estimator_case.y
    w = np.linspace(0.5, 2.0, len(X))

    def run():
        est = estimator_case(hidden_layer_sizes=(6, 4), solver=solver, max_iter=4,
                             batch_size=20, random_state=1, tol=0)
        est.fit(X, y, sample_weight=w)
        est.set_params(warm_start=True, max_iter=3)
        est.fit(X, y)
        for _ in range(2):
            estimator_case.partial_fit(est, X, y, sample_weight=w)
        return est

    c, p = _both_loops(monkeypatch, run)
    assert c.coefs_[0].dtype == np.float32
    _assert_same_model(c, p)


def _diverging(**extra):
    X, y = make_regression(n_samples=200, n_features=5, noise=1.0, random_state=0)
    params = dict(hidden_layer_sizes=(10,), solver="sgd", learning_rate_init=1e-3,
                  max_iter=50, random_state=0)
    params.update(extra)
    return BPRegressor(**params), 10 * X, 10 * y


def test_compiled_loop_divergence_is_the_python_loops(monkeypatch):
    def run():
        est, X, y = _diverging()
        est.fit(X, y)
        return est

    c, p = _both_loops(monkeypatch, run)
    assert not np.isfinite(c.loss_curve_[-1])
    assert 2 <= c.n_iter_ < 50
    _assert_same_model(c, p)


def test_compiled_loop_first_epoch_divergence_changes_nothing(monkeypatch):
    monkeypatch.setattr(_base, "COMPILED_LOOP", True)
    est, X, y = _diverging(learning_rate_init=10.0, max_iter=5)
    est.fit(X[:, :5] / 10, y / 10)
    before = [p.copy() for p in est.coefs_ + est.intercepts_]
    curve = list(est.loss_curve_)
    est.set_params(warm_start=True)
    with pytest.raises(ValueError, match="non-finite"):
        est.fit(X * 1e6, y * 1e6)
    assert est.loss_curve_ == curve
    for p, q in zip(before, est.coefs_ + est.intercepts_):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.Philox])
def test_compiled_loop_with_other_bit_generators(monkeypatch, estimator_case,
                                                 bit_generator):
    # A RandomState over another bit generator shuffles as it would in Python.
    def run():
        rs = np.random.RandomState(bit_generator(5))
        est = estimator_case(hidden_layer_sizes=(4,), max_iter=3, random_state=rs)
        est.fit(estimator_case.X, estimator_case.y)
        return est, rs.get_state(legacy=False)

    (c, c_rng), (p, p_rng) = _both_loops(monkeypatch, run)
    _assert_same_model(c, p)
    assert repr(c_rng) == repr(p_rng)


def test_sigint_in_the_compiled_loop_keeps_the_last_completed_epoch(monkeypatch):
    # A real signal whose handler raises KeyboardInterrupt, sent by a timer
    # while the compiled loop runs many short epochs. Wherever it lands (in an
    # epoch or between two), the model is exactly the one of a fit of the
    # epochs that completed, and the random state is the one that fit leaves.
    monkeypatch.setattr(_base, "COMPILED_LOOP", True)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, 8))
    y = np.tanh(X @ rng.standard_normal(8))
    params = dict(hidden_layer_sizes=(16,), batch_size=100, max_iter=100_000, tol=0,
                  n_iter_no_change=10**6)
    previous = signal.signal(signal.SIGALRM, signal.default_int_handler)
    est = BPRegressor(**params, random_state=np.random.RandomState(0))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            est.fit(X, y)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert any("interrupted" in str(w.message) for w in record)
    assert 1 <= est.n_iter_ < params["max_iter"]
    ref = BPRegressor(**dict(params, max_iter=est.n_iter_),
                      random_state=np.random.RandomState(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref.fit(X, y)
    _assert_same_model(est, ref)
    # Cut inside an epoch, that epoch's shuffle was drawn (one permutation
    # more than the reference); cut between two epochs, it was not.
    got = est.random_state.get_state()
    states = [ref.random_state.get_state()]
    ref.random_state.shuffle(np.arange(len(X)))
    states.append(ref.random_state.get_state())
    assert any(np.array_equal(got[1], s[1]) and got[2] == s[2] for s in states)


BEYOND = [
    dict(dropout=0.3),
    dict(dropout=[0.2, 0.4], activation=["gelu", "relu"]),
    dict(gradient_clip=0.05),
    dict(solver="adamw", weight_decay=0.05),
    dict(solver="adam", activation="mish", leaky_relu_slope=0.1),
    dict(solver="sgd", activation="leaky_relu", leaky_relu_slope=0.2, gradient_clip=0.5,
         learning_rate_init=0.05),
]


@pytest.mark.parametrize("options", BEYOND, ids=lambda s: "-".join(map(str, s.values()))[:30])
def test_compiled_loop_runs_the_options_beyond_scikit_learn(monkeypatch, estimator_case,
                                                          options):
    # Dropout (its masks are keyed by the epoch), gradient clipping (it
    # rescales a batch's step), AdamW's decay and the other activations all run
    # inside the compiled loop: each must train what the Python loop trains.
    X = estimator_case.X
    w = np.linspace(0.5, 2.0, len(X))

    def run():
        est = estimator_case(hidden_layer_sizes=(8, 5), max_iter=6, batch_size=16,
                             tol=0, random_state=4, **options)
        est.fit(X, estimator_case.y, sample_weight=w)
        estimator_case.partial_fit(est, X, estimator_case.y)
        return est

    c, p = _both_loops(monkeypatch, run)
    _assert_same_model(c, p)
