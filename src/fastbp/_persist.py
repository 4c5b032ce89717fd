# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Saving and loading fitted models without pickle.

File format, version 1
----------------------
A model file is a zip archive that ``numpy.load(path, allow_pickle=False)`` also
opens as an ``.npz``. It holds:

``metadata.json``
    UTF-8 JSON: ``"format": "fastbp-model"``, ``"format_version"``, the versions
    of fastbp, scikit-learn and NumPy that wrote it, ``"estimator"`` (the class
    name), ``"params"`` (``get_params()``), ``"attributes"`` (the fitted state)
    and ``"arrays"`` (dtype, shape and SHA-256 of every array member).
``<name>.npy``
    One member per array: the weights, Adam moments or SGD velocities, and the
    loss and validation curves, each a little-endian float32 or float64 ``.npy``
    in C order (the state of a ``RandomState`` passed as ``random_state`` is
    uint32).

In the JSON, a value that is not plain JSON is a one-key object:
``{"$array": name}`` (a numeric array member), ``{"$floats": name}`` (a list of
floats kept as a float64 array member, so NaN and infinity survive),
``{"$float": "inf"}`` (a non-finite float), ``{"$strings": [...]}`` (an array of
strings such as ``feature_names_in_``) and ``{"$random_state": {...}}``.

