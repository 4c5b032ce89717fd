# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Every public entry point against every kind of bad (or odd) input.

Each cell of the matrix either works, and then the result must be sane (finite
predictions of the right shape, a consistent fitted state), or raises a
``ValueError``/``TypeError`` whose message says what is wrong. A call that
raises must leave the estimator exactly as it was: the public fitted state is
compared with a deep copy taken before the call, and the private optimizer
state is checked by training on afterwards, step for step beside a twin that
never saw the bad call.

Single bad-input cases for ``fit`` live in ``test_regressor.py``; this file is
the systematic matrix. BPClassifier runs the same cases (and bad labels) on
each target kind, with its own entry points: ``predict_proba`` and
``predict_log_proba``, and ``classes`` at ``partial_fit``.
"""

import copy
import zipfile
from dataclasses import dataclass, field

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError, UndefinedMetricWarning

import fastbp
from conftest import CLASSIFIER_KINDS
from fastbp import BPClassifier, BPRegressor

N_SAMPLES, N_FEATURES = 40, 4
PARAMS = dict(hidden_layer_sizes=(3,), max_iter=3, random_state=0)

# Messages: what the user reads must name the problem.
NAN_X = "Input X contains NaN"
INF_X = "Input X contains inf"
NOT_A_NUMBER = "could not convert string to float"
WRONG_WIDTH = "X has 3 features, but BPRegressor is expecting 4 features"
DIVERGED = "large values.*Scale X"
RESHAPE_NET = "fit again without warm_start"
BAD_LAYER = "hidden_layer_sizes must be > 0"

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.DataConversionWarning"),
    # Frames with column names given to a model fitted on plain arrays.
    pytest.mark.filterwarnings("ignore:X has feature names:UserWarning"),
    pytest.mark.filterwarnings("ignore:X does not have valid feature names"),
]


# --------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class Raises:
    error: type | tuple
    match: str


OK = "ok"
# R² of a single sample is undefined: scikit-learn warns and returns NaN.
UNDEFINED = "undefined"


# ------------------------------------------------------------ entry points

# Fit-like entry points: (method, start from a fitted model?, warm_start).
FIT_ENTRIES = {
    "fit": ("fit", False, False),
    "refit": ("fit", True, False),
    "warm_start": ("fit", True, True),
    "first_partial_fit": ("partial_fit", False, False),
    "partial_fit": ("partial_fit", True, False),
}
ENTRIES = [*FIT_ENTRIES, "predict", "score", "load_then_predict"]
# The entry points that take X alone (a classifier adds its probabilities).
PREDICT_ENTRIES = ("predict", "predict_proba", "predict_log_proba", "load_then_predict")


# ------------------------------------------------------------------ cases


@dataclass
class Case:
    """A bad input: ``make(X, y)`` returns the changed X, y and sample_weight.

    ``uses`` names what the case changes ("X", "y", "sample_weight",
    "params"), which decides the entry points it applies to. ``expect`` is the
    outcome everywhere unless ``per_entry`` says otherwise.
    """

    make: object
    uses: frozenset
    expect: object
    per_entry: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    only: tuple = ()

    def applies_to(self, entry):
        if self.only:
            return entry in self.only
        if entry in FIT_ENTRIES:
            return True
        if entry in PREDICT_ENTRIES:
            return not self.uses & {"y", "sample_weight"}
        return True  # score takes X, y and sample_weight

    def outcome(self, entry):
        return self.per_entry.get(entry, self.expect)


def _set(a, index, value):
    a = np.array(a, dtype=float)
    a[index] = value
    return a


def _x(f, **kw):
    return Case(lambda X, y: (f(X), y, None), frozenset({"X"}), **kw)


def _xy(f, **kw):
    return Case(lambda X, y: (*f(X, y), None), frozenset({"X", "y"}), **kw)


def _y(f, **kw):
    return Case(lambda X, y: (X, f(y), None), frozenset({"y"}), **kw)


def _sw(f, **kw):
    return Case(lambda X, y: (X, y, f(np.ones(len(y)))), frozenset({"sample_weight"}),
                **kw)


def _hidden(sizes, **kw):
    return Case(lambda X, y: (X, y, None), frozenset({"params"}),
                params=dict(hidden_layer_sizes=sizes), **kw)


def _frame(X, column, values):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X, columns=list("abcd"))
    df[column] = values
    return df


def _sparse(fmt, X, value=None):
    sparse = pytest.importorskip("scipy.sparse")
    X = X.copy()
    X[np.abs(X) < 0.8] = 0.0
    if value is not None:
        X[5, 2] = value
    return sparse.csr_matrix(X) if fmt == "csr" else sparse.csc_matrix(X)


def _ragged(rows):
    return [list(r) for r in rows[:-1]] + [list(rows[-1][:-1])]


def _with_none(a, index):
    a = np.array(a, dtype=object)
    a[index] = None
    return a


# A model fitted on 4 features must refuse 3, except when it starts afresh.
_WIDTH = dict(
    expect=Raises(ValueError, WRONG_WIDTH),
    per_entry={"fit": OK, "refit": OK, "first_partial_fit": OK},
)
# Fitting with another number of outputs or layers: only from scratch.
_RESHAPE = dict(
    expect=Raises(ValueError, RESHAPE_NET),
    per_entry={"fit": OK, "refit": OK, "first_partial_fit": OK, "predict": OK,
               "score": OK, "load_then_predict": OK},
)
_BAD_LAYER = dict(
    expect=Raises(ValueError, BAD_LAYER),
    per_entry={"predict": OK, "score": OK, "load_then_predict": OK},
)

CASES = {
    # -- non-finite X
    "X NaN": _x(lambda X: _set(X, (3, 1), np.nan), expect=Raises(ValueError, NAN_X)),
    "X +inf": _x(lambda X: _set(X, (3, 1), np.inf), expect=Raises(ValueError, INF_X)),
    "X -inf": _x(lambda X: _set(X, (0, 0), -np.inf), expect=Raises(ValueError, INF_X)),
    "X object with None": _x(lambda X: _with_none(X, (7, 2)),
                             expect=Raises(ValueError, NAN_X)),
    # -- shapes
    "0 rows": _xy(lambda X, y: (X[:0], y[:0]), expect=Raises(ValueError, "0 sample")),
    "1 row": _xy(lambda X, y: (X[:1], y[:1]), expect=OK,
                 per_entry={"score": UNDEFINED}),
    "1 row, early stopping": Case(
        lambda X, y: (X[:1], y[:1], None), frozenset({"X", "y", "params"}),
        params=dict(early_stopping=True),
        expect=Raises(ValueError, "train set will be empty"),
        per_entry={"first_partial_fit": Raises(ValueError, "does not support early"),
                   "partial_fit": Raises(ValueError, "does not support early")},
        only=("fit", "refit", "first_partial_fit", "partial_fit"),
    ),
    "0 features": _x(lambda X: X[:, :0], expect=Raises(ValueError, "0 feature")),
    "1-D X": _x(lambda X: X[:, 0], expect=Raises(ValueError, "Expected 2D array")),
    "3-D X": _x(lambda X: X[:, :, None], expect=Raises(ValueError, "dim 3")),
    "ragged X": _x(_ragged, expect=Raises(ValueError, "inhomogeneous")),
    "3 features": _x(lambda X: X[:, :3], **_WIDTH),
    # -- dtypes of X
    "object X of numbers": _x(lambda X: X.astype(object), expect=OK),
    "object X of strings": _x(lambda X: np.full(X.shape, "a", dtype=object),
                              expect=Raises(ValueError, NOT_A_NUMBER)),
    "string X": _x(lambda X: np.full(X.shape, "a"),
                   expect=Raises(ValueError, NOT_A_NUMBER)),
    "string X of numbers": _x(lambda X: X.astype(str), expect=OK),
    "complex X": _x(lambda X: X + 1j,
                    expect=Raises(ValueError, "Complex data not supported")),
    "bool X": _x(lambda X: X > 0, expect=OK),
    "int8 X": _x(lambda X: (3 * X).astype(np.int8), expect=OK),
    "uint8 X": _x(lambda X: (3 * np.abs(X)).astype(np.uint8), expect=OK),
    "int64 X": _x(lambda X: (3 * X).astype(np.int64), expect=OK),
    "float16 X": _x(lambda X: X.astype(np.float16), expect=OK),
    # -- magnitudes: 1e300 overflows the first forward pass (a clear error that
    # says to scale X), but predicting such rows is just arithmetic.
    "X 1e300": _x(lambda X: X * 1e300, expect=Raises(ValueError, DIVERGED),
                  per_entry={"predict": OK, "score": OK, "load_then_predict": OK}),
    "denormal X": _x(lambda X: X * 1e-310, expect=OK),
    "denormal float32 X": _x(lambda X: (X * 1e-40).astype(np.float32), expect=OK),
    # -- pandas frames with non-numeric columns
    "frame, string column": _x(lambda X: _frame(X, "b", ["u", "v"] * (len(X) // 2)),
                               expect=Raises(ValueError, NOT_A_NUMBER)),
    "frame, categorical column": _x(
        lambda X: _frame(X, "c", pytest.importorskip("pandas").Categorical(
            ["u", "v"] * (len(X) // 2))),
        expect=Raises(ValueError, NOT_A_NUMBER),
    ),
    "frame, datetime column": _x(
        lambda X: _frame(X, "d", pytest.importorskip("pandas").date_range(
            "2024-01-01", periods=len(X))),
        expect=Raises((TypeError, ValueError), "(?i)datetime"),
    ),
    "frame, nullable Int64 with NA": _x(
        lambda X: _frame(X, "a", pytest.importorskip("pandas").array(
            [1] * (len(X) - 1) + [None], dtype="Int64")),
        expect=Raises(ValueError, NAN_X),
    ),
    "frame, object column of numbers": _x(
        lambda X: _frame(X, "a", X[:, 0].astype(object)), expect=OK),
    "frame, bool column": _x(lambda X: _frame(X, "a", X[:, 0] > 0), expect=OK),
    # -- sparse X: CSR and CSC are trained on as they are, non-finite rejected
    "CSR X": _x(lambda X: _sparse("csr", X), expect=OK),
    "CSC X": _x(lambda X: _sparse("csc", X), expect=OK),
    "CSR X with NaN": _x(lambda X: _sparse("csr", X, np.nan),
                         expect=Raises(ValueError, NAN_X)),
    "CSC X with NaN": _x(lambda X: _sparse("csc", X, np.nan),
                         expect=Raises(ValueError, NAN_X)),
    "CSR X with inf": _x(lambda X: _sparse("csr", X, np.inf),
                         expect=Raises(ValueError, INF_X)),
    # -- y
    "y NaN": _y(lambda y: _set(y, 2, np.nan), expect=Raises(ValueError, "contains NaN")),
    "y +inf": _y(lambda y: _set(y, 2, np.inf), expect=Raises(ValueError, "contains inf")),
    "y -inf": _y(lambda y: _set(y, 2, -np.inf),
                 expect=Raises(ValueError, "contains inf")),
    "object y with None": _y(lambda y: _with_none(y, 5),
                             expect=Raises(ValueError, "contains NaN")),
    "y too short": _y(lambda y: y[:-1],
                      expect=Raises(ValueError, "inconsistent numbers of samples")),
    "3-D y": _y(lambda y: y[:, None, None], expect=Raises(ValueError, "dim 3")),
    "ragged y": _y(lambda y: [[v] for v in y[:-1]] + [[1.0, 2.0]],
                   expect=Raises(ValueError, "inhomogeneous")),
    "string y": _y(lambda y: np.array(["u", "v"] * (len(y) // 2)),
                   expect=Raises(ValueError, "y must hold real numbers|" + NOT_A_NUMBER)),
    "pandas string y": _y(
        lambda y: pytest.importorskip("pandas").Series(["u", "v"] * (len(y) // 2)),
        expect=Raises(ValueError, NOT_A_NUMBER),
    ),
    "complex y": _y(lambda y: y + 1j,
                    expect=Raises(ValueError, "Complex data not supported")),
    "bool y": _y(lambda y: y > 0, expect=OK),
    "int y": _y(lambda y: (3 * y).astype(np.int64), expect=OK),
    "2 outputs": _y(
        lambda y: np.column_stack([y, -y]),
        **{**_RESHAPE, "per_entry": {**_RESHAPE["per_entry"],
                                     "score": Raises(ValueError, "number of output")}},
    ),
    "y 1e300": _y(lambda y: y * 1e300, expect=Raises(ValueError, "large values"),
                  per_entry={"score": OK}),
    "denormal y": _y(lambda y: y * 1e-310, expect=OK),
    # -- sample_weight
    "sample_weight NaN": _sw(lambda w: _set(w, 4, np.nan),
                             expect=Raises(ValueError, "sample_weight contains NaN")),
    "sample_weight +inf": _sw(lambda w: _set(w, 4, np.inf),
                              expect=Raises(ValueError, "sample_weight contains inf")),
    "sample_weight -inf": _sw(lambda w: _set(w, 4, -np.inf),
                              expect=Raises(ValueError, "sample_weight contains inf")),
    "sample_weight too short": _sw(
        lambda w: w[:-1],
        expect=Raises(ValueError, r"sample_weight.shape == \(39,\), expected \(40,\)"),
        per_entry={"score": Raises(ValueError, "inconsistent numbers of samples")},
    ),
    "2-D sample_weight": _sw(lambda w: np.ones((len(w), 2)),
                             expect=Raises(ValueError, "Sample weights must be 1D")),
    "negative sample_weight": _sw(
        lambda w: _set(w, 4, -1.0),
        expect=Raises(ValueError, "Negative values in data passed to `sample_weight`"),
        per_entry={"score": OK},
    ),
    "all-zero sample_weight": _sw(
        lambda w: 0 * w,
        expect=Raises(ValueError, "at least one non-zero"),
    ),
    "uniform sample_weight": _sw(lambda w: 2 * w, expect=OK),
    # -- hidden_layer_sizes
    "no hidden layer": _hidden((), **_RESHAPE),
    "empty layer entry None": _hidden((None,), **_BAD_LAYER),
    "empty layer entry ()": _hidden(((),), **_BAD_LAYER),
    "zero-width layer": _hidden((0,), **_BAD_LAYER),
    "zero-width second layer": _hidden((4, 0), **_BAD_LAYER),
}

MATRIX = [
    pytest.param(name, entry, id="%s-%s" % (entry, name))
    for name, case in CASES.items()
    for entry in ENTRIES
    if case.applies_to(entry)
]


# ------------------------------------------------------------ helpers


def _data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N_SAMPLES, N_FEATURES))
    y = X @ np.array([1.0, -2.0, 0.5, 1.5]) + 0.1 * rng.standard_normal(N_SAMPLES)
    return X, y


def _fitted():
    X, y = _data()
    return BPRegressor(**PARAMS).fit(X, y)


def _n_rows(X):
    return X.shape[0] if hasattr(X, "shape") else len(X)


def _public_state(est):
    """Deep copy of the public fitted state (attributes ending in ``_``)."""
    return {
        name: copy.deepcopy(value)
        for name, value in vars(est).items()
        if name.endswith("_") and not name.startswith("_")
    }


def _same(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
                and a.dtype == b.dtype and a.shape == b.shape
                and np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    if isinstance(a, (list, tuple)):
        return (type(a) is type(b) and len(a) == len(b)
                and all(_same(p, q) for p, q in zip(a, b)))
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a):
        return np.isnan(b)
    return type(a) is type(b) and a == b


def _assert_state_is(est, before):
    after = _public_state(est)
    assert after.keys() == before.keys()
    changed = [k for k in before if not _same(before[k], after[k])]
    assert not changed, "changed by a failed call: %s" % changed


def _assert_unfitted(est):
    assert _public_state(est) == {}
    X, _ = _data()
    with pytest.raises(NotFittedError):
        est.predict(X)


def _assert_trains_on_like(est, twin, data=None):
    """The optimizer state survived too: one more epoch matches the twin's."""
    X, y = _data() if data is None else data
    est.partial_fit(X, y)
    twin.partial_fit(X, y)
    for p, q in zip(est.coefs_ + est.intercepts_, twin.coefs_ + twin.intercepts_):
        np.testing.assert_array_equal(p, q)
    assert est.t_ == twin.t_ and est.loss_curve_ == twin.loss_curve_


