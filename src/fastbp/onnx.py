# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""ONNX export: importing this module registers fastbp's estimators with skl2onnx.

After ``import fastbp.onnx``, ``skl2onnx.to_onnx`` converts a ``BPRegressor``
or a ``BPClassifier``, or any pipeline that contains one, like a built-in
scikit-learn model::

    import fastbp.onnx  # noqa: F401 (registers the converters)
    from skl2onnx import to_onnx

    onx = to_onnx(pipeline, X[:1])

Both estimators share one network graph: one ``MatMul`` and one ``Add`` per
layer, each followed by the layer's activation (``Relu``, ``Tanh``,
``Sigmoid``, ``Sin``, nothing for identity; ``Exp`` for the output of a
Poisson model, ``Softmax`` for a multiclass one). leaky_relu, elu, selu,
softplus, gelu (tanh form), silu and mish are written with elementary
operators (``Where``, ``Greater``, ``Exp``, ``Log``, ``Mul``, ``Add``,
``Tanh``, ``Sigmoid``): ONNX Runtime has no float64 kernels for
``LeakyRelu``, ``Elu``, ``Selu`` or ``Softplus``, and GELU has an operator only
from opset 20. Per-layer activation lists and every regressor
``out_activation`` export. Dropout is off at predict
time and so absent from the graph; the losses, solvers and training options
are not part of a prediction graph at all. The graph computes in the input's float
type: float32 input gives a float32 graph, float64 input a float64 graph, and
integer or boolean input is cast to float64, as ``predict`` does.

**BPRegressor** gives one output of shape ``(n_samples, n_outputs_)``.
skl2onnx's own ``MLPRegressor`` converter is not used because it cannot
express the ``exp`` output and flattens several outputs into one column.

**BPClassifier** gives the two outputs of skl2onnx's classifiers:

- ``label``: what ``predict`` returns. int64 of shape ``(n_samples,)`` for
  integer, boolean or integral float classes, a string tensor for string
  classes; for a multilabel model the indicator matrix, int64 of shape
  ``(n_samples, n_labels)``.
- ``probabilities``: ``predict_proba``, of shape ``(n_samples, n_classes)``
  in the graph's float type.

