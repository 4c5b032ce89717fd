# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""A model file is untrusted input: hostile files give ModelFileError, nothing else.

Files are built in memory. ``_zip`` writes members the way ``zipfile`` does;
``_raw_zip`` writes the bytes of a zip by hand, for what ``zipfile`` will not
write (lying sizes, encryption flags, pre-compressed bombs). Semantic attacks
re-encode the arrays and recompute every checksum, so only validation can
catch them.
"""

import copy
import hashlib
import io
import json
import pickle
import struct
import tracemalloc
import warnings
import zipfile
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

import fastbp
from fastbp import BPRegressor
from fastbp._persist import ModelFileError

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _data(n_features=3):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, n_features))
    return X, X @ np.arange(1.0, n_features + 1) + 0.1 * rng.standard_normal(40)


def _saved(**params):
    X, y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = BPRegressor(max_iter=3, random_state=0, **params).fit(X, y)
    buffer = io.BytesIO()
    est.save(buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def small():
    """A model file of about 3 KB."""
    return _saved(hidden_layer_sizes=(), solver="sgd")


MODELS = {
    "adam_rng": dict(hidden_layer_sizes=(4,), random_state=np.random.RandomState(0)),
    "sgd_early": dict(hidden_layer_sizes=(3, 2), solver="sgd", early_stopping=True,
                      learning_rate="invscaling"),
    "lbfgs_poisson": dict(hidden_layer_sizes=(2,), solver="lbfgs", loss="poisson"),
}


class _Files(dict):
    """Model files by name, with a short repr for hypothesis reports."""

    def __repr__(self):
        return "<model files %s>" % sorted(self)


@pytest.fixture(scope="module")
def models():
    X, y = _data()
    files = _Files()
    for name, params in MODELS.items():
        params = copy.deepcopy(params)
        if params.get("loss") == "poisson":
            y = np.abs(y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est = BPRegressor(max_iter=4, **{"random_state": 0, **params}).fit(X, y)
        buffer = io.BytesIO()
        est.save(buffer)
        files[name] = buffer.getvalue()
    return files


@pytest.fixture(autouse=True)
def no_unpickling(monkeypatch):
    """Any attempt to unpickle during a test fails it."""

    def refuse(*args, **kwargs):
        raise AssertionError("something tried to unpickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)


def _load(data, **kwargs):
    """The model, or None for a ModelFileError; any other exception escapes."""
    try:
        return fastbp.load(io.BytesIO(data), **kwargs)
    except ModelFileError:
        return None


def _members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def _zip(members, compression=zipfile.ZIP_STORED):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, content in members.items():
            method = zipfile.ZIP_DEFLATED if name == "metadata.json" else compression
            zf.writestr(name, content, compress_type=method)
    return buffer.getvalue()


def _npy(a):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, a, allow_pickle=False)
    return buffer.getvalue()


def _split(data):
    """(metadata, {name: array}) of a model file."""
    members = _members(data)
    metadata = json.loads(members.pop("metadata.json"))
    return metadata, {k[:-4]: np.load(io.BytesIO(v)) for k, v in members.items()}


def _join(metadata, arrays):
    """A model file with these arrays and correct descriptions and checksums."""
    metadata = copy.deepcopy(metadata)
    metadata["arrays"] = {
        k: {"dtype": a.dtype.str, "shape": list(a.shape),
            "sha256": hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()}
        for k, a in arrays.items()
    }
    members = {"metadata.json": json.dumps(metadata).encode()}
    members.update({k + ".npy": _npy(a) for k, a in arrays.items()})
    return _zip(members)


def _raw_zip(entries):
    """Zip bytes written by hand; entries are dicts with name and data, and
    optionally method, flags, crc and size (the uncompressed size claimed)."""
    out, central = io.BytesIO(), io.BytesIO()
    for e in entries:
        name, data = e["name"].encode(), e["data"]
        method, flags = e.get("method", 0), e.get("flags", 0)
        crc = e.get("crc", zlib.crc32(data))
        size = e.get("size", len(data))
        offset = out.tell()
        out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, flags, method, 0, 33,
                              crc, len(data), size, len(name), 0))
        out.write(name + data)
        central.write(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, flags, method,
                                  0, 33, crc, len(data), size, len(name), 0, 0, 0, 0,
                                  0, offset))
        central.write(name)
    start = out.tell()
    out.write(central.getvalue())
    out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries),
                          len(central.getvalue()), start, 0))
    return out.getvalue()


def _raw_entries(data):
    """The members of a model file as _raw_zip entries (stored)."""
    return [{"name": k, "data": v} for k, v in _members(data).items()]


# ---------------------------------------------------- every byte, every length


@pytest.mark.parametrize("flip", [0xFF, 0x01])
def test_every_flipped_byte_gives_model_file_error_or_the_same_model(small, flip):
    X, _ = _data()
    expected = _load(small).predict(X)
    for i in range(len(small)):
        corrupted = bytearray(small)
        corrupted[i] ^= flip
        model = _load(bytes(corrupted))
        if model is not None:
            # Only bytes nobody reads (timestamps, attributes, padding) may change.
            np.testing.assert_array_equal(model.predict(X), expected)


def test_every_truncation_gives_model_file_error(small):
    for n in range(len(small)):
        assert _load(small[:n]) is None, n


def test_appended_garbage_and_doubled_files(small):
    # Bytes after the end record move nothing zipfile trusts; a model stays one.
    for data in (small + b"\0" * 100, small + small, b"\0" * 100 + small):
        model = _load(data)
        assert model is None or isinstance(model, BPRegressor)


# ---------------------------------------------------------------- finding 1


@pytest.mark.parametrize("pos", [10**8, 700, 625, -1, True])
def test_random_state_pos_out_of_range_is_refused(models, pos):
    # set_state does not bounds-check pos: 10**8 crashed partial_fit, 700 read
    # past the generator's state. The key's checksum is untouched.
    metadata, arrays = _split(models["adam_rng"])
    metadata["params"]["random_state"]["$random_state"]["pos"] = pos
    with pytest.raises(ModelFileError, match="random.state"):
        fastbp.load(io.BytesIO(_join(metadata, arrays)))


@pytest.mark.parametrize(
    "edit",
    [
        lambda rs, a: rs.update(bit_generator="PCG64"),
        lambda rs, a: rs.update(has_gauss=2),
        lambda rs, a: rs.update(cached_gaussian={"$float": "nan"}),
        lambda rs, a: rs.update(cached_gaussian=1),
        lambda rs, a: rs.update(extra=1),
        lambda rs, a: a.update({rs["key"]["$array"]: a[rs["key"]["$array"]][:623]}),
        lambda rs, a: a.update({rs["key"]["$array"]: a[rs["key"]["$array"]] * 1.0}),
    ],
    ids=["generator", "has_gauss", "nan_gauss", "int_gauss", "extra_key", "short_key",
         "float_key"],
)
def test_random_state_fields_are_checked(models, edit):
    metadata, arrays = _split(models["adam_rng"])
    edit(metadata["params"]["random_state"]["$random_state"], arrays)
    with pytest.raises(ModelFileError, match="random.state"):
        fastbp.load(io.BytesIO(_join(metadata, arrays)))


@pytest.mark.parametrize("pos", [0, 311, 624])
def test_loaded_random_state_continues_training(models, pos):
    metadata, arrays = _split(models["adam_rng"])
    metadata["params"]["random_state"]["$random_state"]["pos"] = pos
    model = fastbp.load(io.BytesIO(_join(metadata, arrays)))
    assert model.random_state.get_state()[2] == pos
    X, y = _data()
    model.partial_fit(X, y)
    assert np.isfinite(model.predict(X)).all()


# ---------------------------------------------------------------- finding 2


def test_corrupt_deflate_stream_is_model_file_error(small):
    # About a quarter of these flips used to escape as zlib.error.
    with zipfile.ZipFile(io.BytesIO(small)) as zf:
        info = zf.getinfo("metadata.json")
    start = info.header_offset + 30 + len(info.filename)
    refused = 0
    for i in range(start, start + info.compress_size):
        corrupted = bytearray(small)
        corrupted[i] ^= 0x55
        # A flip in the stream's unused padding bits changes nothing.
        refused += _load(bytes(corrupted)) is None
    assert refused >= info.compress_size - 2


def test_deeply_nested_json_is_model_file_error(small):
    members = _members(small)
    metadata = json.loads(members["metadata.json"])
    text = json.dumps(metadata)[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}"
    members["metadata.json"] = text.encode()
    with pytest.raises(ModelFileError, match="nested more than"):
        fastbp.load(io.BytesIO(_zip(members)))
    # Brackets inside strings are text, not nesting.
    metadata["fastbp_version"] = "[" * 1000 + '\\"{' * 100
    members["metadata.json"] = json.dumps(metadata).encode()
    assert _load(_zip(members)) is not None


def test_encrypted_member_is_model_file_error(small):
    entries = _raw_entries(small)
    assert _load(_raw_zip(entries)) is not None
    entries[1]["flags"] = 0x1
    with pytest.raises(ModelFileError, match="encrypted"):
        fastbp.load(io.BytesIO(_raw_zip(entries)))


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_other_compression_methods_are_refused_before_reading(small, method):
    members = _members(small)
    with pytest.raises(ModelFileError, match="compression method %d" % method):
        fastbp.load(io.BytesIO(_zip(members, compression=method)))
    # Corrupted bzip2 and lzma streams used to raise OSError and LZMAError.
    entries = _raw_entries(small)
    entries[1].update(method=method, data=b"\x00" * len(entries[1]["data"]))
    with pytest.raises(ModelFileError, match="compression method"):
        fastbp.load(io.BytesIO(_raw_zip(entries)))


def test_deflated_arrays_are_read(small):
    model = _load(_zip(_members(small), compression=zipfile.ZIP_DEFLATED))
    X, _ = _data()
    np.testing.assert_array_equal(model.predict(X), _load(small).predict(X))


@pytest.mark.parametrize("shape", [[10**30, 1], [2**32, 2**32], [2**63, 0], [-1, 3]])
def test_huge_or_negative_shapes_are_model_file_error(small, shape):
    # 10**30 used to raise OverflowError; [2**32, 2**32] wrapped to size 0 and
    # failed in reshape. The .npy header and the checksum agree with the shape.
    members = _members(small)
    metadata = json.loads(members["metadata.json"])
    metadata["arrays"]["coefs_.0"].update(
        shape=shape, sha256=hashlib.sha256(b"").hexdigest())
    members["metadata.json"] = json.dumps(metadata).encode()
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": tuple(shape)})
    members["coefs_.0.npy"] = header.getvalue()
    with pytest.raises(ModelFileError):
        fastbp.load(io.BytesIO(_zip(members)))


def test_lying_npy_headers_are_model_file_error(small):
    members = _members(small)
    good = members["coefs_.0.npy"]
    for bad in (
        good[:8] + b"\xff\xff" + good[10:],  # header length past the member
        b"\x93NUMPY\x09\x00" + good[8:],  # unknown version
        good.replace(b"'fortran_order': False", b"'fortran_order': True "),
        good.replace(b"'descr': '<f8'", b"'descr': '>f8'"),
        good.replace(b"(3, 1)", b"(1, 3)"),
        good + b"\0" * 8,  # more data than the header says
        good[:-8],  # less
    ):
        members["coefs_.0.npy"] = bad
        assert _load(_zip(members)) is None


def test_file_size_in_zip_header_is_not_trusted(small):
    # A member that claims to be short but inflates to 64 MB of zeros past its
    # declared array: reading stops at the declared size plus one byte.
    entries = _raw_entries(small)
    i = next(i for i, e in enumerate(entries) if e["name"] == "coefs_.0.npy")
    content = entries[i]["data"] + bytes(64 << 20)
    entries[i].update(method=8, data=zlib.compress(content)[2:-4],
                      crc=zlib.crc32(content), size=len(entries[i]["data"]))
    data = _raw_zip(entries)
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError):
            fastbp.load(io.BytesIO(data))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


# ---------------------------------------------------------------- finding 3

# 2**26 float64 zeros: their SHA-256, and the CRC-32 of the .npy member holding
# them (header included), computed once, so the test builds the 0.53 MB bomb
# without touching 512 MiB.
_BOMB_SHA256 = "9acca8e8c22201155389f65abbf6bc9723edc7384ead80503839f49dcc56d767"
_BOMB_CRC = 3395182946


def _bomb(small, n=2**26):
    """A valid model file whose loss_curve_ declares n zeros, deflated."""
    members = _members(small)
    metadata = json.loads(members.pop("metadata.json"))
    metadata["arrays"]["loss_curve_"] = {"dtype": "<f8", "shape": [n],
                                         "sha256": _BOMB_SHA256}
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (n,)}
    )
    block = 1 << 20
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    # After a full flush the compressor forgets its window, so every 1 MiB of
    # zeros compresses to the same bytes.
    first = compressor.compress(header.getvalue() + bytes(block - 128))
    first += compressor.flush(zlib.Z_FULL_FLUSH)
    zeros = zlib.compressobj(9, zlib.DEFLATED, -15)
    again = zeros.compress(bytes(block)) + zeros.flush(zlib.Z_FULL_FLUSH)
    tail = zeros.compress(bytes(128)) + zeros.flush()
    stream = first + again * (n * 8 // block - 1) + tail
    entries = [{"name": "metadata.json", "data": json.dumps(metadata).encode()}]
    entries += [{"name": k, "data": v} for k, v in members.items()
                if k != "loss_curve_.npy"]
    entries.append({"name": "loss_curve_.npy", "data": stream, "method": 8,
                    "crc": _BOMB_CRC, "size": 128 + n * 8})
    return _raw_zip(entries)


def test_decompression_bomb_is_refused_before_reading(small):
    # This 0.53 MB file used to load in 16 s and 3.9 GB.
    data = _bomb(small)
    assert len(data) < 600_000
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match="compression bomb"):
            fastbp.load(io.BytesIO(data))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_bomb_over_max_bytes_is_refused_before_allocating(small):
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match="max_bytes"):
            fastbp.load(io.BytesIO(_bomb(small, n=2**22)), max_bytes=8 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_max_bytes_counts_arrays_and_curves_as_lists(models):
    data = models["sgd_early"]
    metadata, arrays = _split(data)
    arrays["loss_curve_"] = np.zeros(100_000)
    big = _join(metadata, arrays)
    assert _load(big) is not None
    with pytest.raises(ModelFileError, match="max_bytes"):
        fastbp.load(io.BytesIO(big), max_bytes=1_000_000)  # 800 kB raw, 4 MB as a list
    model = fastbp.load(io.BytesIO(big), max_bytes=5_000_000)
    assert len(model.loss_curve_) == 100_000
    with pytest.raises(ValueError, match="max_bytes"):
        fastbp.load(io.BytesIO(data), max_bytes=0)


# ---------------------------------------------------- semantic consistency


def _edit(models, name, edit):
    metadata, arrays = _split(models[name])
    edit(metadata["params"], metadata["attributes"], arrays)
    return _join(metadata, arrays)


def _state(attrs):
    return attrs["_optimizer_state"]


def _moment(attrs, i=0):
    return _state(attrs)["moments"][i]["$array"]


REFUSED = {
    "extra layer in coefs": ("adam_rng", lambda p, a, x: x.update(
        {"coefs_.0": np.zeros((3, 5))})),
    "intercept length": ("adam_rng", lambda p, a, x: x.update(
        {"intercepts_.0": np.zeros(5)})),
    "coefs dtype mix": ("adam_rng", lambda p, a, x: x.update(
        {"coefs_.1": x["coefs_.1"].astype(np.float32)})),
    "uint32 weights": ("adam_rng", lambda p, a, x: x.update(
        {"coefs_.1": x["coefs_.1"].astype(np.uint32)})),
    "3-D weights": ("adam_rng", lambda p, a, x: x.update(
        {"coefs_.1": x["coefs_.1"][None]})),
    "moment shape": ("adam_rng", lambda p, a, x: x.update(
        {_moment(a, 1): np.zeros((4, 2))})),
    "moments count": ("adam_rng", lambda p, a, x: _state(a).update(solver="sgd")),
    "learning rate nan": ("adam_rng", lambda p, a, x: _state(a).update(
        learning_rate={"$float": "nan"})),
    "learning rate negative": ("adam_rng", lambda p, a, x: _state(a).update(
        learning_rate=-0.1)),
    "step count huge": ("adam_rng", lambda p, a, x: _state(a).update(t=2**60)),
    "step count bool": ("adam_rng", lambda p, a, x: _state(a).update(t=True)),
    "state solver": ("adam_rng", lambda p, a, x: _state(a).update(solver="lbfgs")),
    "state extra key": ("adam_rng", lambda p, a, x: _state(a).update(extra=1)),
    "n_iter_ past curve": ("adam_rng", lambda p, a, x: a.update(n_iter_=5)),
    "negative t_": ("adam_rng", lambda p, a, x: a.update(t_=-1)),
    "float n_iter_": ("adam_rng", lambda p, a, x: a.update(n_iter_=2.0)),
    "scores past curve": ("sgd_early", lambda p, a, x: x.update(
        {"validation_scores_": np.zeros(9)})),
    "curve of ints": ("sgd_early", lambda p, a, x: a.update(loss_curve_=[1, 2, 3, 4])
                      or x.pop("loss_curve_")),
    "scores without best": ("sgd_early", lambda p, a, x: a.update(
        best_validation_score_=None)),
    "count past curve": ("sgd_early", lambda p, a, x: a.update(
        _no_improvement_count=10)),
    "best weights shape": ("sgd_early", lambda p, a, x: x.update(
        {"_best_coefs.0": np.zeros((2, 3))})),
    "best weights dtype mix": ("sgd_early", lambda p, a, x: x.update(
        {"_best_coefs.0": x["_best_coefs.0"].astype(np.float32)})),
    "curve as array": ("sgd_early", lambda p, a, x: a.update(
        loss_curve_={"$array": "loss_curve_"})),
    "curve float32": ("sgd_early", lambda p, a, x: x.update(
        {"loss_curve_": x["loss_curve_"].astype(np.float32)})),
    "array used twice": ("sgd_early", lambda p, a, x: a["_best_coefs"].__setitem__(
        0, {"$array": "coefs_.0"})),
    "softmax output for a regressor": ("lbfgs_poisson", lambda p, a, x: a.update(
        out_activation_="softmax")),
    "activation list longer than the layers": ("lbfgs_poisson", lambda p, a, x: p.update(
        activation=["tanh", "relu", "gelu"])),
    "relu output": ("lbfgs_poisson", lambda p, a, x: a.update(out_activation_="relu")),
    "list output": ("lbfgs_poisson", lambda p, a, x: a.update(
        out_activation_=["identity"])),
    "n_layers_": ("lbfgs_poisson", lambda p, a, x: a.update(n_layers_=4)),
    "n_outputs_ zero": ("lbfgs_poisson", lambda p, a, x: a.update(n_outputs_=0)),
    "feature names length": ("lbfgs_poisson", lambda p, a, x: a.update(
        feature_names_in_={"$strings": ["a", "b"]})),
    "loss_ string": ("lbfgs_poisson", lambda p, a, x: a.update(loss_="1.0")),
    "nan alpha": ("lbfgs_poisson", lambda p, a, x: p.update(alpha={"$float": "nan"})),
    "inf tol": ("lbfgs_poisson", lambda p, a, x: p.update(tol={"$float": "inf"})),
    "huge JSON float": ("lbfgs_poisson", lambda p, a, x: p.update(alpha=1e400)),
    "array as param": ("lbfgs_poisson", lambda p, a, x: p.update(
        alpha={"$array": "coefs_.0"})),
    "dict param": ("lbfgs_poisson", lambda p, a, x: p.update(alpha={"a": 1})),
    "random state elsewhere": ("adam_rng", lambda p, a, x: a.update(
        loss_=p["random_state"])),
    "unknown tag": ("lbfgs_poisson", lambda p, a, x: a.update(loss_={"$eval": "1"})),
    "labels in a regressor": ("lbfgs_poisson", lambda p, a, x: a.update(
        loss_={"$labels": {"kind": "int", "dtype": "<i8", "values": [1]}})),
    "missing coefs": ("lbfgs_poisson", lambda p, a, x: a.pop("coefs_") and x.clear()),
}


@pytest.mark.parametrize("name", REFUSED)
def test_inconsistent_state_is_refused(models, name):
    model, edit = REFUSED[name]
    with pytest.raises(ModelFileError):
        fastbp.load(io.BytesIO(_edit(models, model, edit)))


def test_what_fits_write_loads(models, tmp_path):
    # States that look odd but that fastbp writes, and so must load: curves that
    # warm starts made longer than n_iter_, a solver changed after the fit with
    # the old optimizer state kept, best weights in another dtype after a
    # partial_fit in float32, layers and loss changed by set_params, an
    # invscaling learning rate that underflowed.
    X, y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warm = BPRegressor(hidden_layer_sizes=(3,), max_iter=3, warm_start=True,
                           random_state=0).fit(X, y).fit(X, y)
        warm.set_params(early_stopping=True).fit(X, y)
        switched = BPRegressor(hidden_layer_sizes=(3,), max_iter=3, random_state=0,
                               early_stopping=True).fit(X, y)
        switched.set_params(solver="lbfgs", warm_start=True).fit(X, y)
        mixed = BPRegressor(hidden_layer_sizes=(3,), max_iter=3, random_state=0,
                            solver="sgd").fit(X, y)
        mixed.partial_fit(X.astype(np.float32), y)
        changed = BPRegressor(hidden_layer_sizes=(3,), max_iter=3,
                              random_state=0).fit(X, y)
        changed.set_params(hidden_layer_sizes=(7, 7), loss="poisson")
    # Interrupted in its first epoch: no loss_, empty curves (written as []).
    interrupted = copy.deepcopy(switched)
    interrupted.set_params(solver="adam", warm_start=False)
    interrupted.loss_curve_, interrupted.validation_scores_ = [], []
    interrupted.validation_loss_curve_ = []
    interrupted.n_iter_ = interrupted._no_improvement_count = 0
    del interrupted.loss_
    for est in (warm, switched, mixed, changed, interrupted):
        est.save(tmp_path / "m.npz")
        loaded = fastbp.load(tmp_path / "m.npz")
        np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    metadata, arrays = _split(models["sgd_early"])
    metadata["attributes"]["_optimizer_state"]["learning_rate"] = 0.0
    arrays["validation_scores_"] = np.zeros(0)
    assert _load(_join(metadata, arrays)) is not None


# ------------------------------------------------------- hypothesis attacks

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5)
    | st.sampled_from([{"$float": "inf"}, {"$float": "nan"}, {"$strings": ["a"]},
                       {"$array": "coefs_.0"}, {"$floats": "loss_curve_"},
                       {"$labels": {"kind": "int", "dtype": "<i8", "values": [0, 1]}}]),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=3), children, max_size=2),
    max_leaves=6,
)


def _paths(value, prefix=()):
    """Every path into a JSON tree."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _set_path(tree, path, value):
    for key in path[:-1]:
        tree = tree[key]
    tree[path[-1]] = value


