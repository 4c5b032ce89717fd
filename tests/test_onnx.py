# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""ONNX export through skl2onnx, checked with onnxruntime."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fastbp import BPClassifier, BPRegressor

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


# ------------------------------------------------------------ BPClassifier

ACTIVATIONS = ["identity", "logistic", "tanh", "relu"]
NAMES = np.array(["ant", "bee", "cat", "dog"])


@pytest.fixture(scope="module")
def targets(data):
    """Binary, multiclass and multilabel targets of ``data``'s X, by name."""
    X = data[0]
    score = np.sin(X[:, 0]) + 0.3 * X[:, 1] - 0.2 * X[:, 2]
    quartile = np.searchsorted(np.quantile(score, [0.25, 0.5, 0.75]), score)
    return {
        "binary-int": (score > np.median(score)).astype(np.int64) * 5 - 2,  # -2, 3
        "binary-str": NAMES[(score > np.median(score)).astype(int)],
        "multiclass-int": quartile * 10,
        "multiclass-str": NAMES[quartile],
        "multilabel": np.column_stack([score > np.median(score), X[:, 3] > 5,
                                       X[:, 4] > 3]).astype(np.int64),
    }


def _run_all(onx, X):
    session = ort.InferenceSession(onx.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {name: X})))


def _check_classifier(model, X, dtype, **options):
    onx = to_onnx(model, X[:1], **options)
    out = _run_all(onx, X)
    assert list(out) == ["label", "probabilities"]
    label, proba = out["label"], out["probabilities"]
    expected = model.predict(X)
    assert proba.dtype == dtype
    assert proba.shape == (X.shape[0], len(model.classes_))
    np.testing.assert_allclose(proba, model.predict_proba(X), **TOL[dtype])
    assert label.shape == expected.shape
    assert label.dtype == (object if expected.dtype.kind in "OUS" else np.int64)
    np.testing.assert_array_equal(label, expected)
    return onx


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("kind", ["binary-int", "binary-str", "multiclass-int",
                                  "multiclass-str", "multilabel"])
def test_classifier_matches_predict_proba(data, targets, kind, activation, dtype):
    X = (data[0] / 5).astype(dtype)
    clf = _fit(BPClassifier(hidden_layer_sizes=(16, 8), activation=activation,
                            max_iter=40, random_state=0), X, targets[kind])
    assert clf.out_activation_ == ("softmax" if kind.startswith("multiclass")
                                   else "logistic")
    _check_classifier(clf, X, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["binary-str", "multiclass-int", "multilabel"])
def test_classifier_pipeline(data, targets, kind, dtype):
    # skl2onnx's pipeline parser asks a classifier for a ZipMap; the option
    # keeps the probabilities a tensor, as for a bare BPClassifier.
    X = data[0].astype(dtype)
    model = make_pipeline(StandardScaler(),
                          BPClassifier(hidden_layer_sizes=(12,), max_iter=40,
                                       random_state=0))
    _fit(model, X, targets[kind])
    _check_classifier(model, X, dtype, options={BPClassifier: {"zipmap": False}})


def _ops(onx):
    return [node.op_type for node in onx.graph.node]


def test_classifier_heads(data, targets):
    X = data[0] / 5
    heads = {
        "binary-str": ["Sigmoid", "Sub", "Concat", "ArgMax", "Gather"],
        "multiclass-int": ["Softmax", "ArgMax", "Gather"],
        "multilabel": ["Sigmoid", "Greater", "Cast"],
    }
    for kind, head in heads.items():
        clf = _fit(BPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0),
                   X, targets[kind])
        assert _ops(to_onnx(clf, X[:1])) == ["MatMul", "Add", "Relu", "MatMul",
                                             "Add"] + head
        # zipmap=False is the default, spelled out.
        onx = to_onnx(clf, X[:1], options={BPClassifier: {"zipmap": False}})
        assert _ops(onx)[-len(head):] == head