def _assert_sane_predictions(pred, n_rows, n_outputs):
    assert isinstance(pred, np.ndarray) and pred.dtype.kind == "f"
    assert pred.shape == ((n_rows,) if n_outputs == 1 else (n_rows, n_outputs))
    assert np.isfinite(pred).all()


def _assert_sane_fit(est, X, y, method, before):
    n_rows = _n_rows(X)
    n_outputs = 1 if np.ndim(y) == 1 else np.shape(y)[1]
    assert est.n_outputs_ == n_outputs
    assert all(np.isfinite(p).all() for p in est.coefs_ + est.intercepts_)
    assert np.isfinite(est.loss_) and est.loss_ == est.loss_curve_[-1]
    assert all(np.isfinite(v) for v in est.loss_curve_)
    _assert_sane_predictions(est.predict(X), n_rows, n_outputs)
    _assert_bookkeeping(est, n_rows, method, before)


def _assert_bookkeeping(est, n_rows, method, before):
    n_train = n_rows  # no case that trains uses early stopping
    assert not est.early_stopping
    if method == "partial_fit":
        old_curve = before.get("loss_curve_", [])
        assert est.n_iter_ == 1
        assert len(est.loss_curve_) == len(old_curve) + 1
        assert est.t_ == before.get("t_", 0) + n_train
    else:
        assert 1 <= est.n_iter_ <= est.max_iter
        previous = len(before.get("loss_curve_", [])) if est.warm_start else 0
        assert len(est.loss_curve_) == previous + est.n_iter_
        if not est.warm_start:
            assert est.t_ == est.n_iter_ * n_train


