# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""ONNX export through skl2onnx, checked with onnxruntime."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fastbp import BPRegressor

pytest.importorskip("skl2onnx")
ort = pytest.importorskip("onnxruntime")
fastbp_onnx = pytest.importorskip("fastbp.onnx")
from skl2onnx import to_onnx  # noqa: E402
from skl2onnx.common.data_types import StringTensorType  # noqa: E402

TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-10)}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 10, (150, 5))  # unscaled: the pipeline's scaler matters
    signal = np.sin(X[:, 0]) + 0.3 * X[:, 1] - 0.2 * X[:, 2]
    Y = np.column_stack([signal, X[:, 3] * 0.5 - X[:, 4] * 0.1, signal ** 2])
    return X, Y


def _fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


def _run(onx, X):
    session = ort.InferenceSession(onx.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    (out,) = session.run(None, {name: X})
    return out


def _check(model, X, dtype):
    onx = to_onnx(model, X[:1])
    got = _run(onx, X)
    expected = model.predict(X)
    assert got.dtype == dtype
    assert got.shape == (X.shape[0], 1 if expected.ndim == 1 else expected.shape[1])
    np.testing.assert_allclose(got, expected.reshape(got.shape), **TOL[dtype])
    return onx


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
def test_pipeline_matches_predict(data, activation, dtype):
    X, Y = (a.astype(dtype) for a in data)
    model = make_pipeline(
        StandardScaler(),
        BPRegressor(hidden_layer_sizes=(16, 8), activation=activation, max_iter=30,
                    random_state=0),
    )
    _fit(model, X, Y[:, 0])
    _check(model, X, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_multi_output(data, dtype):
    X, Y = (a.astype(dtype) for a in data)
    model = make_pipeline(StandardScaler(),
                          BPRegressor(hidden_layer_sizes=(12,), max_iter=30,
                                      random_state=0))
    _fit(model, X, Y)
    _check(model, X, dtype)  # (n, 3), where skl2onnx's MLP converter gives (3n, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_poisson_output(data, dtype):
    X, Y = (a.astype(dtype) for a in data)
    counts = np.round(np.exp(Y[:, :2] / 2)).astype(dtype)
    model = make_pipeline(StandardScaler(),
                          BPRegressor(loss="poisson", hidden_layer_sizes=(8,),
                                      activation="tanh", max_iter=30, random_state=0))
    _fit(model, X, counts)
    assert model[-1].out_activation_ == "exp"
    onx = _check(model, X, dtype)
    assert "Exp" in {node.op_type for node in onx.graph.node}


@pytest.mark.parametrize("params", [dict(hidden_layer_sizes=()), dict(solver="lbfgs")],
                         ids=["no_hidden_layer", "lbfgs"])
def test_bare_estimator(data, params):
    X, Y = data
    est = _fit(BPRegressor(max_iter=20, random_state=0, **params), X / 10, Y[:, 1])
    _check(est, X / 10, np.float64)


def test_float32_graph_of_a_float64_model(data):
    # predict casts the weights to X's dtype; the float32 graph does the same.
    X, Y = data
    est = _fit(BPRegressor(hidden_layer_sizes=(8,), max_iter=20, random_state=0),
               X / 10, Y[:, 0])
    _check(est, (X / 10).astype(np.float32), np.float32)


def test_integer_input_is_cast_to_double(data):
    X, Y = data
    X_int = np.round(X).astype(np.int64)
    est = _fit(BPRegressor(hidden_layer_sizes=(8,), max_iter=20, random_state=0),
               X_int, Y[:, 0])
    _check(est, X_int, np.float64)


def test_graph_is_our_converter(data):
    X, Y = data
    est = _fit(BPRegressor(hidden_layer_sizes=(8, 4), max_iter=5, random_state=0),
               X, Y[:, 0])
    ops = [node.op_type for node in to_onnx(est, X[:1]).graph.node]
    assert ops == ["MatMul", "Add", "Relu", "MatMul", "Add", "Relu", "MatMul", "Add"]


def test_what_it_cannot_express_raises_clearly(data):
    X, Y = data
    est = _fit(BPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0),
               X, Y[:, 0])
    est.out_activation_ = "softmax"  # an output no BPRegressor loss gives
    match = "cannot express out_activation_='softmax'"
    with pytest.raises(NotImplementedError, match=match):
        to_onnx(est, X[:1])
    est.out_activation_ = "identity"
    with pytest.raises(TypeError, match="takes numeric input"):
        to_onnx(est, initial_types=[("X", StringTensorType([None, 5]))])
    match = "has 3 features, but BPRegressor is expecting 5"
    with pytest.raises(ValueError, match=match):
        to_onnx(est, X[:1, :3])
    with pytest.raises((NameError, RuntimeError), match="zipmap"):
        to_onnx(est, X[:1], options={BPRegressor: {"zipmap": False}})
