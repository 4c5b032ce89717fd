# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Learning-rate schedules, validation data and stopping, initialisation and
n_jobs, each held against an oracle: the plain-NumPy reference network, a
closed form, scikit-learn, or the same fit written another way."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy_reference import data_loss, forward, l2_penalty, train_epoch
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPRegressor
from threadpoolctl import threadpool_info

import fastbp
from conftest import DTYPES, make_estimator_case
from fastbp import BPClassifier, BPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

LOSS_OF = {"identity": "squared_error", "softmax": "log_loss",
           "logistic": "binary_log_loss"}


def _network(rng, units, scale=0.5):
    coefs = [scale * rng.standard_normal((a, b)) for a, b in zip(units, units[1:])]
    intercepts = [scale * rng.standard_normal(b) for b in units[1:]]
    return coefs, intercepts


# ------------------------------------------------------------------ schedules


def _rate(epoch, lr0, schedule, max_iter, lr_decay=0.95, warmup_fraction=0.0):
    """The documented closed form of the scheduled rate of an epoch."""
    if schedule == "cosine":
        e = min(epoch, max_iter - 1)
        rate = lr0 * 0.5 * (1 + np.cos(np.pi * e / max_iter))
    elif schedule == "exponential":
        rate = lr0 * lr_decay**epoch
    else:
        rate = lr0
    warmup = int(np.ceil(warmup_fraction * max_iter))
    return rate * (epoch + 1) / (warmup + 1) if epoch < warmup else rate


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("schedule, warmup", [
    ("cosine", 0.0), ("exponential", 0.0), ("constant", 0.5), ("cosine", 0.3),
    ("invscaling", 0.0),
])
def test_schedule_matches_a_numpy_loop(regression_data, solver, schedule, warmup, dtype):
    X, y = regression_data
    X, Y = X.astype(dtype), y.reshape(-1, 1).astype(dtype)
    units, max_iter, batch, lr0 = [5, 4, 1], 6, 40, 0.05
    coefs, intercepts = _network(np.random.default_rng(1), units)
    est = BPRegressor(
        hidden_layer_sizes=(4,), activation="tanh", solver=solver, batch_size=batch,
        learning_rate=schedule, learning_rate_init=lr0, warmup_fraction=warmup,
        lr_decay=0.7, power_t=0.4, schedule_adam=True, max_iter=max_iter,
        shuffle=False, n_iter_no_change=np.inf, alpha=1e-3, momentum=0.5,
        coefs_init=coefs, intercepts_init=intercepts, random_state=0,
    ).fit(X, y.astype(dtype))

    c, b = [a.astype(np.float64) for a in coefs], [a.astype(dtype).astype(np.float64)
                                                   for a in intercepts]
    c = [a.astype(dtype).astype(np.float64) for a in coefs]
    n_moments = 2 if solver == "adam" else 1
    state = [np.zeros_like(p) for _ in range(n_moments) for p in c + b]
    t, seen, rates = 0, 0, []
    rows = np.arange(X.shape[0])
    for epoch in range(max_iter):
        if schedule == "invscaling":
            rate = lr0 if epoch == 0 else lr0 / (seen + 1) ** 0.4
        else:
            rate = _rate(epoch, lr0, schedule, max_iter, 0.7, warmup)
        rates.append(rate)
        _, _, _, t = train_epoch(X.astype(np.float64), Y.astype(np.float64), rows, c, b,
                                 state, batch, rate, t, activation="tanh",
                                 solver=solver, alpha=1e-3, momentum=0.5)
        seen += X.shape[0]
    assert est.n_iter_ == max_iter
    assert len(set(rates)) > 1  # the schedule does change the rate
    tol = dict(rtol=1e-9, atol=1e-11) if dtype == np.float64 else dict(rtol=2e-3, atol=2e-4)
    for got, want in zip(est.coefs_ + est.intercepts_, c + b):
        np.testing.assert_allclose(got, want, **tol)


