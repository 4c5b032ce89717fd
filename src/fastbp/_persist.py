# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Saving and loading fitted models without pickle.

File format, versions 1 and 2
-----------------------------
A model file is a zip archive that ``numpy.load(path, allow_pickle=False)`` also
opens as an ``.npz``. It holds:

``metadata.json``
    UTF-8 JSON: ``"format": "fastbp-model"``, ``"format_version"``, the versions
    of fastbp, scikit-learn and NumPy that wrote it, ``"estimator"`` (the class
    name), ``"params"`` (``get_params()``), ``"attributes"`` (the fitted state)
    and ``"arrays"`` (dtype, shape and SHA-256 of every array member).
``<name>.npy``
    One member per array, stored uncompressed: the weights, Adam moments or SGD
    velocities, and the loss and validation curves, each a little-endian float32
    or float64 ``.npy`` in C order (the state of a ``RandomState`` passed as
    ``random_state`` is uint32).

In the JSON, a value that is not plain JSON is a one-key object:
``{"$array": name}`` (a numeric array member), ``{"$floats": name}`` (a list of
floats kept as a float64 array member, so NaN and infinity survive),
``{"$float": "inf"}`` (a non-finite float), ``{"$strings": [...]}`` (an array of
strings such as ``feature_names_in_``), ``{"$random_state": {...}}`` and
``{"$labels": {"kind": ..., "dtype": ..., "values": [...]}}`` (a classifier's
``classes_``: ``kind`` is ``int``, ``bool``, ``float``, ``str`` or ``object``,
``dtype`` the exact NumPy dtype, such as ``"<i8"`` or ``"<U5"``).

A file is written in format version 1 unless it holds ``$labels``, which needs
version 2; so regressor files stay readable by every fastbp, and an older fastbp
asked to load a classifier says to upgrade. A classifier of several label
columns stores ``classes_`` as a list of ``$labels``, one per column (readers
from before that feature refuse such a file with a ModelFileError).

Format version 3 holds a scikit-learn pipeline around a network: in place of
``params`` and ``attributes``, a ``"model"`` tree that
:mod:`fastbp._pipeline_persist` describes and checks. Any version may carry
``"training"``, a summary of how the model was trained (what ``fastbp fit``
reported), checked for its shape and size and shown by ``fastbp info``; older
readers ignore it.

Which classes can be saved
--------------------------
An estimator module calls :func:`register` on its class at its bottom, and
``save``/``load`` only handle the classes in that fixed table: loading never
imports a class by name. The schema comes from the class:
``cls._fitted_attributes`` is the ordered tuple of fitted attributes that are
saved, ``cls._derived_attributes`` (optional) those that are never saved
because ``est._after_load()`` rebuilds them; ``_after_load`` may also raise
``ValueError`` for a state it finds inconsistent.