def _fit_kwargs(sample_weight):
    return {} if sample_weight is None else {"sample_weight": sample_weight}


# ------------------------------------------------------------- the matrix


@pytest.mark.parametrize("name, entry", MATRIX)
def test_bad_input_matrix(name, entry, tmp_path):
    case = CASES[name]
    outcome = case.outcome(entry)
    X, y, sample_weight = case.make(*_data())
    kwargs = _fit_kwargs(sample_weight)

    if entry in FIT_ENTRIES:
        method, start_fitted, warm_start = FIT_ENTRIES[entry]
        est = _fitted() if start_fitted else BPRegressor(**PARAMS)
        est.set_params(warm_start=warm_start, **case.params)
        twin = copy.deepcopy(est)
        before = _public_state(est)
        call = getattr(est, method)
        if outcome == OK:
            assert call(X, y, **kwargs) is est
            _assert_sane_fit(est, X, y, method, before)
            return
        with pytest.raises(outcome.error, match=outcome.match):
            call(X, y, **kwargs)
        if start_fitted:
            _assert_state_is(est, before)
            for model in (est, twin):
                model.set_params(**PARAMS, warm_start=False, early_stopping=False)
            _assert_trains_on_like(est, twin)
        else:
            _assert_unfitted(est)
        return

    est = _fitted()
    est.set_params(**case.params)
    before = _public_state(est)
    if entry == "load_then_predict":
        path = tmp_path / "model.fbp"
        est.save(path)
        model = fastbp.load(path)
        assert type(model) is BPRegressor
    else:
        model = est

    if entry == "score":
        call = lambda: model.score(X, y, **kwargs)
    else:
        call = lambda: model.predict(X)

    if outcome == OK:
        result = call()
        if entry == "score":
            assert isinstance(result, float)
            assert not np.isnan(result) and result <= 1.0
        else:
            _assert_sane_predictions(result, _n_rows(X), est.n_outputs_)
            if entry == "load_then_predict":
                np.testing.assert_array_equal(result, est.predict(X))
    elif outcome == UNDEFINED:
        with pytest.warns(UndefinedMetricWarning, match="less than two samples"):
            result = call()
        assert np.isnan(result)
    else:
        with pytest.raises(outcome.error, match=outcome.match):
            call()
    # Neither predicting nor scoring touches the model, failing or not.
    _assert_state_is(est, before)
    _assert_state_is(model, before)


