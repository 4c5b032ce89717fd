# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""BPClassifier on several columns of labels (multiclass-multioutput): one
softmax block per column, held against NumPy, finite differences and
per-column fits."""

import io

import numpy as np
import pytest
import scipy.sparse as sp
from numpy_reference import l2_penalty
from scipy.special import xlogy

import fastbp
from conftest import DTYPES, TOL, make_trainer
from fastbp import BPClassifier, _core
from fastbp._persist import ModelFileError

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def data():
    """X and two label columns: strings (3 classes) and ints (4 classes)."""
    rng = np.random.RandomState(0)
    X = rng.standard_normal((150, 4))
    colors = np.array(["blue", "green", "red"])[np.digitize(X[:, 0], [-0.4, 0.4])]
    sizes = np.digitize(X[:, 1] + X[:, 2], [-1, 0, 1])
    y = np.empty((150, 2), dtype=object)
    y[:, 0], y[:, 1] = colors, sizes
    return X, y


def _grouped_softmax(z, groups):
    out = np.empty_like(z)
    start = 0
    for g in groups:
        block = z[:, start:start + g]
        e = np.exp(block - block.max(axis=1, keepdims=True))
        out[:, start:start + g] = e / e.sum(axis=1, keepdims=True)
        start += g
    return out


def _numpy_forward(X, coefs, intercepts, groups):
    a = X
    for layer, (W, b) in enumerate(zip(coefs, intercepts)):
        z = a @ W + b
        a = _grouped_softmax(z, groups) if layer == len(coefs) - 1 else np.maximum(z, 0)
    return a


def test_classes_predict_and_proba(data):
    X, y = data
    est = BPClassifier(hidden_layer_sizes=(12,), max_iter=150, learning_rate_init=0.01,
                       random_state=0).fit(X, y)
    assert isinstance(est.classes_, list) and len(est.classes_) == 2
    assert list(est.classes_[0]) == ["blue", "green", "red"]
    assert list(est.classes_[1]) == [0, 1, 2, 3]
    assert est.n_outputs_ == 7 and est.out_activation_ == "softmax"
    proba = est.predict_proba(X)
    assert [p.shape for p in proba] == [(150, 3), (150, 4)]
    for p in proba:
        np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-12)
    # The network is a forward pass with one softmax per block.
    want = _numpy_forward(X, est.coefs_, est.intercepts_, [3, 4])
    np.testing.assert_allclose(np.hstack(proba), want, rtol=1e-12, atol=1e-15)
    pred = est.predict(X)
    assert pred.shape == (150, 2)
    for k, (p, classes) in enumerate(zip(proba, est.classes_)):
        assert list(pred[:, k]) == list(classes[p.argmax(axis=1)])
    log_proba = est.predict_log_proba(X)
    np.testing.assert_allclose(np.exp(log_proba[1]), proba[1], rtol=1e-12)
    # Subset accuracy, as scikit-learn's multi-output classifiers score.
    assert est.score(X, y) == np.mean((pred == y).all(axis=1)) > 0.5
    w = np.linspace(0, 1, 150)
    assert est.score(X, y, sample_weight=w) == pytest.approx(
        np.average((pred == y).all(axis=1), weights=w))


@pytest.mark.parametrize("dtype", DTYPES)
def test_grouped_softmax_loss_and_gradient(dtype):
    rng = np.random.default_rng(0)
    groups = [2, 3, 4]
    units = [4, 5, sum(groups)]
    X = rng.standard_normal((30, 4)).astype(dtype)
    Y = np.zeros((30, sum(groups)), dtype=dtype)
    start = 0
    for g in groups:
        Y[np.arange(30), start + rng.integers(0, g, 30)] = 1
        start += g
    coefs = [rng.standard_normal((a, b)).astype(dtype) for a, b in zip(units, units[1:])]
    intercepts = [rng.standard_normal(b).astype(dtype) for b in units[1:]]
    trainer = _core.Trainer(coefs, intercepts, [], 30, _core.Activation.RELU,
                            _core.Activation.SOFTMAX, _core.Loss.LOG_LOSS,
                            _core.Solver.SGD, alpha=0.1, out_groups=groups)
    grad = np.empty(sum(c.size + b.size for c, b in zip(coefs, intercepts)), dtype=dtype)
    loss = _core.loss_grad(trainer, X, Y, grad, None)
    # The loss: one cross-entropy per block, summed; plus the L2 term.
    p = _numpy_forward(X.astype(np.float64), coefs, intercepts, groups)
    eps = np.finfo(dtype).eps  # the core clips in the data's precision
    p = np.clip(p, eps, 1 - eps)
    want = -xlogy(Y, p).sum(axis=1).mean() + l2_penalty(coefs, 0.1, 30)
    assert loss == pytest.approx(want, rel=1e-12 if dtype == np.float64 else 1e-5)
    if dtype == np.float32:
        return
    # The gradient, by central differences of the compiled loss.
    params = coefs + intercepts
    flat = [(i, idx) for i, a in enumerate(params) for idx in np.ndindex(a.shape)]
    scratch = np.empty_like(grad)
    order = [(i, idx) for i in range(len(coefs)) for idx in np.ndindex(coefs[i].shape)]
    order += [(len(coefs) + i, idx) for i in range(len(intercepts))
              for idx in np.ndindex(intercepts[i].shape)]
    assert len(order) == len(flat) == grad.size
    h = 1e-6
    for k, (i, idx) in enumerate(order):
        old = params[i][idx]
        params[i][idx] = old + h
        up = _core.loss_grad(trainer, X, Y, scratch, None)
        params[i][idx] = old - h
        down = _core.loss_grad(trainer, X, Y, scratch, None)
        params[i][idx] = old
        assert grad[k] == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-8)


def test_one_block_is_the_plain_softmax(classification_data):
    # A single group spanning every output is the multiclass network.
    rng = np.random.default_rng(1)
    coefs = [rng.standard_normal((5, 3))]
    intercepts = [rng.standard_normal(3)]
    X = rng.standard_normal((20, 5))
    a, b = np.empty((20, 3)), np.empty((20, 3))
    _core.predict(X, coefs, intercepts, _core.Activation.RELU, _core.Activation.SOFTMAX, a)
    _core.predict(X, coefs, intercepts, _core.Activation.RELU, _core.Activation.SOFTMAX, b,
                  [3])
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="out_groups"):
        _core.predict(X, coefs, intercepts, _core.Activation.RELU,
                      _core.Activation.SOFTMAX, b, [2, 2])
    with pytest.raises(ValueError, match="out_groups"):
        _core.predict(X, coefs, intercepts, _core.Activation.RELU,
                      _core.Activation.LOGISTIC, b, [3])


@pytest.mark.parametrize("sparse", [False, True])
def test_no_hidden_layer_is_one_classifier_per_column(data, sparse):
    # Without a hidden layer, each block's weights see only their own column's
    # loss: full-batch gradient descent on the joint model is the per-column
    # fits side by side.
    X, y = data
    Xs = sp.csr_matrix(X) if sparse else X
    rng = np.random.default_rng(0)
    coef = rng.standard_normal((4, 7)) * 0.1
    intercept = rng.standard_normal(7) * 0.1
    common = dict(hidden_layer_sizes=(), solver="sgd", batch_size=150, shuffle=False,
                  momentum=0.0, learning_rate_init=0.5, max_iter=20, alpha=0.01,
                  n_iter_no_change=np.inf, random_state=0)
    joint = BPClassifier(coefs_init=[coef], intercepts_init=[intercept], **common)
    joint.fit(Xs, y)
    for k, (a, b) in enumerate([(0, 3), (3, 7)]):
        column = BPClassifier(coefs_init=[coef[:, a:b]], intercepts_init=[intercept[a:b]],
                              **common).fit(Xs, np.array(y[:, k].tolist()))
        np.testing.assert_allclose(joint.coefs_[0][:, a:b], column.coefs_[0],
                                   rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(joint.predict_proba(X)[k], column.predict_proba(X),
                                   rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("dtype", DTYPES)
def test_partial_fit_weights_eval_set_and_early_stopping(data, dtype):
    X, y = data
    X = X.astype(dtype)
    classes = [np.array(["blue", "green", "red"], dtype=object), np.arange(4)]
    est = BPClassifier(hidden_layer_sizes=(6,), random_state=0)
    with pytest.raises(ValueError, match="classes"):
        est.partial_fit(X, y)
    est.partial_fit(X[:50], y[:50], classes=classes,
                    sample_weight=np.linspace(0.1, 1, 50), eval_set=(X[100:], y[100:]))
    est.partial_fit(X[50:100], y[50:100], eval_set=(X[100:], y[100:]))
    assert est.coefs_[0].dtype == dtype
    assert len(est.validation_loss_curve_) == 2
    with pytest.raises(ValueError, match="column 0 of y has classes"):
        est.partial_fit(X[:3], np.array([["pink", 0]] * 3, dtype=object))
    with pytest.raises(ValueError, match="several columns of labels"):
        est.partial_fit(X, y[:, 1].astype(int))
    stopped = BPClassifier(hidden_layer_sizes=(6,), early_stopping=True, max_iter=30,
                           random_state=0).fit(X, y)
    # Its validation scores are subset accuracies, so multiples of 1/15.
    scores = np.asarray(stopped.validation_scores_) * 15
    np.testing.assert_allclose(scores, np.round(scores), atol=1e-9)
    with pytest.raises(ValueError, match="class_weight"):
        BPClassifier(class_weight="balanced").fit(X, y)


def test_single_output_is_unchanged(classification_data):
    # Nothing new for one column: classes_ an array, proba a 2-D array.
    X, y = classification_data["multiclass"]
    est = BPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)
    assert isinstance(est.classes_, np.ndarray)
    assert isinstance(est.predict_proba(X), np.ndarray)
    assert est._output_groups() is None


def test_warm_start_switches_and_refuses(data):
    X, y = data
    est = BPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)
    # A fresh fit may change the kind of target.
    est.fit(X, y[:, 1].astype(int))
    assert isinstance(est.classes_, np.ndarray)
    est.set_params(warm_start=True)
    with pytest.raises(ValueError, match="multiclass-multioutput"):
        est.fit(X, y)


def test_save_and_load(data, tmp_path):
    X, y = data
    est = BPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(X, y)
    buffer = io.BytesIO()
    est.save(buffer)
    loaded = fastbp.load(io.BytesIO(buffer.getvalue()))
    assert [list(c) for c in loaded.classes_] == [list(c) for c in est.classes_]
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    for a, b in zip(loaded.predict_proba(X), est.predict_proba(X)):
        np.testing.assert_array_equal(a, b)
    loaded.partial_fit(X, y)  # and it trains on


def test_hostile_label_lists_are_refused(data):
    import json
    import zipfile

    X, y = data
    est = BPClassifier(hidden_layer_sizes=(5,), max_iter=2, random_state=0).fit(X, y)
    buffer = io.BytesIO()
    est.save(buffer)

    def edited(change):
        zin = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as zout:
            for info in zin.infolist():
                data = zin.read(info)
                if info.filename == "metadata.json":
                    meta = json.loads(data)
                    change(meta)
                    data = json.dumps(meta).encode()
                zout.writestr(info, data)
        return io.BytesIO(out.getvalue())

    def drop_class(meta):
        meta["attributes"]["classes_"][1]["$labels"]["values"].pop()

    def old_version(meta):
        meta["format_version"] = 1  # no labels at all in version 1

    def empty(meta):
        meta["attributes"]["classes_"] = []

    def unsorted(meta):
        meta["attributes"]["classes_"][1]["$labels"]["values"].reverse()

    def labels_elsewhere(meta):
        meta["attributes"]["n_iter_"] = [meta["attributes"]["classes_"][0]]

    for change in (drop_class, old_version, empty, unsorted, labels_elsewhere):
        with pytest.raises(ModelFileError):
            fastbp.load(edited(change))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("labels", ["int", "str", "mixed"])
def test_onnx_matches_predict(data, dtype, labels):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    from skl2onnx import to_onnx

    import fastbp.onnx  # noqa: F401  (registers the converters)

    X, y = data
    if labels == "int":
        y = np.column_stack([np.searchsorted(["blue", "green", "red"], y[:, 0]),
                             y[:, 1].astype(int)])
    elif labels == "str":
        y = y.astype(str)
    X = X.astype(dtype)
    est = BPClassifier(hidden_layer_sizes=(6,), max_iter=20, random_state=0).fit(X, y)
    if labels == "mixed":
        with pytest.raises(NotImplementedError, match="mix string and integer"):
            to_onnx(est, X[:1])
        onx = to_onnx(est, X[:1], options={BPClassifier: {"nocl": True}})
        want = np.column_stack([p.argmax(axis=1) for p in est.predict_proba(X)])
    else:
        onx = to_onnx(est, X[:1])
        want = est.predict(X)
    session = ort.InferenceSession(onx.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    got_labels, got_proba = session.run(None, {session.get_inputs()[0].name: X})
    assert got_labels.shape == (150, 2)
    assert got_labels.astype(want.dtype).tolist() == want.tolist()
    np.testing.assert_allclose(got_proba, np.hstack(est.predict_proba(X)),
                               rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)
    with pytest.raises(ValueError, match="ZipMap"):
        to_onnx(est, X[:1].astype(np.float32), options={BPClassifier: {"zipmap": True}})


def test_trainer_helper_still_builds_single_output_networks():
    # conftest's make_trainer passes no out_groups: one softmax, as before.
    rng = np.random.default_rng(0)
    coefs = [rng.standard_normal((3, 4))]
    intercepts = [rng.standard_normal(4)]
    trainer = make_trainer(coefs, intercepts, max_batch=5, activation="relu",
                           out_activation="softmax", loss="log_loss")
    X = rng.standard_normal((5, 3))
    Y = np.eye(4)[[0, 1, 2, 3, 0]]
    grad = np.empty(16)
    p = _grouped_softmax(X @ coefs[0] + intercepts[0], [4])
    assert _core.loss_grad(trainer, X, Y, grad, None) == pytest.approx(
        -xlogy(Y, p).sum(axis=1).mean(), **{"rel": TOL[np.float64]["rtol"] * 100})