def test_adam_ignores_invscaling_and_adaptive_unless_asked(regression_data):
    # scikit-learn's behaviour by default: the schedule is an sgd option.
    X, y = regression_data
    common = dict(hidden_layer_sizes=(5,), max_iter=8, random_state=0)
    ref = BPRegressor(**common).fit(X, y)
    for schedule in ("invscaling", "adaptive"):
        est = BPRegressor(learning_rate=schedule, **common).fit(X, y)
        np.testing.assert_array_equal(est.coefs_[0], ref.coefs_[0])
        on = BPRegressor(learning_rate=schedule, schedule_adam=True, **common).fit(X, y)
        if schedule == "invscaling":
            assert not np.array_equal(on.coefs_[0], ref.coefs_[0])


def test_adaptive_on_adam_divides_like_sgd(regression_data):
    # tol so large that no epoch improves: every n_iter_no_change + 1 epochs
    # the rate is divided by 5, until it is under 1e-6; scikit-learn's sgd
    # gives the number of epochs that takes.
    X, y = regression_data
    common = dict(hidden_layer_sizes=(3,), learning_rate="adaptive", tol=1e6,
                  n_iter_no_change=1, max_iter=100, random_state=0)
    want = MLPRegressor(solver="sgd", **common).fit(X, y).n_iter_
    est = BPRegressor(solver="adam", schedule_adam=True, **common).fit(X, y)
    assert est.n_iter_ == want > 2
    assert est._optimizer_state["learning_rate"] == pytest.approx(1e-3 / 5**5)
    # Without schedule_adam, adam stops at the first plateau, as in scikit-learn.
    assert (BPRegressor(solver="adam", **common).fit(X, y).n_iter_
            == MLPRegressor(solver="adam", **common).fit(X, y).n_iter_ < want)