@pytest.mark.parametrize("kind", ["binary-str", "multiclass-int"])
def test_classifier_zipmap_on_request(data, targets, kind):
    X = (data[0] / 5).astype(np.float32)
    clf = _fit(BPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0),
               X, targets[kind])
    proba = clf.predict_proba(X)
    onx = to_onnx(clf, X[:1], options={BPClassifier: {"zipmap": True}})
    out = _run_all(onx, X)
    assert list(out) == ["output_label", "output_probability"]
    np.testing.assert_array_equal(out["output_label"], clf.predict(X))
    assert list(out["output_probability"][0]) == list(clf.classes_)
    got = np.array([[row[c] for c in clf.classes_] for row in out["output_probability"]])
    np.testing.assert_allclose(got, proba, **TOL[np.float32])

    onx = to_onnx(clf, X[:1], options={BPClassifier: {"zipmap": "columns"}})
    out = _run_all(onx, X)
    assert len(out) == 1 + len(clf.classes_)
    np.testing.assert_allclose(np.column_stack(list(out.values())[1:]), proba,
                               **TOL[np.float32])


def test_classifier_nocl_gives_indices(data, targets):
    X = data[0] / 5
    clf = _fit(BPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0),
               X, targets["multiclass-str"])
    out = _run_all(to_onnx(clf, X[:1], options={BPClassifier: {"nocl": True}}), X)
    assert out["label"].dtype == np.int64
    np.testing.assert_array_equal(clf.classes_[out["label"]], clf.predict(X))


@pytest.mark.parametrize("labels", [[False, True], [1.0, 4.0], [0, 1, 2]],
                         ids=["bool", "integral-float", "int"])
def test_classifier_numeric_labels_are_int64(data, labels):
    X = data[0] / 5
    y = np.asarray(labels)[np.arange(len(X)) % len(labels)]
    clf = _fit(BPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0), X, y)
    out = _run_all(to_onnx(clf, X[:1]), X)
    assert out["label"].dtype == np.int64
    np.testing.assert_array_equal(out["label"], clf.predict(X).astype(np.int64))


@pytest.mark.parametrize("estimator", [BPRegressor, BPClassifier])
def test_integer_input_of_either_estimator(data, targets, estimator):
    X_int = np.round(data[0]).astype(np.int64)
    y = targets["multiclass-str"] if estimator is BPClassifier else data[1][:, 0]
    est = _fit(estimator(hidden_layer_sizes=(8,), max_iter=20, random_state=0),
               X_int, y)
    out = _run_all(to_onnx(est, X_int[:1]), X_int)
    proba = est.predict_proba(X_int) if estimator is BPClassifier else None
    got = out["probabilities"] if proba is not None else out["variable"]
    assert got.dtype == np.float64
    expected = proba if proba is not None else est.predict(X_int)[:, None]
    np.testing.assert_allclose(got, expected, **TOL[np.float64])


def test_classifier_float32_graph_of_a_float64_model(data, targets):
    X = data[0] / 5
    clf = _fit(BPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0),
               X, targets["multiclass-int"])
    _check_classifier(clf, X.astype(np.float32), np.float32)


def test_classifier_what_it_cannot_express_raises_clearly(data, targets):
    X = data[0] / 5
    clf = _fit(BPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0),
               X, targets["multilabel"])
    with pytest.raises(ValueError, match="multilabel BPClassifier has no ZipMap"):
        to_onnx(clf, X[:1].astype(np.float32),
                options={BPClassifier: {"zipmap": True}})
    clf = _fit(BPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0),
               X, targets["binary-int"])
    with pytest.raises(ValueError, match="ZipMap .* needs a float32 graph"):
        to_onnx(clf, X[:1], options={BPClassifier: {"zipmap": True}})
    pipeline = make_pipeline(StandardScaler(), clf)
    with pytest.raises(ValueError, match="zipmap': False"):
        to_onnx(pipeline, X[:1])  # skl2onnx's pipeline default asks for a ZipMap
    clf.out_activation_ = "exp"
    with pytest.raises(NotImplementedError, match="cannot express out_activation_='exp'"):
        to_onnx(clf, X[:1])
    clf.out_activation_ = "logistic"
    clf.classes_ = np.array([0.5, 1.5])
    with pytest.raises(NotImplementedError, match="int64 or strings"):
        to_onnx(clf, X[:1])
