# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""The options beyond MLPRegressor/MLPClassifier, at the estimator level:
linear models in the no-hidden-layer case, closed forms, optimality
conditions, equivalences that must hold bitwise, dtypes, partial_fit,
sample_weight, sparse X, persistence, ONNX and the errors for options that
cannot combine."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy_reference import activate_ext, loss_and_grads_ext
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, QuantileRegressor
from sklearn.metrics import mean_pinball_loss

import fastbp
from fastbp import BPClassifier, BPRegressor

NEW_ACTIVATIONS = ["leaky_relu", "elu", "selu", "softplus", "gelu", "silu", "mish", "sin"]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def regression(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    y = np.tanh(X @ rng.standard_normal(4)) + 0.1 * rng.standard_normal(n)
    return X, y


def labels(n=120, seed=0):
    X, y = regression(n, seed)
    return X, np.digitize(y, [-0.3, 0.3])


# Each option, as the parameters that turn it on (and the solver it needs).
OPTIONS = {
    "gelu": dict(activation="gelu"),
    "per_layer": dict(hidden_layer_sizes=(6, 5), activation=["mish", "leaky_relu"],
                      leaky_relu_slope=0.1),
    "dropout": dict(hidden_layer_sizes=(6, 5), dropout=[0.2, 0.1]),
    "adamw": dict(solver="adamw", weight_decay=0.1),
    "gradient_clip": dict(solver="sgd", gradient_clip=0.5),
    "rprop": dict(solver="rprop"),
}
REGRESSOR_OPTIONS = {
    "huber": dict(loss="huber", huber_delta=0.3),
    "absolute_error": dict(loss="absolute_error"),
    "quantile": dict(loss="quantile", quantile=0.7),
    "softplus_out": dict(out_activation="softplus"),
}
CLASSIFIER_OPTIONS = {"label_smoothing": dict(label_smoothing=0.1)}
CASES = ([(BPRegressor, name, p) for name, p in {**OPTIONS, **REGRESSOR_OPTIONS}.items()]
         + [(BPClassifier, name, p) for name, p in {**OPTIONS, **CLASSIFIER_OPTIONS}.items()])
IDS = ["%s-%s" % (cls.__name__, name) for cls, name, _ in CASES]


def make(cls, params, **extra):
    base = dict(hidden_layer_sizes=(6,), max_iter=30, random_state=0,
                learning_rate_init=0.01)
    return cls(**{**base, **params, **extra})


def data_for(cls):
    return regression() if cls is BPRegressor else labels()


# ------------------------------------------------------- linear models and closed forms

@pytest.mark.parametrize("q", [0.2, 0.5, 0.8])
def test_quantile_without_hidden_layer_matches_quantile_regressor(q):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 2))
    y = X @ [1.5, -2.0] + 0.5 + (0.5 + 0.5 * np.abs(X[:, 0])) * rng.standard_normal(200)
    ref = QuantileRegressor(quantile=q, alpha=0, solver="highs").fit(X, y)
    est = BPRegressor(loss="quantile", quantile=q, hidden_layer_sizes=(), alpha=0,
                      batch_size=200, learning_rate_init=0.01, max_iter=3000, tol=0,
                      n_iter_no_change=3000, random_state=0).fit(X, y)
    np.testing.assert_allclose(est.coefs_[0].ravel(), ref.coef_, atol=5e-3)
    np.testing.assert_allclose(est.intercepts_[0], ref.intercept_, atol=5e-3)
    ours = mean_pinball_loss(y, est.predict(X), alpha=q)
    best = mean_pinball_loss(y, ref.predict(X), alpha=q)
    assert best <= ours <= best * (1 + 1e-4)


