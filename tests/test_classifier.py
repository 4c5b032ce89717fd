# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""BPClassifier's behaviour: labels of every kind, partial_fit and classes,
class weights, probabilities, and bad labels that change nothing."""

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_classification, make_multilabel_classification
from sklearn.exceptions import ConvergenceWarning

import fastbp
from fastbp import BPClassifier

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def three_classes():
    X, y = make_classification(n_samples=120, n_features=5, n_informative=3,
                               n_redundant=0, n_classes=3, random_state=0)
    return X, y


def _same_state(a, b):
    """Whether two estimators' __dict__ are equal, arrays bitwise."""
    assert set(vars(a)) == set(vars(b)), set(vars(a)) ^ set(vars(b))
    for name, value in vars(a).items():
        other = vars(b)[name]
        if name == "_label_binarizer":
            assert_array_equal(value.classes_, other.classes_)
        elif isinstance(value, list) and value and isinstance(value[0], np.ndarray):
            for p, q in zip(value, other):
                assert_array_equal(p, q)
        elif isinstance(value, np.ndarray):
            assert_array_equal(value, other)
        elif isinstance(value, dict):
            assert value.keys() == other.keys()
            for k in value:
                if k == "moments":
                    for p, q in zip(value[k], other[k]):
                        assert_array_equal(p, q)
                else:
                    assert value[k] == other[k]
        elif name != "_random_state":
            assert value == other or (value != value and other != other), name


def test_public_surface():
    assert fastbp.BPClassifier is BPClassifier
    assert "BPClassifier" in fastbp.__all__


@pytest.mark.parametrize("kind", ["int", "str", "bool", "object", "float", "category"])
def test_labels_of_every_kind_round_trip(kind):
    X, y = make_classification(n_samples=80, n_features=4, random_state=0)
    labels = {
        "int": y * 7 - 3,
        "str": np.array(["neg", "pos"])[y],
        "bool": y.astype(bool),
        "object": np.array(["neg", "pos"], dtype=object)[y],
        "float": y * 2.0 + 1.0,
    }
    if kind == "category":
        pd = pytest.importorskip("pandas")
        target = pd.Series(pd.Categorical(np.array(["neg", "pos"])[y]))
        expected_classes = np.array(["neg", "pos"], dtype=object)
    else:
        target = labels[kind]
        expected_classes = np.unique(target)
    clf = BPClassifier(hidden_layer_sizes=(5,), solver="lbfgs", max_iter=50,
                       random_state=0).fit(X, target)
    assert_array_equal(clf.classes_, expected_classes)
    predicted = clf.predict(X)
    assert set(np.unique(predicted)) <= set(expected_classes.tolist())
    assert clf.score(X, target) > 0.8
    assert clf.n_outputs_ == 1 and clf.out_activation_ == "logistic"


def test_multiclass_probabilities(three_classes):
    X, y = three_classes
    clf = BPClassifier(hidden_layer_sizes=(8,), max_iter=50, random_state=0).fit(X, y)
    assert clf.out_activation_ == "softmax" and clf.n_outputs_ == 3
    proba = clf.predict_proba(X)
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    assert_allclose(clf.predict_log_proba(X), np.log(proba))


def test_float32_stays_float32_and_sparse_equals_dense(three_classes):
    X, y = three_classes
    params = dict(hidden_layer_sizes=(6,), max_iter=5, random_state=0)
    dense32 = BPClassifier(**params).fit(X.astype(np.float32), y)
    assert dense32.coefs_[0].dtype == np.float32
    assert dense32.predict_proba(X.astype(np.float32)).dtype == np.float32
    dense = BPClassifier(**params).fit(X, y)
    sparse = BPClassifier(**params).fit(sp.csr_matrix(X), y)
    assert_allclose(sparse.predict_proba(X), dense.predict_proba(X), rtol=1e-10)


def test_multilabel_fit_and_partial_fit_without_classes():
    """sklearn demands `classes` for multilabel partial_fit (#12505); the
    indicator matrix already says what the labels are."""
    X, Y = make_multilabel_classification(n_samples=80, n_features=5, n_classes=4,
                                          random_state=0)
    clf = BPClassifier(hidden_layer_sizes=(8,), random_state=0)
    for _ in range(3):
        clf.partial_fit(X, Y)
    assert_array_equal(clf.classes_, np.arange(4))
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 4
    assert clf.predict(X).shape == (80, 4)
    assert set(np.unique(clf.predict(X))) <= {0, 1}
    with pytest.raises(ValueError, match="columns"):
        BPClassifier().partial_fit(X, Y, classes=[0, 1])
    with pytest.raises(ValueError, match="labels"):
        clf.partial_fit(X, Y[:, :3])


def test_partial_fit_classes(three_classes):
    X, y = three_classes
    with pytest.raises(ValueError, match="classes must be passed"):
        BPClassifier().partial_fit(X, y)
    clf = BPClassifier(hidden_layer_sizes=(5,), random_state=0)
    clf.partial_fit(X[y != 2], y[y != 2], classes=[0, 1, 2])  # a batch may miss one
    assert_array_equal(clf.classes_, [0, 1, 2])
    assert clf.n_outputs_ == 3
    before = pickle.loads(pickle.dumps(clf))
    with pytest.raises(ValueError, match="not in `self.classes_`"):
        clf.partial_fit(X, np.where(y == 2, 5, y))
    with pytest.raises(ValueError, match="not the same"):
        clf.partial_fit(X, y, classes=[0, 1, 2, 3])
    _same_state(clf, before)
    with pytest.raises(ValueError, match="not in `classes`"):
        BPClassifier().partial_fit(X, y, classes=[0, 1])


