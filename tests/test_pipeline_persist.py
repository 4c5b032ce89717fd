# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Pipelines around a network, saved pickle-free: bit-identical round trips,
a closed set of kinds, and hostile files that give ModelFileError only."""

import copy
import hashlib
import io
import json
import pickle
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MinMaxScaler,
    OneHotEncoder,
    StandardScaler,
)

import fastbp
from fastbp import BPClassifier, BPRegressor, _persist
from fastbp._persist import ModelFileError


@pytest.fixture(autouse=True)
def no_unpickling(monkeypatch):
    """Any attempt to unpickle during a test fails it."""

    def refuse(*args, **kwargs):
        raise AssertionError("something tried to unpickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)


def _frame(n=80, seed=0):
    """Numbers with holes, text with holes, booleans, a pandas category and
    an integer code: every column kind `fastbp fit` meets."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "a": rng.standard_normal(n) * 10 + 3,
        "b": rng.integers(0, 50, n),
        "colour": rng.choice(["red", "green", "blue"], n),
        "flag": rng.random(n) < 0.5,
        "size": pd.Categorical(rng.choice(["S", "M", "L"], n)),
        "grade": rng.choice([3, 1, 2], n),
    })
    frame.loc[frame.index % 7 == 1, "a"] = np.nan
    frame["colour"] = frame["colour"].astype(object)
    frame.loc[frame.index % 9 == 2, "colour"] = np.nan
    y = (frame["a"].fillna(0) * 0.3 + frame["b"] * 0.1
         + frame["colour"].map({"red": 2.0, "green": -1.0}).fillna(0.5)
         + frame["flag"] * 1.5 + 20)
    return frame, y


NUMERIC, CATEGORICAL = ["a", "b"], ["colour", "flag", "size", "grade"]


def _preprocess(sparse=True, threshold=0.3):
    return ColumnTransformer([
        ("numeric", Pipeline([
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
        ]), NUMERIC),
        ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=sparse),
         CATEGORICAL),
    ], sparse_threshold=threshold)


def _log_then_scale():
    return Pipeline([("log", FunctionTransformer(np.log, inverse_func=np.exp)),
                     ("scale", StandardScaler())])


def _fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y)


def _net(cls=BPRegressor, **params):
    return cls(hidden_layer_sizes=(6,), max_iter=30, random_state=0, **params)


def _models():
    frame, y = _frame()
    labels = np.where(y > y.median(), "high", "low")
    X = frame[["a", "b", "grade"]].fillna(0.0).to_numpy(dtype=float)
    return {
        "cli_regressor": (Pipeline([
            ("preprocess", _preprocess()),
            ("model", TransformedTargetRegressor(_net(),
                                                 transformer=_log_then_scale())),
        ]), frame, y),
        "dense_two_targets": (Pipeline([
            ("preprocess", _preprocess(sparse=False)),
            ("model", TransformedTargetRegressor(_net(solver="lbfgs"),
                                                 transformer=StandardScaler())),
        ]), frame, np.column_stack([y, -y])),
        "sparse_rows": (Pipeline([
            ("preprocess", _preprocess(threshold=0.99)),
            ("model", TransformedTargetRegressor(_net(), transformer=StandardScaler())),
        ]), frame, y),
        "classifier": (Pipeline([
            ("preprocess", _preprocess()), ("model", _net(BPClassifier)),
        ]), frame, labels),
        "array_scaler": (make_pipeline(StandardScaler(with_mean=False), _net()), X, y),
        "target_only": (TransformedTargetRegressor(
            _net(), transformer=FunctionTransformer(np.log, inverse_func=np.exp)),
            X, y),
    }


@pytest.fixture(scope="module")
def fitted():
    return {name: (_fit(model, X, y), X, y)
            for name, (model, X, y) in _models().items()}


def _saved(model, **kwargs):
    buffer = io.BytesIO()
    fastbp.save(model, buffer, **kwargs)
    return buffer.getvalue()


def _new_rows(X):
    """Rows the model never saw, with a category it never saw."""
    if isinstance(X, pd.DataFrame):
        new, _ = _frame(n=30, seed=1)
        new["colour"] = new["colour"].where(new.index % 5 != 0, "purple")
        return new
    return X[:30] * 1.5 + 0.25


