# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""The $labels encoding of a classifier's classes_: exact round trips, strict reads."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fastbp._persist import decode_labels, encode_labels

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None)


def _round_trip(labels):
    # Through JSON text, as in a file.
    return decode_labels(json.loads(json.dumps(encode_labels(labels))))


def _assert_same(labels, decoded):
    assert decoded.dtype == labels.dtype
    assert decoded.shape == labels.shape
    assert decoded.tolist() == labels.tolist()


LABELS = {
    "int64": np.array([0, 1, 2]),
    "int8 extremes": np.array([-128, 0, 127], dtype=np.int8),
    "uint64 extremes": np.array([0, 2**64 - 1], dtype=np.uint64),
    "int64 extremes": np.array([-2**63, 2**63 - 1]),
    "uint16": np.array([3, 7], dtype=np.uint16),
    "bool": np.array([False, True]),
    "float64": np.array([-1.5, 0.1, 1e300]),
    "float32": np.array([0.1, 3.4e38], dtype=np.float32),
    "float16": np.array([0.1, 65504.0], dtype=np.float16),
    "str": np.array(["cat", "dog", "émeu"]),
    "wide str": np.array(["a", "b"], dtype="<U12"),
    "empty str": np.array(["", "x"]),
    "object str": np.array(["no", "yes", "ü"], dtype=object),
    "multilabel": np.arange(5),
}


@pytest.mark.parametrize("labels", LABELS.values(), ids=LABELS.keys())
def test_labels_round_trip_exactly(labels):
    _assert_same(labels, _round_trip(labels))


def test_big_endian_labels_come_back_little_endian():
    labels = np.array([1, 2], dtype=">i4")
    decoded = _round_trip(labels)
    assert decoded.dtype == np.dtype("<i4") and decoded.tolist() == [1, 2]


@pytest.mark.parametrize(
    "labels",
    [
        np.array([[0, 1]]),
        np.array([1.0, np.nan]),
        np.array([1.0, np.inf]),
        np.array([1 + 2j]),
        np.array([b"a", b"b"]),
        np.array(["a", 1], dtype=object),
        np.array(["2020-01-01"], dtype="datetime64[D]"),
        np.array([1.0], dtype=np.longdouble),
        [0, 1],
    ],
    ids=["2-D", "nan", "inf", "complex", "bytes", "mixed object", "datetime",
         "longdouble", "list"],
)
def test_unsupported_labels_are_refused_at_save(labels):
    if isinstance(labels, np.ndarray) and labels.dtype == np.float64 and (
        np.dtype(np.longdouble) == np.float64
    ):
        pytest.skip("longdouble is float64 here")
    with pytest.raises(TypeError, match="use pickle or joblib"):
        encode_labels(labels)


@pytest.mark.parametrize(
    "content",
    [
        None,
        [],
        {"kind": "int", "dtype": "<i8"},
        {"kind": "int", "dtype": "<i8", "values": []},
        {"kind": "int", "dtype": "<i8", "values": [1, 1]},
        {"kind": "int", "dtype": "<i8", "values": [True, 2]},
        {"kind": "int", "dtype": "<i8", "values": [1.0]},
        {"kind": "int", "dtype": "|i1", "values": [128]},
        {"kind": "int", "dtype": "<u4", "values": [-1]},
        {"kind": "int", "dtype": "|O", "values": [1]},
        {"kind": "int", "dtype": ">i8", "values": [1]},
        {"kind": "int", "dtype": "<f8", "values": [1]},
        {"kind": "bool", "dtype": "|b1", "values": [0, 1]},
        {"kind": "bool", "dtype": "|b1", "values": [True, True]},
        {"kind": "float", "dtype": "<f4", "values": [0.1]},
        {"kind": "float", "dtype": "<f2", "values": [1e10]},
        {"kind": "float", "dtype": "<f8", "values": [1]},
        {"kind": "float", "dtype": "<f8", "values": [0.0, -0.0]},
        {"kind": "str", "dtype": "<U2", "values": ["abc"]},
        {"kind": "str", "dtype": "<U2", "values": ["a\x00"]},
        {"kind": "str", "dtype": "<U999999", "values": ["a", "b", "c", "d", "e",
                                                        "f", "g", "h", "i", "j",
                                                        "k", "l", "m", "n", "o",
                                                        "p", "q", "r"]},
        {"kind": "str", "dtype": "|S3", "values": ["a"]},
        {"kind": "str", "dtype": "<U3", "values": [1]},
        {"kind": "object", "dtype": "|O", "values": ["a", 1]},
        {"kind": "object", "dtype": "<U1", "values": ["a"]},
        {"kind": "pickle", "dtype": "|O", "values": ["a"]},
        {"kind": "int", "dtype": "<i8", "values": [1], "extra": 1},
        {"kind": ["int"], "dtype": {"a": 1}, "values": [1]},
    ],
)
def test_invalid_labels_are_refused_at_load(content):
    with pytest.raises(ValueError):
        decode_labels(content)


_DTYPES = (
    [np.dtype(t) for t in ("i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8")]
    + [np.dtype(t) for t in ("f2", "f4", "f8")]
    + [np.dtype("bool"), np.dtype("<U6")]
)


@st.composite
def _labels(draw):
    dtype = draw(st.sampled_from(_DTYPES))
    elements = None
    if dtype.kind == "f":
        elements = hnp.from_dtype(dtype, allow_nan=False, allow_infinity=False,
                                  allow_subnormal=True)
    elif dtype.kind == "U":
        elements = st.text(st.characters(exclude_characters="\x00"), max_size=6)
    labels = draw(hnp.arrays(dtype, st.integers(1, 8), elements=elements,
                             unique=True))
    if dtype.kind == "f" and (labels == 0).sum() > 1:
        labels = labels[labels != 0]  # 0.0 and -0.0 are one label
    if labels.size == 0:
        labels = np.zeros(1, dtype=dtype)
    if dtype.kind == "U" and draw(st.booleans()):
        object_labels = np.empty(labels.size, dtype=object)
        object_labels[:] = labels.tolist()
        labels = object_labels
    return labels


@SETTINGS
@given(labels=_labels())
def test_every_supported_label_array_round_trips(labels):
    _assert_same(labels, _round_trip(labels))


_CONTENT = st.fixed_dictionaries({
    "kind": st.sampled_from(["int", "bool", "float", "str", "object", "other"]),
    "dtype": st.sampled_from(["<i8", "|u1", "|b1", "<f2", "<f4", "<f8", "<U3", "<U0",
                              "|O", "|S2", "<M8[D]", ">i8"]),
    "values": st.lists(
        st.none() | st.booleans() | st.integers(-2**65, 2**65) | st.text(max_size=4)
        | st.floats(allow_nan=False, allow_infinity=False),
        max_size=5,
    ),
})


@SETTINGS
@given(content=_CONTENT)
def test_decoding_arbitrary_labels_is_exact_or_a_value_error(content):
    try:
        labels = decode_labels(content)
    except ValueError:
        return
    assert labels.ndim == 1 and labels.size == len(content["values"])
    assert labels.tolist() == content["values"]
    assert len(set(labels.tolist())) == labels.size
    assert encode_labels(labels) == content