Loading never unpickles and never imports a class by name: the estimator name
is looked up in a fixed table, every member's header, size and checksum are
checked before its bytes are read, and the hyperparameters and shapes are
validated before the model is returned. The checksums catch corruption and
accidental edits; they are not signatures, so only load models from sources
you trust to give you the model they say.
"""

import hashlib
import io
import json
import math
import os
import tempfile
import zipfile
from numbers import Integral, Real

import numpy as np
import sklearn
from sklearn.utils.validation import check_is_fitted

FORMAT = "fastbp-model"
FORMAT_VERSION = 1
_METADATA = "metadata.json"
_MAX_METADATA_BYTES = 16 << 20
_MAX_MEMBERS = 100_000
_FLOAT_DTYPES = ("<f4", "<f8")
_RNG_DTYPE = "<u4"
# Fixed member timestamps make saving the same model twice give the same bytes.
_DATE_TIME = (1980, 1, 1, 0, 0, 0)

# Fitted state, in the order it is written. Anything else in __dict__ is
# rebuilt by the next fit (``_random_state`` is drawn afresh from
# ``random_state`` by every call) or belongs to the running process
# (callbacks).
_ATTRIBUTES = (
    "n_features_in_",
    "feature_names_in_",
    "n_outputs_",
    "n_layers_",
    "out_activation_",
    "coefs_",
    "intercepts_",
    "n_iter_",
    "t_",
    "loss_",
    "best_loss_",
    "loss_curve_",
    "validation_scores_",
    "best_validation_score_",
    "_best_coefs",
    "_best_intercepts",
    "_no_improvement_count",
    "_optimizer_state",
)
_NOT_SAVED = ("_random_state", "_skl_callbacks", "_callback_fit_ctx",
              "_skl_callbacks_to_teardown", "_parent_callback_ctx",
              "_metadata_request")


class ModelFileError(ValueError):
    """A model file that cannot be loaded: foreign, truncated, corrupted or invalid."""


def _estimator_classes():
    from ._regressor import BPRegressor

    return {"BPRegressor": BPRegressor}


# ------------------------------------------------------------------- saving


class _Writer:
    """Turn estimator state into JSON values plus named array members."""

    def __init__(self):
        self.arrays = {}

    def array(self, name, value, dtype=None):
        a = np.ascontiguousarray(value, dtype=dtype)
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        if a.dtype.str not in _FLOAT_DTYPES + (_RNG_DTYPE,) or a.ndim > 2:
            raise TypeError(
                "Cannot save %s, an array of dtype %s and %d dimensions, in the "
                "fastbp format; use pickle or joblib for this model."
                % (name, a.dtype, a.ndim)
            )
        self.arrays[name] = a
        return {"$array": name}

    def encode(self, name, value):
        """JSON for one attribute or parameter called ``name``."""
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, (Integral, np.integer)):
            return int(value)
        if isinstance(value, (Real, np.floating)):
            value = float(value)
            return value if math.isfinite(value) else {"$float": repr(value)}
        if isinstance(value, np.random.RandomState):
            kind, key, pos, has_gauss, gauss = value.get_state()
            return {"$random_state": {
                "bit_generator": kind,
                "key": self.array(name, key, dtype=np.uint32),
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "cached_gaussian": self.encode(name, gauss),
            }}
        if isinstance(value, np.ndarray) and value.dtype.kind in "OUS":
            return {"$strings": [str(v) for v in value]}
        if isinstance(value, np.ndarray):
            return self.array(name, value)
        if isinstance(value, dict):
            return {k: self.encode("%s.%s" % (name, k), v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            is_curve = name.endswith("_curve_") or name.endswith("_scores_")
            if is_curve and not all(isinstance(v, np.ndarray) for v in value):
                self.array(name, np.asarray(value, dtype=np.float64))
                return {"$floats": name}
            return [self.encode("%s.%d" % (name, i), v)
                    for i, v in enumerate(value)]
        raise TypeError(
            "Cannot save %s=%r (type %s) in the fastbp format; use pickle or joblib "
            "for this model." % (name, value, type(value).__name__)
        )


def save(estimator, path):
    """Save a fitted estimator to ``path`` in fastbp's pickle-free format.

    Parameters
    ----------
    estimator : BPRegressor
        A fitted estimator.
    path : str, path-like or binary file object
        Where to write. A path is written atomically: a file that is already
        there is only replaced once the new one is complete.

    See Also
    --------
    fastbp.load : Read the model back.
    """
    classes = _estimator_classes()
    name = type(estimator).__name__
    if classes.get(name) is not type(estimator):
        raise TypeError(
            "fastbp's format saves %s; got %s. Use pickle or joblib for it."
            % (", ".join(classes), type(estimator).__qualname__)
        )
    check_is_fitted(estimator)
    unknown = sorted(
        k for k in vars(estimator)
        if k not in _ATTRIBUTES and k not in _NOT_SAVED
        and k not in estimator.get_params(deep=False)
    )
    if unknown:
        # A new attribute must be added to the format, or the loaded model would
        # silently differ from the saved one.
        raise TypeError("fastbp's format does not know the attributes %s." % unknown)

    from . import __version__

    writer = _Writer()
    params = {k: writer.encode("params." + k, v)
              for k, v in estimator.get_params(deep=False).items()}
    attributes = {k: writer.encode(k, getattr(estimator, k))
                  for k in _ATTRIBUTES if hasattr(estimator, k)}
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fastbp_version": __version__,
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "estimator": name,
        "params": params,
        "attributes": attributes,
        "arrays": {
            k: {"dtype": a.dtype.str, "shape": list(a.shape),
                "sha256": hashlib.sha256(a.tobytes()).hexdigest()}
            for k, a in writer.arrays.items()
        },
    }
    text = json.dumps(metadata, indent=1, allow_nan=False)

    if hasattr(path, "write"):
        _write_zip(path, text, writer.arrays)
        return
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastbp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_zip(f, text, writer.arrays)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _write_zip(f, text, arrays):
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(zipfile.ZipInfo(_METADATA, _DATE_TIME), text.encode("utf-8"),
                    compress_type=zipfile.ZIP_DEFLATED)
        for name, a in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, a, allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(name + ".npy", _DATE_TIME), buf.getvalue())


# ------------------------------------------------------------------ loading


def load(path):
    """Load a model saved by ``BPRegressor.save``.

    The file is checked before anything is built from it, and nothing in it
    is ever unpickled or executed.

    Parameters
    ----------
    path : str, path-like or binary file object
        The model file.

    Returns
    -------
    estimator : BPRegressor
        The fitted estimator. It predicts bit-identically to the saved one and
        continues training with ``partial_fit`` where the saved one stood.

    Raises
    ------
    ValueError
        When the file is not a fastbp model, is truncated or corrupted, was
        written by a newer format version, or holds invalid values.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> import fastbp
    >>> X = np.linspace(0, 1, 40).reshape(20, 2)
    >>> y = X.sum(axis=1)
    >>> est = fastbp.BPRegressor(hidden_layer_sizes=(3,), max_iter=300,
    ...                          random_state=0).fit(X, y)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> est.save(path)
    >>> loaded = fastbp.load(path)
    >>> bool((loaded.predict(X) == est.predict(X)).all())
    True
    """
    if hasattr(path, "read"):
        where, label = path, str(getattr(path, "name", "the model file"))
    else:
        where = label = os.fspath(path)
    try:
        with zipfile.ZipFile(where) as zf:
            return _load_zip(zf, label)
    except zipfile.BadZipFile as exc:
        raise ModelFileError(
            "%s is not a fastbp model file, or it is truncated or corrupted (%s)."
            % (label, exc)
        ) from None
    except (EOFError, zipfile.LargeZipFile, NotImplementedError) as exc:
        raise ModelFileError(
            "%s is truncated or corrupted (%s)." % (label, exc)
        ) from None


def _load_zip(zf, label):
    infos = zf.infolist()
    if len(infos) > _MAX_MEMBERS:
        raise ModelFileError("%s is not a fastbp model file." % label)
    members = {info.filename: info for info in infos}
    if _METADATA not in members:
        raise ModelFileError(
            "%s is not a fastbp model file: it has no %s." % (label, _METADATA)
        )
    metadata = _read_metadata(zf, members[_METADATA], label)

    expected = {_METADATA} | {k + ".npy" for k in metadata["arrays"]}
    if set(members) != expected:
        raise ModelFileError(
            "%s does not hold the members its metadata lists (extra: %s, missing: %s)."
            % (label, sorted(set(members) - expected), sorted(expected - set(members)))
        )
    arrays = {
        name: _read_array(zf, members[name + ".npy"], spec, label)
        for name, spec in metadata["arrays"].items()
    }
    try:
        return _build(metadata, arrays)
    except ModelFileError as exc:
        raise ModelFileError("%s: %s" % (label, exc)) from None


def _reject_constant(name):
    raise ValueError("non-standard JSON constant %s" % name)


def _no_duplicates(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise ValueError("duplicate key %r" % key)
        result[key] = value
    return result


def _read_metadata(zf, info, label):
    with zf.open(info) as f:
        raw = f.read(_MAX_METADATA_BYTES + 1)
    if len(raw) > _MAX_METADATA_BYTES:
        raise ModelFileError("%s: %s is too large." % (label, _METADATA))
    try:
        metadata = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant,
                              object_pairs_hook=_no_duplicates)
    except ValueError as exc:
        raise ModelFileError(
            "%s: %s is not valid JSON (%s)." % (label, _METADATA, exc)
        ) from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ModelFileError(
            "%s is not a fastbp model file (its %s does not say format %r)."
            % (label, _METADATA, FORMAT)
        )
    version = metadata.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError("%s: invalid format_version %r." % (label, version))
    if version > FORMAT_VERSION:
        from . import __version__

        raise ModelFileError(
            "%s was written in format version %d by fastbp %s; this fastbp (%s) "
            "reads format version %d and older. Upgrade fastbp to load it."
            % (label, version, metadata.get("fastbp_version", "?"), __version__,
               FORMAT_VERSION)
        )
    for key, kind in (("estimator", str), ("params", dict), ("attributes", dict),
                      ("arrays", dict)):
        if not isinstance(metadata.get(key), kind):
            raise ModelFileError(
                "%s: %s has no valid %r entry." % (label, _METADATA, key)
            )
    for name, spec in metadata["arrays"].items():
        if not (
            isinstance(spec, dict)
            and spec.get("dtype") in _FLOAT_DTYPES + (_RNG_DTYPE,)
            and isinstance(spec.get("shape"), list)
            and len(spec["shape"]) <= 2
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                    for n in spec["shape"])
            and isinstance(spec.get("sha256"), str)
        ):
            raise ModelFileError("%s: invalid description of array %r." % (label, name))
    return metadata


def _read_array(zf, info, spec, label):
    """Read one .npy member after checking its header against the metadata."""
    name = info.filename
    with zf.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError("unsupported .npy version %s" % (version,))
        except ValueError as exc:
            raise ModelFileError("%s: %s is not a valid .npy array (%s)."
                                 % (label, name, exc)) from None
        if dtype.hasobject or dtype.str != spec["dtype"] or fortran or (
            list(shape) != spec["shape"]
        ):
            raise ModelFileError(
                "%s: %s holds %s%s of shape %s where the metadata says %s of shape %s."
                % (label, name, dtype, " (Fortran order)" if fortran else "",
                   list(shape), spec["dtype"], spec["shape"])
            )
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes > info.file_size:
            raise ModelFileError("%s: %s is truncated." % (label, name))
        data = f.read(nbytes)
        if len(data) != nbytes or f.read(1):
            raise ModelFileError("%s: %s does not have the size its header says."
                                 % (label, name))
    if hashlib.sha256(data).hexdigest() != spec["sha256"]:
        raise ModelFileError(
            "%s: the checksum of %s does not match; the file was modified or "
            "corrupted." % (label, name)
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


class _Reader:
    """Turn JSON values back into Python values, using the loaded arrays."""

    def __init__(self, arrays):
        self.arrays = arrays
        self.used = set()

    def array(self, name, dtypes=_FLOAT_DTYPES):
        if not isinstance(name, str) or name not in self.arrays:
            raise ModelFileError("reference to a missing array %r." % (name,))
        a = self.arrays[name]
        if a.dtype.str not in dtypes:
            raise ModelFileError("array %r has dtype %s." % (name, a.dtype))
        self.used.add(name)
        return a

    def decode(self, value):
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, list):
            return [self.decode(v) for v in value]
        if not isinstance(value, dict):
            raise ModelFileError("unexpected value %r." % (value,))
        if len(value) == 1:
            (tag, content), = value.items()
            if tag == "$array":
                return self.array(content)
            if tag == "$floats":
                return [float(v) for v in self.array(content, ("<f8",))]
            if tag == "$float":
                if content not in ("inf", "-inf", "nan"):
                    raise ModelFileError("invalid float %r." % (content,))
                return float(content)
            if tag == "$strings":
                if not (isinstance(content, list)
                        and all(isinstance(s, str) for s in content)):
                    raise ModelFileError("invalid list of strings.")
                return np.asarray(content, dtype=object)
            if tag == "$random_state":
                return self.random_state(content)
        return {k: self.decode(v) for k, v in value.items()}

    def random_state(self, content):
        try:
            key = self.array(content["key"]["$array"], (_RNG_DTYPE,))
            state = (content["bit_generator"], key, content["pos"],
                     content["has_gauss"], self.decode(content["cached_gaussian"]))
            rng = np.random.RandomState()
            rng.set_state(state)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError("invalid random_state (%s)." % exc) from None
        return rng


def _build(metadata, arrays):
    classes = _estimator_classes()
    cls = classes.get(metadata["estimator"])
    if cls is None:
        raise ModelFileError("unknown estimator %r (known: %s)."
                             % (metadata["estimator"], ", ".join(classes)))
    reader = _Reader(arrays)

    params = {k: reader.decode(v) for k, v in metadata["params"].items()}
    valid = cls().get_params(deep=False)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ModelFileError(
            "unknown hyperparameters %s; the file may come from a newer fastbp."
            % unknown
        )
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    estimator = cls(**params)
    try:
        estimator._validate_params()
    except ValueError as exc:
        raise ModelFileError("invalid hyperparameters (%s)." % exc) from None

    attributes = metadata["attributes"]
    unknown = sorted(set(attributes) - set(_ATTRIBUTES))
    if unknown:
        raise ModelFileError("unknown attributes %s." % unknown)
    for name, value in attributes.items():
        setattr(estimator, name, reader.decode(value))
    unused = sorted(set(arrays) - reader.used)
    if unused:
        raise ModelFileError("arrays %s are not used by any attribute." % unused)
    _check_state(estimator)
    return estimator


def _check_int(est, name, minimum=0):
    value = getattr(est, name)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ModelFileError("invalid %s=%r." % (name, value))


def _check_float(est, name, allow_none=False):
    value = getattr(est, name)
    if value is None and allow_none:
        return
    if not isinstance(value, float):
        raise ModelFileError("invalid %s=%r." % (name, value))


def _check_arrays(name, values, shapes, dtype):
    if not isinstance(values, list) or len(values) != len(shapes):
        raise ModelFileError("%s must be a list of %d arrays." % (name, len(shapes)))
    for i, (a, shape) in enumerate(zip(values, shapes)):
        if not isinstance(a, np.ndarray) or a.shape != shape or a.dtype != dtype:
            raise ModelFileError(
                "%s[%d] must be a %s array of shape %s." % (name, i, dtype, shape)
            )


def _check_state(est):
    """Check that the fitted state is complete and consistent before use."""

    required = ("n_features_in_", "n_outputs_", "n_layers_", "out_activation_",
                "coefs_", "intercepts_")
    missing = [name for name in required if not hasattr(est, name)]
    if missing:
        raise ModelFileError("the fitted attributes %s are missing." % missing)
    coefs = est.coefs_
    if not isinstance(coefs, list) or not coefs or not all(
        isinstance(c, np.ndarray) and c.ndim == 2 for c in coefs
    ):
        raise ModelFileError("coefs_ must be a non-empty list of 2-D arrays.")
    dtype = coefs[0].dtype
    units = [coefs[0].shape[0]] + [c.shape[1] for c in coefs]
    coef_shapes = list(zip(units[:-1], units[1:]))
    intercept_shapes = [(n,) for n in units[1:]]
    _check_arrays("coefs_", coefs, coef_shapes, dtype)
    _check_arrays("intercepts_", est.intercepts_, intercept_shapes, dtype)
    for name in ("n_features_in_", "n_outputs_", "n_layers_"):
        _check_int(est, name, minimum=1)
    if (est.n_features_in_, est.n_outputs_, est.n_layers_) != (
        units[0], units[-1], len(units)
    ):
        raise ModelFileError(
            "n_features_in_, n_outputs_ and n_layers_ do not match the weights."
        )
    if hasattr(est, "feature_names_in_") and (
        est.feature_names_in_.shape != (est.n_features_in_,)
    ):
        raise ModelFileError("feature_names_in_ does not match n_features_in_.")
    if est.out_activation_ not in type(est)._output_activations:
        raise ModelFileError("unknown out_activation_=%r." % (est.out_activation_,))

    for name in ("n_iter_", "t_", "_no_improvement_count"):
        if hasattr(est, name):
            _check_int(est, name)
    for name in ("loss_", "best_loss_", "best_validation_score_"):
        if hasattr(est, name):
            _check_float(est, name, allow_none=name != "loss_")
    for name in ("loss_curve_", "validation_scores_"):
        value = getattr(est, name, None)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(v, float) for v in value)
        ):
            raise ModelFileError("%s must be a list of floats." % name)
    for name, shapes in (("_best_coefs", coef_shapes),
                         ("_best_intercepts", intercept_shapes)):
        if hasattr(est, name):
            _check_arrays(name, getattr(est, name), shapes, dtype)

    state = getattr(est, "_optimizer_state", None)
    if state is not None:
        if not (
            isinstance(state, dict)
            and set(state) == {"solver", "learning_rate", "t", "moments"}
            and state["solver"] in ("sgd", "adam")
            and isinstance(state["learning_rate"], float)
            and isinstance(state["t"], int) and not isinstance(state["t"], bool)
        ):
            raise ModelFileError("invalid optimizer state.")
        n_moments = 2 if state["solver"] == "adam" else 1
        _check_arrays("optimizer moments", state["moments"],
                      n_moments * (coef_shapes + intercept_shapes), dtype)
