# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""ONNX export: importing this module registers BPRegressor with skl2onnx.

After ``import fastbp.onnx``, ``skl2onnx.to_onnx`` converts a ``BPRegressor``,
or any pipeline that contains one, like a built-in scikit-learn model::

    import fastbp.onnx  # noqa: F401 (registers the converter)
    from skl2onnx import to_onnx

    onx = to_onnx(pipeline, X[:1])

The graph is one ``MatMul`` and one ``Add`` per layer, each followed by the
layer's activation (``Relu``, ``Tanh``, ``Sigmoid``, nothing for identity, and
``Exp`` for the output of a Poisson model). The output has shape
``(n_samples, n_outputs_)`` in the input's float type: float32 input gives a
float32 graph, float64 input a float64 graph, and integer or boolean input is
cast to float64, as ``predict`` does. skl2onnx's own ``MLPRegressor`` converter
is not used because it cannot express the ``exp`` output and flattens several
outputs into one column.

Requires the ``onnx`` extra: ``pip install fastbp[onnx]``.
"""

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
    )
    from skl2onnx.proto import onnx_proto
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "fastbp.onnx needs skl2onnx and onnx: pip install fastbp[onnx] (%s)" % exc
    ) from exc

from ._regressor import BPRegressor

__all__ = ["ALIAS", "ONNX_ACTIVATIONS"]

#: The name under which the converter is registered with skl2onnx.
ALIAS = "FastbpBPRegressor"

#: ONNX operator for each activation name (None: no operator needed).
ONNX_ACTIVATIONS = {
    "identity": None,
    "logistic": "Sigmoid",
    "tanh": "Tanh",
    "relu": "Relu",
    "exp": "Exp",
}
_CAST_TO_DOUBLE = (Int64TensorType, Int32TensorType, BooleanTensorType)


def _onnx_activation(model, name, where):
    if not isinstance(name, str) or name not in ONNX_ACTIVATIONS:
        raise NotImplementedError(
            "fastbp.onnx cannot express %s=%r of %s in ONNX; it converts %s. "
            "Use pickle, joblib or fastbp's own format (est.save) for this model."
            % (where, name, type(model).__name__, ", ".join(sorted(ONNX_ACTIVATIONS)))
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


def bp_regressor_shape_calculator(operator):
    """Declare the output as ``(N, n_outputs_)`` in the input's float type.

    Parameters
    ----------
    operator : skl2onnx Operator
        The operator being converted; ``operator.raw_operator`` is the model.
    """
    model = operator.raw_operator
    check_is_fitted(model)
    if len(operator.inputs) != 1 or len(operator.outputs) != 1:
        raise RuntimeError(
            "%s takes one input and gives one output; got %d and %d."
            % (type(model).__name__, len(operator.inputs), len(operator.outputs))
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
    operator.outputs[0].type = out_type([shape[0], model.n_outputs_])


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
    model = operator.raw_operator
    n_layers = len(model.coefs_)
    hidden = _onnx_activation(model, model.activation, "activation")
    last = _onnx_activation(model, model.out_activation_, "out_activation_")
    out_type = _float_type(operator.inputs[0].type, model)
    if out_type is DoubleTensorType:
        proto, dtype = onnx_proto.TensorProto.DOUBLE, np.float64
    else:
        proto, dtype = onnx_proto.TensorProto.FLOAT, np.float32

    a = operator.inputs[0].full_name
    if not isinstance(operator.inputs[0].type, (FloatTensorType, DoubleTensorType)):
        cast = scope.get_unique_variable_name("cast_input")
        container.add_node("Cast", a, cast, to=proto,
                           name=scope.get_unique_operator_name("Cast"))
        a = cast

    for i, (coef, intercept) in enumerate(zip(model.coefs_, model.intercepts_)):
        is_output = i == n_layers - 1
        activation = last if is_output else hidden
        coef_name = scope.get_unique_variable_name("coef%d" % i)
        intercept_name = scope.get_unique_variable_name("intercept%d" % i)
        # Weights are cast to the graph's type, as predict casts them to X's dtype.
        for name, value in ((coef_name, coef), (intercept_name, intercept)):
            tensor = numpy_helper.from_array(np.ascontiguousarray(value, dtype=dtype))
            container.add_initializer(name, proto, list(value.shape), tensor)
        product = scope.get_unique_variable_name("matmul%d" % i)
        container.add_node("MatMul", [a, coef_name], product,
                           name=scope.get_unique_operator_name("MatMul"))
        if is_output and activation is None:
            z = operator.outputs[0].full_name
        else:
            z = scope.get_unique_variable_name("z%d" % i)
        container.add_node("Add", [product, intercept_name], z,
                           name=scope.get_unique_operator_name("Add"))
        if activation is None:
            a = z
            continue
        a = operator.outputs[0].full_name if is_output else (
            scope.get_unique_variable_name("a%d" % i))
        container.add_node(activation, z, a,
                           name=scope.get_unique_operator_name(activation))


update_registered_converter(
    BPRegressor, ALIAS, bp_regressor_shape_calculator, convert_bp_regressor
)
