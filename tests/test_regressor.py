# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Behaviour of BPRegressor: fit/predict/partial_fit, dtypes, errors, divergence."""

import doctest
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris, make_regression
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning, NotFittedError
from sklearn.neural_network import MLPRegressor
from sklearn.utils._param_validation import InvalidParameterError

import fastbp
from fastbp import BPRegressor, _core
from fastbp import _base as regressor_module

TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-4, atol=1e-5)}
# Same data, same seed: the same float64 operations as sklearn, up to the order in
# which BLAS sums.
PARITY = dict(rtol=1e-6, atol=1e-9)

DIVERGED = "Solver produced non-finite parameter weights"

ignore_convergence = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning"
)


@pytest.fixture
def data():
    X, y = make_regression(
        n_samples=120, n_features=5, n_informative=5, noise=1.0, random_state=0
    )
    return X, y / np.std(y)


@pytest.fixture
def fitted(data):
    X, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return BPRegressor(hidden_layer_sizes=(6,), max_iter=10, random_state=0).fit(
            X, y
        )


def _big_data():
    # sklearn's test_nonfinite_params: the first forward pass overflows.
    rs = np.random.RandomState(0)
    X = np.finfo(np.float64).max * rs.uniform(size=(10, 2))
    y = rs.standard_normal(size=10)
    return X, y


def _sparse_with_nan(X):
    from scipy import sparse

    X = sparse.csr_matrix(X)
    X.data[0] = np.nan
    return X


def _snapshot(est):
    """Deep copy of the public fitted state."""
    state = {}
    for name, value in vars(est).items():
        if not name.endswith("_") or name.startswith("_"):
            continue
        if isinstance(value, list):
            value = [v.copy() if isinstance(v, np.ndarray) else v for v in value]
        elif isinstance(value, np.ndarray):
            value = value.copy()
        state[name] = value
    return state


def _assert_same_state(est, snapshot):
    now = _snapshot(est)
    assert now.keys() == snapshot.keys()
    changed = []
    for name, before in snapshot.items():
        after = now[name]
        if isinstance(before, list) and before and isinstance(before[0], np.ndarray):
            same = len(after) == len(before) and all(
                a.dtype == b.dtype and np.array_equal(a, b)
                for a, b in zip(after, before)
            )
        elif isinstance(before, np.ndarray):
            same = np.array_equal(after, before)
        else:
            same = after == before
        if not same:
            changed.append(name)
    assert not changed, "changed: %s" % ", ".join(changed)


def _assert_params_close(a, b, **tol):
    assert len(a.coefs_) == len(b.coefs_)
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert p.shape == q.shape
        np.testing.assert_allclose(p, q, **tol)


# ------------------------------------------------------------- closed forms


@ignore_convergence
def test_single_neuron_learns_least_squares_line(rng):
    X = rng.uniform(-1, 1, size=(200, 1))
    y = 2 * X[:, 0] + 0.01 * rng.standard_normal(200)
    # One batch of all samples, no penalty and no early stop: gradient descent
    # with momentum on a convex quadratic runs to its minimiser.
    neuron = BPRegressor(
        hidden_layer_sizes=(),
        solver="sgd",
        learning_rate_init=0.1,
        alpha=0,
        tol=0,
        n_iter_no_change=np.inf,
        max_iter=300,
        random_state=0,
    ).fit(X, y)

    assert neuron.n_layers_ == 2
    assert len(neuron.coefs_) == 1 and neuron.coefs_[0].shape == (1, 1)
    w, b = np.linalg.lstsq(np.hstack([X, np.ones((200, 1))]), y, rcond=None)[0]
    np.testing.assert_allclose(neuron.coefs_[0][0, 0], w, rtol=1e-8)
    np.testing.assert_allclose(neuron.intercepts_[0][0], b, atol=1e-8)
    assert abs(neuron.coefs_[0][0, 0] - 2) < 0.01
    assert abs(neuron.intercepts_[0][0]) < 0.01
    np.testing.assert_allclose(neuron.predict(X), w * X[:, 0] + b, rtol=1e-8)


@ignore_convergence
def test_linear_layer_with_penalty_is_ridge(rng):
    # sklearn's objective, (||y - Xw - b||^2 + alpha ||w||^2) / (2 n) per output,
    # is ridge regression with an unpenalised intercept, output by output.
    n, alpha = 150, 5.0
    X = rng.uniform(-1, 1, size=(n, 3))
    Y = X @ rng.standard_normal((3, 2)) + [1.0, -2.0] + 0.1 * rng.standard_normal(
        (n, 2)
    )
    est = BPRegressor(
        hidden_layer_sizes=(),
        solver="sgd",
        learning_rate_init=0.2,
        alpha=alpha,
        tol=0,
        n_iter_no_change=np.inf,
        max_iter=500,
        random_state=0,
    ).fit(X, Y)

    Xc, Yc = X - X.mean(axis=0), Y - Y.mean(axis=0)
    W = np.linalg.solve(Xc.T @ Xc + alpha * np.eye(3), Xc.T @ Yc)
    b = Y.mean(axis=0) - X.mean(axis=0) @ W
    np.testing.assert_allclose(est.coefs_[0], W, rtol=1e-7)
    np.testing.assert_allclose(est.intercepts_[0], b, rtol=1e-7)