def test_matrix_covers_every_entry_point():
    # A new public method must be added to ENTRIES (or declared not data-taking).
    public = {
        name for name in dir(BPRegressor)
        if not name.startswith("_") and callable(getattr(BPRegressor, name, None))
    }
    taking_data = {"fit", "partial_fit", "predict", "score", "save"}
    not_data = {"get_params", "set_params", "get_metadata_routing",
                "set_fit_request", "set_partial_fit_request", "set_score_request",
                "set_callbacks"}
    assert public - not_data <= taking_data, sorted(public - not_data - taking_data)
    entries = {FIT_ENTRIES[e][0] for e in FIT_ENTRIES} | {"predict", "score"}
    assert taking_data - {"save"} <= entries
    assert {"fit", "partial_fit", "predict", "score"} <= public
    # Every entry point has at least one case that works and one that fails.
    for entry in ENTRIES:
        outcomes = [CASES[n].outcome(e) for n, e in
                    (p.values for p in MATRIX) if e == entry]
        assert OK in outcomes and any(isinstance(o, Raises) for o in outcomes), entry


# ============================================================ BPClassifier
#
# The cases above, and bad labels, against every entry point of BPClassifier
# on each target kind. The labels are made from the same X (and the
# regressor's y), so every X case is the regressor's own; the y cases then act
# on labels, where some bad numbers are good labels and the other way round.

CLF_ENTRIES = [*FIT_ENTRIES, "predict", "predict_proba", "predict_log_proba", "score",
               "load_then_predict"]

# Messages about labels.
UNKNOWN_LABEL = "Unknown label type"
TWO_CLASSES = "needs at least 2 classes"
SAME_CLASSES = "warm_start can only be used where `y` has the same classes"
UNSEEN = "has classes .*not in"
CLASSES_NEEDED = "classes must be passed on the first call to partial_fit"
OTHER_CLASSES = "is not the same as on the first call to partial_fit"
OTHER_TARGET = "The model was fitted on a target of type"
# scikit-learn's own messages, from accuracy_score and type_of_target: score
# and label checking are scikit-learn's, as in MLPClassifier.
METRIC_MIX = "Classification metrics can't handle a mix"
LABEL_MIX = "Mix of label input types"
NONE_LABEL = "'<' not supported between instances of 'NoneType'"

OMIT = object()  # no classes= argument at all


