# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Saving and loading a scikit-learn pipeline around a fastbp network, without pickle.

Format version 3
----------------
A pipeline is saved in the zip layout of :mod:`fastbp._persist`, with format
version 3 (older fastbp versions refuse it and say to upgrade). Its
``metadata.json`` holds, besides ``format``, the versions, ``arrays`` and an
optional ``training`` summary, ``"estimator"`` (the outer kind) and
``"model"``, a tree of nodes. Each node is a JSON object whose ``"kind"`` is
one of a closed set:

``Pipeline``
    ``steps``: a list of ``[name, node]``; every step but the last is a
    transformer.
``ColumnTransformer``
    fitted on a data frame: ``feature_names_in``, ``sparse_output``,
    ``params`` (``sparse_threshold``, ``verbose_feature_names_out``) and
    ``transformers``, a list of ``[name, node, [column, ...]]``; the remainder
    is dropped.
``SimpleImputer``
    strategy ``mean`` or ``median``; ``statistics`` (an array).
``StandardScaler``
    ``mean``, ``var`` and ``scale`` (arrays, or null) and ``n_samples_seen``.
``OneHotEncoder``
    ``categories``: per column, the ``$labels`` content of its categories
    (see :func:`fastbp._persist.encode_labels`) and ``missing``, the missing
    values (``"none"``, ``"nan"``) that end the list as categories of their own.
``FunctionTransformer``
    ``function``: ``"log"`` (``numpy.log``, inverse ``numpy.exp``), the only one.
``TransformedTargetRegressor``
    ``transformer`` (a node), ``regressor`` (a network node) and
    ``training_dim``.
``network``
    a fastbp estimator, as :mod:`fastbp._persist` saves it alone:
    ``estimator``, ``params`` and ``attributes``.

Transformers also carry ``n_features_in`` and ``feature_names_in`` (null when
fitted on an array) and their fixed hyperparameters in ``params``; any other
hyperparameter must have its default, or saving refuses the model. Arrays are
named by the order of the nodes, never by anything the user chose.