def test_docstring_example_holds():
    # The manual's example is a behaviour claim too.
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for test in finder.find(BPRegressor, "BPRegressor", globs={}):
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0
    assert result.failed == 0


# -------------------------------------------------------- fitted attributes


def _public_fitted_names(est):
    return {k for k in vars(est) if k.endswith("_") and not k.startswith("_")}


@ignore_convergence
@pytest.mark.parametrize("early_stopping", [False, True])
def test_fitted_attributes_like_mlpregressor(data, early_stopping):
    X, y = data
    params = dict(
        hidden_layer_sizes=(7, 3),
        max_iter=12,
        early_stopping=early_stopping,
        random_state=0,
    )
    est = BPRegressor(**params).fit(X, y)
    ref = MLPRegressor(**params).fit(X, y)

    # With validation data fastbp adds validation_loss_curve_ (as scikit-learn's
    # main branch does); nothing else differs.
    extra = {"validation_loss_curve_"} if early_stopping else set()
    assert _public_fitted_names(est) == _public_fitted_names(ref) | extra
    assert [c.shape for c in est.coefs_] == [(5, 7), (7, 3), (3, 1)]
    assert [b.shape for b in est.intercepts_] == [(7,), (3,), (1,)]
    assert all(type(c) is np.ndarray for c in est.coefs_ + est.intercepts_)
    assert isinstance(est.coefs_, list) and isinstance(est.intercepts_, list)
    assert est.n_layers_ == ref.n_layers_ == 4
    assert est.n_outputs_ == ref.n_outputs_ == 1
    assert est.out_activation_ == ref.out_activation_ == "identity"
    assert est.n_features_in_ == ref.n_features_in_ == 5
    assert not hasattr(est, "feature_names_in_")
    assert isinstance(est.n_iter_, int) and est.n_iter_ == ref.n_iter_
    assert isinstance(est.t_, int) and est.t_ == ref.t_
    assert isinstance(est.loss_, float)
    assert isinstance(est.loss_curve_, list) and len(est.loss_curve_) == est.n_iter_
    assert all(isinstance(v, float) for v in est.loss_curve_)
    assert est.loss_ == est.loss_curve_[-1]
    if early_stopping:
        assert est.best_loss_ is None and ref.best_loss_ is None
        assert isinstance(est.validation_scores_, list)
        assert len(est.validation_scores_) == est.n_iter_
        assert all(isinstance(v, float) for v in est.validation_scores_)
        assert isinstance(est.best_validation_score_, float)
        assert est.best_validation_score_ == max(est.validation_scores_)
    else:
        assert isinstance(est.best_loss_, float)
        assert est.best_loss_ == min(est.loss_curve_)
        assert est.validation_scores_ is None and ref.validation_scores_ is None
        assert est.best_validation_score_ is None
        assert ref.best_validation_score_ is None


@ignore_convergence
def test_feature_names_in_with_dataframe(data):
    pd = pytest.importorskip("pandas")
    X, y = data
    columns = ["a", "b", "c", "d", "e"]
    df = pd.DataFrame(X, columns=columns)
    est = BPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(df, y)
    assert isinstance(est.feature_names_in_, np.ndarray)
    assert est.feature_names_in_.tolist() == columns
    pred_named = est.predict(df)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        pred_unnamed = est.predict(X)
    np.testing.assert_array_equal(pred_named, pred_unnamed)
    with pytest.raises(ValueError, match="feature names should match"):
        est.predict(df[columns[::-1]])
    # A refit on an unnamed array forgets the names.
    est.fit(X, y)
    assert not hasattr(est, "feature_names_in_")


# ------------------------------------------------------------------- dtypes


@ignore_convergence
@pytest.mark.parametrize(
    "X_dtype, y_dtype, expected",
    [
        (np.float64, np.float64, np.float64),
        (np.float32, np.float32, np.float32),
        (np.float32, np.float64, np.float32),
        (np.int64, np.float64, np.float64),
        (np.int32, np.int64, np.float64),
    ],
)
def test_dtype_of_parameters_and_predictions(data, X_dtype, y_dtype, expected):
    X, y = data
    X = (10 * X).astype(X_dtype)
    y = (10 * y).astype(y_dtype)
    est = BPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X, y)
    assert all(c.dtype == expected for c in est.coefs_)
    assert all(b.dtype == expected for b in est.intercepts_)
    assert est.predict(X).dtype == expected
    assert np.isfinite(est.loss_)