def _clf_data(kind):
    """X of the regressor's cases and labels of ``kind`` made from its y."""
    X, y = _data()
    if kind == "binary":
        return X, (y > np.median(y)).astype(np.int64)
    if kind == "multiclass":
        return X, np.digitize(y, np.quantile(y, [1 / 3, 2 / 3])).astype(np.int64)
    return X, np.column_stack([y > 0, X[:, 0] > 0, X[:, 1] + X[:, 2] > 0]).astype(np.int64)


def _all_classes(kind):
    """What a user passes as classes= on the first partial_fit (nothing for
    a multilabel target, whose labels are its columns)."""
    return OMIT if kind == "multilabel" else np.unique(_clf_data(kind)[1])


_FITTED_CLASSIFIERS = {}


def _fitted_classifier(kind):
    """A fitted BPClassifier on ``_clf_data(kind)``: a copy of one fit per kind,
    since a classifier's label checks make each fit cost several milliseconds."""
    if kind not in _FITTED_CLASSIFIERS:
        _FITTED_CLASSIFIERS[kind] = BPClassifier(**PARAMS).fit(*_clf_data(kind))
    return copy.deepcopy(_FITTED_CLASSIFIERS[kind])


def _spec(expect=OK, **per_entry):
    return dict(expect=expect, per_entry=per_entry)


# Several columns of labels train a multiclass-multioutput model; a model of
# another target refuses them in a warm start or partial_fit.
SEVERAL_COLUMNS = _spec(warm_start=Raises(ValueError, "fitted on a target of type"),
                        first_partial_fit=Raises(ValueError, "classes"),
                        partial_fit=Raises(ValueError, "fitted on a target of type"),
                        score=Raises(ValueError, METRIC_MIX))


@dataclass
class LabelCase(Case):
    """A bad label case: ``make(X, y, kind)``; ``classes(kind, entry)`` gives the
    classes= of a partial_fit (default: every class on the first call only)."""

    classes: object = None

    def classes_for(self, kind, entry):
        if self.classes is not None:
            return self.classes(kind, entry)
        return _all_classes(kind) if entry == "first_partial_fit" else OMIT


def _labels(f):
    # The outcomes are in LABEL_CASES' tables, not in the case.
    return LabelCase(lambda X, y, kind: (X, f(y, kind), None), frozenset({"y"}), OK)


def _with_nan_label(y):
    y = np.array(y, dtype=object)
    y[5] = np.nan
    return y


def _unseen(y, kind):
    if kind == "multilabel":
        return np.column_stack([y, y[:, :1]])  # a fourth label
    y = np.array(y)
    y[3] = 7
    return y


def _fewer_classes(kind, entry):
    if kind == "multilabel":
        return np.array([0, 1])
    return np.unique(_clf_data(kind)[1])[:-1]


def _continuous(y, kind):
    target = _data()[1]
    return target if kind != "multilabel" else np.column_stack([target] * y.shape[1])


def _multioutput(y, kind):
    if kind == "multilabel":
        return y + y[:, ::-1]  # values 0, 1 and 2 in each column
    # (Two columns of 0/1 would be a valid multilabel target.)
    return np.column_stack([y, y[::-1] + 2])


_ONE_CLASS_WARM = _spec(fit=Raises(ValueError, TWO_CLASSES),
                        refit=Raises(ValueError, TWO_CLASSES),
                        warm_start=Raises(ValueError, SAME_CLASSES))
_NEW_LABELS = _spec(warm_start=Raises(ValueError, SAME_CLASSES),
                    first_partial_fit=Raises(ValueError, UNSEEN),
                    partial_fit=Raises(ValueError, UNSEEN))

LABEL_CASES = {
    "NaN in object labels": (
        _labels(lambda y, kind: _with_nan_label(y)),
        # scikit-learn's check of object arrays does not name y.
        {"*": _spec(Raises(ValueError, "Input (y )?contains NaN"),
                    score=Raises(ValueError, METRIC_MIX))},
    ),
    "a single class": (
        _labels(lambda y, kind: np.zeros_like(y)),
        {"*": _ONE_CLASS_WARM,
         # All-zero indicator columns are a multilabel target with 3 labels.
         "multilabel": _spec()},
    ),
    "an unseen class": (
        _labels(_unseen),
        {"*": _NEW_LABELS,
         "multilabel": _spec(Raises(ValueError, r"y has 4 labels where the model has 3"),
                             fit=OK, refit=OK, first_partial_fit=OK,
                             score=Raises(ValueError, "Multi-label binary indicator "
                                          "input with different numbers of labels"))},
    ),
    "classes missing at the first partial_fit": (
        LabelCase(lambda X, y, kind: (X, y, None), frozenset({"classes"}),
                  OK, only=("first_partial_fit",), classes=lambda kind, entry: OMIT),
        {"*": _spec(Raises(ValueError, CLASSES_NEEDED)),
         "multilabel": _spec()},  # the labels are y's columns
    ),
    "classes differ from the data's": (
        LabelCase(lambda X, y, kind: (X, y, None), frozenset({"classes"}),
                  OK, only=("first_partial_fit", "partial_fit"), classes=_fewer_classes),
        {"*": _spec(first_partial_fit=Raises(ValueError, UNSEEN),
                    partial_fit=Raises(ValueError, OTHER_CLASSES)),
         "multilabel": _spec(
             first_partial_fit=Raises(ValueError, "classes has 2 entries but the "
                                      "multilabel y has 3 columns"),
             partial_fit=Raises(ValueError, OTHER_CLASSES))},
    ),
    "continuous target": (
        _labels(_continuous),
        {"*": _spec(Raises(ValueError, UNKNOWN_LABEL),
                    score=Raises(ValueError, METRIC_MIX))},
    ),
    "multiclass-multioutput target": (
        _labels(_multioutput),
        {"*": SEVERAL_COLUMNS},
    ),
    "wrong-length labels": (
        _labels(lambda y, kind: y[1:]),
        {"*": _spec(Raises(ValueError, "inconsistent numbers of samples"))},
    ),
}