@pytest.mark.parametrize("name", sorted(_models()))
def test_round_trip_predicts_bit_identically(fitted, name):
    model, X, _ = fitted[name]
    loaded = fastbp.load(io.BytesIO(_saved(model)))
    if name == "sparse_rows":
        assert loaded[0].sparse_output_ and sp.issparse(loaded[0].transform(X))
    assert type(loaded) is type(model)
    assert repr(loaded) == repr(model)
    assert sorted(loaded.get_params(deep=True)) == sorted(model.get_params(deep=True))
    for rows in (X, _new_rows(X)):
        assert np.array_equal(loaded.predict(rows), model.predict(rows))
    if hasattr(model, "predict_proba"):
        assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
        assert np.array_equal(loaded.classes_, model.classes_)
    # Saving the loaded model gives the same bytes.
    assert _saved(loaded) == _saved(model)


def test_loaded_state_is_the_fitted_state(fitted):
    model, X, _ = fitted["cli_regressor"]
    loaded = fastbp.load(io.BytesIO(_saved(model)))
    for fitted_step, loaded_step in ((model[0], loaded[0]),):
        a, b = fitted_step.named_transformers_, loaded_step.named_transformers_
        for key in ("mean_", "var_", "scale_"):
            assert np.array_equal(getattr(a["numeric"][-1], key),
                                  getattr(b["numeric"][-1], key))
        assert np.array_equal(a["numeric"][0].statistics_, b["numeric"][0].statistics_)
        for x, y in zip(a["categorical"].categories_, b["categorical"].categories_):
            assert x.dtype == y.dtype and len(x) == len(y)
            assert pd.Series(x).equals(pd.Series(y))
        assert loaded_step.output_indices_ == fitted_step.output_indices_
        assert loaded_step.sparse_output_ == fitted_step.sparse_output_
    # The network continues training where it stood.
    assert np.array_equal(loaded[-1].regressor_.coefs_[0], model[-1].regressor_.coefs_[0])
    assert loaded[-1].regressor is not loaded[-1].regressor_
    # The file says what it holds, in JSON.
    with zipfile.ZipFile(io.BytesIO(_saved(model))) as zf:
        metadata = json.loads(zf.read("metadata.json"))
    assert metadata["format_version"] == _persist.PIPELINE_FORMAT_VERSION
    categories = metadata["model"]["steps"][0][1]["transformers"][1][1]["categories"]
    assert categories[0] == {"labels": {"kind": "object", "dtype": "|O",
                                        "values": ["blue", "green", "red"]},
                             "missing": ["nan"]}
    assert categories[1]["labels"]["values"] == [False, True]
    assert categories[3]["labels"] == {"kind": "int", "dtype": "<i8",
                                       "values": [1, 2, 3]}


def test_a_network_alone_is_saved_as_before(fitted):
    model, X, y = fitted["array_scaler"]
    net = model[-1]
    data = _saved(net, training={"rows": 80, "features": {"numeric": ["a"]}})
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        metadata = json.loads(zf.read("metadata.json"))
    assert metadata["format_version"] == 1 and metadata["estimator"] == "BPRegressor"
    assert metadata["training"] == {"rows": 80, "features": {"numeric": ["a"]}}
    loaded = fastbp.load(io.BytesIO(data))
    assert np.array_equal(loaded.predict(X), net.predict(X))


def test_an_older_reader_asks_for_an_upgrade(fitted, monkeypatch):
    data = _saved(fitted["cli_regressor"][0])
    monkeypatch.setattr(_persist, "NEWEST_FORMAT_VERSION", 2)
    with pytest.raises(ModelFileError, match="format version 3.*Upgrade fastbp"):
        fastbp.load(io.BytesIO(data))


# ------------------------------------------------------ a closed set of kinds


def _frame_pipeline(*steps):
    frame, y = _frame()
    return _fit(Pipeline(list(steps)), frame[NUMERIC].fillna(0.0), y)


class MyScaler(StandardScaler):
    pass