@ignore_convergence
def test_float32_trains_in_float32_without_copies(data, monkeypatch, python_epoch_loop):
    X, y = data
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    y32 = y.astype(np.float32)
    seen = []
    train_epoch = _core.train_epoch

    def spy(trainer, X, Y, *args):
        seen.append((X, Y))
        return train_epoch(trainer, X, Y, *args)

    monkeypatch.setattr(regressor_module._core, "train_epoch", spy)
    est = BPRegressor(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X32, y32)

    assert len(seen) == 3
    for X_seen, Y_seen in seen:
        assert X_seen.dtype == np.float32 and Y_seen.dtype == np.float32
        # C-contiguous float32 input goes to the kernel as it is.
        assert np.shares_memory(X_seen.array, X32)
    assert all(c.dtype == np.float32 for c in est.coefs_ + est.intercepts_)
    assert est.predict(X32).dtype == np.float32
    # A float32 model predicting float64 data answers in the data's dtype.
    assert est.predict(X).dtype == np.float64


@ignore_convergence
def test_float32_close_to_float64(data):
    X, y = data
    params = dict(hidden_layer_sizes=(6,), max_iter=10, random_state=0)
    est64 = BPRegressor(**params).fit(X, y)
    est32 = BPRegressor(**params).fit(X.astype(np.float32), y.astype(np.float32))
    _assert_params_close(est32, est64, **TOL[np.float32])
    # Really computed in float32, not computed in float64 and cast at the end.
    assert not all(
        np.array_equal(c32, c64.astype(np.float32))
        for c32, c64 in zip(est32.coefs_, est64.coefs_)
    )


@ignore_convergence
def test_partial_fit_in_other_dtype_casts_parameters(fitted, data):
    X, y = data
    fitted.partial_fit(X.astype(np.float32), y)
    assert all(c.dtype == np.float32 for c in fitted.coefs_ + fitted.intercepts_)
    assert fitted.predict(X.astype(np.float32)).dtype == np.float32


# ----------------------------------------------------------------- outputs


@ignore_convergence
def test_multi_output(data):
    X, y = data
    Y = np.column_stack([y, -y, 2 * y])
    est = BPRegressor(hidden_layer_sizes=(6,), max_iter=10, random_state=0).fit(X, Y)
    assert est.n_outputs_ == 3
    assert est.coefs_[-1].shape == (6, 3) and est.intercepts_[-1].shape == (3,)
    assert est.predict(X).shape == (X.shape[0], 3)
    assert est.predict(X[:1]).shape == (1, 3)
    # Same weights as sklearn (only the reported loss differs, see the Notes).
    ref = MLPRegressor(hidden_layer_sizes=(6,), max_iter=10, random_state=0).fit(X, Y)
    _assert_params_close(est, ref, **PARITY)
    np.testing.assert_allclose(est.predict(X), ref.predict(X), **PARITY)


@ignore_convergence
def test_column_y_warns_and_predicts_1d(data):
    X, y = data
    est = BPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0)
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        est.fit(X, y.reshape(-1, 1))
    assert est.n_outputs_ == 1
    assert est.predict(X).shape == (X.shape[0],)
    flat = BPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X, y)
    np.testing.assert_array_equal(est.predict(X), flat.predict(X))


# -------------------------------------------------------------- bad input


def _with(X, index, value):
    X = np.array(X, dtype=float)
    X[index] = value
    return X