# The regressor's cases whose outcome differs for a classifier, per target
# kind ("*": every kind not named).
_STRING_LABELS = {
    "*": _spec(warm_start=Raises(ValueError, SAME_CLASSES),
               first_partial_fit=Raises(ValueError, UNSEEN),
               partial_fit=Raises(ValueError, UNSEEN),
               score=Raises(ValueError, LABEL_MIX)),
    # One column of labels given to a multilabel model: a new task.
    "multilabel": _spec(warm_start=Raises(ValueError, OTHER_TARGET),
                        first_partial_fit=Raises(ValueError, CLASSES_NEEDED),
                        partial_fit=Raises(ValueError, OTHER_TARGET),
                        score=Raises(ValueError, METRIC_MIX)),
}
CLASSIFIER_OUTCOMES = {
    # One row holds one class; a multilabel row is a whole target.
    "1 row": {"*": _ONE_CLASS_WARM, "multilabel": _spec()},
    "1 row, early stopping": {
        "*": _spec(Raises(ValueError, TWO_CLASSES),
                   first_partial_fit=Raises(ValueError, "does not support early"),
                   partial_fit=Raises(ValueError, "does not support early")),
        "multilabel": _spec(Raises(ValueError, "train set will be empty"),
                            first_partial_fit=Raises(ValueError, "does not support early"),
                            partial_fit=Raises(ValueError, "does not support early")),
    },
    # The log-loss of a saturated output is bounded (and Adam's step is too),
    # so huge X trains to a finite model instead of diverging.
    "X 1e300": {"*": _spec()},
    "object y with None": {
        # 2-D object labels are checked column by column (several columns of
        # labels may mix strings and ints), so a multilabel y with None gets
        # the same error as one column.
        "*": _spec(Raises(ValueError, UNKNOWN_LABEL), score=Raises(TypeError, NONE_LABEL)),
    },
    "3-D y": {"*": _spec(Raises(ValueError, r"dim [34], while dim <= 2"),
                         score=Raises(ValueError, METRIC_MIX))},
    "ragged y": {"*": _spec(Raises(ValueError, "inhomogeneous"),
                            score=Raises(ValueError, "legacy multi-label"))},
    # Strings are labels.
    "string y": _STRING_LABELS,
    "pandas string y": _STRING_LABELS,
    "bool y": {"*": _spec(),
               "multiclass": _spec(warm_start=Raises(ValueError, SAME_CLASSES))},
    "int y": {"*": _NEW_LABELS, "multilabel": _spec()},
    "2 outputs": {"*": SEVERAL_COLUMNS},
    # Non-integral floats are a continuous target, not labels.
    "y 1e300": {"*": _spec(Raises(ValueError, UNKNOWN_LABEL),
                           score=Raises(ValueError, METRIC_MIX))},
    "denormal y": {"*": _spec(Raises(ValueError, UNKNOWN_LABEL),
                              score=Raises(ValueError, METRIC_MIX))},
}

CLF_CASES = {**{name: LabelCase(lambda X, y, kind, make=case.make: make(X, y),
                                case.uses, case.expect, case.per_entry, case.params,
                                case.only)
                for name, case in CASES.items()},
             **{name: case for name, (case, _) in LABEL_CASES.items()}}


def _clf_outcome(name, kind, entry):
    """The classifier's outcome: from the tables above, else the regressor's
    (its messages naming BPClassifier)."""
    if name in LABEL_CASES:
        table = LABEL_CASES[name][1]
    else:
        table = CLASSIFIER_OUTCOMES.get(name)
    if table is None:
        outcome = CASES[name].outcome(entry if entry in ENTRIES else "predict")
        if isinstance(outcome, Raises):
            match = outcome.match.replace("BPRegressor", "BPClassifier")
            outcome = Raises(outcome.error, match)
        return outcome
    spec = table.get(kind, table["*"])
    lookup = entry if entry not in ("predict_proba", "predict_log_proba") else "predict"
    return spec["per_entry"].get(entry, spec["per_entry"].get(lookup, spec["expect"]))


def _clf_param(name, kind, entry):
    # The X cases do not depend on the target: run them for every kind only
    # in the slow run, and for the multiclass target (softmax) always.
    case = CLF_CASES[name]
    slow = kind != "multiclass" and not case.uses & {"y", "classes"}
    return pytest.param(name, kind, entry, id="%s-%s-%s" % (kind, entry, name),
                        marks=[pytest.mark.slow] if slow else [])


CLF_MATRIX = [
    _clf_param(name, kind, entry)
    for name, case in CLF_CASES.items()
    for kind in CLASSIFIER_KINDS
    for entry in CLF_ENTRIES
    if case.applies_to(entry)
]


def _assert_sane_classifier_output(est, entry, result, n_rows):
    if isinstance(est.classes_, list):
        # Several columns of labels: one column, or one probability block, each.
        if entry in ("predict", "load_then_predict"):
            assert result.shape == (n_rows, len(est.classes_))
            for k, classes in enumerate(est.classes_):
                assert np.isin(result[:, k], classes).all()
            return
        assert isinstance(result, list) and len(result) == len(est.classes_)
        for block, classes in zip(result, est.classes_):
            assert block.shape == (n_rows, len(classes))
            proba = np.exp(block) if entry == "predict_log_proba" else block
            np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
        return
    n_labels = len(est.classes_)
    multilabel = est._label_binarizer.y_type_ == "multilabel-indicator"
    if entry in ("predict", "load_then_predict"):
        assert isinstance(result, np.ndarray) and len(result) == n_rows
        if multilabel:
            assert result.shape == (n_rows, n_labels) and np.isin(result, [0, 1]).all()
        else:
            assert result.shape == (n_rows,) and np.isin(result, est.classes_).all()
        return
    assert isinstance(result, np.ndarray) and result.dtype.kind == "f"
    assert result.shape == (n_rows, n_labels)
    proba = np.exp(result) if entry == "predict_log_proba" else result
    assert not np.isnan(result).any() and (proba >= 0).all() and (proba <= 1).all()
    if not multilabel:
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