def test_warm_start_needs_the_same_classes(three_classes):
    X, y = three_classes
    clf = BPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0,
                       warm_start=True).fit(X, y)
    before = pickle.loads(pickle.dumps(clf))
    with pytest.raises(ValueError, match="same classes"):
        clf.fit(X[y != 2], y[y != 2])
    _same_state(clf, before)
    # partial_fit of a warm-started model takes a batch without every class
    clf.partial_fit(X[y != 2], y[y != 2])


@pytest.mark.parametrize("bad", ["nan", "one_class", "continuous", "multioutput"])
def test_bad_labels_raise_clearly_and_change_nothing(three_classes, bad):
    X, y = three_classes
    clf = BPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0).fit(X, y)
    before = pickle.loads(pickle.dumps(clf))
    target = {
        "nan": np.where(y == 1, np.nan, y.astype(float)),
        "one_class": np.zeros_like(y),
        "continuous": np.linspace(0, 1, len(y)),
        # Several columns of labels are a target of their own, but each
        # column needs two classes.
        "multioutput": np.column_stack([y, np.zeros_like(y)]),
    }[bad]
    match = {"nan": "NaN", "one_class": "1 class", "continuous": "Unknown label type",
             "multioutput": "column 1 holds 1 class"}[bad]
    with pytest.raises(ValueError, match=match):
        clf.fit(X, target)
    _same_state(clf, before)


def test_class_weight_two_equals_duplicated_rows(three_classes):
    """Full batch: class weight 2 trains the model that duplicating that
    class's rows trains."""
    X, y = three_classes
    params = dict(hidden_layer_sizes=(4,), solver="sgd", batch_size=1000,
                  max_iter=20, shuffle=False, alpha=0.0, random_state=0)
    weighted = BPClassifier(class_weight={1: 2.0}, **params).fit(X, y)
    rows = np.concatenate([np.arange(len(y)), np.flatnonzero(y == 1)])
    duplicated = BPClassifier(**params).fit(X[rows], y[rows])
    for a, b in zip(weighted.coefs_, duplicated.coefs_):
        assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    # it multiplies sample_weight
    w = np.random.default_rng(0).uniform(0.5, 1.5, len(y))
    both = BPClassifier(class_weight={1: 2.0}, **params).fit(X, y, sample_weight=w)
    manual = BPClassifier(**params).fit(X, y, sample_weight=w * np.where(y == 1, 2, 1))
    for a, b in zip(both.coefs_, manual.coefs_):
        assert_allclose(a, b, rtol=1e-12)


def test_class_weight_balanced_and_its_limits(three_classes):
    X, y = three_classes
    keep = np.concatenate([np.flatnonzero(y != 0), np.flatnonzero(y == 0)[:10]])
    X, y = X[keep], y[keep]
    params = dict(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=30, random_state=0)
    balanced = BPClassifier(class_weight="balanced", **params).fit(X, y)
    counts = np.bincount(y)
    w = (len(y) / (3 * counts))[y]
    manual = BPClassifier(**params).fit(X, y, sample_weight=w)
    assert_allclose(balanced.predict_proba(X), manual.predict_proba(X), rtol=1e-6)
    with pytest.raises(ValueError, match="partial_fit"):
        BPClassifier(class_weight="balanced").partial_fit(X, y, classes=[0, 1, 2])
    X2, Y2 = make_multilabel_classification(n_samples=30, random_state=0)
    with pytest.raises(ValueError, match="multilabel"):
        BPClassifier(class_weight={0: 2.0}).fit(X2, Y2)


def test_early_stopping_scores_accuracy(three_classes):
    X, y = three_classes
    clf = BPClassifier(hidden_layer_sizes=(8,), early_stopping=True, max_iter=30,
                       learning_rate_init=0.01, random_state=0).fit(X, y)
    assert all(0.0 <= s <= 1.0 for s in clf.validation_scores_)
    assert clf.best_validation_score_ == max(clf.validation_scores_)


def test_single_neuron_is_logistic_regression():
    """No hidden layer, lbfgs, no penalty: the maximum-likelihood logistic
    regression, which sklearn's LogisticRegression also finds."""
    from sklearn.linear_model import LogisticRegression

    X, y = make_classification(n_samples=200, n_features=3, n_informative=3,
                               n_redundant=0, flip_y=0.2, random_state=1)
    clf = BPClassifier(hidden_layer_sizes=(), solver="lbfgs", alpha=0.0, tol=1e-10,
                       max_iter=2000, random_state=0).fit(X, y)
    ref = LogisticRegression(C=np.inf, tol=1e-10, max_iter=2000).fit(X, y)
    assert_allclose(clf.coefs_[0][:, 0], ref.coef_[0], rtol=1e-3, atol=1e-4)
    assert_allclose(clf.intercepts_[0][0], ref.intercept_[0], rtol=1e-3, atol=1e-4)


def test_failed_call_with_a_callback_error_changes_nothing(three_classes):
    """An exception from anywhere inside a call rolls everything back, even
    after epochs have run (here: a ConvergenceWarning turned into an error)."""
    X, y = three_classes
    clf = BPClassifier(hidden_layer_sizes=(5,), max_iter=2, random_state=0).fit(X, y)
    clf.set_params(warm_start=True)
    before = pickle.loads(pickle.dumps(clf))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with pytest.raises(ConvergenceWarning):
            clf.fit(X, y)
    _same_state(clf, before)