@pytest.mark.parametrize("make, match", [
    (lambda: _frame_pipeline(("s", MinMaxScaler()), ("m", _net())),
     "MinMaxScaler is not among the transformers"),
    (lambda: _frame_pipeline(("s", MyScaler()), ("m", _net())),
     "MyScaler is not among the transformers"),
    (lambda: _frame_pipeline(("i", SimpleImputer(strategy="most_frequent")),
                             ("m", _net())), "strategy 'mean' or 'median'"),
    (lambda: _frame_pipeline(("i", SimpleImputer()), ("s", StandardScaler()),
                             ("m", Ridge())), "Ridge is not a fastbp network"),
    (lambda: _frame_pipeline(("i", SimpleImputer(add_indicator=True)),
                             ("m", _net())), "add_indicator=False"),
    (lambda: _frame_pipeline(("i", SimpleImputer()), ("m", TransformedTargetRegressor(
        _net(), func=np.log, inverse_func=np.exp))), "needs a transformer"),
    (lambda: _frame_pipeline(("i", SimpleImputer()), ("m", TransformedTargetRegressor(
        _net(), transformer=FunctionTransformer(np.sqrt, inverse_func=np.square)))),
     r"FunctionTransformer\(numpy.log"),
    (lambda: _fit(Pipeline([
        ("c", ColumnTransformer([("o", OneHotEncoder(drop="first"), ["colour"])],
                                remainder="passthrough")),
        ("m", _net())]), _frame()[0][["colour", "a"]].fillna({"colour": "red", "a": 0.0}),
        _frame()[1]),
     "remainder='drop'"),
    (lambda: _fit(Pipeline([
        ("c", ColumnTransformer([("o", OneHotEncoder(drop="first"), ["grade"])])),
        ("m", _net())]), _frame()[0], _frame()[1]), "drop=None"),
    (lambda: _fit(Pipeline([
        ("c", ColumnTransformer([("o", "passthrough", ["b"])])),
        ("m", _net())]), _frame()[0], _frame()[1]), "not 'drop' or 'passthrough'"),
    (lambda: Ridge().fit([[0.0], [1.0]], [0.0, 1.0]), "Ridge"),
])
def test_anything_outside_the_closed_set_is_refused(make, match):
    model = make()
    with pytest.raises(TypeError, match=match) as exc:
        _saved(model)
    assert "Use pickle or joblib" in str(exc.value) or "fastbp's format" in str(exc.value)


def test_refusal_writes_nothing(tmp_path):
    path = tmp_path / "m.npz"
    with pytest.raises(TypeError):
        fastbp.save(_frame_pipeline(("s", MinMaxScaler()), ("m", _net())), path)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ hostile files


def _split(data):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    metadata = json.loads(members.pop("metadata.json"))
    return metadata, {k[:-4]: np.load(io.BytesIO(v)) for k, v in members.items()}