def _assert_sane_classifier_fit(est, X, y, method, before):
    n_rows = _n_rows(X)
    assert all(np.isfinite(p).all() for p in est.coefs_ + est.intercepts_)
    assert np.isfinite(est.loss_) and est.loss_ == est.loss_curve_[-1]
    assert all(np.isfinite(v) for v in est.loss_curve_)
    for entry in ("predict", "predict_proba", "predict_log_proba"):
        _assert_sane_classifier_output(est, entry, getattr(est, entry)(X), n_rows)
    _assert_bookkeeping(est, n_rows, method, before)


@pytest.mark.parametrize("name, kind, entry", CLF_MATRIX)
def test_bad_input_matrix_classifier(name, kind, entry, tmp_path):
    case = CLF_CASES[name]
    outcome = _clf_outcome(name, kind, entry)
    data = _clf_data(kind)
    X, y, sample_weight = case.make(*data, kind)
    kwargs = _fit_kwargs(sample_weight)

    if entry in FIT_ENTRIES:
        method, start_fitted, warm_start = FIT_ENTRIES[entry]
        est = _fitted_classifier(kind) if start_fitted else BPClassifier(**PARAMS)
        est.set_params(warm_start=warm_start, **case.params)
        if method == "partial_fit":
            classes = case.classes_for(kind, entry)
            if classes is not OMIT:
                kwargs["classes"] = classes
        twin = copy.deepcopy(est)
        before = _public_state(est)
        binarizer = vars(est).get("_label_binarizer")
        call = getattr(est, method)
        if outcome == OK:
            assert call(X, y, **kwargs) is est
            _assert_sane_classifier_fit(est, X, y, method, before)
            return
        with pytest.raises(outcome.error, match=outcome.match):
            call(X, y, **kwargs)
        assert vars(est).get("_label_binarizer") is binarizer
        assert vars(est).keys() == vars(twin).keys()
        if start_fitted:
            _assert_state_is(est, before)
            for model in (est, twin):
                model.set_params(**PARAMS, warm_start=False, early_stopping=False)
            _assert_trains_on_like(est, twin, data)
        else:
            _assert_unfitted(est)
        return

    est = _fitted_classifier(kind)
    est.set_params(**case.params)
    before = _public_state(est)
    if entry == "load_then_predict":
        path = tmp_path / "model.fbp"
        try:
            est.save(path)
        except TypeError as exc:
            # Until the persistence of classifiers lands; then this cell runs.
            if "saves BPRegressor; got BPClassifier" not in str(exc):
                raise
            _assert_state_is(est, before)
            pytest.skip("fastbp's format does not save a BPClassifier yet")
        model = fastbp.load(path)
        assert type(model) is BPClassifier
        method = "predict"
    else:
        model, method = est, entry

    if entry == "score":
        call = lambda: model.score(X, y, **kwargs)
    else:
        call = lambda: getattr(model, method)(X)

    if outcome == OK:
        result = call()
        if entry == "score":
            assert isinstance(result, float) and 0.0 <= result <= 1.0
        else:
            _assert_sane_classifier_output(model, entry, result, _n_rows(X))
            if entry == "load_then_predict":
                np.testing.assert_array_equal(result, est.predict(X))
                np.testing.assert_array_equal(model.predict_proba(X), est.predict_proba(X))
    else:
        with pytest.raises(outcome.error, match=outcome.match):
            call()
    # Neither predicting nor scoring touches the model, failing or not.
    _assert_state_is(est, before)
    _assert_state_is(model, before)


def test_classifier_matrix_covers_every_entry_point():
    # A new public method must be added to CLF_ENTRIES (or declared not data-taking).
    public = {
        name for name in dir(BPClassifier)
        if not name.startswith("_") and callable(getattr(BPClassifier, name, None))
    }
    taking_data = {"fit", "partial_fit", "predict", "predict_proba", "predict_log_proba",
                   "score", "save"}
    not_data = {"get_params", "set_params", "get_metadata_routing",
                "set_fit_request", "set_partial_fit_request", "set_score_request",
                "set_callbacks"}
    assert public - not_data <= taking_data, sorted(public - not_data - taking_data)
    entries = {FIT_ENTRIES[e][0] for e in FIT_ENTRIES} | set(CLF_ENTRIES)
    assert taking_data - {"save"} <= entries and "load_then_predict" in CLF_ENTRIES
    assert {"fit", "partial_fit", "predict", "predict_proba", "score"} <= public
    # Every entry point, for every target kind, has a case that works and one
    # that fails; every bad-label kind the classifier knows is among the cases.
    cells = [p.values for p in CLF_MATRIX]
    for kind in CLASSIFIER_KINDS:
        for entry in CLF_ENTRIES:
            outcomes = [_clf_outcome(n, k, e) for n, k, e in cells
                        if e == entry and k == kind]
            assert OK in outcomes, (kind, entry)
            assert any(isinstance(o, Raises) for o in outcomes), (kind, entry)
    assert set(LABEL_CASES) <= {n for n, _, _ in cells}