Loading checks every node against this schema, the arrays' shapes and dtypes,
and the widths from one step to the next (a scaler's width, a column
transformer's output width against the network's ``n_features_in_``), then
reads the arrays and checks their values (finite statistics, positive scales,
sorted categories). Only then is the pipeline built: each transformer is
fitted on two synthetic rows, so that scikit-learn sets its private state for
this version, and its learned statistics are then replaced by the saved ones.
Every failure raises :class:`~fastbp._persist.ModelFileError`.
"""

import inspect
import math
import re
import warnings

import numpy as np

from . import _persist
from ._persist import ModelFileError, _Writer, _is_int

# The outer kinds a file may hold.
TOP_KINDS = ("Pipeline", "TransformedTargetRegressor")
_MAX_STEPS = 64
_MAX_WIDTH = 10_000_000
_NAME = re.compile(r"[^\x00-\x1f]{1,100}\Z")
_FLOAT_DTYPES = ("<f4", "<f8")


def _refuse(what, why):
    raise TypeError("Cannot save %s in fastbp's format: %s. Use pickle or joblib "
                    "for this model." % (what, why))


def _kind_of(obj):
    """The node kind of ``obj``: exact classes only, never subclasses."""
    from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    if _persist._REGISTRY.get(type(obj).__name__) is type(obj):
        return "network"
    for cls in (Pipeline, ColumnTransformer, SimpleImputer, StandardScaler,
                OneHotEncoder, FunctionTransformer, TransformedTargetRegressor):
        if type(obj) is cls:
            return cls.__name__
    return None


def _same(a, b):
    if a is b:
        return True
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, np.random.RandomState) and isinstance(b, np.random.RandomState):
        return True
    try:
        return type(a) is type(b) and bool(a == b)
    except (TypeError, ValueError):
        return False


def _check_defaults(obj, kept, what):
    """Refuse ``obj`` unless every parameter outside ``kept`` has its default."""
    signature = inspect.signature(type(obj)).parameters
    for name, value in obj.get_params(deep=False).items():
        if name in kept:
            continue
        default = signature[name].default
        if not _same(value, default):
            _refuse(what, "fastbp saves it only with %s=%r, not %r"
                    % (name, default, value))


def _names(obj):
    names = getattr(obj, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


# ------------------------------------------------------------------- saving


class _Encoder:
    def __init__(self):
        self.writer = _Writer()
        self.count = 0

    def array(self, name, value, what):
        value = np.asarray(value)
        if value.dtype.kind != "f" or value.ndim != 1:
            _refuse(what, "%s is not a 1-D float array" % name)
        return self.writer.array(name, value)

    def transformer(self, obj, what):
        kind = _kind_of(obj)
        if kind in (None, "network", "TransformedTargetRegressor"):
            _refuse(what, "a %s is not among the transformers it saves (Pipeline, "
                    "ColumnTransformer, SimpleImputer, StandardScaler, OneHotEncoder, "
                    "FunctionTransformer)" % type(obj).__name__)
        return getattr(self, kind)(obj, what, predictor=False)

    def predictor(self, obj, what):
        kind = _kind_of(obj)
        if kind not in ("network", "Pipeline", "TransformedTargetRegressor"):
            _refuse(what, "a %s is not a fastbp network, a TransformedTargetRegressor "
                    "around one, or a Pipeline ending in one" % type(obj).__name__)
        return getattr(self, kind)(obj, what, predictor=True)

    def network(self, obj, what, predictor):
        self.count += 1
        self.writer.prefix = "n%d." % self.count
        node = _persist.encode_network(self.writer, obj)
        return dict(node, kind="network")

    def Pipeline(self, obj, what, predictor):
        from sklearn.utils.validation import check_is_fitted

        _check_defaults(obj, ("steps",), what)
        check_is_fitted(obj)
        steps = obj.steps
        if not 1 <= len(steps) <= _MAX_STEPS:
            _refuse(what, "a Pipeline needs 1 to %d steps" % _MAX_STEPS)
        nodes = []
        for i, (name, step) in enumerate(steps):
            where = "%s step %r" % (what, name)
            last = i == len(steps) - 1
            node = (self.predictor(step, where) if last and predictor
                    else self.transformer(step, where))
            nodes.append([_step_name(name, where), node])
        return {"kind": "Pipeline", "steps": nodes}

    def TransformedTargetRegressor(self, obj, what, predictor):
        if obj.transformer is None:
            _refuse(what, "it needs a transformer, not func and inverse_func")
        _check_defaults(obj, ("regressor", "transformer", "check_inverse"), what)
        if not hasattr(obj, "regressor_"):
            _refuse(what, "it is not fitted")
        if _kind_of(obj.regressor_) != "network":
            _refuse(what, "its regressor is a %s, not a fastbp network"
                    % type(obj.regressor_).__name__)
        template = obj.regressor.get_params(deep=False)
        fitted = obj.regressor_.get_params(deep=False)
        if set(template) != set(fitted) or not all(
            _same(template[k], fitted[k]) for k in template
        ):
            _refuse(what, "its regressor's parameters were changed after the fit")
        return {
            "kind": "TransformedTargetRegressor",
            "params": {"check_inverse": bool(obj.check_inverse)},
            "training_dim": int(obj._training_dim),
            "transformer": self.transformer(obj.transformer_, what + " transformer"),
            "regressor": self.network(obj.regressor_, what, True),
        }

    def ColumnTransformer(self, obj, what, predictor):
        _check_defaults(obj, ("transformers", "sparse_threshold",
                              "verbose_feature_names_out"), what)
        names = _names(obj)
        if names is None or not hasattr(obj, "transformers_"):
            _refuse(what, "fastbp saves a ColumnTransformer fitted on a data frame")
        fitted = obj.transformers_[:len(obj.transformers)]
        entries = []
        for (name, given, columns), (fitted_name, step, _) in zip(obj.transformers,
                                                                   fitted):
            where = "%s transformer %r" % (what, name)
            if isinstance(given, str):
                _refuse(where, "fastbp saves transformers, not 'drop' or 'passthrough'")
            if not (isinstance(columns, list) and columns
                    and all(isinstance(c, str) for c in columns)):
                _refuse(where, "its columns must be a non-empty list of column names")
            if fitted_name != name or isinstance(step, str):
                _refuse(where, "fastbp saves transformers, not 'drop' or 'passthrough'")
            entries.append([_step_name(name, where), self.transformer(step, where),
                            list(columns)])
        if not entries:
            _refuse(what, "it has no transformers")
        return {
            "kind": "ColumnTransformer",
            "params": {"sparse_threshold": float(obj.sparse_threshold),
                       "verbose_feature_names_out": bool(obj.verbose_feature_names_out)},
            "n_features_in": len(names),
            "feature_names_in": names,
            "sparse_output": bool(obj.sparse_output_),
            "transformers": entries,
        }

    def _leaf(self, obj, kind, kept, checked=()):
        from sklearn.utils.validation import check_is_fitted

        _check_defaults(obj, kept + checked, kind)
        check_is_fitted(obj)
        self.count += 1
        self.writer.prefix = "t%d." % self.count
        return {"kind": kind, "params": {k: getattr(obj, k) for k in kept},
                "n_features_in": int(obj.n_features_in_),
                "feature_names_in": _names(obj)}

    def SimpleImputer(self, obj, what, predictor):
        if obj.strategy not in ("mean", "median"):
            _refuse(what, "fastbp saves SimpleImputer with strategy 'mean' or "
                    "'median', not %r" % (obj.strategy,))
        node = self._leaf(obj, "SimpleImputer", ("strategy", "keep_empty_features"))
        statistics = np.asarray(obj.statistics_)
        if statistics.dtype.kind != "f" or not np.isfinite(statistics).all():
            _refuse(what, "a feature had no values in the fit; use "
                    "keep_empty_features=True")
        node["statistics"] = self.array("statistics_", statistics, what)
        return node

    def StandardScaler(self, obj, what, predictor):
        node = self._leaf(obj, "StandardScaler", ("with_mean", "with_std"))
        for key in ("mean", "var", "scale"):
            value = getattr(obj, key + "_")
            node[key] = None if value is None else self.array(key + "_", value, what)
        seen = obj.n_samples_seen_
        node["n_samples_seen"] = (int(seen) if np.ndim(seen) == 0
                                  else [int(v) for v in seen])
        return node

    def OneHotEncoder(self, obj, what, predictor):
        if obj.dtype not in (np.float64, np.float32):
            _refuse(what, "fastbp saves OneHotEncoder with dtype float64 or float32")
        if obj.handle_unknown not in ("error", "ignore"):
            _refuse(what, "fastbp saves OneHotEncoder with handle_unknown 'error' or "
                    "'ignore'")
        node = self._leaf(obj, "OneHotEncoder",
                          ("handle_unknown", "sparse_output", "dtype"))
        node["params"]["dtype"] = np.dtype(obj.dtype).name
        node["categories"] = [_encode_categories(c, what) for c in obj.categories_]
        return node

    def FunctionTransformer(self, obj, what, predictor):
        if not (obj.func is np.log and obj.inverse_func is np.exp):
            _refuse(what, "fastbp saves FunctionTransformer(numpy.log, "
                    "inverse_func=numpy.exp) only")
        node = self._leaf(obj, "FunctionTransformer", ("validate", "check_inverse"),
                          ("func", "inverse_func"))
        node["function"] = "log"
        return node


def _step_name(name, what):
    if not (isinstance(name, str) and _NAME.match(name) and "__" not in name):
        _refuse(what, "its name must be 1 to 100 printable characters without '__'")
    return name


def _is_missing(value):
    return value is None or (isinstance(value, float) and math.isnan(value))


def _encode_categories(categories, what):
    values = list(categories)
    missing = []
    while values and _is_missing(values[-1]):
        missing.insert(0, "none" if values.pop() is None else "nan")
    if not values:
        _refuse(what, "a column had only missing values in the fit")
    kept = np.asarray(categories[:len(values)])
    if kept.dtype.kind == "O":
        kept = np.empty(len(values), dtype=object)
        kept[:] = values
    try:
        labels = _persist.encode_labels(kept, "categories_")
    except TypeError as exc:
        _refuse(what, str(exc))
    return {"labels": labels, "missing": missing}


def save(model, path, *, training=None):
    """Save a fitted model in fastbp's pickle-free format.

    Parameters
    ----------
    model : estimator
        A fitted fastbp estimator (``BPRegressor``, ``BPClassifier``), or a
        fitted scikit-learn ``Pipeline`` or ``TransformedTargetRegressor``
        around one, made of ``ColumnTransformer``, ``SimpleImputer`` (mean or
        median), ``StandardScaler``, ``OneHotEncoder`` and
        ``FunctionTransformer(numpy.log, inverse_func=numpy.exp)`` (for a
        target). Anything else is refused with a ``TypeError``.
    path : str, path-like or binary file object
        Where to write; a path is replaced only once the new file is complete.
    training : dict, optional
        A summary of the training, shown by ``fastbp info``.

    See Also
    --------
    fastbp.load : Read the model back; it predicts bit-identically.

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> import fastbp
    >>> X = np.linspace(0, 10, 40).reshape(20, 2)
    >>> model = make_pipeline(StandardScaler(), fastbp.BPRegressor(
    ...     hidden_layer_sizes=(3,), solver="lbfgs", random_state=0))
    >>> model = model.fit(X, X.sum(axis=1))
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> fastbp.save(model, path)
    >>> bool((fastbp.load(path).predict(X) == model.predict(X)).all())
    True
    """
    kind = _kind_of(model)
    if kind == "network":
        _persist.save(model, path, training=training)
        return
    if kind not in TOP_KINDS:
        _refuse("a %s" % type(model).__name__,
                "it saves fastbp networks, and Pipeline or TransformedTargetRegressor "
                "around one")
    encoder = _Encoder()
    node = encoder.predictor(model, kind)
    content = {"format_version": _persist.PIPELINE_FORMAT_VERSION,
               "estimator": kind, "model": node}
    _persist.write_model(path, content, encoder.writer.arrays, training)


# ------------------------------------------------------------------ loading


def _fail(where, message):
    raise ModelFileError("%s: %s" % (where, message))


def _keys(node, where, keys):
    if not isinstance(node, dict) or set(node) != set(keys):
        _fail(where, "a %s node has exactly the entries %s"
              % (str(node.get("kind") if isinstance(node, dict) else "?")[:40],
                 sorted(keys)))


def _int(value, where, name, minimum=1, maximum=_MAX_WIDTH):
    if not (_is_int(value) and minimum <= value <= maximum):
        _fail(where, "invalid %s" % name)
    return value


def _bool(value, where, name):
    if type(value) is not bool:
        _fail(where, "%s must be true or false" % name)
    return value


def _name(value, where):
    if not (isinstance(value, str) and _NAME.match(value) and "__" not in value):
        _fail(where, "invalid step name")
    return value


def _feature_names(value, n, where):
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == n
            and all(isinstance(v, str) for v in value) and len(set(value)) == n):
        _fail(where, "feature_names_in must be %d distinct column names" % n)
    return value


def _array(reader, value, where, shape):
    if not (isinstance(value, dict) and list(value) == ["$array"]):
        _fail(where, "an array entry must be {\"$array\": name}")
    spec = reader.array(value["$array"], where, _FLOAT_DTYPES)
    if spec.shape != shape:
        _fail(where, "array %r has shape %s, not %s"
              % (spec.name[:100], list(spec.shape), list(shape)))
    return spec


def build(kind, node, reader):
    """Check the ``model`` tree of a version-3 file; return a plan whose
    ``finish(arrays)`` gives the model."""
    if kind not in TOP_KINDS or not isinstance(node, dict) or node.get("kind") != kind:
        raise ModelFileError("unknown estimator %r: a pipeline file holds a %s."
                             % (str(kind)[:100], " or ".join(TOP_KINDS)))
    return _predictor(node, reader, "model")


def _predictor(node, reader, where):
    kind = node.get("kind") if isinstance(node, dict) else None
    if kind == "network":
        return _NetworkPlan(node, reader, where)
    if kind == "TransformedTargetRegressor":
        return _TargetPlan(node, reader, where)
    if kind == "Pipeline":
        return _PipelinePlan(node, reader, where, predictor=True)
    _fail(where, "unknown predictor kind %r" % str(kind)[:100])


def _transformer(node, reader, where):
    kind = node.get("kind") if isinstance(node, dict) else None
    plan = _TRANSFORMERS.get(kind) if isinstance(kind, str) else None
    if plan is None:
        _fail(where, "unknown transformer kind %r" % str(kind)[:100])
    return plan(node, reader, where)


class _NetworkPlan:
    def __init__(self, node, reader, where):
        content = {k: v for k, v in node.items() if k != "kind"}
        _keys(content, where, ("estimator", "params", "attributes"))
        try:
            self.plan = _persist.build_network(content, reader, alone=False)
        except ModelFileError as exc:
            _fail(where, str(exc))
        est = self.plan.estimator
        self.n_in, self.n_out = est.n_features_in_, est.n_outputs_
        self.names = None
        self.is_regressor = not hasattr(est, "classes_")

    def finish(self, arrays):
        return self.plan.finish(arrays)


class _PipelinePlan:
    def __init__(self, node, reader, where, predictor=False):
        self.where = where
        _keys(node, where, ("kind", "steps"))
        steps = node["steps"]
        if not (isinstance(steps, list) and 1 <= len(steps) <= _MAX_STEPS):
            _fail(where, "a Pipeline has 1 to %d steps" % _MAX_STEPS)
        self.steps = []
        for i, step in enumerate(steps):
            if not (isinstance(step, list) and len(step) == 2):
                _fail(where, "a step is [name, node]")
            name = _name(step[0], where)
            inner = "%s.%s" % (where, name)
            last = i == len(steps) - 1
            plan = (_predictor(step[1], reader, inner) if last and predictor
                    else _transformer(step[1], reader, inner))
            if self.steps and self.steps[-1][1].n_out != plan.n_in:
                _fail(inner, "takes %d features but the step before gives %d"
                      % (plan.n_in, self.steps[-1][1].n_out))
            self.steps.append((name, plan))
        if len({name for name, _ in self.steps}) != len(self.steps):
            _fail(where, "two steps have the same name")
        self.predictor = predictor
        first, last = self.steps[0][1], self.steps[-1][1]
        self.n_in, self.n_out = first.n_in, last.n_out
        self.names = first.names
        self.is_regressor = last.is_regressor if predictor else None

    def finish(self, arrays):
        from sklearn.pipeline import Pipeline

        if not self.predictor:
            return _rebuild(self, arrays)
        return Pipeline([(name, plan.finish(arrays)) for name, plan in self.steps])

    # As a transformer:

    def prototype(self):
        from sklearn.pipeline import Pipeline

        return Pipeline([(name, plan.prototype()) for name, plan in self.steps])

    def column_values(self):
        return self.steps[0][1].column_values()

    def synthetic(self):
        return self.steps[0][1].synthetic()

    def apply(self, fitted):
        for (_, plan), (_, step) in zip(self.steps, fitted.steps):
            plan.arrays = self.arrays
            plan.apply(step)

    def template_params(self, model):
        for (_, plan), (_, step) in zip(self.steps, model.steps):
            plan.template_params(step)


class _TargetPlan:
    def __init__(self, node, reader, where):
        _keys(node, where, ("kind", "params", "training_dim", "transformer",
                            "regressor"))
        params = node["params"]
        _keys(params, where + " params", ("check_inverse",))
        self.check_inverse = _bool(params["check_inverse"], where, "check_inverse")
        self.training_dim = _int(node["training_dim"], where, "training_dim", 1, 2)
        self.transformer = _transformer(node["transformer"], reader,
                                        where + ".transformer")
        regressor = node["regressor"]
        if not (isinstance(regressor, dict) and regressor.get("kind") == "network"):
            _fail(where, "the regressor must be a fastbp network")
        self.regressor = _NetworkPlan(regressor, reader, where + ".regressor")
        if not self.regressor.is_regressor:
            _fail(where, "the regressor is a classifier")
        if self.transformer.n_out != self.regressor.n_out or (
            self.training_dim == 1 and self.regressor.n_out != 1
        ):
            _fail(where, "the target transformer gives %d outputs for a network of %d"
                  % (self.transformer.n_out, self.regressor.n_out))
        self.n_in, self.n_out = self.regressor.n_in, self.transformer.n_in
        self.names = None
        self.is_regressor = True

    def finish(self, arrays):
        from sklearn.base import clone
        from sklearn.compose import TransformedTargetRegressor

        network = self.regressor.finish(arrays)
        model = TransformedTargetRegressor(
            regressor=clone(network), transformer=_template(self.transformer),
            check_inverse=self.check_inverse)
        model.regressor_ = network
        model.transformer_ = _rebuild(self.transformer, arrays)
        model._training_dim = self.training_dim
        if hasattr(network, "feature_names_in_"):
            model.feature_names_in_ = network.feature_names_in_
        return model


def _template(plan):
    """The unfitted transformer, with the saved hyperparameters."""
    model = plan.prototype()
    plan.template_params(model)
    return model


def _rebuild(plan, arrays):
    """A fitted transformer: fitted on synthetic rows, then given the saved state."""
    plan.arrays = arrays
    model = plan.prototype()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model.fit(plan.synthetic())
        except (ValueError, TypeError) as exc:
            raise ModelFileError("the %s cannot be rebuilt (%s)."
                                 % (type(model).__name__, exc)) from None
    plan.apply(model)
    plan.template_params(model)
    return model


class _Leaf:
    """A transformer fitted on a fixed number of columns."""

    kind = None
    params = {}

    def __init__(self, node, reader, where):
        self.where = where
        _keys(node, where, ("kind", "params", "n_features_in", "feature_names_in")
              + self.entries)
        _keys(node["params"], where + " params", tuple(self.params))
        self.values = {}
        for name, allowed in self.params.items():
            value = node["params"][name]
            if not (type(value) in (bool, str) and value in allowed):
                _fail(where, "invalid %s" % name)
            self.values[name] = value
        self.n_in = _int(node["n_features_in"], where, "n_features_in")
        self.names = _feature_names(node["feature_names_in"], self.n_in, where)
        self.n_out = self.n_in
        self.check(node, reader)

    def constructor_params(self):
        return dict(self.values)

    def prototype(self):
        return self.cls()(**self.constructor_params())

    def finish(self, arrays):
        return _rebuild(self, arrays)

    def template_params(self, model):
        pass

    def column_values(self):
        """One synthetic value and dtype per input column."""
        return [(1.0, np.float64)] * self.n_in

    def synthetic(self):
        columns = self.column_values()
        if self.names is None:
            dtype = np.result_type(*[d for _, d in columns])
            return np.array([[v for v, _ in columns]] * 2, dtype=dtype)
        import pandas as pd

        return pd.DataFrame({name: np.array([v, v], dtype=d)
                             for name, (v, d) in zip(self.names, columns)})

    def apply(self, fitted):
        names = _names(fitted)
        if fitted.n_features_in_ != self.n_in or names != self.names:
            _fail(self.where, "the rebuilt %s does not take the saved columns"
                  % self.kind)


def _dtype_of(spec):
    return np.float32 if spec.dtype == "<f4" else np.float64


class _ImputerPlan(_Leaf):
    kind = "SimpleImputer"
    entries = ("statistics",)
    params = {"strategy": ("mean", "median"), "keep_empty_features": (True, False)}

    def cls(self):
        from sklearn.impute import SimpleImputer

        return SimpleImputer

    def check(self, node, reader):
        self.statistics = _array(reader, node["statistics"], self.where, (self.n_in,))

    def column_values(self):
        return [(1.0, _dtype_of(self.statistics))] * self.n_in

    def apply(self, fitted):
        super().apply(fitted)
        statistics = self.arrays[self.statistics.name]
        if not np.isfinite(statistics).all():
            _fail(self.where, "the statistics are not all finite")
        fitted.statistics_ = statistics


class _ScalerPlan(_Leaf):
    kind = "StandardScaler"
    entries = ("mean", "var", "scale", "n_samples_seen")
    params = {"with_mean": (True, False), "with_std": (True, False)}

    def cls(self):
        from sklearn.preprocessing import StandardScaler

        return StandardScaler

    def check(self, node, reader):
        self.specs = {key: None if node[key] is None
                      else _array(reader, node[key], self.where, (self.n_in,))
                      for key in ("mean", "var", "scale")}
        seen = node["n_samples_seen"]
        if not (_is_int(seen) and 0 <= seen <= _persist._MAX_COUNT) and not (
            isinstance(seen, list) and len(seen) == self.n_in
            and all(_is_int(v) and 0 <= v <= _persist._MAX_COUNT for v in seen)
        ):
            _fail(self.where, "invalid n_samples_seen")
        self.seen = seen

    def column_values(self):
        dtypes = [_dtype_of(s) for s in self.specs.values() if s is not None]
        return [(1.0, dtypes[0] if dtypes else np.float64)] * self.n_in

    def apply(self, fitted):
        super().apply(fitted)
        for key, spec in self.specs.items():
            if (getattr(fitted, key + "_") is None) != (spec is None):
                _fail(self.where, "%s is %s for with_mean=%s, with_std=%s"
                      % (key, "missing" if spec is None else "set",
                         self.values["with_mean"], self.values["with_std"]))
            if spec is None:
                continue
            value = self.arrays[spec.name]
            ok = np.isfinite(value).all()
            if key == "var":
                ok = ok and (value >= 0).all()
            if key == "scale":
                ok = ok and (value > 0).all()
            if not ok:
                _fail(self.where, "invalid %s_" % key)
            setattr(fitted, key + "_", value)
        fitted.n_samples_seen_ = (self.seen if _is_int(self.seen)
                                  else np.array(self.seen, dtype=np.int64))


class _EncoderPlan(_Leaf):
    kind = "OneHotEncoder"
    entries = ("categories",)
    params = {"handle_unknown": ("error", "ignore"), "sparse_output": (True, False),
              "dtype": ("float64", "float32")}

    def cls(self):
        from sklearn.preprocessing import OneHotEncoder

        return OneHotEncoder

    def check(self, node, reader):
        categories = node["categories"]
        if not (isinstance(categories, list) and len(categories) == self.n_in):
            _fail(self.where, "categories must hold one list per column")
        self.categories = [_decode_categories(c, self.where) for c in categories]
        self.n_out = sum(len(c) for c in self.categories)
        if self.n_out > _MAX_WIDTH:
            _fail(self.where, "too many categories")

    def constructor_params(self):
        return dict(self.values, dtype=np.dtype(self.values["dtype"]).type,
                    categories=self.categories)

    def template_params(self, model):
        model.set_params(categories="auto")

    def column_values(self):
        return [(c[0], c.dtype) for c in self.categories]

    def apply(self, fitted):
        super().apply(fitted)
        rebuilt = fitted.categories_
        if len(rebuilt) != len(self.categories) or not all(
            a.dtype == b.dtype and len(a) == len(b)
            and all(x is y or x == y or (_is_missing(x) and _is_missing(y)
                                         and type(x) is type(y))
                    for x, y in zip(a.tolist(), b.tolist()))
            for a, b in zip(rebuilt, self.categories)
        ):
            _fail(self.where, "the categories cannot be rebuilt as saved")
        fitted.set_params(categories="auto")


def _decode_categories(content, where):
    if not (isinstance(content, dict) and set(content) == {"labels", "missing"}):
        _fail(where, "a column's categories are {\"labels\": ..., \"missing\": [...]}")
    try:
        values = _persist.decode_labels(content["labels"])
    except ValueError as exc:
        _fail(where, str(exc))
    missing = content["missing"]
    kind = content["labels"]["kind"]
    allowed = {"object": ([], ["nan"], ["none"], ["none", "nan"]),
               "float": ([], ["nan"])}.get(kind, ([],))
    if missing not in allowed:
        _fail(where, "invalid missing categories for %s categories" % kind)
    if kind == "str":
        _fail(where, "categories of a data frame column are objects, not <U strings")
    ordered = values.tolist()
    if any(not a < b for a, b in zip(ordered, ordered[1:])):
        _fail(where, "the categories are not sorted")
    if not missing:
        return values
    if kind == "float":
        return np.append(values, np.nan).astype(values.dtype)
    out = np.empty(len(values) + len(missing), dtype=object)
    out[:len(values)] = ordered
    out[len(values):] = [None if m == "none" else float("nan") for m in missing]
    return out


class _FunctionPlan(_Leaf):
    kind = "FunctionTransformer"
    entries = ("function",)
    params = {"validate": (True, False), "check_inverse": (True, False)}

    def cls(self):
        from sklearn.preprocessing import FunctionTransformer

        return FunctionTransformer

    def check(self, node, reader):
        if node["function"] != "log":
            _fail(self.where, "the only function is 'log'")

    def constructor_params(self):
        return dict(self.values, func=np.log, inverse_func=np.exp)



class _ColumnsPlan:
    kind = "ColumnTransformer"

    def __init__(self, node, reader, where):
        self.where = where
        _keys(node, where, ("kind", "params", "n_features_in", "feature_names_in",
                            "sparse_output", "transformers"))
        params = node["params"]
        _keys(params, where + " params", ("sparse_threshold",
                                          "verbose_feature_names_out"))
        threshold = params["sparse_threshold"]
        if not (type(threshold) in (int, float) and 0 <= threshold <= 1):
            _fail(where, "invalid sparse_threshold")
        self.values = {
            "sparse_threshold": float(threshold),
            "verbose_feature_names_out": _bool(params["verbose_feature_names_out"],
                                               where, "verbose_feature_names_out"),
        }
        self.n_in = _int(node["n_features_in"], where, "n_features_in")
        self.names = _feature_names(node["feature_names_in"], self.n_in, where)
        if self.names is None:
            _fail(where, "a ColumnTransformer is saved with its column names")
        self.sparse_output = _bool(node["sparse_output"], where, "sparse_output")
        entries = node["transformers"]
        if not (isinstance(entries, list) and 1 <= len(entries) <= _MAX_STEPS):
            _fail(where, "a ColumnTransformer has 1 to %d transformers" % _MAX_STEPS)
        self.entries = []
        known = set(self.names)
        for entry in entries:
            if not (isinstance(entry, list) and len(entry) == 3):
                _fail(where, "a transformer is [name, node, columns]")
            name = _name(entry[0], where)
            inner = "%s.%s" % (where, name)
            plan = _transformer(entry[1], reader, inner)
            columns = entry[2]
            if not (isinstance(columns, list) and columns
                    and all(isinstance(c, str) and c in known for c in columns)
                    and len(set(columns)) == len(columns)):
                _fail(inner, "its columns must be distinct columns of feature_names_in")
            if plan.n_in != len(columns) or plan.names not in (None, columns):
                _fail(inner, "it takes %d columns, not the %d it is given"
                      % (plan.n_in, len(columns)))
            self.entries.append((name, plan, columns))
        if len({name for name, _, _ in self.entries} | {"remainder"}) != (
            len(self.entries) + 1
        ):
            _fail(where, "two transformers have the same name, or one is 'remainder'")
        self.n_out = sum(plan.n_out for _, plan, _ in self.entries)
        if self.n_out > _MAX_WIDTH:
            _fail(where, "too wide")

    def prototype(self):
        from sklearn.compose import ColumnTransformer

        return ColumnTransformer(
            [(name, plan.prototype(), columns) for name, plan, columns in self.entries],
            **self.values)

    def column_values(self):
        _fail(self.where, "a ColumnTransformer takes a data frame; it cannot be "
              "inside another one")

    def synthetic(self):
        import pandas as pd

        values = {name: (1.0, np.float64) for name in self.names}
        for _, plan, columns in self.entries:
            values.update(zip(columns, plan.column_values()))
        return pd.DataFrame({name: np.array([v, v], dtype=d)
                             for name, (v, d) in values.items()})

    def apply(self, fitted):
        if _names(fitted) != self.names:
            _fail(self.where, "the rebuilt ColumnTransformer does not take the saved "
                  "columns")
        for (_, plan, _), (_, step, _) in zip(self.entries, fitted.transformers_):
            plan.arrays = self.arrays
            plan.apply(step)
        width = max((s.stop for s in fitted.output_indices_.values()), default=0)
        if width != self.n_out:
            _fail(self.where, "the rebuilt ColumnTransformer gives %d features, not %d"
                  % (width, self.n_out))
        fitted.sparse_output_ = self.sparse_output

    def template_params(self, model):
        for (_, plan, _), (_, step, _) in zip(self.entries, model.transformers):
            plan.template_params(step)
        for (_, plan, _), (_, step, _) in zip(self.entries,
                                              getattr(model, "transformers_", [])):
            plan.template_params(step)

    def finish(self, arrays):
        return _rebuild(self, arrays)


_TRANSFORMERS = {
    "Pipeline": _PipelinePlan,
    "ColumnTransformer": _ColumnsPlan,
    "SimpleImputer": _ImputerPlan,
    "StandardScaler": _ScalerPlan,
    "OneHotEncoder": _EncoderPlan,
    "FunctionTransformer": _FunctionPlan,
}