A model file is untrusted input
-------------------------------
Loading never unpickles and never imports anything. It reads ``metadata.json``
(at most 16 MiB and 64 levels of nesting), checks every hyperparameter and
fitted attribute against what fastbp could have written (types, ranges,
lengths and shapes, and their consistency with each other and with the
hyperparameters), and only then reads the arrays: each member's compression
method, ``.npy`` header, size and checksum are checked, and no member is read
past the size that the metadata declares. The declared sizes must fit within
``load(..., max_bytes=...)``, so a small file cannot make ``load`` allocate much
memory. Every failure raises :class:`ModelFileError`, a ``ValueError``. The
checksums catch corruption and accidental edits; they are not signatures, so
only load models from sources you trust to give you the model they say.
"""

import hashlib
import io
import json
import math
import os
import re
import tempfile
import zipfile
import zlib
from numbers import Integral, Real

import numpy as np
import sklearn
from sklearn.utils.validation import check_is_fitted

from ._typing import Any, PathOrFile

FORMAT = "fastbp-model"
# The version written for files without ``$labels``.
FORMAT_VERSION = 1
# The version written for files with ``$labels``.
LABELS_FORMAT_VERSION = 2
# The version written for pipelines (see ``_pipeline_persist``).
PIPELINE_FORMAT_VERSION = 3
# The newest version this reads.
NEWEST_FORMAT_VERSION = PIPELINE_FORMAT_VERSION
DEFAULT_MAX_BYTES = 4 << 30
_METADATA = "metadata.json"
_MAX_METADATA_BYTES = 16 << 20
_MAX_JSON_DEPTH = 64
_MAX_MEMBERS = 100_000
_MAX_NPY_HEADER = 10_000
# A counter past this was not written by a fit (2**53 samples or steps), and
# larger ones stop being exact as floats.
_MAX_COUNT = 2**53
_MAX_INT = 2**63
# fastbp stores arrays uncompressed. A re-zipped file may deflate them, but no
# member may claim to expand more than this (zeros would; weights never do), so a
# small file cannot declare a large array.
_MAX_DEFLATE_RATIO = 100
_DEFLATE_SLACK = 1 << 20
# A list of Python floats costs about 4 times its float64 array more.
_FLOAT_LIST_COST = 5
_CHUNK = 1 << 20
_FLOAT_DTYPES = ("<f4", "<f8")
_RNG_DTYPE = "<u4"
_MT19937_KEY = 624
_DTYPE_NAMES = {"<f4": "float32", "<f8": "float64", "<u4": "uint32", "|O": "object"}
# Fixed member timestamps make saving the same model twice give the same bytes.
_DATE_TIME = (1980, 1, 1, 0, 0, 0)

# The output activations a fit of each family gives: a classifier has no
# ``loss`` parameter (``log_loss`` here); a regressor's ``out_activation``
# parameter picks among its four.
_OUTPUTS = {
    "regression": ("identity", "exp", "logistic", "softplus"),
    "classification": ("logistic", "softmax"),
}
# A fitted regressor may have its loss changed by set_params before it is
# saved (the next warm fit refuses it), but it never becomes a classifier.
_FAMILY = {"squared_error": "regression", "poisson": "regression",
           "absolute_error": "regression", "huber": "regression",
           "quantile": "regression", "log_loss": "classification"}
# Hyperparameters that may be a list of plain values (one per hidden layer).
_LIST_PARAMS = ("hidden_layer_sizes", "activation", "dropout")
# Attributes that belong to the running process (callbacks) or are drawn afresh
# by every fit (``_random_state``): never saved, whatever the class.
_NOT_SAVED = ("_random_state", "_skl_callbacks", "_callback_fit_ctx",
              "_skl_callbacks_to_teardown", "_parent_callback_ctx",
              "_metadata_request")
# Attributes saved as ``$labels``.
_LABEL_ATTRIBUTES = ("classes_",)
# Hyperparameters that may be infinite; every other float must be finite.
_INFINITE_PARAMS = ("n_iter_no_change",)
# Hyperparameters that hold a list of arrays, and the number of dimensions of each.
_ARRAY_PARAMS = {"coefs_init": 2, "intercepts_init": 1}

_INT_DTYPES = ("|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "<u8")
_LABEL_FLOAT_DTYPES = ("<f2", "<f4", "<f8")
_STR_DTYPE = re.compile(r"<U[0-9]{1,6}\Z")
_NPY_MAGIC = b"\x93NUMPY"
# What numpy.lib.format writes: the keys sorted, a trailing comma, padding.
_NPY_HEADER = re.compile(
    r"\{'descr': '(?P<descr>[^']{1,32})', 'fortran_order': (?P<fortran>True|False), "
    r"'shape': \((?P<shape>[0-9, ]{0,64})\), \} *\n\Z"
)


class ModelFileError(ValueError):
    """A model file that cannot be loaded: foreign, truncated, corrupted or invalid."""


# ----------------------------------------------------------------- registry

_REGISTRY = {}


def _attribute_names(cls, name, allow_empty):
    names = getattr(cls, name, ())
    if not (isinstance(names, tuple) and (names or allow_empty)
            and all(isinstance(n, str) for n in names)
            and len(set(names)) == len(names)):
        raise TypeError("%s.%s must be a tuple of distinct attribute names."
                        % (cls.__name__, name))
    return names


def register(cls):
    """Let ``save`` and ``load`` handle the estimator class ``cls``.

    Estimator modules call this at their bottom. The class declares its schema:
    ``_fitted_attributes``, the ordered tuple of fitted attributes to save, and
    optionally ``_derived_attributes``, attributes that are never saved because
    ``_after_load()`` rebuilds them after loading.

    Returns
    -------
    cls : type
        The class, unchanged.
    """
    fitted = _attribute_names(cls, "_fitted_attributes", allow_empty=False)
    derived = _attribute_names(cls, "_derived_attributes", allow_empty=True)
    if set(fitted) & set(derived):
        raise TypeError("%s declares %s both fitted and derived."
                        % (cls.__name__, sorted(set(fitted) & set(derived))))
    if _REGISTRY.get(cls.__name__, cls) is not cls:
        raise ValueError("another class named %s is already registered."
                         % cls.__name__)
    _REGISTRY[cls.__name__] = cls
    return cls


def unregister(cls):
    """Remove ``cls`` from the table of classes ``save`` and ``load`` handle."""
    if _REGISTRY.get(cls.__name__) is cls:
        del _REGISTRY[cls.__name__]


# ------------------------------------------------------------------- saving


class _Writer:
    """Turn estimator state into JSON values plus named array members."""

    def __init__(self, prefix=""):
        self.arrays = {}
        self.uses_labels = False
        # Names the array members, so that several models' arrays can share
        # one file (the steps of a pipeline).
        self.prefix = prefix

    def array(self, name, value, dtype=None):
        name = self.prefix + name
        if name in self.arrays:
            raise ValueError("two arrays named %r." % name)
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
        if name in _LABEL_ATTRIBUTES:
            self.uses_labels = True
            if isinstance(value, list):
                return [{"$labels": encode_labels(v, "%s[%d]" % (name, i))}
                        for i, v in enumerate(value)]
            return {"$labels": encode_labels(value, name)}
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
                return {"$floats": self.array(
                    name, np.asarray(value, dtype=np.float64))["$array"]}
            return [self.encode("%s.%d" % (name, i), v)
                    for i, v in enumerate(value)]
        raise TypeError(
            "Cannot save %s=%r (type %s) in the fastbp format; use pickle or joblib "
            "for this model." % (name, value, type(value).__name__)
        )


def encode_labels(labels, name="classes_"):
    """The ``$labels`` JSON content for a 1-D array of class labels.

    ``labels`` holds ints of any width, bools, finite floats, fixed-width
    strings (``<U``) or Python strings (object dtype); decoding it gives an
    array of the same dtype and values.
    """
    def refuse(why):
        raise TypeError(
            "Cannot save %s (%s) in the fastbp format; use pickle or joblib for "
            "this model." % (name, why)
        )

    if not isinstance(labels, np.ndarray) or labels.ndim != 1:
        refuse("not a 1-D numpy array")
    dtype = labels.dtype
    kind = dtype.kind
    if kind == "b":
        return {"kind": "bool", "dtype": "|b1", "values": [bool(v) for v in labels]}
    if kind in "iu":
        return {"kind": "int", "dtype": dtype.newbyteorder("<").str,
                "values": [int(v) for v in labels]}
    if kind == "f" and dtype.newbyteorder("<").str in _LABEL_FLOAT_DTYPES:
        values = [float(v) for v in labels]
        if not all(math.isfinite(v) for v in values):
            refuse("labels that are not finite")
        return {"kind": "float", "dtype": dtype.newbyteorder("<").str, "values": values}
    if kind == "U":
        values = labels.tolist()
        return {"kind": "str", "dtype": "<U%d" % (dtype.itemsize // 4),
                "values": values}
    if kind == "O" and all(type(v) is str for v in labels):
        return {"kind": "object", "dtype": "|O", "values": list(labels)}
    refuse("labels of dtype %s; fastbp saves ints, bools, floats and strings" % dtype)


def save(estimator, path, *, training=None):
    """Save a fitted estimator to ``path`` in fastbp's pickle-free format.

    Parameters
    ----------
    estimator : BPRegressor
        A fitted estimator of a registered class.
    path : str, path-like or binary file object
        Where to write. A path is written atomically: a file that is already
        there is only replaced once the new one is complete.
    training : dict, optional
        A summary of how the model was trained (the command line's report),
        kept in the metadata as ``"training"`` and shown by ``fastbp info``:
        string keys, and values that are JSON scalars, lists of them, or
        one more level of such dicts.

    See Also
    --------
    fastbp.load : Read the model back.
    """
    writer = _Writer()
    network = encode_network(writer, estimator)
    version = LABELS_FORMAT_VERSION if writer.uses_labels else FORMAT_VERSION
    write_model(path, dict(network, format_version=version), writer.arrays, training)


def encode_network(writer, estimator):
    """``estimator``, a fitted estimator of a registered class, as the JSON
    entries ``estimator``, ``params`` and ``attributes``; its arrays go to
    ``writer``."""
    cls = type(estimator)
    if _REGISTRY.get(cls.__name__) is not cls:
        raise TypeError(
            "fastbp's format saves %s; got %s. Use pickle or joblib for it."
            % (", ".join(_REGISTRY), cls.__qualname__)
        )
    check_is_fitted(estimator)
    fitted = cls._fitted_attributes
    derived = getattr(cls, "_derived_attributes", ())
    params = estimator.get_params(deep=False)
    unknown = sorted(
        k for k in vars(estimator)
        if k not in fitted and k not in derived and k not in _NOT_SAVED
        and k not in params
    )
    if unknown:
        # A new attribute must be added to the format, or the loaded model would
        # silently differ from the saved one.
        raise TypeError("fastbp's format does not know the attributes %s." % unknown)
    if callable(params.get("early_stopping_scoring")):
        raise TypeError(
            "early_stopping_scoring is a callable, which fastbp's format cannot "
            "hold; set it to a scorer name or None before saving, or use pickle "
            "or joblib for this model."
        )
    return {
        "estimator": cls.__name__,
        "params": {k: writer.encode("params." + k, v) for k, v in params.items()},
        "attributes": {k: writer.encode(k, getattr(estimator, k))
                       for k in fitted if hasattr(estimator, k)},
    }


def write_model(path, content, arrays, training=None):
    """Write a model file: ``content`` (the format-specific metadata entries,
    with ``format_version``), the versions, ``training`` and ``arrays``."""
    from . import __version__

    metadata = {
        "format": FORMAT,
        "format_version": content["format_version"],
        "fastbp_version": __version__,
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
    }
    metadata.update((k, v) for k, v in content.items() if k != "format_version")
    if training is not None:
        check_training(training, TypeError)
        metadata["training"] = training
    metadata["arrays"] = {
        k: {"dtype": a.dtype.str, "shape": list(a.shape),
            "sha256": hashlib.sha256(a.tobytes()).hexdigest()}
        for k, a in arrays.items()
    }
    text = json.dumps(metadata, indent=1, allow_nan=False)

    if hasattr(path, "write"):
        _write_zip(path, text, arrays)
        return
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastbp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_zip(f, text, arrays)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


_MAX_TRAINING_ITEMS = 10_000
_MAX_TRAINING_TEXT = 10_000


def check_training(training, error=ModelFileError):
    """A training summary: a dict of str to JSON scalars (strings of at most
    10,000 characters, finite floats), lists of them, or one more level of
    such dicts; at most 10,000 values in all. Raises ``error`` otherwise."""
    count = [0]

    def scalar(v):
        count[0] += 1
        return v is None or isinstance(v, (bool, int)) or (
            type(v) is float and math.isfinite(v)) or (
            type(v) is str and len(v) <= _MAX_TRAINING_TEXT)

    def value(v, depth):
        if isinstance(v, list):
            return all(scalar(x) for x in v)
        if isinstance(v, dict) and depth == 0:
            return mapping(v, 1)
        return scalar(v)

    def mapping(d, depth):
        return isinstance(d, dict) and all(
            type(k) is str and len(k) <= 100 and value(v, depth)
            for k, v in d.items())

    if not mapping(training, 0) or count[0] > _MAX_TRAINING_ITEMS:
        raise error("invalid training summary: it must map names to numbers, "
                    "strings, lists of them or one level of such maps.")


def _write_zip(f, text, arrays):
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(zipfile.ZipInfo(_METADATA, _DATE_TIME), text.encode("utf-8"),
                    compress_type=zipfile.ZIP_DEFLATED)
        for name, a in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, a, allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(name + ".npy", _DATE_TIME), buf.getvalue())


# ------------------------------------------------------------------ loading


def load(path: PathOrFile, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Load a model saved by ``BPRegressor.save``.

    The file is checked before anything is built from it, and nothing in it
    is ever unpickled or executed.

    Parameters
    ----------
    path : str, path-like or binary file object
        The model file.
    max_bytes : int, default=4 GiB
        The most memory the model may take: a file whose metadata plus
        declared arrays (counting curves as the Python lists they become) would
        take more is refused before any array is read. Raise it to load a
        model larger than 4 GiB.

    Returns
    -------
    estimator : BPRegressor, BPClassifier, Pipeline or TransformedTargetRegressor
        The fitted estimator, or the scikit-learn pipeline saved by
        ``fastbp.save`` or ``fastbp fit``. It predicts bit-identically to the
        saved one, and a network continues training with ``partial_fit`` where
        the saved one stood.

    Raises
    ------
    ModelFileError
        A ``ValueError``: the file is not a fastbp model, is truncated or
        corrupted, was written by a newer format version, holds invalid or
        inconsistent values, or would take more than ``max_bytes``.
    OSError
        The file cannot be opened.

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
    if not isinstance(max_bytes, Integral) or isinstance(max_bytes, bool) or (
        max_bytes < 1
    ):
        raise ValueError("max_bytes must be a positive integer, got %r." % (max_bytes,))
    if hasattr(path, "read"):
        return _load_file(path, str(getattr(path, "name", "the model file")),
                          int(max_bytes))
    label = os.fspath(path)
    with open(label, "rb") as f:
        return _load_file(f, label, int(max_bytes))


def read_metadata(path, *, max_bytes=DEFAULT_MAX_BYTES):
    """The metadata of a model file, checked as :func:`load` checks it before
    it builds anything (the zip members, the JSON, the declared arrays), and
    nothing more: no array is read and no estimator is built.

    Returns
    -------
    metadata : dict
        The parsed ``metadata.json``; its ``"arrays"`` entry describes every
        array (dtype, shape).
    """
    label = os.fspath(path)
    with open(label, "rb") as f:
        return _load_file(f, label, int(max_bytes), build=False)


def _load_file(f, label, max_bytes, build=True):
    size = f.seek(0, os.SEEK_END)
    try:
        if size > max_bytes + _MAX_METADATA_BYTES:
            raise ModelFileError(
                "the file has %d bytes, more than max_bytes=%d allows; pass a larger "
                "max_bytes to load it." % (size, max_bytes)
            )
        try:
            zf = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, EOFError, UnicodeDecodeError,
                NotImplementedError) as exc:
            # NotImplementedError: a member needs a newer zip version than 6.3.
            raise ModelFileError(
                "not a fastbp model file, or it is truncated or corrupted (%s)." % exc
            ) from None
        with zf:
            return _load_zip(zf, size, max_bytes, build)
    except ModelFileError as exc:
        raise ModelFileError("%s: %s" % (label, exc)) from None


def _load_zip(zf, size, max_bytes, build=True):
    infos = zf.infolist()
    if len(infos) > _MAX_MEMBERS:
        raise ModelFileError("not a fastbp model file: it has %d members." % len(infos))
    members = {}
    for info in infos:
        if info.filename in members:
            raise ModelFileError("the member %r appears twice." % info.filename[:100])
        members[info.filename] = info
        _check_member(info, size)
    if _METADATA not in members:
        raise ModelFileError("not a fastbp model file: it has no %s." % _METADATA)
    metadata, metadata_size = _read_metadata(zf, members[_METADATA], max_bytes)
    specs = _array_specs(metadata["arrays"])

    expected = {_METADATA} | {k + ".npy" for k in specs}
    if set(members) != expected:
        raise ModelFileError(
            "the file does not hold the members its metadata lists (extra: %s, "
            "missing: %s)." % (sorted(set(members) - expected)[:5],
                                sorted(expected - set(members))[:5])
        )
    declared = metadata_size + sum(spec.nbytes for spec in specs.values())
    if declared > max_bytes:
        raise ModelFileError(
            "the model declares %d bytes, more than max_bytes=%d; pass a larger "
            "max_bytes to load it." % (declared, max_bytes)
        )
    for spec in specs.values():
        info = members[spec.name + ".npy"]
        if info.compress_type == zipfile.ZIP_DEFLATED and spec.nbytes > (
            _MAX_DEFLATE_RATIO * info.compress_size + _DEFLATE_SLACK
        ):
            raise ModelFileError(
                "%s declares %d bytes from %d compressed bytes; fastbp does not "
                "load such a compression bomb." % (info.filename, spec.nbytes,
                                                    info.compress_size)
            )
    if not build:
        return metadata

    reader = _Reader(specs, labels=metadata["format_version"] >= LABELS_FORMAT_VERSION)
    if metadata["format_version"] >= PIPELINE_FORMAT_VERSION:
        from . import _pipeline_persist

        plan = _pipeline_persist.build(metadata["estimator"], metadata["model"], reader)
    else:
        plan = build_network(metadata, reader)
    unused = sorted(set(reader.specs) - reader.used)
    if unused:
        raise ModelFileError("arrays %s are not used by any attribute." % unused[:5])
    float_lists = sum(spec.nbytes for spec in reader.float_lists)
    if declared + (_FLOAT_LIST_COST - 1) * float_lists > max_bytes:
        raise ModelFileError(
            "the model's curves would take more than max_bytes=%d as Python lists; "
            "pass a larger max_bytes to load it." % max_bytes
        )

    arrays = {name: _read_array(zf, members[name + ".npy"], spec)
              for name, spec in specs.items()}
    return plan.finish(arrays)


class _NetworkPlan:
    """A network whose every field is checked, waiting for its arrays."""

    def __init__(self, estimator, cls, random_state):
        self.estimator, self.cls, self.random_state = estimator, cls, random_state

    def finish(self, arrays):
        """The estimator, with the arrays read put where the specs stood."""
        estimator = self.estimator
        _materialize(estimator, self.cls, self.random_state, arrays)
        after_load = getattr(estimator, "_after_load", None)
        if after_load is not None:
            try:
                after_load()
            except ValueError as exc:
                raise ModelFileError("inconsistent fitted state (%s)." % exc) from None
        return estimator


def build_network(content, reader, alone=True):
    """Check a network's JSON (``estimator``, ``params``, ``attributes``)
    against its class; return a plan whose ``finish(arrays)`` gives it.
    ``alone``: the network is the whole model, so every array is its own."""
    for key, kind in (("estimator", str), ("params", dict), ("attributes", dict)):
        if not isinstance(content.get(key), kind):
            raise ModelFileError("the model has no valid %r entry." % key)
    cls = _REGISTRY.get(content["estimator"])
    if cls is None:
        raise ModelFileError("unknown estimator %r (known: %s)."
                             % (content["estimator"][:100], ", ".join(_REGISTRY)))
    estimator, random_state = _build(cls, content, reader, alone)
    return _NetworkPlan(estimator, cls, random_state)


def _check_member(info, size):
    """Refuse what this reader would not read safely, before reading anything."""
    name = info.filename
    if info.flag_bits & 0x61:
        # Bit 0: encrypted; 5: patched data; 6: strong encryption.
        raise ModelFileError("the member %r is encrypted." % name)
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ModelFileError(
            "the member %r uses compression method %d; fastbp reads stored or "
            "deflated members only." % (name, info.compress_type)
        )
    if info.header_offset < 0 or info.compress_size < 0 or (
        info.header_offset + info.compress_size > size
    ):
        raise ModelFileError("the file is truncated or corrupted: the member %r "
                             "lies outside it." % name)


def _member_error(info, exc):
    return ModelFileError("the file is truncated or corrupted: %s cannot be read (%s)."
                          % (info.filename, exc))


def _reject_constant(name):
    raise ValueError("non-standard JSON constant %s" % name)


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number %s out of range" % text[:40])
    return value


def _bounded_int(text):
    if len(text) > 21 or abs(int(text)) > 2**64:
        raise ValueError("integer %s out of range" % text[:40])
    return int(text)


def _no_duplicates(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise ValueError("duplicate key %r" % key[:100])
        result[key] = value
    return result


_JSON_ESCAPE = re.compile(r"\\.", re.S)
# Linear: once escapes are gone, a string ends at the next quote.
_JSON_STRING = re.compile(r'"[^"]*"')
_JSON_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def _check_depth(text):
    """Refuse JSON nested deeper than _MAX_JSON_DEPTH, before the parser recurses."""
    text = _JSON_STRING.sub("", _JSON_ESCAPE.sub("", text))
    brackets = _JSON_NOT_BRACKET.sub("", text)
    if not brackets:
        return
    codes = np.frombuffer(brackets.encode("ascii"), dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1).astype(np.int32)
    if np.cumsum(steps).max() > _MAX_JSON_DEPTH:
        raise ModelFileError("%s is nested more than %d levels deep."
                             % (_METADATA, _MAX_JSON_DEPTH))


def _read_metadata(zf, info, max_bytes):
    limit = min(_MAX_METADATA_BYTES, max_bytes)
    try:
        with zf.open(info) as f:
            raw = f.read(limit + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, UnicodeDecodeError) as exc:
        raise _member_error(info, exc) from None
    if len(raw) > limit:
        raise ModelFileError("%s is larger than %d bytes." % (_METADATA, limit))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelFileError("%s is not valid JSON (%s)." % (_METADATA, exc)) from None
    _check_depth(text)
    try:
        metadata = json.loads(text, parse_constant=_reject_constant,
                              parse_float=_finite_float, parse_int=_bounded_int,
                              object_pairs_hook=_no_duplicates)
    except ValueError as exc:
        raise ModelFileError(
            "%s is not valid JSON (%s)." % (_METADATA, str(exc)[:200])
        ) from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ModelFileError(
            "not a fastbp model file (its %s does not say format %r)."
            % (_METADATA, FORMAT)
        )
    version = metadata.get("format_version")
    if not _is_int(version) or version < 1:
        raise ModelFileError("invalid format_version %r." % (version,))
    if version > NEWEST_FORMAT_VERSION:
        from . import __version__

        raise ModelFileError(
            "written in format version %d by fastbp %s; this fastbp (%s) reads "
            "format version %d and older. Upgrade fastbp to load it."
            % (version, str(metadata.get("fastbp_version", "?"))[:40], __version__,
               NEWEST_FORMAT_VERSION)
        )
    keys = (("estimator", str), ("params", dict), ("attributes", dict))
    if version >= PIPELINE_FORMAT_VERSION:
        keys = (("estimator", str), ("model", dict))
    for key, kind in keys + (("arrays", dict),):
        if not isinstance(metadata.get(key), kind):
            raise ModelFileError("%s has no valid %r entry." % (_METADATA, key))
    if "training" in metadata:
        check_training(metadata["training"])
    return metadata, len(raw)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


class _Spec:
    """An array member as the metadata describes it, before it is read."""

    __slots__ = ("name", "dtype", "shape", "sha256", "nbytes")

    def __init__(self, name, dtype, shape, sha256):
        self.name, self.dtype, self.shape, self.sha256 = name, dtype, shape, sha256
        # Python ints: a declared shape can never overflow or wrap.
        self.nbytes = math.prod(shape) * int(dtype[2:])

    @property
    def ndim(self):
        return len(self.shape)


class _FloatList:
    """A ``$floats`` list, before its array is read."""

    __slots__ = ("spec",)

    def __init__(self, spec):
        self.spec = spec

    def __len__(self):
        return self.spec.shape[0]


class _RandomStateSpec:
    """A ``$random_state``, checked, before its key is read."""

    __slots__ = ("key", "pos", "has_gauss", "cached_gaussian")

    def __init__(self, key, pos, has_gauss, cached_gaussian):
        self.key, self.pos = key, pos
        self.has_gauss, self.cached_gaussian = has_gauss, cached_gaussian


_SHA256 = re.compile(r"[0-9a-f]{64}\Z")


def _array_specs(arrays):
    specs = {}
    for name, spec in arrays.items():
        if not (
            isinstance(spec, dict)
            and set(spec) == {"dtype", "shape", "sha256"}
            and spec["dtype"] in _FLOAT_DTYPES + (_RNG_DTYPE,)
            and isinstance(spec["shape"], list)
            and 1 <= len(spec["shape"]) <= 2
            and all(_is_int(n) and n >= 0 for n in spec["shape"])
            and isinstance(spec["sha256"], str)
            and _SHA256.match(spec["sha256"])
        ):
            raise ModelFileError("invalid description of array %r." % name[:100])
        specs[name] = _Spec(name, spec["dtype"], tuple(spec["shape"]), spec["sha256"])
    return specs


_NPY_VERSIONS = {1: 2, 2: 4, 3: 4}


def _parse_shape(text):
    parts = [p.strip() for p in text.split(",")]
    if parts[-1] == "":
        parts.pop()
    if not all(p.isdigit() and len(p) <= 20 for p in parts):
        return None
    return tuple(int(p) for p in parts)


def _read_array(zf, info, spec):
    """Read one .npy member after checking its header against the metadata.

    Reads exactly the declared number of bytes, in chunks, into an array
    allocated from the declared (already bounded) shape.
    """
    name = info.filename
    try:
        with zf.open(info) as f:
            magic = f.read(8)
            if len(magic) != 8 or magic[:6] != _NPY_MAGIC or (
                magic[6] not in _NPY_VERSIONS or magic[7] != 0
            ):
                raise ModelFileError("%s is not a valid .npy array." % name)
            size_bytes = f.read(_NPY_VERSIONS[magic[6]])
            header_size = int.from_bytes(size_bytes, "little")
            if len(size_bytes) != _NPY_VERSIONS[magic[6]] or (
                header_size > _MAX_NPY_HEADER
            ):
                raise ModelFileError("%s is not a valid .npy array." % name)
            header = f.read(header_size)
            match = _NPY_HEADER.match(header.decode("latin-1"))
            shape = match and _parse_shape(match["shape"])
            if len(header) != header_size or shape is None:
                raise ModelFileError("%s is not a valid .npy array (unreadable "
                                     "header)." % name)
            descr, fortran = match["descr"], match["fortran"] == "True"
            if descr != spec.dtype or fortran or shape != spec.shape:
                raise ModelFileError(
                    "%s holds %s%s of shape %s where the metadata says %s of shape %s."
                    % (name, _DTYPE_NAMES.get(descr, repr(descr)),
                       " (Fortran order)" if fortran else "", list(shape),
                       _DTYPE_NAMES[spec.dtype], list(spec.shape))
                )
            out = np.empty(spec.shape, dtype=spec.dtype)
            buffer = out.reshape(-1).view(np.uint8)
            digest = hashlib.sha256()
            done = 0
            while done < spec.nbytes:
                chunk = f.read(min(_CHUNK, spec.nbytes - done))
                if not chunk:
                    raise ModelFileError("%s is truncated." % name)
                buffer[done:done + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
                digest.update(chunk)
                done += len(chunk)
            if f.read(1):
                raise ModelFileError("%s does not have the size its header says."
                                     % name)
    except (zipfile.BadZipFile, zlib.error, EOFError, UnicodeDecodeError) as exc:
        raise _member_error(info, exc) from None
    if digest.hexdigest() != spec.sha256:
        raise ModelFileError(
            "the checksum of %s does not match; the file was modified or "
            "corrupted." % name
        )
    return out


class _Reader:
    """Turn JSON values into Python values, with array members as ``_Spec``."""

    def __init__(self, specs, labels):
        self.specs = specs
        self.labels = labels
        # A list of $labels (classes_ of several label columns) is allowed
        # wherever $labels are.
        self.label_lists = labels
        self.used = set()
        self.float_lists = []

    def array(self, name, where, dtypes=_FLOAT_DTYPES):
        if not isinstance(name, str) or name not in self.specs:
            raise ModelFileError("%s refers to a missing array." % where)
        if name in self.used:
            raise ModelFileError("%s refers to the array %r a second time."
                                 % (where, name[:100]))
        spec = self.specs[name]
        if spec.dtype not in dtypes:
            raise ModelFileError("%s: array %r has dtype %s." % (where, name[:100],
                                                                spec.dtype))
        self.used.add(name)
        return spec

    def decode(self, value, where):
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, list):
            return [self.decode(v, "%s[%d]" % (where, i)) for i, v in enumerate(value)]
        if len(value) == 1:
            (tag, content), = value.items()
            if tag.startswith("$"):
                return self.tagged(tag, content, where)
        return {k: self.decode(v, "%s.%s" % (where, k[:100])) for k, v in value.items()}

    def tagged(self, tag, content, where):
        if tag == "$array":
            return self.array(content, where)
        if tag == "$floats":
            spec = self.array(content, where, ("<f8",))
            if spec.ndim != 1:
                raise ModelFileError("%s must be a 1-D array." % where)
            self.float_lists.append(spec)
            return _FloatList(spec)
        if tag == "$float":
            if content not in ("inf", "-inf", "nan"):
                raise ModelFileError("%s: invalid float %r." % (where, content))
            return float(content)
        if tag == "$strings":
            if not (isinstance(content, list)
                    and all(isinstance(s, str) for s in content)):
                raise ModelFileError("%s: invalid list of strings." % where)
            strings = np.empty(len(content), dtype=object)
            strings[:] = content
            return strings
        if tag == "$random_state":
            return self.random_state(content, where)
        if tag == "$labels":
            if where not in _LABEL_ATTRIBUTES and not (
                self.label_lists
                and re.fullmatch(r"(%s)\[[0-9]+\]" % "|".join(_LABEL_ATTRIBUTES), where)
            ):
                raise ModelFileError("%s cannot hold $labels." % where)
            if not self.labels:
                raise ModelFileError("$labels needs format_version %d."
                                     % LABELS_FORMAT_VERSION)
            try:
                return decode_labels(content)
            except ValueError as exc:
                raise ModelFileError("%s: %s" % (where, exc)) from None
        raise ModelFileError("%s: unknown tag %r." % (where, tag[:100]))

    def random_state(self, content, where):
        if not (
            isinstance(content, dict)
            and set(content) == {"bit_generator", "key", "pos", "has_gauss",
                                 "cached_gaussian"}
            and content["bit_generator"] == "MT19937"
            and isinstance(content["key"], dict)
            and set(content["key"]) == {"$array"}
            and _is_int(content["pos"]) and 0 <= content["pos"] <= _MT19937_KEY
            and _is_int(content["has_gauss"]) and content["has_gauss"] in (0, 1)
            and type(content["cached_gaussian"]) is float
        ):
            raise ModelFileError(
                "%s: invalid random state (an MT19937 state has a key of %d uint32, "
                "pos in [0, %d], has_gauss 0 or 1 and a finite cached_gaussian)."
                % (where, _MT19937_KEY, _MT19937_KEY)
            )
        key = self.array(content["key"]["$array"], where, (_RNG_DTYPE,))
        if key.shape != (_MT19937_KEY,):
            raise ModelFileError("%s: the random state key must have %d values."
                                 % (where, _MT19937_KEY))
        return _RandomStateSpec(key, content["pos"], content["has_gauss"],
                                content["cached_gaussian"])


def decode_labels(content):
    """The array of class labels that a ``$labels`` JSON content describes.

    Raises ``ValueError`` unless it is exactly what :func:`encode_labels` writes:
    a known kind and dtype, at least one value, every value of that kind and
    exactly representable in that dtype, and no value twice.
    """
    if not (isinstance(content, dict) and set(content) == {"kind", "dtype", "values"}
            and isinstance(content["values"], list) and content["values"]):
        raise ValueError("invalid $labels: it needs kind, dtype and a non-empty "
                         "list of values")
    kind, dtype, values = content["kind"], content["dtype"], content["values"]
    if kind == "bool":
        valid = dtype == "|b1" and all(type(v) is bool for v in values)
    elif kind == "int":
        valid = dtype in _INT_DTYPES and all(type(v) is int for v in values)
        if valid:
            info = np.iinfo(np.dtype(dtype))
            valid = all(info.min <= v <= info.max for v in values)
    elif kind == "float":
        valid = dtype in _LABEL_FLOAT_DTYPES and all(
            type(v) is float and math.isfinite(v) for v in values
        )
        if valid:
            with np.errstate(over="ignore"):
                valid = np.array(values, dtype=dtype).tolist() == values
    elif kind == "str":
        valid = isinstance(dtype, str) and bool(_STR_DTYPE.match(dtype)) and all(
            type(v) is str and not v.endswith("\x00") for v in values
        )
        if valid:
            width = int(dtype[2:])
            valid = (max(len(v) for v in values) <= width
                     and width * len(values) <= _MAX_METADATA_BYTES)
    elif kind == "object":
        valid = dtype == "|O" and all(type(v) is str for v in values)
    else:
        valid = False
    if not valid:
        raise ValueError("invalid $labels of kind %r and dtype %r"
                         % (str(kind)[:20], str(dtype)[:20]))
    if len(set(values)) != len(values):
        raise ValueError("$labels holds a value twice")
    if kind == "object":
        labels = np.empty(len(values), dtype=object)
        labels[:] = values
        return labels
    return np.array(values, dtype=np.dtype(dtype))


def _plain(value):
    """JSON scalars, or lists of them: nothing that refers to an array."""
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, str)) or (
        type(value) is float and math.isfinite(value))


def _check_params(params):
    """Only scalars, a list of layer sizes and a random state are parameters."""
    random_state = None
    for name, value in params.items():
        if name in _LIST_PARAMS and isinstance(value, list):
            # Whatever set_params stored after the fit: the next fit checks it.
            if not _plain(value) or (name != "hidden_layer_sizes"
                                     and any(isinstance(v, list) for v in value)):
                raise ModelFileError("invalid %s." % name)
            params[name] = tuple(value) if name == "hidden_layer_sizes" else value
        elif name in _ARRAY_PARAMS and isinstance(value, list):
            ndim = _ARRAY_PARAMS[name]
            for i, a in enumerate(value):
                if not (isinstance(a, _Spec) and a.ndim == ndim) and not (
                    isinstance(a, list) and _plain(a)
                ):
                    raise ModelFileError("%s[%d] must be a %d-D float array."
                                         % (name, i, ndim))
        elif isinstance(value, _RandomStateSpec) and name == "random_state":
            random_state = value
            # A stand-in for the parameter checks; the loaded state replaces it.
            params[name] = np.random.RandomState(0)
        elif isinstance(value, float):
            if not (math.isfinite(value)
                    or (name in _INFINITE_PARAMS and value == math.inf)):
                raise ModelFileError("invalid hyperparameter %s=%r." % (name, value))
        elif not (value is None or isinstance(value, (bool, int, str))):
            raise ModelFileError("invalid hyperparameter %s (a %s)."
                                 % (name, type(value).__name__))
    return random_state


def _build(cls, metadata, reader, alone):
    """The estimator, its arrays still ``_Spec``, with every field checked."""
    valid = cls().get_params(deep=False)
    unknown = sorted(set(metadata["params"]) - set(valid))
    if unknown:
        raise ModelFileError(
            "unknown hyperparameters %s; the file may come from a newer fastbp."
            % [name[:100] for name in unknown[:5]]
        )
    params = {k: reader.decode(v, "params." + k) for k, v in metadata["params"].items()}
    random_state = _check_params(params)
    estimator = cls(**params)
    try:
        estimator._validate_params()
    except ValueError as exc:
        raise ModelFileError("invalid hyperparameters (%s)." % exc) from None

    attributes = metadata["attributes"]
    fitted = cls._fitted_attributes
    unknown = sorted(set(attributes) - set(fitted))
    if unknown:
        raise ModelFileError("unknown attributes %s."
                             % [name[:100] for name in unknown[:5]])
    for name in fitted:
        if name not in attributes:
            continue
        value = attributes[name]

        def is_labels(v):
            return isinstance(v, dict) and list(v) == ["$labels"]

        if name in _LABEL_ATTRIBUTES and not is_labels(value):
            if not (isinstance(value, list) and value and reader.label_lists
                    and all(is_labels(v) for v in value)):
                raise ModelFileError(
                    "%s must be stored as $labels (or a non-empty list of $labels)."
                    % name)
        setattr(estimator, name, reader.decode(value, name))
    unused = sorted(set(reader.specs) - reader.used)
    if alone and unused:
        raise ModelFileError("arrays %s are not used by any attribute." % unused[:5])
    _check_state(estimator, cls)
    return estimator, random_state


def _get(est, name):
    return getattr(est, name, None)


def _check_int(est, name, minimum=0, maximum=_MAX_COUNT):
    value = getattr(est, name)
    if not _is_int(value) or not minimum <= value <= maximum:
        raise ModelFileError("invalid %s=%r." % (name, value))


def _check_float(est, name, allow_none=False):
    value = getattr(est, name)
    if not (type(value) is float or (value is None and allow_none)):
        raise ModelFileError("invalid %s=%r." % (name, value))


def _check_arrays(name, values, shapes, dtypes):
    """A list of array specs with these shapes and one dtype among ``dtypes``."""
    if not (isinstance(values, list) and len(values) == len(shapes)
            and all(isinstance(a, _Spec) for a in values)):
        raise ModelFileError("%s must be a list of %d arrays." % (name, len(shapes)))
    dtype = values[0].dtype if values else None
    for i, (a, shape) in enumerate(zip(values, shapes)):
        if a.shape != shape or a.dtype != dtype or dtype not in dtypes:
            raise ModelFileError(
                "%s[%d] must be a %s array of shape %s, not %s of shape %s."
                % (name, i, " or ".join(_DTYPE_NAMES[d] for d in dtypes), shape,
                   _DTYPE_NAMES[a.dtype], a.shape)
            )


# Fitted attributes a fit may leave unset: feature names come with data
# frames only, loss_ is unset when the first epoch is interrupted, and lbfgs
# keeps no optimizer state. Every other declared attribute must be there.
_OPTIONAL = ("feature_names_in_", "loss_", "_optimizer_state",
             "validation_loss_curve_")
# Checked by _check_state; any other fitted attribute must be a plain scalar,
# or labels, and is left to the class's _after_load.
_CHECKED = frozenset((
    "n_features_in_", "feature_names_in_", "n_outputs_", "n_layers_",
    "out_activation_", "coefs_", "intercepts_", "n_iter_", "t_", "loss_",
    "best_loss_", "loss_curve_", "validation_scores_", "best_validation_score_",
    "_best_coefs", "_best_intercepts", "_no_improvement_count", "_optimizer_state",
    "classes_", "validation_loss_curve_",
))


def _is_curve(value):
    # An empty curve is written as [], not as an array member.
    return isinstance(value, _FloatList) or (
        isinstance(value, list) and all(type(v) is float for v in value))


def _check_state(est, cls):
    """Check that the fitted state is what a fit could have left, before use."""
    required = ("n_features_in_", "n_outputs_", "n_layers_", "out_activation_",
                "coefs_", "intercepts_")
    missing = [name for name in required + cls._fitted_attributes
               if name not in _OPTIONAL and not hasattr(est, name)]
    if missing:
        raise ModelFileError("the fitted attributes %s are missing." % missing)
    coefs = est.coefs_
    if not (isinstance(coefs, list) and coefs and all(
        isinstance(c, _Spec) and c.ndim == 2 for c in coefs
    )):
        raise ModelFileError("coefs_ must be a non-empty list of 2-D arrays.")
    units = [coefs[0].shape[0]] + [c.shape[1] for c in coefs]
    coef_shapes = list(zip(units[:-1], units[1:]))
    intercept_shapes = [(n,) for n in units[1:]]
    _check_arrays("coefs_", coefs, coef_shapes, _FLOAT_DTYPES)
    _check_arrays("intercepts_", est.intercepts_, intercept_shapes, (coefs[0].dtype,))
    for name in ("n_features_in_", "n_outputs_", "n_layers_"):
        _check_int(est, name, minimum=1)
    if (est.n_features_in_, est.n_outputs_, est.n_layers_) != (
        units[0], units[-1], len(units)
    ):
        raise ModelFileError(
            "n_features_in_, n_outputs_ and n_layers_ do not match the weights."
        )
    # hidden_layer_sizes and loss are not checked against the weights: they are
    # what the next fit asks for, and set_params may change them after a fit
    # (that fit then raises a ValueError, unless warm_start is off).
    if min(units) < 1:
        raise ModelFileError("a layer of the weights has no units.")
    names = _get(est, "feature_names_in_")
    if hasattr(est, "feature_names_in_") and not (
        isinstance(names, np.ndarray) and names.dtype == object
        and names.shape == (est.n_features_in_,)
    ):
        raise ModelFileError("feature_names_in_ does not match n_features_in_.")

    out = est.out_activation_
    if not isinstance(out, str) or out not in _OUTPUTS["regression"] + ("softmax",):
        raise ModelFileError("unknown out_activation_=%r." % (out,))
    loss = getattr(est, "loss", "log_loss")
    family = _FAMILY.get(loss) if isinstance(loss, str) else None
    if family is None or out not in _OUTPUTS[family]:
        raise ModelFileError(
            "unknown out_activation_=%r for loss=%r; a fit gives one of %s."
            % (out, loss, list(_OUTPUTS.get(family, ())))
        )
    activation = getattr(est, "activation", None)
    if (not isinstance(activation, str)
            and len(activation) != len(est.coefs_) - 1):
        # predict reads one activation per hidden layer of the weights.
        raise ModelFileError("activation has %d entries for %d hidden layers."
                             % (len(activation), len(est.coefs_) - 1))
    if hasattr(est, "classes_") and isinstance(est.classes_, list):
        sizes = [len(c) for c in est.classes_]
        if not (out == "softmax" and min(sizes) >= 2 and sum(sizes) == est.n_outputs_):
            raise ModelFileError("%d outputs cannot give label columns of %s classes."
                                 % (est.n_outputs_, sizes))
    elif hasattr(est, "classes_"):
        n_classes = len(est.classes_)
        if not (est.n_outputs_ == n_classes
                or (out == "logistic" and est.n_outputs_ == 1 and n_classes == 2)):
            raise ModelFileError("%d outputs cannot give %d classes."
                                 % (est.n_outputs_, n_classes))

    for name in ("n_iter_", "t_", "_no_improvement_count"):
        if hasattr(est, name):
            _check_int(est, name)
    if hasattr(est, "loss_"):
        _check_float(est, "loss_")
    for name in ("best_loss_", "best_validation_score_"):
        if hasattr(est, name):
            _check_float(est, name, allow_none=True)
    curve = _get(est, "loss_curve_")
    if hasattr(est, "loss_curve_") and not _is_curve(curve):
        raise ModelFileError("loss_curve_ must be a list of floats.")
    scores = _get(est, "validation_scores_")
    if scores is not None and not _is_curve(scores):
        raise ModelFileError("validation_scores_ must be a list of floats or None.")
    val_curve = _get(est, "validation_loss_curve_")
    if val_curve is not None and not _is_curve(val_curve):
        raise ModelFileError("validation_loss_curve_ must be a list of floats or None.")
    if curve is not None:
        # Warm starts and partial_fit add to the curves; n_iter_ counts the last
        # call only.
        n_epochs = len(curve)
        for name, value in (("n_iter_", _get(est, "n_iter_")),
                            ("_no_improvement_count", _get(est, "_no_improvement_count")),
                            ("validation_scores_", None if scores is None
                             else len(scores)),
                            ("validation_loss_curve_", None if val_curve is None
                             else len(val_curve))):
            if value is not None and value > n_epochs:
                raise ModelFileError("%s=%d is more than the %d epochs of loss_curve_."
                                     % (name, value, n_epochs))
    if hasattr(est, "validation_scores_") and hasattr(est, "best_validation_score_") and (
        (scores is None) != (est.best_validation_score_ is None)
    ):
        raise ModelFileError("validation_scores_ and best_validation_score_ disagree.")
    # Best weights are copies made when the score improved, possibly before a
    # partial_fit in another dtype: one float dtype, not necessarily coefs_'s.
    best_dtype = _FLOAT_DTYPES
    for name, shapes in (("_best_coefs", coef_shapes),
                         ("_best_intercepts", intercept_shapes)):
        if hasattr(est, name):
            _check_arrays(name, getattr(est, name), shapes, best_dtype)
            best_dtype = (getattr(est, name)[0].dtype,)

    state = _get(est, "_optimizer_state")
    if state is not None:
        if not (
            isinstance(state, dict)
            and set(state) == {"solver", "learning_rate", "t", "moments"}
            and state["solver"] in ("sgd", "adam", "adamw")
            and type(state["learning_rate"]) is float
            # invscaling can underflow to 0.0; adaptive stops above 1e-6.
            and math.isfinite(state["learning_rate"]) and state["learning_rate"] >= 0
            and _is_int(state["t"]) and 0 <= state["t"] <= _MAX_COUNT
        ):
            raise ModelFileError(
                "invalid optimizer state (it needs solver 'sgd', 'adam' or 'adamw', a finite "
                "learning_rate >= 0, a step count t and the moments)."
            )
        # The state's solver, not the parameter: set_params(solver=...) with a
        # warm start keeps the old state until the next stochastic fit.
        n_moments = 1 if state["solver"] == "sgd" else 2
        _check_arrays("optimizer moments", state["moments"],
                      n_moments * (coef_shapes + intercept_shapes), _FLOAT_DTYPES)

    for name in cls._fitted_attributes:
        if name in _CHECKED or not hasattr(est, name):
            continue
        value = getattr(est, name)
        if not (value is None or isinstance(value, (bool, int, str))
                or (type(value) is float and math.isfinite(value))):
            raise ModelFileError("invalid %s (a %s)." % (name, type(value).__name__))


def _resolve(value, arrays):
    if isinstance(value, _Spec):
        return arrays[value.name]
    if isinstance(value, _FloatList):
        return arrays[value.spec.name].tolist()
    if isinstance(value, list):
        return [_resolve(v, arrays) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, arrays) for k, v in value.items()}
    return value


def _materialize(est, cls, random_state, arrays):
    """Put the arrays read where the specs stood."""
    for name in cls._fitted_attributes:
        if hasattr(est, name):
            setattr(est, name, _resolve(getattr(est, name), arrays))
    for name in _ARRAY_PARAMS:
        value = getattr(est, name, None)
        if isinstance(value, list):
            setattr(est, name, _resolve(value, arrays))
    if random_state is not None:
        rng = np.random.RandomState()
        rng.set_state(("MT19937", arrays[random_state.key.name], random_state.pos,
                       random_state.has_gauss, random_state.cached_gaussian))
        est.random_state = rng