def test_absolute_error_without_hidden_layer_is_median_regression():
    X, y = regression(200)
    ref = QuantileRegressor(quantile=0.5, alpha=0, solver="highs").fit(X, y)
    est = BPRegressor(loss="absolute_error", hidden_layer_sizes=(), alpha=0,
                      batch_size=200, learning_rate_init=0.01, max_iter=3000, tol=0,
                      n_iter_no_change=3000, random_state=0).fit(X, y)
    ours = np.abs(y - est.predict(X)).mean()
    best = np.abs(y - ref.predict(X)).mean()
    assert best <= ours <= best * (1 + 5e-4)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rprop_without_hidden_layer_matches_least_squares(dtype):
    X, y = regression(200)
    ref = LinearRegression().fit(X, y)
    est = BPRegressor(hidden_layer_sizes=(), solver="rprop", alpha=0, max_iter=400,
                      tol=0, n_iter_no_change=400, random_state=0)
    est.fit(X.astype(dtype), y.astype(dtype))
    tol = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(est.coefs_[0].ravel(), ref.coef_, atol=tol)
    np.testing.assert_allclose(est.intercepts_[0], ref.intercept_, atol=tol)
    # The loss curve is the full-batch loss after each step, as loss_ says.
    assert est.loss_ == est.loss_curve_[-1]
    np.testing.assert_allclose(est.loss_, 0.5 * np.mean((est.predict(X) - y) ** 2),
                               rtol=1e-4)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_label_smoothing_reaches_the_smoothed_optimum(n_classes):
    """At an L-BFGS optimum the reference gradient of the smoothed cross-entropy
    vanishes, and loss_ is that loss."""
    X, y = labels()
    if n_classes == 2:
        y = (y > 0).astype(int)
    eps = 0.2
    est = BPClassifier(hidden_layer_sizes=(), solver="lbfgs", label_smoothing=eps,
                       alpha=1e-3, tol=1e-12, max_iter=2000, random_state=0).fit(X, y)
    Y = est._label_binarizer.transform(y).astype(float)
    k = Y.shape[1] if est.out_activation_ == "softmax" else 2
    soft = Y * (1 - eps) + eps / k
    value, cg, ig = loss_and_grads_ext(X, soft, est.coefs_, est.intercepts_, [],
                                       est.out_activation_, "log_loss", 1e-3)
    np.testing.assert_allclose(est.loss_, value, rtol=1e-10)
    assert max(np.abs(g).max() for g in cg + ig) < 1e-4
    # The hard labels' gradient there is far from 0: the optimum is the smoothed one.
    _, cg, ig = loss_and_grads_ext(X, Y, est.coefs_, est.intercepts_, [],
                                   est.out_activation_, "log_loss", 1e-3)
    assert max(np.abs(g).max() for g in cg + ig) > 1e-2


# --------------------------------------------------------- equivalences, bitwise

def assert_same_model(a, b):
    for x, y in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("cls", [BPRegressor, BPClassifier])
def test_options_at_neutral_values_change_nothing(cls):
    X, y = data_for(cls)
    base = make(cls, dict(hidden_layer_sizes=(6, 5)), solver="adam").fit(X, y)
    for params in (dict(activation=["relu", "relu"]), dict(dropout=[0.0, 0.0]),
                   dict(gradient_clip=1e9), dict(solver="adamw", weight_decay=0.0)):
        other = make(cls, dict(hidden_layer_sizes=(6, 5)), **params).fit(X, y)
        assert_same_model(base, other)
        np.testing.assert_array_equal(base.loss_curve_, other.loss_curve_)