@st.composite
def _mutated(draw, files):
    """A model file with one to three semantic mutations, checksums all correct."""
    metadata, arrays = _split(files[draw(st.sampled_from(sorted(files)))])
    for _ in range(draw(st.integers(1, 3))):
        what = draw(st.sampled_from(["json", "json", "array_shape", "array_dtype",
                                     "drop"]))
        if what == "json":
            paths = [p for section in ("params", "attributes")
                     for p in _paths(metadata[section], (section,)) if len(p) > 1]
            path = draw(st.sampled_from(paths))
            _set_path(metadata, path, copy.deepcopy(draw(_JSON)))
        elif what == "drop":
            section = draw(st.sampled_from(["params", "attributes"]))
            if metadata[section]:
                metadata[section].pop(draw(st.sampled_from(sorted(metadata[section]))))
        elif arrays:
            name = draw(st.sampled_from(sorted(arrays)))
            a = arrays[name]
            if what == "array_shape":
                shape = draw(st.lists(st.integers(0, 6), min_size=1, max_size=3))
                arrays[name] = np.resize(a, shape).astype(a.dtype)
            else:
                dtype = draw(st.sampled_from([np.float32, np.float64, np.uint32]))
                arrays[name] = a.astype(dtype)
    return _join(metadata, arrays)