BAD_FIT_DATA = {
    "nan X": (
        lambda X, y: (_with(X, (0, 0), np.nan), y),
        ValueError,
        "Input X contains NaN",
    ),
    "inf X": (
        lambda X, y: (_with(X, (3, 1), np.inf), y),
        ValueError,
        "Input X contains inf",
    ),
    "nan y": (
        lambda X, y: (X, _with(y, 2, np.nan)),
        ValueError,
        "Input y contains NaN",
    ),
    "inf y": (
        lambda X, y: (X, _with(y, 2, -np.inf)),
        ValueError,
        "Input y contains inf",
    ),
    "n_samples": (
        lambda X, y: (X, y[:-1]),
        ValueError,
        "inconsistent numbers of samples",
    ),
    "0 samples": (lambda X, y: (X[:0], y[:0]), ValueError, "0 sample"),
    "0 features": (lambda X, y: (X[:, :0], y), ValueError, "0 feature"),
    "1-D X": (lambda X, y: (X[:, 0], y), ValueError, "Expected 2D array"),
    "3-D X": (lambda X, y: (X[:, :, None], y), ValueError, "dim 3"),
    "string X": (
        lambda X, y: (np.full(X.shape, "a"), y),
        ValueError,
        "could not convert string to float",
    ),
    "string y": (
        lambda X, y: (X, np.array(["a", "b"] * (len(y) // 2))),
        ValueError,
        "y must hold real numbers|could not convert",
    ),
    "object string y": (
        lambda X, y: (X, np.array(["a", "b"] * (len(y) // 2), dtype=object)),
        ValueError,
        "could not convert string to float",
    ),
    "complex X": (lambda X, y: (X + 1j, y), ValueError, "Complex data not supported"),
    "complex y": (lambda X, y: (X, y + 1j), ValueError, "Complex data not supported"),
    "sparse X with NaN": (
        lambda X, y: (_sparse_with_nan(X), y),
        ValueError,
        "Input X contains NaN",
    ),
}


@pytest.fixture
def untrainable(monkeypatch):
    """Fail loudly if anything reaches the training kernel."""

    def refuse(*args, **kwargs):
        raise AssertionError("training started on bad input")

    monkeypatch.setattr(regressor_module._core, "train_epoch", refuse)
    monkeypatch.setattr(regressor_module._core, "train_epochs", refuse)


@pytest.mark.parametrize("case", list(BAD_FIT_DATA), ids=list(BAD_FIT_DATA))
def test_bad_data_raises_before_training(data, case, untrainable):
    make, error, match = BAD_FIT_DATA[case]
    X, y = make(*data)
    with pytest.raises(error, match=match):
        BPRegressor(hidden_layer_sizes=(3,), max_iter=2).fit(X, y)
    with pytest.raises(error, match=match):
        BPRegressor(hidden_layer_sizes=(3,), max_iter=2).partial_fit(X, y)


@pytest.mark.parametrize("case", list(BAD_FIT_DATA), ids=list(BAD_FIT_DATA))
def test_failed_partial_fit_leaves_model_unchanged(fitted, data, case):
    make, error, match = BAD_FIT_DATA[case]
    X, y = make(*data)
    before = _snapshot(fitted)
    with pytest.raises(error, match=match):
        fitted.partial_fit(X, y)
    _assert_same_state(fitted, before)


def test_predict_errors(fitted, data):
    X, _ = data
    with pytest.raises(ValueError, match="X has 4 features, but .* expecting 5"):
        fitted.predict(X[:, :4])
    with pytest.raises(ValueError, match="Input X contains NaN"):
        fitted.predict(_with(X, (1, 1), np.nan))
    with pytest.raises(ValueError, match="0 sample"):
        fitted.predict(X[:0])
    with pytest.raises(NotFittedError, match="not fitted yet"):
        BPRegressor().predict(X)


def test_wrong_number_of_features_in_partial_fit_and_warm_start(fitted, data):
    X, y = data
    before = _snapshot(fitted)
    with pytest.raises(ValueError, match="X has 4 features, but .* expecting 5"):
        fitted.partial_fit(X[:, :4], y)
    _assert_same_state(fitted, before)
    fitted.set_params(warm_start=True)
    with pytest.raises(ValueError, match="X has 4 features"):
        fitted.fit(X[:, :4], y)
    _assert_same_state(fitted, before)
    fitted.set_params(hidden_layer_sizes=(7,))
    with pytest.raises(ValueError, match="fit again without warm_start"):
        fitted.fit(X, y)
    _assert_same_state(fitted, before)


@pytest.mark.parametrize(
    "sizes", [(0,), (3, 0), (-1,), (2.5,), ("3",), (True,), [4, 1.0]]
)
def test_bad_hidden_layer_sizes(data, sizes, untrainable):
    X, y = data
    with pytest.raises(ValueError, match="hidden_layer_sizes must be > 0"):
        BPRegressor(hidden_layer_sizes=sizes).fit(X, y)


@pytest.mark.parametrize("sizes", [0, -2, 2.5, "3"])
def test_bad_scalar_hidden_layer_sizes(data, sizes, untrainable):
    X, y = data
    with pytest.raises(InvalidParameterError, match="hidden_layer_sizes"):
        BPRegressor(hidden_layer_sizes=sizes).fit(X, y)


def test_integer_hidden_layer_sizes_accepted(data):
    X, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = BPRegressor(hidden_layer_sizes=np.int64(4), max_iter=2).fit(X, y)
        est2 = BPRegressor(hidden_layer_sizes=np.array([4, 3]), max_iter=2).fit(X, y)
    assert [c.shape for c in est.coefs_] == [(5, 4), (4, 1)]
    assert [c.shape for c in est2.coefs_] == [(5, 4), (4, 3), (3, 1)]


@pytest.mark.parametrize("solver", ["lbfgs", "sgd", "adam"])
def test_poisson_rejects_negative_targets(data, solver, untrainable):
    X, y = data
    with pytest.raises(ValueError, match="loss='poisson' requires y >= 0"):
        BPRegressor(loss="poisson", solver=solver).fit(X, y - y.max() - 1)


@ignore_convergence
def test_changing_the_loss_of_a_fitted_model_needs_a_fresh_fit(fitted, data):
    X, y = data
    before = _snapshot(fitted)
    fitted.set_params(loss="poisson")
    with pytest.raises(ValueError, match="loss='poisson' needs output activation"):
        fitted.partial_fit(X, np.abs(y))
    _assert_same_state(fitted, before)


def test_partial_fit_with_early_stopping_raises(data, untrainable):
    X, y = data
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        BPRegressor(early_stopping=True).partial_fit(X, y)


def test_validation_set_too_small(data, untrainable):
    X, y = data
    with pytest.raises(ValueError, match="validation set is too small"):
        BPRegressor(early_stopping=True, validation_fraction=0.1).fit(X[:10], y[:10])


@pytest.mark.parametrize(
    "params",
    [
        dict(alpha=-1),
        dict(activation="foo"),
        dict(solver="newton"),
        dict(loss="pinball"),
        dict(learning_rate_init=0),
        dict(max_iter=0),
        dict(batch_size=0),
        dict(momentum=1.5),
        dict(validation_fraction=1.0),
        dict(beta_1=1.0),
        dict(n_iter_no_change=0),
        dict(learning_rate="optimal"),
        dict(shuffle="yes"),
        dict(leaky_relu_slope=-0.1),
        dict(dropout=1.0),
        dict(gradient_clip=0.0),
        dict(weight_decay=-1.0),
        dict(out_activation="relu"),
        dict(huber_delta=0.0),
        dict(quantile=0.0),
        dict(rprop_increase_factor=1.0),
        dict(rprop_decrease_factor=1.0),
    ],
    ids=lambda p: next(iter(p)),
)
def test_invalid_hyperparameters(data, params, untrainable):
    X, y = data
    name = next(iter(params))
    with pytest.raises(InvalidParameterError, match=f"The '{name}' parameter"):
        BPRegressor(**params).fit(X, y)


@ignore_convergence
def test_batch_size_larger_than_data_is_clipped(data):
    X, y = data
    with pytest.warns(UserWarning, match="It is going to be clipped"):
        big = BPRegressor(hidden_layer_sizes=(3,), batch_size=1000, max_iter=3,
                          random_state=0).fit(X, y)
    full = BPRegressor(hidden_layer_sizes=(3,), batch_size=len(X), max_iter=3,
                       random_state=0).fit(X, y)
    _assert_params_close(big, full, rtol=0, atol=0)


# ---------------------------------------------------------- input layouts


def _read_only(a):
    a = a.copy()
    a.setflags(write=False)
    return a


def _memmap(a, path):
    out = np.memmap(path, dtype=a.dtype, mode="w+", shape=a.shape)
    out[:] = a
    out.flush()
    del out
    return np.memmap(path, dtype=a.dtype, mode="r", shape=a.shape)


def _strided(a, axis):
    shape = list(a.shape)
    shape[axis] *= 2
    big = np.empty(shape, dtype=a.dtype)
    index = [slice(None)] * a.ndim
    index[axis] = slice(None, None, 2)
    big[tuple(index)] = a
    return big[tuple(index)]


def _layout(name, X, y, tmp_path):
    """X and y in the named memory layout, with the same values."""
    if name == "read-only":
        X, y = _read_only(X), _read_only(y)
        assert not X.flags.writeable and not y.flags.writeable
    elif name == "memmap":
        X, y = _memmap(X, tmp_path / "X.dat"), _memmap(y, tmp_path / "y.dat")
        assert isinstance(X, np.memmap) and not X.flags.writeable
    elif name == "column-strided":
        X = _strided(X, axis=1)
        assert not X.flags.c_contiguous and not X.flags.f_contiguous
    elif name == "row-strided":
        X, y = _strided(X, axis=0), _strided(y, axis=0)
        assert not X.flags.c_contiguous and not y.flags.c_contiguous
    elif name == "fortran":
        X = np.asfortranarray(X)
        assert X.flags.f_contiguous and not X.flags.c_contiguous
    return X, y


@ignore_convergence
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "layout", ["read-only", "memmap", "column-strided", "row-strided", "fortran"]
)
def test_input_layouts_give_same_model(data, tmp_path, dtype, layout):
    X, y = data
    X, y = X.astype(dtype), y.astype(dtype)
    X_in, y_in = _layout(layout, X, y, tmp_path)
    np.testing.assert_array_equal(X_in, X)
    params = dict(hidden_layer_sizes=(5,), max_iter=5, random_state=0)
    ref = BPRegressor(**params).fit(X, y)
    est = BPRegressor(**params).fit(X_in, y_in)
    _assert_params_close(est, ref, **TOL[dtype])
    np.testing.assert_allclose(est.predict(X_in), ref.predict(X), **TOL[dtype])
    est.partial_fit(X_in, y_in)
    ref.partial_fit(X, y)
    np.testing.assert_allclose(est.predict(X_in), ref.predict(X), **TOL[dtype])
    # The caller's data is never written to.
    np.testing.assert_array_equal(X_in, X)
    np.testing.assert_array_equal(y_in, y)


# -------------------------------------------------------------- divergence


def _diverging_fit(**extra):
    X, y = make_regression(n_samples=200, n_features=5, noise=1.0, random_state=0)
    params = dict(
        hidden_layer_sizes=(10,),
        solver="sgd",
        learning_rate_init=1e-3,
        max_iter=50,
        random_state=0,
    )
    params.update(extra)
    return BPRegressor(**params), 10 * X, 10 * y


def test_divergence_after_some_epochs_restores_last_finite_weights():
    est, X, y = _diverging_fit()
    with pytest.warns(ConvergenceWarning, match="diverged") as record:
        est.fit(X, y)
    assert any("learning_rate_init" in str(w.message) for w in record)
    n = est.n_iter_
    assert 2 <= n < est.max_iter
    assert len(est.loss_curve_) == n
    assert np.isfinite(est.loss_curve_[:-1]).all()
    assert not np.isfinite(est.loss_curve_[-1])
    assert est.loss_ == est.loss_curve_[-2]
    assert all(np.isfinite(p).all() for p in est.coefs_ + est.intercepts_)
    assert np.isfinite(est.predict(X)).all()

    # The weights are those of the last finite epoch: the same as stopping there.
    stopped, _, _ = _diverging_fit(max_iter=n - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        stopped.fit(X, y)
    assert stopped.n_iter_ == n - 1
    _assert_params_close(est, stopped, rtol=0, atol=0)
    assert est.t_ == stopped.t_
    assert est.loss_curve_[:-1] == stopped.loss_curve_


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_first_epoch_divergence_raises(solver):
    X, y = _big_data()
    est = BPRegressor(solver=solver, max_iter=5, random_state=0)
    with pytest.raises(ValueError, match=DIVERGED):
        est.fit(X, y)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_first_epoch_divergence_leaves_unfitted_estimator_unfitted(solver):
    X, y = _big_data()
    est = BPRegressor(solver=solver, max_iter=5, random_state=0)
    with pytest.raises(ValueError, match="left as it was before this call"):
        est.fit(X, y)
    with pytest.raises(NotFittedError):
        est.predict(X)


def _fit_two_features(solver):
    X, y = make_regression(n_samples=60, n_features=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = BPRegressor(hidden_layer_sizes=(5,), solver=solver, max_iter=5,
                          random_state=0).fit(X, y / y.std())
    return est, X, y / y.std()


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_first_epoch_divergence_in_partial_fit_leaves_model_as_before(solver):
    est, X, y = _fit_two_features(solver)
    before = _snapshot(est)
    with pytest.raises(ValueError, match=DIVERGED):
        est.partial_fit(*_big_data())
    _assert_same_state(est, before)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_first_epoch_divergence_in_partial_fit_keeps_optimizer_state(solver):
    est, X, y = _fit_two_features(solver)
    twin, _, _ = _fit_two_features(solver)
    with pytest.raises(ValueError, match="non-finite"):
        est.partial_fit(*_big_data())
    est.partial_fit(X, y)
    twin.partial_fit(X, y)
    _assert_params_close(est, twin, rtol=0, atol=0)
    assert est.t_ == twin.t_


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_first_epoch_divergence_in_other_dtype_keeps_optimizer_state(solver):
    # A float32 partial_fit on a float64 model casts the parameters and the
    # optimizer state (see the Notes); when it fails, both must come back as
    # they were, so the next float64 call trains exactly as if it never happened.
    est, X, y = _fit_two_features(solver)
    twin, _, _ = _fit_two_features(solver)
    rs = np.random.RandomState(0)
    X_big = (np.finfo(np.float32).max * rs.uniform(size=(10, 2))).astype(np.float32)
    y_big = rs.standard_normal(10).astype(np.float32)
    before = _snapshot(est)
    with pytest.raises(ValueError, match=DIVERGED):
        est.partial_fit(X_big, y_big)
    _assert_same_state(est, before)
    est.partial_fit(X, y)
    twin.partial_fit(X, y)
    _assert_params_close(est, twin, rtol=0, atol=0)


@pytest.mark.parametrize("warm_start", [False, True])
def test_first_epoch_divergence_in_refit_leaves_model_as_before(warm_start):
    est, X, y = _fit_two_features("adam")
    est.set_params(warm_start=warm_start)
    before = _snapshot(est)
    with pytest.raises(ValueError, match="left as it was before this call"):
        est.fit(*_big_data())
    _assert_same_state(est, before)


def test_diverging_early_stopping_keeps_nan_validation_score():
    # sklearn's test_mlp_diverging_loss (issue #29504).
    X, y = load_iris(return_X_y=True)
    est = BPRegressor(
        hidden_layer_sizes=100,
        activation="identity",
        solver="sgd",
        alpha=0.0001,
        learning_rate="constant",
        learning_rate_init=1,
        shuffle=True,
        max_iter=20,
        early_stopping=True,
        n_iter_no_change=10,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    assert str(est.validation_scores_[-1]) == "nan"
    assert isinstance(est.validation_scores_[-1], float)
    # The best epoch's weights are kept, and they are finite.
    assert all(np.isfinite(p).all() for p in est.coefs_ + est.intercepts_)
    assert np.isfinite(est.predict(X)).all()


# ----------------------------------------------------------------- verbose


@ignore_convergence
@pytest.mark.parametrize("early_stopping", [False, True])
def test_verbose(data, capsys, early_stopping):
    X, y = data
    est = BPRegressor(hidden_layer_sizes=(4,), max_iter=3, verbose=True,
                      early_stopping=early_stopping, random_state=0).fit(X, y)
    out = capsys.readouterr().out
    lines = out.splitlines()
    iteration_lines = [line for line in lines if line.startswith("Iteration ")]
    assert len(iteration_lines) == est.n_iter_ == 3
    assert iteration_lines[0].startswith("Iteration 1, loss = ")
    assert float(iteration_lines[0].split("=")[1]) == pytest.approx(est.loss_curve_[0])
    score_lines = [line for line in lines if line.startswith("Validation score:")]
    assert len(score_lines) == (3 if early_stopping else 0)


@ignore_convergence
def test_not_verbose_prints_nothing(data, capsys):
    X, y = data
    BPRegressor(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)
    assert capsys.readouterr().out == ""


# ------------------------------------------- warm start, partial_fit, parity


@ignore_convergence
@pytest.mark.parametrize(
    "params",
    [
        dict(),
        dict(solver="sgd"),
        dict(solver="sgd", learning_rate="invscaling"),
        dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.01),
        dict(solver="sgd", nesterovs_momentum=False, shuffle=False),
        dict(early_stopping=True),
        dict(batch_size=32, activation="tanh"),
        dict(activation="logistic", alpha=0.1),
    ],
    ids=[
        "adam", "sgd", "invscaling", "adaptive", "momentum", "early", "tanh", "logistic"
    ],
)
def test_fit_and_warm_start_match_mlpregressor(data, params):
    X, y = data
    params = dict(hidden_layer_sizes=(6, 4), max_iter=15, random_state=1, **params)
    est = BPRegressor(**params).fit(X, y)
    ref = MLPRegressor(**params).fit(X, y)
    _assert_params_close(est, ref, **PARITY)
    np.testing.assert_allclose(est.loss_curve_, ref.loss_curve_, **PARITY)
    assert est.n_iter_ == ref.n_iter_ and est.t_ == ref.t_
    if params.get("early_stopping"):
        np.testing.assert_allclose(est.validation_scores_, ref.validation_scores_,
                                   **PARITY)

    first = [c.copy() for c in est.coefs_]
    est.set_params(warm_start=True).fit(X, y)
    ref.set_params(warm_start=True).fit(X, y)
    _assert_params_close(est, ref, **PARITY)
    np.testing.assert_allclose(est.loss_curve_, ref.loss_curve_, **PARITY)
    assert est.n_iter_ == ref.n_iter_ and est.t_ == ref.t_
    assert not all(np.array_equal(a, b) for a, b in zip(first, est.coefs_))


@ignore_convergence
def test_warm_start_continues_and_cold_start_restarts(data):
    X, y = data
    params = dict(hidden_layer_sizes=(5,), max_iter=4, random_state=0)
    est = BPRegressor(**params).fit(X, y)
    est.set_params(warm_start=True).fit(X, y)
    assert len(est.loss_curve_) == 8
    assert est.loss_curve_[4] < est.loss_curve_[0]
    est.set_params(warm_start=False).fit(X, y)
    fresh = BPRegressor(**params).fit(X, y)
    _assert_params_close(est, fresh, rtol=0, atol=0)
    assert est.loss_curve_ == fresh.loss_curve_


@ignore_convergence
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_partial_fit_matches_mlpregressor(data, solver):
    X, y = data
    params = dict(hidden_layer_sizes=(6,), solver=solver, random_state=0)
    est, ref = BPRegressor(**params), MLPRegressor(**params)
    for model in (est, ref):
        model.partial_fit(X, y)
        model.partial_fit(X[:50], y[:50])
        model.partial_fit(X, y)
    _assert_params_close(est, ref, **PARITY)
    assert est.n_iter_ == ref.n_iter_ == 1
    assert est.t_ == ref.t_ == 2 * len(X) + 50
    np.testing.assert_allclose(est.loss_curve_, ref.loss_curve_, **PARITY)


@ignore_convergence
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_partial_fit_keeps_optimizer_state(data, solver):
    X, y = data
    params = dict(hidden_layer_sizes=(6,), solver=solver, max_iter=1, random_state=0)
    # One fit of one epoch then a second epoch by partial_fit, against two
    # warm-started fits, which restart the optimizer state each time.
    carried = BPRegressor(**params).fit(X, y).partial_fit(X, y)
    restarted = BPRegressor(warm_start=True, **params).fit(X, y).fit(X, y)
    assert carried.t_ == restarted.t_
    assert not np.allclose(carried.coefs_[0], restarted.coefs_[0])
    ref = MLPRegressor(**params).fit(X, y).partial_fit(X, y)
    _assert_params_close(carried, ref, **PARITY)


def test_public_surface():
    assert fastbp.BPRegressor is BPRegressor
    assert isinstance(fastbp.__version__, str)


@pytest.mark.parametrize("weighted", [False, True])
def test_internal_r2_equals_sklearn_r2_score(weighted):
    """Early stopping scores with a fast R²; it must equal r2_score."""
    from sklearn.metrics import r2_score

    from fastbp._regressor import r2 as _r2

    rng = np.random.default_rng(0)
    y = rng.normal(size=(30, 3))
    y[:, 2] = 1.5  # a constant output: sklearn's force_finite rules apply
    pred = y + 0.3 * rng.normal(size=y.shape)
    w = rng.uniform(0.1, 2.0, size=30) if weighted else None
    assert _r2(y, pred, w) == pytest.approx(r2_score(y, pred, sample_weight=w), rel=1e-12)
    exact = y.copy()
    assert _r2(y, exact, w) == pytest.approx(r2_score(y, exact, sample_weight=w))


def test_blas_pin_is_shared_by_concurrent_fits():
    """Overlapping small fits share one BLAS pin; the last one out lifts it."""
    from threadpoolctl import threadpool_info

    from fastbp._threads import one_blas_thread as _one_blas_thread

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info()
                if lib["user_api"] == "blas"]

    before = blas_threads()
    first, second = _one_blas_thread(), _one_blas_thread()
    first.__enter__()
    second.__enter__()
    assert set(blas_threads()) == {1}
    first.__exit__(None, None, None)
    assert set(blas_threads()) == {1}  # the second fit still relies on it
    second.__exit__(None, None, None)
    assert blas_threads() == before


@ignore_convergence
def test_large_batches_split_over_threads_reproducibly():
    """Per-batch GEMMs of 2**20 multiply-adds and more are shared by OpenMP
    threads: the same model as one thread up to rounding, and bitwise the same
    model for the same thread count."""
    from threadpoolctl import threadpool_limits

    from fastbp._threads import threads_for as _threads_for

    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 64))
    y = np.tanh(X[:, :8].sum(axis=1))
    params = dict(hidden_layer_sizes=(64,), batch_size=256, max_iter=3,
                  random_state=0)
    assert _threads_for([64, 64, 1], 256) >= 1
    with threadpool_limits(1):
        assert _threads_for([64, 64, 1], 256) == 1
        one = BPRegressor(**params).fit(X, y)
    with threadpool_limits(2):
        assert _threads_for([64, 64, 1], 256) == 2
        assert _threads_for([10, 100, 1], 32) == 1  # small: one thread
        two = BPRegressor(**params).fit(X, y)
        again = BPRegressor(**params).fit(X, y)
    np.testing.assert_allclose(two.predict(X), one.predict(X), rtol=1e-10, atol=1e-12)
    for a, b in zip(two.coefs_ + two.intercepts_, again.coefs_ + again.intercepts_):
        np.testing.assert_array_equal(a, b)


@ignore_convergence
@pytest.mark.parametrize("first, second", [(False, True), (True, False)])
def test_warm_start_may_switch_early_stopping(data, first, second):
    """sklearn crashes here; the new stopping rule starts its own records."""
    X, y = data
    est = BPRegressor(hidden_layer_sizes=(5,), max_iter=4, early_stopping=first,
                      random_state=0).fit(X, y)
    est.set_params(warm_start=True, early_stopping=second, max_iter=3).fit(X, y)
    assert est.n_iter_ == 3
    if second:
        assert len(est.validation_scores_) == 3 and est.best_loss_ is None
        assert est.best_validation_score_ == max(est.validation_scores_)
    else:
        assert est.validation_scores_ is None
        assert est.best_loss_ == min(est.loss_curve_[-3:])
    assert np.isfinite(est.predict(X)).all()


@ignore_convergence
def test_predict_fast_path_skips_only_redundant_validation(data, monkeypatch):
    """Plain finite C-contiguous float rows skip validate_data; anything else
    (lists, NaN, wrong width, models fitted with feature names) goes through it."""
    import fastbp._base as regressor_module

    X, y = data
    est = BPRegressor(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)
    expected = est.predict(X.tolist())
    calls = []
    real = regressor_module.validate_data

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(regressor_module, "validate_data", counting)
    np.testing.assert_array_equal(est.predict(X), expected)
    np.testing.assert_array_equal(est.predict(X[:1]), expected[:1])
    assert calls == []
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        est.predict(bad)
    with pytest.raises(ValueError, match="features"):
        est.predict(X[:, :2])
    est.predict(np.asfortranarray(X))
    assert len(calls) == 3