def test_dropout_is_reproducible_and_off_at_predict():
    X, y = regression()
    params = dict(hidden_layer_sizes=(8, 6), dropout=0.3, activation="gelu")
    a = make(BPRegressor, params).fit(X, y)
    b = make(BPRegressor, params).fit(X, y)
    assert_same_model(a, b)
    c = make(BPRegressor, params, random_state=1).fit(X, y)
    d = make(BPRegressor, dict(hidden_layer_sizes=(8, 6), activation="gelu"),
             random_state=0).fit(X, y)
    assert not np.array_equal(a.coefs_[0], d.coefs_[0])
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])
    # predict is the plain forward pass of the weights: no mask, no scaling.
    h = X
    for W, b_ in zip(a.coefs_[:-1], a.intercepts_[:-1]):
        h = activate_ext(h @ W + b_, "gelu")
    np.testing.assert_allclose(a.predict(X), (h @ a.coefs_[-1] + a.intercepts_[-1]).ravel(),
                               rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(a.predict(X), a.predict(X))


def test_dropout_masks_move_on_between_partial_fits():
    X, y = regression()
    est = make(BPRegressor, dict(hidden_layer_sizes=(8,), dropout=0.5, solver="sgd",
                                 momentum=0.0))
    est.partial_fit(X, y)
    again = clone(est)
    again.__dict__.update({k: v for k, v in est.__dict__.items()})
    again._own_state()
    est.partial_fit(X, y)
    # The same state with t_ set back draws the first call's masks again, so
    # its step differs from the second call's: the masks moved on.
    again.t_ = 0
    again.partial_fit(X, y)
    assert not np.allclose(est.coefs_[0], again.coefs_[0])


# ------------------------------------------- dtypes, sparse X, weights, partial_fit

@pytest.mark.parametrize("cls,name,params", CASES, ids=IDS)
def test_option_dtypes_sparse_and_weights(cls, name, params):
    X, y = data_for(cls)
    fits = {}
    for dtype in (np.float64, np.float32):
        est = make(cls, params).fit(X.astype(dtype), y)
        assert est.coefs_[0].dtype == dtype
        fits[dtype] = est
        out = est.predict(X.astype(dtype))
        assert np.all(np.isfinite(out)) if cls is BPRegressor else True
    # float32 follows float64 closely over a short fit.
    np.testing.assert_allclose(fits[np.float32].coefs_[0], fits[np.float64].coefs_[0],
                               atol=2e-3)
    # Sparse X trains the model that dense X trains.
    dense = fits[np.float64]
    sparse = make(cls, params).fit(sp.csr_matrix(X), y)
    for a, b in zip(dense.coefs_, sparse.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    # A weight of 2 is a duplicated row in a full batch.
    w = np.where(np.arange(len(y)) % 3 == 0, 2.0, 1.0)
    dup = np.repeat(np.arange(len(y)), w.astype(int))
    stochastic = params.get("solver") != "rprop"
    if name == "dropout":
        return  # masks follow rows of X, so duplicated rows draw other masks
    weighted = make(cls, params, **(dict(batch_size=len(y)) if stochastic else {}),
                    shuffle=False, alpha=0).fit(X, y, sample_weight=w)
    duplicated = make(cls, params, **(dict(batch_size=len(dup)) if stochastic else {}),
                      shuffle=False, alpha=0).fit(X[dup], y[dup])
    for a, b in zip(weighted.coefs_, duplicated.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("cls,name,params", CASES, ids=IDS)
def test_option_partial_fit(cls, name, params):
    X, y = data_for(cls)
    est = make(cls, params)
    if params.get("solver") == "rprop":
        with pytest.raises(AttributeError, match="partial_fit") as info:
            est.partial_fit(X, y)
        assert "rprop is not stochastic" in str(info.value.__cause__)
        return
    kw = dict(classes=np.unique(y)) if cls is BPClassifier else {}
    est.partial_fit(X, y, **kw)
    est.partial_fit(X.astype(np.float32), y)
    assert est.n_iter_ == 1 and len(est.loss_curve_) == 2
    assert np.isfinite(est.loss_)


# --------------------------------------------------------------- persistence, ONNX

@pytest.mark.parametrize("cls,name,params", CASES, ids=IDS)
def test_option_save_and_load(cls, name, params, tmp_path):
    X, y = data_for(cls)
    est = make(cls, params).fit(X, y)
    path = tmp_path / "model.npz"
    est.save(path)
    loaded = fastbp.load(path)
    assert loaded.get_params() == est.get_params()
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    if params.get("solver") != "rprop":
        # Training goes on from the file as from the estimator saved.
        clone_of = fastbp.load(path)
        est.partial_fit(X, y)
        clone_of.partial_fit(X, y)
        assert_same_model(est, clone_of)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("out", ["identity", "logistic", "softplus", "exp"])
def test_onnx_new_activations(dtype, out):
    pytest.importorskip("skl2onnx")
    ort = pytest.importorskip("onnxruntime")
    import fastbp.onnx  # noqa: F401
    from skl2onnx import to_onnx

    X, y = regression()
    X = X.astype(dtype) * 3
    for acts in (NEW_ACTIVATIONS[:4], NEW_ACTIVATIONS[4:]):
        est = BPRegressor(hidden_layer_sizes=(5, 4, 4, 3), activation=acts,
                          out_activation=out, leaky_relu_slope=0.2, max_iter=5,
                          random_state=0).fit(X, np.abs(y))
        onx = to_onnx(est, X[:1])
        sess = ort.InferenceSession(onx.SerializeToString(),
                                    providers=["CPUExecutionProvider"])
        got = sess.run(None, {sess.get_inputs()[0].name: X})[0]
        want = est.predict(X).reshape(-1, 1)
        rtol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


def test_onnx_classifier_with_new_options():
    pytest.importorskip("skl2onnx")
    ort = pytest.importorskip("onnxruntime")
    import fastbp.onnx  # noqa: F401
    from skl2onnx import to_onnx

    X, y = labels()
    est = BPClassifier(hidden_layer_sizes=(6, 5), activation=["selu", "silu"],
                       dropout=0.2, label_smoothing=0.1, solver="adamw", max_iter=10,
                       random_state=0).fit(X, y)
    onx = to_onnx(est, X[:1].astype(np.float32))
    sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    label, proba = sess.run(None, {sess.get_inputs()[0].name: X.astype(np.float32)})
    np.testing.assert_allclose(proba, est.predict_proba(X.astype(np.float32)), atol=1e-5)


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("params,names", [
    (dict(solver="lbfgs", dropout=0.1), ("dropout", "solver")),
    (dict(solver="rprop", dropout=[0.1]), ("dropout", "solver")),
    (dict(solver="lbfgs", gradient_clip=1.0), ("gradient_clip", "solver")),
    (dict(solver="rprop", batch_size=10), ("rprop", "batch_size")),
    (dict(solver="rprop", early_stopping=True), ("early_stopping", "rprop")),
    (dict(solver="rprop", rprop_delta_init=100.0), ("rprop_delta_init", "rprop_delta_max")),
    (dict(activation=["relu", "tanh"]), ("activation", "hidden_layer_sizes")),
    (dict(activation=["relu", "swish"], hidden_layer_sizes=(3, 3)), ("activation",)),
    (dict(dropout=[0.1, 0.2]), ("dropout", "hidden_layer_sizes")),
    (dict(dropout=[1.0]), ("dropout",)),
    (dict(loss="poisson", out_activation="identity"), ("poisson", "out_activation")),
])
def test_options_that_cannot_combine(params, names):
    X, y = regression()
    with pytest.raises(ValueError) as info:
        make(BPRegressor, params).fit(np.abs(X), np.abs(y))
    for name in names:
        assert name in str(info.value)


def test_label_smoothing_is_a_classifier_parameter():
    with pytest.raises(TypeError, match="label_smoothing"):
        BPRegressor(label_smoothing=0.1)
    for cls, bad in ((BPClassifier, dict(label_smoothing=1.0)),
                     (BPRegressor, dict(quantile=1.0)),
                     (BPRegressor, dict(huber_delta=0.0)),
                     (BPRegressor, dict(out_activation="softmax")),
                     (BPRegressor, dict(activation="swish")),
                     (BPRegressor, dict(solver="rmsprop"))):
        X, y = data_for(cls)
        with pytest.raises(ValueError, match=list(bad)[0]):
            make(cls, bad).fit(X, y)


def test_weighted_dropout_fit_is_reproducible_with_threads():
    """Masks follow rows of X, not the batch split: the same seed gives the same
    model however the rows of a batch are shared among threads."""
    from threadpoolctl import threadpool_limits

    X, y = regression(400)
    w = np.linspace(0.5, 2, 400)
    params = dict(hidden_layer_sizes=(256, 256), dropout=0.2, max_iter=2, batch_size=200)
    with threadpool_limits(1):
        a = make(BPRegressor, params).fit(X, y, sample_weight=w)
    b = make(BPRegressor, params).fit(X, y, sample_weight=w)
    c = make(BPRegressor, params).fit(X, y, sample_weight=w)
    assert_same_model(b, c)
    for x, z in zip(a.coefs_, b.coefs_):
        np.testing.assert_allclose(x, z, rtol=1e-9, atol=1e-12)
    assert clone(a).get_params() == a.get_params()


def test_validation_loss_curve_uses_the_regression_loss():
    """With eval_set, the validation loss is the training loss's own (huber,
    quantile...), whatever the output activation: fitting the validation rows
    as training rows reports the same number in loss_curve_."""
    X, y = regression()
    for params in (dict(loss="quantile", quantile=0.3, out_activation="softplus"),
                   dict(loss="huber", huber_delta=0.2, out_activation="logistic"),
                   dict(loss="absolute_error")):
        est = make(BPRegressor, params, max_iter=1, batch_size=len(y), alpha=0,
                   shuffle=False, solver="sgd", learning_rate_init=1e-12, momentum=0)
        est.fit(X, np.abs(y) / 3, eval_set=(X, np.abs(y) / 3))
        # One step of 1e-12: the loss over the epoch's start and its end agree.
        np.testing.assert_allclose(est.validation_loss_curve_[0], est.loss_curve_[0],
                                   rtol=1e-9)


def test_label_smoothing_per_label_column():
    X, y = labels()
    Y = np.column_stack([y, (X[:, 1] > 0).astype(int)])
    est = BPClassifier(hidden_layer_sizes=(), solver="lbfgs", label_smoothing=0.3,
                       alpha=1e-3, max_iter=500, random_state=0).fit(X, Y)
    soft = est._training_target(np.eye(5)[[0, 3]])
    # Blocks of 3 and 2 classes: off-target entries are eps / 3 and eps / 2.
    np.testing.assert_allclose(soft, [[0.7 + 0.1, 0.1, 0.1, 0.15, 0.15],
                                      [0.1, 0.1, 0.1, 0.7 + 0.15, 0.15]])


def test_full_batch_rprop_refuses_epoch_options_by_name():
    X, y = regression()
    with pytest.raises(ValueError, match="eval_set.*solver='rprop'"):
        make(BPRegressor, dict(solver="rprop")).fit(X, y, eval_set=(X, y))
    with pytest.raises(ValueError, match="cosine.*solver='rprop'"):
        make(BPRegressor, dict(solver="rprop", learning_rate="cosine")).fit(X, y)