def test_multilabel_indicator_of_other_integers_means_on_and_off():
    """Nonzero means on, as in MLPClassifier (type_of_target calls a 2-D
    target of two integer values a multilabel indicator)."""
    X, Y = _clf_data("multilabel")
    on_off = BPClassifier(**PARAMS).fit(X, Y)
    for values in (3 * Y, 7 * Y):  # {0, 3} and {0, 7}: nonzero means on
        est = BPClassifier(**PARAMS).fit(X, values)
        for p, q in zip(est.coefs_ + est.intercepts_, on_off.coefs_ + on_off.intercepts_):
            np.testing.assert_array_equal(p, q)



# ---------------------------------------------------- save and load files


def _saved(tmp_path):
    path = tmp_path / "model.fbp"
    _fitted().save(path)
    return path


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _flip_a_byte(path):
    # A byte in the middle of the first weight matrix's stored bytes: a byte at
    # a fixed offset of the file may fall on a field that readers ignore (a
    # local header's size), and the file would stay a valid model.
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("coefs_.0.npy")
    head = info.header_offset
    name_len = int.from_bytes(data[head + 26:head + 28], "little")
    extra_len = int.from_bytes(data[head + 28:head + 30], "little")
    start = head + 30 + name_len + extra_len
    data[start + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def _empty(tmp_path):
    path = tmp_path / "empty.fbp"
    path.write_bytes(b"")
    return path


def _garbage(tmp_path):
    path = tmp_path / "garbage.fbp"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return path


def _plain_npz(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, coefs=np.ones((4, 3)))
    return path


NOT_A_MODEL = "not a fastbp model file|truncated|corrupted"

BAD_FILES = {
    "missing file": (lambda p: p / "nothing-here.fbp", FileNotFoundError, "nothing-here"),
    "directory": (lambda p: p, (IsADirectoryError, ValueError),
                  "Is a directory|" + NOT_A_MODEL),
    "empty file": (_empty, ValueError, NOT_A_MODEL),
    "random bytes": (_garbage, ValueError, NOT_A_MODEL),
    "plain npz": (_plain_npz, ValueError, NOT_A_MODEL),
    "truncated model": (lambda p: _truncate(_saved(p)), ValueError, NOT_A_MODEL),
    "corrupted model": (lambda p: _flip_a_byte(_saved(p)), ValueError,
                        NOT_A_MODEL + "|checksum|invalid|does not"),
}


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
def test_load_bad_file(case, tmp_path):
    make, error, match = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(error, match=match):
        fastbp.load(path)


def test_save_unfitted_raises(tmp_path):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        BPRegressor().save(tmp_path / "model.fbp")
    assert not (tmp_path / "model.fbp").exists()


def test_save_unfitted_classifier_raises(tmp_path):
    # Not fitted, or (until the persistence of classifiers lands) not savable:
    # either way an error, and no file.
    with pytest.raises((NotFittedError, TypeError),
                       match="not fitted yet|saves BPRegressor; got BPClassifier"):
        BPClassifier().save(tmp_path / "model.fbp")
    assert not (tmp_path / "model.fbp").exists()


def test_failed_save_leaves_existing_file(tmp_path):
    path = _saved(tmp_path)
    data = path.read_bytes()
    with pytest.raises(NotFittedError):
        BPRegressor().save(path)
    assert path.read_bytes() == data
    assert type(fastbp.load(path)) is BPRegressor


def test_save_into_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        _fitted().save(tmp_path / "no" / "such" / "dir" / "model.fbp")


# ------------------------------------------------------------ float32 models


@pytest.mark.parametrize(
    "name", ["X NaN", "y +inf", "3 features", "2 outputs", "X 1e300",
             "sample_weight NaN", "CSR X with NaN"],
)
def test_failed_partial_fit_on_float32_model_leaves_it_intact(name):
    # The model's dtype follows the data (see the Notes): a float64 bad call on
    # a float32 model must not leave float64 parameters behind.
    X, y = _data()
    est = BPRegressor(**PARAMS).fit(X.astype(np.float32), y.astype(np.float32))
    twin = copy.deepcopy(est)
    before = _public_state(est)
    Xb, yb, sw = CASES[name].make(X, y)
    outcome = CASES[name].outcome("partial_fit")
    with pytest.raises(outcome.error, match=outcome.match):
        est.partial_fit(Xb, yb, **_fit_kwargs(sw))
    _assert_state_is(est, before)
    assert all(p.dtype == np.float32 for p in est.coefs_ + est.intercepts_)
    X32, y32 = X.astype(np.float32), y.astype(np.float32)
    est.partial_fit(X32, y32)
    twin.partial_fit(X32, y32)
    for p, q in zip(est.coefs_ + est.intercepts_, twin.coefs_ + twin.intercepts_):
        np.testing.assert_array_equal(p, q)



@pytest.mark.parametrize(
    "name", ["X NaN", "y +inf", "3 features", "2 outputs", "sample_weight NaN",
             "CSR X with NaN", "an unseen class"],
)
def test_failed_partial_fit_on_float32_classifier_leaves_it_intact(name):
    X, y = _clf_data("multiclass")
    est = BPClassifier(**PARAMS).fit(X.astype(np.float32), y)
    twin = copy.deepcopy(est)
    before = _public_state(est)
    Xb, yb, sw = CLF_CASES[name].make(X, y, "multiclass")
    outcome = _clf_outcome(name, "multiclass", "partial_fit")
    with pytest.raises(outcome.error, match=outcome.match):
        est.partial_fit(Xb, yb, **_fit_kwargs(sw))
    _assert_state_is(est, before)
    assert all(p.dtype == np.float32 for p in est.coefs_ + est.intercepts_)
    X32 = X.astype(np.float32)
    est.partial_fit(X32, y)
    twin.partial_fit(X32, y)
    for p, q in zip(est.coefs_ + est.intercepts_, twin.coefs_ + twin.intercepts_):
        np.testing.assert_array_equal(p, q)