def _join(metadata, arrays):
    metadata = copy.deepcopy(metadata)
    metadata["arrays"] = {
        k: {"dtype": a.dtype.str, "shape": list(a.shape),
            "sha256": hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()}
        for k, a in arrays.items()
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("metadata.json", json.dumps(metadata))
        for k, a in arrays.items():
            b = io.BytesIO()
            np.lib.format.write_array(b, a, allow_pickle=False)
            zf.writestr(k + ".npy", b.getvalue())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def cli_file(fitted):
    return _saved(fitted["cli_regressor"][0])


def _tree(metadata):
    pre = metadata["model"]["steps"][0][1]
    return {"pre": pre, "num": pre["transformers"][0][1],
            "impute": pre["transformers"][0][1]["steps"][0][1],
            "scale": pre["transformers"][0][1]["steps"][1][1],
            "onehot": pre["transformers"][1][1],
            "ttr": metadata["model"]["steps"][1][1]}


def _edited(data, edit):
    metadata, arrays = _split(data)
    edit(metadata, arrays, _tree(metadata))
    return _join(metadata, arrays)


def _array_of(arrays, node, key):
    return arrays[node[key]["$array"]]


@pytest.mark.parametrize("edit, match", [
    (lambda m, a, t: m.update(estimator="os.system"), "unknown estimator 'os.system'"),
    (lambda m, a, t: t["onehot"].update(kind="builtins.eval"),
     "unknown transformer kind 'builtins.eval'"),
    (lambda m, a, t: t["ttr"]["transformer"]["steps"][0][1].update(function="exec"),
     "the only function is 'log'"),
    (lambda m, a, t: t["onehot"]["categories"][0]["labels"]["values"].reverse(),
     "not sorted"),
    (lambda m, a, t: t["onehot"]["categories"][0].update(missing=["nan", "none"]),
     "invalid missing categories"),
    (lambda m, a, t: t["onehot"]["categories"][3].update(missing=["nan"]),
     "invalid missing categories"),
    (lambda m, a, t: t["onehot"]["categories"].pop(), "one list per column"),
    (lambda m, a, t: t["onehot"]["categories"][1]["labels"]["values"].append(True),
     r"holds a value twice"),
    (lambda m, a, t: t["onehot"]["categories"][0]["labels"]["values"].append("zzz"),
     r"takes \d+ features but the step before gives \d+"),
    (lambda m, a, t: t["pre"]["transformers"][0][2].__setitem__(0, "nope"),
     "distinct columns of feature_names_in"),
    (lambda m, a, t: t["pre"]["transformers"][1].__setitem__(0, "numeric"),
     "same name"),
    (lambda m, a, t: t["pre"]["transformers"][1].__setitem__(0, "a__b"),
     "invalid step name"),
    (lambda m, a, t: t["impute"]["params"].update(strategy="most_frequent"),
     "invalid strategy"),
    (lambda m, a, t: t["impute"]["params"].update(fill_value=0), "exactly the entries"),
    (lambda m, a, t: t["scale"].pop("var"), "exactly the entries"),
    (lambda m, a, t: t["scale"].update(n_samples_seen=-1), "invalid n_samples_seen"),
    (lambda m, a, t: t["scale"].update(n_features_in=3), "shape"),
    (lambda m, a, t: t["scale"].update(mean=t["scale"]["var"]),
     "a second time"),
    (lambda m, a, t: t["ttr"].update(training_dim=3), "invalid training_dim"),
    (lambda m, a, t: t["ttr"]["regressor"].update(kind="Pipeline"),
     "must be a fastbp network"),
    (lambda m, a, t: t["ttr"]["regressor"]["params"].update(activation="evil"),
     "invalid hyperparameters"),
    (lambda m, a, t: m.update(training={"rows": [[1]]}), "invalid training summary"),
    (lambda m, a, t: m.update(training="x" * 20_000), "invalid training summary"),
    (lambda m, a, t: a.update({t["scale"]["scale"]["$array"]: np.zeros(2)}),
     "invalid scale_"),
    (lambda m, a, t: a.update({t["scale"]["mean"]["$array"]: np.array([np.nan, 1])}),
     "invalid mean_"),
    (lambda m, a, t: a.update({t["impute"]["statistics"]["$array"]:
                               np.array([np.inf, 1.0])}), "not all finite"),
    (lambda m, a, t: a.update({t["impute"]["statistics"]["$array"]:
                               np.array([1, 2], dtype=np.uint32)}), "dtype"),
])
def test_tampered_pipeline_gives_a_clear_model_file_error(cli_file, edit, match):
    with pytest.raises(ModelFileError, match=match):
        fastbp.load(io.BytesIO(_edited(cli_file, edit)))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**6) | st.floats(allow_nan=False,
                                                                     allow_infinity=False)
    | st.text(max_size=8) | st.sampled_from(["log", "Pipeline", "StandardScaler",
                                             "OneHotEncoder", "network", "nan", "none",
                                             "object", "|O", "<i8"]),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow,
                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hostile_pipeline_metadata_gives_model_file_error_or_a_usable_model(
        cli_file, data):
    metadata, arrays = _split(cli_file)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(metadata["model"], ("model",)) if len(p) > 1]
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        tree = metadata
        for key in path[:-1]:
            tree = tree[key]
        if data.draw(st.booleans()) and isinstance(tree, dict):
            tree.pop(path[-1])
        else:
            tree[path[-1]] = copy.deepcopy(data.draw(_JSON))
    try:
        model = fastbp.load(io.BytesIO(_join(metadata, arrays)))
    except ModelFileError:
        return
    frame, _ = _frame(n=20, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model.predict(frame)
        except ValueError:
            # scikit-learn's own refusal of the data, as for any model.
            pass


# ------------------------------------------------------------- fastbp info


def test_read_metadata_builds_nothing(cli_file, tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    path.write_bytes(cli_file)

    def refuse(*args, **kwargs):
        raise AssertionError("an estimator was built")

    monkeypatch.setattr(_persist, "_build", refuse)
    monkeypatch.setattr(_persist, "_read_array", refuse)
    metadata = _persist.read_metadata(path)
    assert metadata["estimator"] == "Pipeline" and "model" in metadata


@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow,
                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_info_describes_any_file_that_passes_the_checks(cli_file, tmp_path, data):
    """`fastbp info` reads the JSON defensively: a hostile tree shows as '?',
    never as an error."""
    from fastbp._cli import describe

    metadata, arrays = _split(cli_file)
    for _ in range(data.draw(st.integers(1, 4))):
        paths = [p for p in _paths(metadata, ()) if len(p) > 1
                 and p[0] in ("model", "training")]
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        tree = metadata
        for key in path[:-1]:
            tree = tree[key]
        tree[path[-1]] = copy.deepcopy(data.draw(_JSON))
    path = tmp_path / "m.npz"
    path.write_bytes(_join(metadata, arrays))
    try:
        checked = _persist.read_metadata(path)
    except ModelFileError:
        return
    lines = describe(checked)
    assert lines[0] == "format: fastbp model, format version 3"
    assert all(isinstance(line, str) and line.isprintable() for line in lines)