def test_partial_fit_goes_on_with_the_schedule(regression_data):
    X, y = regression_data
    common = dict(hidden_layer_sizes=(4,), solver="sgd", learning_rate="exponential",
                  lr_decay=0.5, learning_rate_init=0.1, shuffle=False, max_iter=4,
                  n_iter_no_change=np.inf, random_state=0)
    fitted = BPRegressor(**common).fit(X, y)
    stepped = BPRegressor(**common)
    for _ in range(4):
        stepped.partial_fit(X, y)
    for a, b in zip(fitted.coefs_, stepped.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert stepped._optimizer_state["learning_rate"] == pytest.approx(0.1 * 0.5**3)


@pytest.mark.parametrize("params, names", [
    (dict(solver="lbfgs", learning_rate="cosine"), ["learning_rate", "lbfgs"]),
    (dict(solver="lbfgs", warmup_fraction=0.1), ["warmup_fraction", "lbfgs"]),
    (dict(warmup_fraction=0.1, learning_rate="invscaling"),
     ["warmup_fraction", "invscaling"]),
    (dict(restore_best_weights=False), ["restore_best_weights", "early_stopping"]),
    (dict(early_stopping_scoring="r2"), ["early_stopping_scoring", "early_stopping"]),
    (dict(early_stopping=True, early_stopping_scoring="no such scorer"),
     ["no such scorer"]),
    (dict(n_jobs=0), ["n_jobs"]),
])
def test_options_that_cannot_combine_say_so(regression_data, params, names):
    X, y = regression_data
    est = BPRegressor(hidden_layer_sizes=(3,), max_iter=2, **params)
    with pytest.raises(ValueError) as info:
        est.fit(X, y)
    for name in names:
        assert name in str(info.value)
    assert not hasattr(est, "coefs_")


# ------------------------------------------------------ validation and stopping


def _numpy_validation_loss(est, X, Y, w=None):
    acts = forward(X, est.coefs_, est.intercepts_, est.activation, est.out_activation_)
    n = X.shape[0] if w is None else np.sum(w, dtype=np.float64)
    eps = np.finfo(est.coefs_[0].dtype).eps
    from numpy_reference import per_sample_loss

    per_row = per_sample_loss(Y.astype(np.float64), acts[-1],
                              LOSS_OF.get(est.out_activation_), eps=eps)
    return np.average(per_row, weights=w) + l2_penalty(est.coefs_, est.alpha, n)


@pytest.mark.parametrize("kind", ["regression", "binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_validation_loss_curve_is_the_loss_on_eval_set(kind, dtype, sparse, weighted):
    case = make_estimator_case(kind)
    X, y = case.X.astype(dtype), case.y
    Xt, Xv, yt, yv = X[:90], X[90:], y[:90], y[90:]
    wv = np.linspace(0.5, 2, len(yv)) if weighted else None
    est = case(hidden_layer_sizes=(6,), max_iter=5, alpha=0.01, random_state=0)
    eval_set = (sp.csr_matrix(Xv) if sparse else Xv, yv) + ((wv,) if weighted else ())
    est.fit(sp.csr_matrix(Xt) if sparse else Xt, yt, eval_set=eval_set)
    assert len(est.validation_loss_curve_) == len(est.loss_curve_) == 5
    assert est.validation_scores_ is None  # recorded only, no early stopping
    if case.is_classifier:
        Yv = est._label_binarizer.transform(yv).astype(bool).astype(np.float64)
    else:
        Yv = yv.reshape(-1, 1)
    want = _numpy_validation_loss(est, Xv, Yv, wv)
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    assert est.validation_loss_curve_[-1] == pytest.approx(want, rel=rtol)
    # The training curve without the eval_set is untouched by it.
    plain = case(hidden_layer_sizes=(6,), max_iter=5, alpha=0.01, random_state=0)
    plain.fit(sp.csr_matrix(Xt) if sparse else Xt, yt)
    assert plain.loss_curve_ == est.loss_curve_
    assert not hasattr(plain, "validation_loss_curve_")


@pytest.mark.parametrize("kind", ["regression", "binary", "multiclass"])
def test_eval_set_is_the_internal_split_given_by_hand(kind):
    # Without shuffling, the only draws after the initial weights are the
    # split's: early stopping on eval_set = the rows the split holds out must
    # give the very same fit.
    case = make_estimator_case(kind)
    X, y = case.X, case.y
    common = dict(hidden_layer_sizes=(6,), max_iter=40, shuffle=False,
                  learning_rate_init=0.01, early_stopping=True, random_state=0,
                  n_iter_no_change=3)
    internal = case(**common).fit(X, y)
    # The split, drawn as the fit draws it: after the initial weights.
    rng = np.random.RandomState(0)
    est = case(**common)
    est._random_state = rng
    layer_units = [X.shape[1], 6, case.n_outputs()]
    for a, b in zip(layer_units, layer_units[1:]):
        est._init_coef(a, b, np.float64)
    stratify = None
    if kind == "binary":
        stratify = (y == y.max())
    train, val = train_test_split(np.arange(len(y)), random_state=rng,
                                  test_size=0.1, stratify=stratify)
    given = case(**common).fit(X[train], y[train], eval_set=(X[val], y[val]))
    assert given.validation_scores_ == internal.validation_scores_
    assert given.validation_loss_curve_ == internal.validation_loss_curve_
    for a, b in zip(given.coefs_, internal.coefs_):
        np.testing.assert_array_equal(a, b)


def test_scorer_and_restore_best_weights(regression_data):
    X, y = regression_data
    # Few training rows and a wide layer: the validation error turns up.
    Xt, Xv, yt, yv = X[:40], X[40:], y[:40], y[40:]
    common = dict(hidden_layer_sizes=(32,), max_iter=200, learning_rate_init=0.01,
                  early_stopping=True, n_iter_no_change=10, random_state=0,
                  early_stopping_scoring="neg_mean_squared_error")
    best = BPRegressor(**common).fit(Xt, yt, eval_set=(Xv, yv))
    last = BPRegressor(restore_best_weights=False, **common).fit(Xt, yt, eval_set=(Xv, yv))
    assert best.validation_scores_ == last.validation_scores_
    scores = np.asarray(best.validation_scores_)
    assert best.best_validation_score_ == scores.max()
    assert scores.argmax() < len(scores) - 1  # the last epoch is not the best
    # The scores are -MSE of the model of that epoch on the eval_set.
    assert -mean_squared_error(yv, best.predict(Xv)) == pytest.approx(scores.max(), rel=1e-12)
    assert -mean_squared_error(yv, last.predict(Xv)) == pytest.approx(scores[-1], rel=1e-12)
    # R² by name is the default rule.
    r2 = BPRegressor(**{**common, "early_stopping_scoring": "r2"}).fit(X, y)
    default = BPRegressor(**{**common, "early_stopping_scoring": None}).fit(X, y)
    np.testing.assert_allclose(r2.validation_scores_, default.validation_scores_,
                               rtol=1e-12)


def test_callable_scorer_sees_the_validation_rows(classification_data):
    X, y = classification_data["multiclass"]
    Xt, Xv, yt, yv = X[:90], X[90:], y[:90], y[90:]
    calls = []

    def scorer(est, X_val, y_val, sample_weight=None):
        calls.append(sample_weight)
        assert X_val.shape == Xv.shape and list(y_val) == list(yv)
        return -np.mean(est.predict(X_val) != y_val)

    wv = np.full(len(yv), 2.0)
    est = BPClassifier(hidden_layer_sizes=(5,), max_iter=4, early_stopping=True,
                       early_stopping_scoring=scorer, random_state=0)
    est.fit(Xt, yt, eval_set=(Xv, yv, wv))
    assert len(calls) == 4 and all(np.array_equal(w, wv) for w in calls)
    with pytest.raises(TypeError, match="early_stopping_scoring is a callable"):
        est.save(__import__("io").BytesIO())


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_stop_loss_stops_at_the_first_epoch_under_it(regression_data, solver):
    X, y = regression_data
    common = dict(hidden_layer_sizes=(8,), solver=solver, max_iter=50, random_state=0,
                  learning_rate_init=0.01, tol=0)
    full = BPRegressor(**common).fit(X, y)
    target = full.loss_curve_[20]
    first = int(np.argmax(np.asarray(full.loss_curve_) < target))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = BPRegressor(stop_loss=target, **common).fit(X, y)
    assert est.n_iter_ == first + 1
    assert est.loss_curve_ == full.loss_curve_[:first + 1]


def test_partial_fit_records_the_eval_set(regression_data):
    X, y = regression_data
    est = BPRegressor(hidden_layer_sizes=(4,), random_state=0)
    est.partial_fit(X[:90], y[:90])
    assert not hasattr(est, "validation_loss_curve_")
    for _ in range(3):
        est.partial_fit(X[:90], y[:90], eval_set=(X[90:], y[90:]))
    assert len(est.validation_loss_curve_) == 3
    assert est.validation_loss_curve_[-1] == pytest.approx(
        _numpy_validation_loss(est, X[90:], y[90:].reshape(-1, 1)), rel=1e-10)


@pytest.mark.parametrize("eval_set, match", [
    ((np.zeros((3, 5)),), "tuple"),
    ("rows", "tuple"),
    ((np.zeros((3, 4)), np.zeros(3)), "features"),
    ((np.zeros((3, 5)), np.zeros(4)), "inconsistent"),
    ((np.zeros((3, 5)), np.zeros(3), np.zeros(3)), "non-zero"),
])
def test_bad_eval_set_raises_and_changes_nothing(regression_data, eval_set, match):
    X, y = regression_data
    est = BPRegressor(hidden_layer_sizes=(3,), max_iter=2, random_state=0).fit(X, y)
    before = [c.copy() for c in est.coefs_]
    with pytest.raises(ValueError, match=match):
        est.fit(X, y, eval_set=eval_set)
    for a, b in zip(est.coefs_, before):
        np.testing.assert_array_equal(a, b)


def test_eval_set_with_unknown_class_and_lbfgs(classification_data):
    X, y = classification_data["multiclass"]
    est = BPClassifier(hidden_layer_sizes=(3,), max_iter=2)
    with pytest.raises(ValueError, match="not in"):
        est.fit(X[y != y[0]], y[y != y[0]], eval_set=(X, y))
    with pytest.raises(ValueError, match="eval_set.*lbfgs"):
        BPClassifier(solver="lbfgs").fit(X, y, eval_set=(X, y))


def test_eval_set_in_pipeline_fit_params(regression_data):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = regression_data
    pipe = make_pipeline(StandardScaler(), BPRegressor(hidden_layer_sizes=(3,),
                                                       max_iter=3, random_state=0))
    # A pipeline does not transform fit params: give eval_set scaled rows.
    pipe.fit(X, y, bpregressor__eval_set=(X, y))
    assert len(pipe[-1].validation_loss_curve_) == 3


# ------------------------------------------------------------- initialisation


@pytest.mark.parametrize("init", ["he_uniform", "he_normal", "lecun_normal"])
def test_weight_init_draws_the_numpy_formula(regression_data, init):
    # shuffle=False and a full batch: the initial draws are the only ones, so a
    # fit with weight_init must equal a fit from the same arrays drawn in NumPy.
    X, y = regression_data
    units = [5, 7, 3, 1]
    rng = np.random.RandomState(0)
    coefs = []
    for fan_in, fan_out in zip(units, units[1:]):
        if init == "he_uniform":
            bound = np.sqrt(6 / fan_in)
            coefs.append(rng.uniform(-bound, bound, (fan_in, fan_out)))
        else:
            std = np.sqrt((2.0 if init == "he_normal" else 1.0) / fan_in)
            coefs.append(rng.normal(0, std, (fan_in, fan_out)))
    intercepts = [np.zeros(n) for n in units[1:]]
    common = dict(hidden_layer_sizes=(7, 3), solver="sgd", batch_size=len(y),
                  shuffle=False, max_iter=3, random_state=0)
    est = BPRegressor(weight_init=init, **common).fit(X, y)
    ref = BPRegressor(coefs_init=coefs, intercepts_init=intercepts, **common).fit(X, y)
    for a, b in zip(est.coefs_ + est.intercepts_, ref.coefs_ + ref.intercepts_):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("init, variance", [
    ("glorot_uniform", lambda i, o: 2 / (i + o)),
    ("he_uniform", lambda i, o: 2 / i),
    ("he_normal", lambda i, o: 2 / i),
    ("lecun_normal", lambda i, o: 1 / i),
])
def test_weight_init_variance_is_the_closed_form(init, variance):
    fan_in, fan_out = 400, 300
    est = BPRegressor(hidden_layer_sizes=(), weight_init=init, random_state=0)
    est._random_state = np.random.RandomState(0)
    coef, intercept = est._init_coef(fan_in, fan_out, np.float64)
    assert coef.shape == (fan_in, fan_out)
    assert abs(coef.mean()) < 4 * np.sqrt(variance(fan_in, fan_out) / coef.size)
    assert coef.var() == pytest.approx(variance(fan_in, fan_out), rel=0.02)
    if init != "glorot_uniform":
        assert not intercept.any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_given_weights_are_copied_and_used(classification_data, dtype):
    X, y = classification_data["multiclass"]
    X = X.astype(dtype)
    coefs = [np.full((5, 4), 0.1), np.full((4, 3), -0.2)]
    intercepts = [np.arange(4.0), np.zeros(3)]
    frozen = [a.copy() for a in coefs + intercepts]
    for a in coefs + intercepts:
        a.flags.writeable = False  # a write would raise
    est = BPClassifier(hidden_layer_sizes=(4,), max_iter=0 + 1, learning_rate_init=1e-30,
                       solver="sgd", momentum=0, coefs_init=coefs,
                       intercepts_init=intercepts, random_state=0).fit(X, y)
    for got, want in zip(est.coefs_ + est.intercepts_, frozen):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want.astype(dtype), rtol=1e-6, atol=1e-12)
    assert all(got is not given for got, given in zip(est.coefs_, coefs))
    for a, b in zip(coefs + intercepts, frozen):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("coefs, match", [
    ([np.zeros((5, 4))], "1 arrays but the network has 2"),
    ([np.zeros((5, 3)), np.zeros((3, 1))], r"coefs_init\[0\] has shape"),
    ([np.zeros((5, 4)), np.full((4, 1), np.nan)], "non-finite"),
    ([np.zeros((5, 4), dtype=bool), np.zeros((4, 1))], "real numbers"),
    ([np.zeros((5, 4)), np.array([["a"]] * 4)], "real numbers"),
])
def test_bad_given_weights_raise(regression_data, coefs, match):
    X, y = regression_data
    with pytest.raises(ValueError, match=match):
        BPRegressor(hidden_layer_sizes=(4,), coefs_init=coefs).fit(X, y)


def test_given_weights_are_saved_and_loaded(regression_data, tmp_path):
    X, y = regression_data
    coefs = [np.full((5, 2), 0.3), np.full((2, 1), 0.1)]
    est = BPRegressor(hidden_layer_sizes=(2,), max_iter=2, coefs_init=coefs,
                      learning_rate="cosine", warmup_fraction=0.5, n_jobs=1,
                      stop_loss=1e-9, weight_init="he_normal", random_state=0)
    est.fit(X, y, eval_set=(X, y))
    est.save(tmp_path / "m.npz")
    loaded = fastbp.load(tmp_path / "m.npz")
    for a, b in zip(loaded.coefs_init, coefs):
        np.testing.assert_array_equal(a, b)
    params = {k: v for k, v in est.get_params().items() if k != "coefs_init"}
    assert {k: loaded.get_params()[k] for k in params} == params
    assert loaded.validation_loss_curve_ == est.validation_loss_curve_
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    # A fit of the loaded model starts from the same given weights.
    np.testing.assert_array_equal(
        BPRegressor(**loaded.get_params()).fit(X, y).coefs_[0],
        BPRegressor(**est.get_params()).fit(X, y).coefs_[0])


# -------------------------------------------------------------------- threads


def _blas_limits():
    return [(p["internal_api"], p["num_threads"]) for p in threadpool_info()
            if p["user_api"] == "blas"]


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_n_jobs_is_reproducible_and_scoped(regression_data, solver):
    X, y = regression_data
    before = _blas_limits()
    common = dict(hidden_layer_sizes=(64,), solver=solver, max_iter=5, random_state=0)
    runs = {}
    for n_jobs in (1, 2, 1, 2):
        est = BPRegressor(n_jobs=n_jobs, **common).fit(X, y)
        runs.setdefault(n_jobs, []).append((est.coefs_, est.predict(X)))
    for (c1, p1), (c2, p2) in runs.values():
        for a, b in zip(c1, c2):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(p1, p2)
    # One thread is what the automatic choice takes for so small a network.
    auto = BPRegressor(**common).fit(X, y)
    for a, b in zip(auto.coefs_, runs[1][0][0]):
        np.testing.assert_array_equal(a, b)
    assert _blas_limits() == before


def test_n_jobs_threads_split_the_batch(regression_data):
    X, y = regression_data
    est = BPRegressor(n_jobs=3)
    assert est._fit_threads([5, 100, 1], 200) == 3
    assert est._fit_threads([5, 100, 1], 2) == 2
    assert BPRegressor(n_jobs=-1)._fit_threads([5, 4, 1], 200) >= 1
    assert BPRegressor()._fit_threads([5, 4, 1], 200) == 1


# --------------------------------------------------------------- command line


def test_command_line_options_reach_the_model(tmp_path):
    import os
    import subprocess
    import sysconfig

    pd = pytest.importorskip("pandas")
    script = os.path.join(sysconfig.get_path("scripts"), "fastbp")
    if not os.path.exists(script):
        pytest.fail("the fastbp console script is not installed; pip install -e .")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.standard_normal((120, 3)), columns=["a", "b", "c"])
    frame["y"] = frame["a"] - frame["b"]
    frame.to_csv(tmp_path / "data.csv", index=False)
    result = subprocess.run(
        [script, "fit", str(tmp_path / "data.csv"), "--target", "y", "--out",
         str(tmp_path / "m.npz"), "--max-iter", "5", "--learning-rate", "cosine",
         "--lr-decay", "0.5", "--warmup-fraction", "0.2", "--weight-init", "he_normal",
         "--stop-loss", "1e-9", "--n-jobs", "1", "--random-state", "0",
         "--no-preprocess"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    model = fastbp.load(tmp_path / "m.npz")
    assert (model.learning_rate, model.lr_decay, model.warmup_fraction,
            model.weight_init, model.stop_loss, model.n_jobs) == (
        "cosine", 0.5, 0.2, "he_normal", 1e-9, 1)
    bad = subprocess.run([script, "fit", str(tmp_path / "data.csv"), "--target", "y",
                          "--n-jobs", "0"], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "--n-jobs" in bad.stderr


# ------------------------------------------------------------ combinations


def _multioutput_case():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((120, 5))
    y = np.column_stack([np.digitize(X[:, 0], [-0.5, 0.5]), X[:, 1] > 0]).astype(int)
    return X, y


@pytest.mark.parametrize("kind", ["regression", "binary", "multiclass", "multilabel",
                                  "multioutput"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_options_combine_with_weights_sparse_and_partial_fit(kind, dtype):
    # Full-batch training: a weight of 2 is a duplicated row, sparse X is
    # dense X, and partial_fit epochs are fit epochs, with every option on.
    if kind == "multioutput":
        X, y = _multioutput_case()
        Estimator = BPClassifier
    else:
        case = make_estimator_case(kind)
        X, y, Estimator = case.X, case.y, case.Estimator
    X = X.astype(dtype)
    Xt, yt, Xv, yv = X[:100], y[:100], X[100:], y[100:]
    twice = np.arange(100) < 30
    weights = np.where(twice, 2.0, 1.0)
    rows = np.concatenate([np.arange(100), np.flatnonzero(twice)])
    params = dict(hidden_layer_sizes=(6,), solver="sgd", batch_size=500, shuffle=False,
                  learning_rate="cosine", warmup_fraction=0.2, learning_rate_init=0.1,
                  weight_init="he_uniform", stop_loss=1e-12, n_jobs=1, max_iter=6,
                  n_iter_no_change=np.inf, random_state=0)
    weighted = Estimator(**params).fit(Xt, yt, sample_weight=weights, eval_set=(Xv, yv))
    duplicated = Estimator(**params).fit(Xt[rows], yt[rows], eval_set=(Xv, yv))
    sparse = Estimator(**params).fit(sp.csr_matrix(Xt), yt, sample_weight=weights,
                                     eval_set=(sp.csr_matrix(Xv), yv))
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    for other in (duplicated, sparse):
        for a, b in zip(weighted.coefs_ + weighted.intercepts_,
                        other.coefs_ + other.intercepts_):
            assert a.dtype == b.dtype == dtype
            np.testing.assert_allclose(a, b, **tol)
        np.testing.assert_allclose(weighted.validation_loss_curve_,
                                   other.validation_loss_curve_, **tol)
    assert len(weighted.validation_loss_curve_) == 6
    # partial_fit: the same epochs one call at a time (the schedule goes on).
    stepped = Estimator(**params)
    for _ in range(6):
        kwargs = {}
        if Estimator is BPClassifier and kind != "multilabel":
            kwargs["classes"] = (weighted.classes_ if kind == "multioutput"
                                 else np.unique(y))
        stepped.partial_fit(Xt, yt, sample_weight=weights, eval_set=(Xv, yv), **kwargs)
    for a, b in zip(weighted.coefs_, stepped.coefs_):
        np.testing.assert_allclose(a, b, **tol)
    np.testing.assert_allclose(weighted.validation_loss_curve_,
                               stepped.validation_loss_curve_, **tol)


def test_progress_lines_name_the_scorer(regression_data, capsys):
    X, y = regression_data
    BPRegressor(hidden_layer_sizes=(3,), max_iter=2, verbose=2, early_stopping=True,
                early_stopping_scoring="neg_mean_absolute_error",
                random_state=0).fit(X, y)
    out = capsys.readouterr()
    assert "neg_mean_absolute_error" in out.out + out.err


# --------------------------------------------------------- hostile model files


def _saved_parts(est):
    import io
    import json
    import zipfile

    buffer = io.BytesIO()
    est.save(buffer)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as zf:
        metadata = json.loads(zf.read("metadata.json"))
        arrays = {name[:-4]: np.load(io.BytesIO(zf.read(name)))
                  for name in zf.namelist() if name.endswith(".npy")}
    return metadata, arrays


def _rebuilt(metadata, arrays):
    import hashlib
    import io
    import json
    import zipfile

    metadata = dict(metadata)
    metadata["arrays"] = {
        k: {"dtype": a.dtype.str, "shape": list(a.shape),
            "sha256": hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()}
        for k, a in arrays.items()}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("metadata.json", json.dumps(metadata))
        for k, a in arrays.items():
            member = io.BytesIO()
            np.save(member, a)
            zf.writestr(k + ".npy", member.getvalue())
    return io.BytesIO(out.getvalue())


@pytest.mark.parametrize("edit", [
    "coefs_init 3-D", "coefs_init a string", "validation curve too long",
    "validation curve of strings", "learning_rate unknown", "warmup_fraction 1",
    "weight_init unknown",
])
def test_hostile_training_option_files_are_refused(regression_data, edit):
    import copy

    from fastbp._persist import ModelFileError

    X, y = regression_data
    est = BPRegressor(hidden_layer_sizes=(2,), max_iter=2, random_state=0,
                      coefs_init=[np.ones((5, 2)), np.ones((2, 1))])
    est.fit(X, y, eval_set=(X, y))
    metadata, arrays = _saved_parts(est)
    assert fastbp.load(_rebuilt(metadata, arrays)) is not None  # the untouched file
    metadata = copy.deepcopy(metadata)
    params, attributes = metadata["params"], metadata["attributes"]
    if edit == "coefs_init 3-D":
        name = params["coefs_init"][0]["$array"]
        arrays[name] = np.ones((5, 2, 1))
    elif edit == "coefs_init a string":
        params["coefs_init"] = ["weights"]
    elif edit == "validation curve too long":
        name = attributes["validation_loss_curve_"]["$floats"]
        arrays[name] = np.ones(50)
    elif edit == "validation curve of strings":
        attributes["validation_loss_curve_"] = ["a", "b"]
    elif edit == "learning_rate unknown":
        params["learning_rate"] = "cyclic"
    elif edit == "warmup_fraction 1":
        params["warmup_fraction"] = 1.0
    else:
        params["weight_init"] = "orthogonal"
    with pytest.raises(ModelFileError):
        fastbp.load(_rebuilt(metadata, arrays))


def test_command_line_trains_and_predicts_label_columns(tmp_path):
    import os
    import subprocess
    import sysconfig

    pd = pytest.importorskip("pandas")
    script = os.path.join(sysconfig.get_path("scripts"), "fastbp")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.standard_normal((90, 2)), columns=["a", "b"])
    frame["color"] = np.where(frame["a"] > 0, "red", "blue")
    # (Two string columns: the command line's linear baseline, scikit-learn's
    # MultiOutputClassifier, cannot take a string column beside an int one.)
    frame["size"] = np.array(["S", "M", "L"])[np.digitize(frame["b"], [-0.5, 0.5])]
    frame.to_csv(tmp_path / "data.csv", index=False)
    fit = subprocess.run(
        [script, "fit", str(tmp_path / "data.csv"), "--target", "color,size",
         "--estimator", "classifier", "--max-iter", "5", "--out", str(tmp_path / "m.npz"),
         "--random-state", "0", "--no-preprocess"],
        capture_output=True, text=True, timeout=300)
    assert fit.returncode == 0, fit.stderr
    out = tmp_path / "pred.csv"
    predict = subprocess.run(
        [script, "predict", str(tmp_path / "m.npz"), str(tmp_path / "data.csv"),
         "--proba", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert predict.returncode == 0, predict.stderr
    table = pd.read_csv(out)
    model = fastbp.load(tmp_path / "m.npz")
    want = model.predict(frame[["a", "b"]])
    assert table["label_0"].tolist() == want[:, 0].tolist()
    proba = model.predict_proba(frame[["a", "b"]])
    np.testing.assert_allclose(table[["proba_1_L", "proba_1_M", "proba_1_S"]],
                               proba[1], rtol=1e-6)