Unlike skl2onnx's built-in classifiers, the probabilities stay a tensor by
default: no ``ZipMap`` turns them into a list of dictionaries. That is what
most runtimes want, the only form a multilabel model has, and the only one a
float64 graph can have (ONNX's ZipMap takes float32). The options are those
of skl2onnx's classifiers:

- ``zipmap``: False (the default) keeps the tensor; True or ``"columns"``
  adds skl2onnx's ZipMap, whose outputs are then ``output_label`` and
  ``output_probability`` (or one output per class). It needs float32 input
  and raises ``ValueError`` for a float64 graph or a multilabel model.
- ``nocl``: True gives the class indices (int64) as labels.

A classifier fitted on several columns of labels (multiclass-multioutput)
gives ``label`` of shape ``(n_samples, n_columns)`` (int64, or strings when
every column's classes are strings; columns that mix the two need ``nocl``)
and ``probabilities`` of shape ``(n_samples, n_outputs_)``: the blocks of
``predict_proba``'s list side by side, in the order of ``classes_``.

skl2onnx's pipeline parser asks every classifier inside a ``Pipeline`` for a
ZipMap unless an option says otherwise, so in a pipeline pass
``options={BPClassifier: {"zipmap": False}}`` to keep the tensor (and to
convert a float64 pipeline at all)::

    onx = to_onnx(pipeline, X[:1], options={BPClassifier: {"zipmap": False}})

Requires the ``onnx`` extra: ``pip install fastbp[onnx]``.
"""

import copy

import numpy as np
from sklearn.utils.validation import check_is_fitted

try:
    from onnx import numpy_helper
    from skl2onnx import update_registered_converter
    from skl2onnx.common.data_types import (
        BooleanTensorType,
        DoubleTensorType,
        FloatTensorType,
        Int32TensorType,
        Int64TensorType,
        StringTensorType,
    )
    from skl2onnx.proto import onnx_proto
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "fastbp.onnx needs skl2onnx and onnx: pip install fastbp[onnx] (%s)" % exc
    ) from exc

from . import BPClassifier, BPRegressor

__all__ = ["ALIAS", "CLASSIFIER_ALIAS", "ONNX_ACTIVATIONS"]

#: The name under which the BPRegressor converter is registered with skl2onnx.
ALIAS = "FastbpBPRegressor"

#: The name under which the BPClassifier converter is registered with skl2onnx.
CLASSIFIER_ALIAS = "FastbpBPClassifier"

#: ONNX operator for each activation name (None: no operator needed).
ONNX_ACTIVATIONS = {
    "identity": None,
    "logistic": "Sigmoid",
    "tanh": "Tanh",
    "relu": "Relu",
    "exp": "Exp",
    "softmax": "Softmax",
}
_HIDDEN = ("identity", "logistic", "tanh", "relu", "leaky_relu", "elu", "selu",
           "softplus", "gelu", "silu", "mish", "sin")
ONNX_ACTIVATIONS["sin"] = "Sin"
# Written with several elementary operators (see _activation_nodes).
_COMPOSED = ("leaky_relu", "elu", "selu", "softplus", "gelu", "silu", "mish")
for _name in _COMPOSED:
    ONNX_ACTIVATIONS[_name] = _name
_CAST_TO_DOUBLE = (Int64TensorType, Int32TensorType, BooleanTensorType)
_MULTILABEL = "multilabel-indicator"


def _onnx_activation(model, name, where, allowed):
    if isinstance(name, str) and name in _COMPOSED and name in allowed:
        return name
    if not isinstance(name, str) or name not in allowed:
        raise NotImplementedError(
            "fastbp.onnx cannot express %s=%r of %s: a %s has %s. Use "
            "pickle, joblib or fastbp's own format (est.save) for this model."
            % (where, name, type(model).__name__, type(model).__name__,
               " or ".join(allowed))
        )
    return ONNX_ACTIVATIONS[name]


def _float_type(input_type, model):
    if isinstance(input_type, (FloatTensorType, DoubleTensorType)):
        return type(input_type)
    if isinstance(input_type, _CAST_TO_DOUBLE):
        return DoubleTensorType
    raise TypeError(
        "%s takes numeric input; the ONNX input is %s. Declare the input as "
        "FloatTensorType or DoubleTensorType, or convert with X[:1] of a float "
        "dtype." % (type(model).__name__, type(input_type).__name__)
    )


def _graph_dtype(operator):
    """The (ONNX type, NumPy dtype) the network computes in."""
    if _float_type(operator.inputs[0].type, operator.raw_operator) is DoubleTensorType:
        return onnx_proto.TensorProto.DOUBLE, np.float64
    return onnx_proto.TensorProto.FLOAT, np.float32


def _check_io(operator, n_outputs):
    """Check the declared input; return its (float output type, batch dim)."""
    model = operator.raw_operator
    check_is_fitted(model)
    if len(operator.inputs) != 1 or len(operator.outputs) != n_outputs:
        raise RuntimeError(
            "%s takes one input and gives %d output(s); got %d and %d."
            % (type(model).__name__, n_outputs, len(operator.inputs),
               len(operator.outputs))
        )
    input_type = operator.inputs[0].type
    out_type = _float_type(input_type, model)
    shape = input_type.shape
    if len(shape) != 2:
        raise ValueError(
            "%s takes a 2-D input (n_samples, n_features); the ONNX input has "
            "shape %s." % (type(model).__name__, shape)
        )
    if isinstance(shape[1], int) and shape[1] != model.n_features_in_:
        raise ValueError(
            "The ONNX input has %d features, but %s is expecting %d features."
            % (shape[1], type(model).__name__, model.n_features_in_)
        )
    return out_type, shape[0]


def _add_constant(scope, container, name, proto, value):
    """Add ``value`` (an ndarray) as an initializer; return its unique name."""
    name = scope.get_unique_variable_name(name)
    tensor = numpy_helper.from_array(value)
    container.add_initializer(name, proto, list(value.shape), tensor)
    return name


def _network_nodes(scope, operator, container, output=None):
    """Write the forward pass of a fitted network as ONNX nodes.

    Reads only ``coefs_``, ``intercepts_``, ``activation`` and
    ``out_activation_``, so every fastbp estimator shares it.

    Parameters
    ----------
    scope : skl2onnx Scope
        Gives unique names.
    operator : skl2onnx Operator
        The operator being converted; ``operator.raw_operator`` is the model.
    container : skl2onnx ModelComponentContainer
        Receives the initializers and nodes.
    output : str, default=None
        The name the output layer writes to; None makes a new one.

    Returns
    -------
    output : str
        The name of the output layer's activations, ``(N, n_outputs_)``.
    """
    model = operator.raw_operator
    n_layers = len(model.coefs_)
    names = model.activation
    if isinstance(names, str):
        names = [names] * (n_layers - 1)
    elif len(names) != n_layers - 1:
        raise ValueError("activation has %d entries for %d hidden layers."
                         % (len(names), n_layers - 1))
    hidden = [_onnx_activation(model, name, "activation", _HIDDEN) for name in names]
    last = _onnx_activation(model, model.out_activation_, "out_activation_",
                            type(model)._output_activations)
    proto, dtype = _graph_dtype(operator)
    if output is None:
        output = scope.get_unique_variable_name("network_output")

    a = operator.inputs[0].full_name
    if not isinstance(operator.inputs[0].type, (FloatTensorType, DoubleTensorType)):
        cast = scope.get_unique_variable_name("cast_input")
        container.add_node("Cast", a, cast, to=proto,
                           name=scope.get_unique_operator_name("Cast"))
        a = cast

    for i, (coef, intercept) in enumerate(zip(model.coefs_, model.intercepts_)):
        is_output = i == n_layers - 1
        activation = last if is_output else hidden[i]
        # Weights are cast to the graph's type, as predict casts them to X's dtype.
        coef_name = _add_constant(scope, container, "coef%d" % i, proto,
                                  np.ascontiguousarray(coef, dtype=dtype))
        intercept_name = _add_constant(scope, container, "intercept%d" % i, proto,
                                       np.ascontiguousarray(intercept, dtype=dtype))
        product = scope.get_unique_variable_name("matmul%d" % i)
        container.add_node("MatMul", [a, coef_name], product,
                           name=scope.get_unique_operator_name("MatMul"))
        if is_output and activation is None:
            z = output
        else:
            z = scope.get_unique_variable_name("z%d" % i)
        container.add_node("Add", [product, intercept_name], z,
                           name=scope.get_unique_operator_name("Add"))
        if activation is None:
            a = z
            continue
        if is_output and _groups(model) is not None:
            _grouped_softmax_nodes(scope, container, z, output, _groups(model))
            a = output
            continue
        a = output if is_output else scope.get_unique_variable_name("a%d" % i)
        _activation_nodes(scope, container, activation, z, a, proto, dtype,
                          float(getattr(model, "leaky_relu_slope", 0.01)))
    return output


def _activation_nodes(scope, container, activation, z, out, proto, dtype, slope):
    """Nodes computing out = activation(z); activation is an ONNX operator
    name, or one of _COMPOSED."""

    def node(op, inputs, output=None, **attrs):
        output = output or scope.get_unique_variable_name(op.lower())
        container.add_node(op, inputs, output, name=scope.get_unique_operator_name(op),
                           **attrs)
        return output

    def constant(name, value):
        return _add_constant(scope, container, name, proto, np.array([value], dtype=dtype))

    def softplus(v, output=None):
        # relu(v) + log(1 + exp(-|v|)): no overflow for large |v|.
        tail = node("Log", [node("Add", [node("Exp", [node("Neg", [node("Abs", [v])])]),
                                         constant("one", 1.0)])])
        return node("Add", [node("Relu", [v]), tail], output)

    def negative_branch(v, value, output=None):
        # value where v <= 0, v itself elsewhere
        return node("Where", [node("Greater", [v, constant("zero", 0.0)]), v, value],
                    output)

    def expm1_negative(v):
        # exp(min(v, 0)) - 1: the negative branch of elu, finite everywhere.
        clipped = node("Min", [v, constant("zero", 0.0)])
        return node("Sub", [node("Exp", [clipped]), constant("one", 1.0)])

    if activation == "gelu":
        # 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))
        z3 = node("Mul", [node("Mul", [z, z]), z])
        inner = node("Add", [z, node("Mul", [z3, constant("gelu_k", 0.044715)])])
        t = node("Tanh", [node("Mul", [inner, constant("gelu_c", np.sqrt(2 / np.pi))])])
        half_z = node("Mul", [z, constant("half", 0.5)])
        node("Mul", [half_z, node("Add", [t, constant("one", 1.0)])], out)
    elif activation == "silu":
        node("Mul", [z, node("Sigmoid", [z])], out)
    elif activation == "mish":
        node("Mul", [z, node("Tanh", [softplus(z)])], out)
    elif activation == "softplus":
        softplus(z, out)
    elif activation == "leaky_relu":
        negative_branch(z, node("Mul", [z, constant("slope", slope)]), out)
    elif activation == "elu":
        negative_branch(z, expm1_negative(z), out)
    elif activation == "selu":
        alpha, scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
        inner = negative_branch(z, node("Mul", [expm1_negative(z),
                                                constant("selu_alpha", alpha)]))
        node("Mul", [inner, constant("selu_scale", scale)], out)
    else:
        # Softmax normalises each row; axis=1 means that in every opset.
        attrs = {"axis": 1} if activation == "Softmax" else {}
        node(activation, [z], out, **attrs)


def _groups(model):
    """The sizes of a grouped softmax output (several label columns), or None."""
    groups = getattr(model, "_output_groups", None)
    return groups() if groups is not None else None


def _block_indices(scope, container, groups):
    """One int64 constant of output columns per block."""
    names, start = [], 0
    for k, size in enumerate(groups):
        names.append(_add_constant(scope, container, "block%d" % k,
                                   onnx_proto.TensorProto.INT64,
                                   np.arange(start, start + size, dtype=np.int64)))
        start += size
    return names


def _grouped_softmax_nodes(scope, container, z, output, groups):
    """output = Concat(Softmax(z[:, block]) for each block), as the core
    computes a softmax per label column."""
    parts = []
    for k, columns in enumerate(_block_indices(scope, container, groups)):
        block = scope.get_unique_variable_name("z_block%d" % k)
        container.add_node("Gather", [z, columns], block, axis=1,
                           name=scope.get_unique_operator_name("Gather"))
        proba = scope.get_unique_variable_name("proba_block%d" % k)
        container.add_node("Softmax", block, proba, axis=1,
                           name=scope.get_unique_operator_name("Softmax"))
        parts.append(proba)
    container.add_node("Concat", parts, output, axis=1,
                       name=scope.get_unique_operator_name("Concat"))


# ------------------------------------------------------------ BPRegressor


def bp_regressor_shape_calculator(operator):
    """Declare the output as ``(N, n_outputs_)`` in the input's float type.

    Parameters
    ----------
    operator : skl2onnx Operator
        The operator being converted; ``operator.raw_operator`` is the model.
    """
    out_type, n = _check_io(operator, 1)
    operator.outputs[0].type = out_type([n, operator.raw_operator.n_outputs_])


def convert_bp_regressor(scope, operator, container):
    """Write the forward pass of a fitted BPRegressor as ONNX nodes.

    Parameters
    ----------
    scope : skl2onnx Scope
        Gives unique names.
    operator : skl2onnx Operator
        The operator being converted; ``operator.raw_operator`` is the model.
    container : skl2onnx ModelComponentContainer
        Receives the initializers and nodes.
    """
    _network_nodes(scope, operator, container, output=operator.outputs[0].full_name)


# ----------------------------------------------------------- BPClassifier


def _is_multilabel(model):
    return model._label_binarizer.y_type_ == _MULTILABEL


def _column_labels(model, nocl):
    """The (ONNX type, [array per column]) of a model of several label columns:
    one label tensor needs every column to be int64, or every one strings."""
    values = []
    for classes in model.classes_:
        column = copy.copy(model)
        column.classes_ = classes
        values.append(_label_values(column, nocl))
    kinds = {proto for proto, _ in values}
    if len(kinds) > 1:
        raise NotImplementedError(
            "The label columns of this %s mix string and integer classes, which "
            "one ONNX label tensor cannot hold; use the nocl option (class "
            "indices) or export one model per column." % type(model).__name__
        )
    return kinds.pop(), [v for _, v in values]


def _label_values(model, nocl=False):
    """``classes_`` as the (ONNX type, array) of the label tensor.

    As skl2onnx does for its classifiers: integer, boolean and integral float
    classes become int64, strings stay strings; with the ``nocl`` option the
    labels are the class indices.
    """
    classes = np.asarray(model.classes_)
    if nocl:
        return onnx_proto.TensorProto.INT64, np.arange(len(classes), dtype=np.int64)
    if classes.dtype == np.bool_ or np.issubdtype(classes.dtype, np.integer):
        return onnx_proto.TensorProto.INT64, classes.astype(np.int64)
    if np.issubdtype(classes.dtype, np.floating):
        as_int = classes.astype(np.int64)
        if np.array_equal(as_int, classes):
            return onnx_proto.TensorProto.INT64, as_int
    elif all(isinstance(c, str) for c in classes):
        return onnx_proto.TensorProto.STRING, classes.astype(object)
    raise NotImplementedError(
        "fastbp.onnx writes class labels as int64 or strings; the classes of "
        "this %s are %r (dtype %s). Fit it on integer or string labels."
        % (type(model).__name__, classes[:5], classes.dtype)
    )


def bp_classifier_shape_calculator(operator):
    """Declare ``label`` and ``probabilities`` as skl2onnx's classifiers do.

    Parameters
    ----------
    operator : skl2onnx Operator
        The operator being converted; ``operator.raw_operator`` is the model.
    """
    out_type, n = _check_io(operator, 2)
    model = operator.raw_operator
    if model._is_multioutput():
        proto = _column_labels(model, _nocl(operator))[0]
        label_type = (StringTensorType if proto == onnx_proto.TensorProto.STRING
                      else Int64TensorType)
        operator.outputs[0].type = label_type([n, len(model.classes_)])
        operator.outputs[1].type = out_type([n, model.n_outputs_])
        return
    n_classes = len(model.classes_)
    if _is_multilabel(model):
        label_type = Int64TensorType([n, n_classes])
    elif _label_values(model, _nocl(operator))[0] == onnx_proto.TensorProto.STRING:
        label_type = StringTensorType([n])
    else:
        label_type = Int64TensorType([n])
    operator.outputs[0].type = label_type
    operator.outputs[1].type = out_type([n, n_classes])


def convert_bp_classifier(scope, operator, container):
    """Write a fitted BPClassifier as its network and a classification head.

    Binary: Sigmoid, ``Concat[1 - p, p]``, ``ArgMax``, ``Gather(classes_)``.
    Multiclass: Softmax, ``ArgMax``, ``Gather(classes_)``. Multilabel:
    Sigmoid, ``Greater(0.5)``, ``Cast`` to int64. Ties go to the first class,
    and ``p = 0.5`` to the negative one, as in ``predict``.

    Parameters
    ----------
    scope : skl2onnx Scope
        Gives unique names.
    operator : skl2onnx Operator
        The operator being converted; ``operator.raw_operator`` is the model.
    container : skl2onnx ModelComponentContainer
        Receives the initializers and nodes.
    """
    model = operator.raw_operator
    label, proba = (v.full_name for v in operator.outputs)
    proto, dtype = _graph_dtype(operator)

    if model._is_multioutput():
        _network_nodes(scope, operator, container, output=proba)
        label_proto, values = _column_labels(model, _nocl(operator))
        blocks = _block_indices(scope, container, _groups(model))
        labels = []
        for k, (classes, columns) in enumerate(zip(values, blocks)):
            classes_name = scope.get_unique_variable_name("classes%d" % k)
            if label_proto == onnx_proto.TensorProto.STRING:
                container.add_initializer(classes_name, label_proto, [len(classes)],
                                          [c.encode("utf-8") for c in classes])
            else:
                container.add_initializer(classes_name, label_proto, [len(classes)],
                                          numpy_helper.from_array(classes))
            block = scope.get_unique_variable_name("proba_column%d" % k)
            container.add_node("Gather", [proba, columns], block, axis=1,
                               name=scope.get_unique_operator_name("Gather"))
            index = scope.get_unique_variable_name("class_index%d" % k)
            container.add_node("ArgMax", block, index, axis=1, keepdims=1,
                               name=scope.get_unique_operator_name("ArgMax"))
            labels.append(scope.get_unique_variable_name("label%d" % k))
            container.add_node("Gather", [classes_name, index], labels[-1], axis=0,
                               name=scope.get_unique_operator_name("Gather"))
        container.add_node("Concat", labels, label, axis=1,
                           name=scope.get_unique_operator_name("Concat"))
        return

    if _is_multilabel(model):
        _network_nodes(scope, operator, container, output=proba)
        half = _add_constant(scope, container, "half", proto, np.array(0.5, dtype=dtype))
        above = scope.get_unique_variable_name("above_half")
        container.add_node("Greater", [proba, half], above,
                           name=scope.get_unique_operator_name("Greater"))
        container.add_node("Cast", above, label, to=onnx_proto.TensorProto.INT64,
                           name=scope.get_unique_operator_name("Cast"))
        return

    if model.n_outputs_ == 1:
        p = _network_nodes(scope, operator, container)
        one = _add_constant(scope, container, "one", proto, np.array(1.0, dtype=dtype))
        negative = scope.get_unique_variable_name("negative_proba")
        container.add_node("Sub", [one, p], negative,
                           name=scope.get_unique_operator_name("Sub"))
        container.add_node("Concat", [negative, p], proba, axis=1,
                           name=scope.get_unique_operator_name("Concat"))
    else:
        _network_nodes(scope, operator, container, output=proba)

    label_proto, classes = _label_values(model, _nocl(operator))
    classes_name = scope.get_unique_variable_name("classes")
    if label_proto == onnx_proto.TensorProto.STRING:
        container.add_initializer(classes_name, label_proto, [len(classes)],
                                  [c.encode("utf-8") for c in classes])
    else:
        container.add_initializer(classes_name, label_proto, [len(classes)],
                                  numpy_helper.from_array(classes))
    index = scope.get_unique_variable_name("class_index")
    container.add_node("ArgMax", proba, index, axis=1, keepdims=0,
                       name=scope.get_unique_operator_name("ArgMax"))
    container.add_node("Gather", [classes_name, index], label, axis=0,
                       name=scope.get_unique_operator_name("Gather"))


def _nocl(operator):
    """Whether the ``nocl`` option asks for class indices instead of labels."""
    options = operator.scope_inst.get_options(operator.raw_operator, dict(nocl=False))
    return bool(options["nocl"])


def _parse_bp_classifier(scope, model, inputs, custom_parsers=None):
    """Declare ``label`` and ``probabilities``; add a ZipMap only when asked."""
    options = scope.get_options(model, dict(zipmap=False))
    operator = scope.declare_local_operator(CLASSIFIER_ALIAS, model)
    operator.inputs = inputs
    # The types are placeholders; the shape calculator sets the real ones.
    operator.outputs.append(scope.declare_local_variable("label", Int64TensorType()))
    operator.outputs.append(
        scope.declare_local_variable("probabilities", FloatTensorType())
    )
    zipmap = options["zipmap"]
    if zipmap is False:
        return operator.outputs
    if model._is_multioutput() or _is_multilabel(model):
        raise ValueError(
            "A %s %s has no ZipMap form: its label output is a matrix. Convert it "
            "with options={%s: {'zipmap': False}}."
            % ("multi-column" if model._is_multioutput() else "multilabel",
               type(model).__name__, type(model).__name__)
        )
    if not isinstance(inputs[0].type, FloatTensorType):
        # ONNX's ZipMap takes float32 probabilities only.
        raise ValueError(
            "A ZipMap (option zipmap=%r) needs a float32 graph, but the ONNX input "
            "is %s. Convert with float32 input, or keep the probabilities a tensor "
            "with options={%s: {'zipmap': False}}."
            % (zipmap, type(inputs[0].type).__name__, type(model).__name__)
        )
    # skl2onnx's own ZipMap step, the one its built-in classifiers end with.
    from skl2onnx._parse import _apply_zipmap

    return _apply_zipmap(zipmap, scope, model, inputs[0].type, operator.outputs)


update_registered_converter(
    BPRegressor, ALIAS, bp_regressor_shape_calculator, convert_bp_regressor
)
update_registered_converter(
    BPClassifier, CLASSIFIER_ALIAS, bp_classifier_shape_calculator,
    convert_bp_classifier, parser=_parse_bp_classifier,
    options={"zipmap": [False, True, "columns"], "nocl": [False, True]},
)