def _use(model):
    """What a user does with a loaded model: only its own errors may come out."""
    X, y = _data(model.n_features_in_)
    y = np.abs(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.predict(X)
        if hasattr(model, "partial_fit"):
            try:
                model.partial_fit(X, np.repeat(y[:, None], model.n_outputs_, axis=1))
            except ValueError as exc:
                # The estimator's own refusals (layers or loss changed by
                # set_params, early stopping, divergence) are fine; nothing
                # else is.
                assert any(reason in str(exc) for reason in (
                    "fit again", "non-finite", "early_stopping",
                    "hidden_layer_sizes")), exc
            model.predict(X)


@SETTINGS
@given(data=st.data())
def test_hostile_metadata_gives_model_file_error_or_a_usable_model(models, data):
    model = _load(data.draw(_mutated(models)))
    if model is not None:
        _use(model)


@st.composite
def _valid_mutation(draw, files):
    """A file changed only in ways validation accepts: values, not structure."""
    metadata, arrays = _split(files[draw(st.sampled_from(sorted(files)))])
    attrs = metadata["attributes"]
    floats = st.floats(width=32, allow_nan=True, allow_infinity=True)
    for name in sorted(arrays):
        if arrays[name].dtype.kind == "f" and draw(st.booleans()):
            arrays[name] = np.asarray(
                draw(st.lists(floats, min_size=arrays[name].size,
                              max_size=arrays[name].size)),
                dtype=arrays[name].dtype,
            ).reshape(arrays[name].shape)
        elif arrays[name].dtype.kind == "u":
            arrays[name] = np.asarray(draw(st.lists(
                st.integers(0, 2**32 - 1), min_size=624, max_size=624)), dtype=np.uint32)
    rs = metadata["params"].get("random_state")
    if isinstance(rs, dict):
        rs["$random_state"]["pos"] = draw(st.integers(0, 624))
        rs["$random_state"]["has_gauss"] = draw(st.integers(0, 1))
        rs["$random_state"]["cached_gaussian"] = draw(
            st.floats(allow_nan=False, allow_infinity=False))
    state = attrs.get("_optimizer_state")
    if state is not None:
        state["t"] = draw(st.integers(0, 2**53))
        state["learning_rate"] = draw(st.floats(0, 1e6))
    attrs["t_"] = draw(st.integers(0, 2**53))
    attrs["n_iter_"] = draw(st.integers(0, len(arrays["loss_curve_"])))
    return _join(metadata, arrays)


@settings(SETTINGS, max_examples=40)
@given(data=st.data())
def test_files_that_pass_validation_are_safe_to_use(models, data):
    model = fastbp.load(io.BytesIO(data.draw(_valid_mutation(models))))
    _use(model)


def test_cli_predict_reports_a_hostile_file_in_one_line(small, tmp_path, capsys):
    from fastbp.__main__ import main

    X, _ = _data()
    table = tmp_path / "x.csv"
    table.write_text("a,b,c\n" + "\n".join(",".join(map(str, row)) for row in X))
    with zipfile.ZipFile(io.BytesIO(small)) as zf:
        info = zf.getinfo("metadata.json")
    bad = bytearray(small)
    bad[info.header_offset + 30 + len(info.filename) + 5] ^= 0xFF
    model = tmp_path / "model.npz"
    for data in (bytes(bad), _bomb(small), small[: len(small) // 2]):
        model.write_bytes(data)
        assert main(["predict", str(model), str(table)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("fastbp: error: ") and len(err.splitlines()) == 1, err
