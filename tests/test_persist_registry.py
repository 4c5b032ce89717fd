# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""The registry of savable classes and the schema each class declares."""

import ast
import io
import json
import pathlib
import warnings
import zipfile

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import fastbp
from fastbp import BPRegressor, _persist
from fastbp._persist import ModelFileError


def _fit(cls, n_outputs=1):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3))
    y = X @ rng.standard_normal((3, n_outputs))
    y = y.ravel() if n_outputs == 1 else y
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return cls(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y), X


def _save(est):
    buffer = io.BytesIO()
    est.save(buffer)
    return buffer.getvalue()


def _metadata(data):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return json.loads(zf.read("metadata.json"))


class Labelled(BPRegressor):
    """A regressor that keeps labels, as BPClassifier will, and a derived table."""

    _fitted_attributes = BPRegressor._fitted_attributes + ("classes_", "_y_type")
    _derived_attributes = ("_index",)

    def fit(self, X, y):
        super().fit(X, y)
        self.classes_ = np.array(["ant", "bee"][: self.n_outputs_])
        self._y_type = "multilabel-indicator"
        self._after_load()
        return self

    def _after_load(self):
        if self._y_type not in ("binary", "multiclass", "multilabel-indicator"):
            raise ValueError("unknown _y_type %r" % (self._y_type,))
        self._index = {label: i for i, label in enumerate(self.classes_)}


@pytest.fixture
def labelled():
    _persist.register(Labelled)
    yield Labelled
    _persist.unregister(Labelled)


def test_persist_does_not_import_the_estimators():
    source = pathlib.Path(_persist.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert not any("_regressor" in name or "_classifier" in name for name in imported)
    assert _persist._REGISTRY["BPRegressor"] is BPRegressor


def test_registered_subclass_round_trips_labels_and_rebuilds_derived(labelled):
    est, X = _fit(labelled, n_outputs=2)
    data = _save(est)
    metadata = _metadata(data)
    assert metadata["estimator"] == "Labelled"
    assert metadata["format_version"] == 2
    assert metadata["attributes"]["classes_"] == {
        "$labels": {"kind": "str", "dtype": "<U3", "values": ["ant", "bee"]}
    }
    assert "_index" not in metadata["attributes"]
    loaded = fastbp.load(io.BytesIO(data))
    assert type(loaded) is labelled
    assert loaded.classes_.dtype == est.classes_.dtype
    np.testing.assert_array_equal(loaded.classes_, est.classes_)
    assert loaded._index == {"ant": 0, "bee": 1}
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


def test_regressor_files_stay_version_1():
    est, _ = _fit(BPRegressor)
    assert _metadata(_save(est))["format_version"] == 1


def test_a_reader_of_version_1_asks_for_an_upgrade(labelled, monkeypatch):
    est, _ = _fit(labelled, n_outputs=2)
    data = _save(est)
    monkeypatch.setattr(_persist, "NEWEST_FORMAT_VERSION", 1)
    with pytest.raises(ModelFileError, match="format version 2.*Upgrade fastbp"):
        fastbp.load(io.BytesIO(data))


def test_after_load_value_error_becomes_model_file_error(labelled):
    est, _ = _fit(labelled, n_outputs=2)
    est._y_type = "continuous"
    with pytest.raises(ModelFileError, match="inconsistent fitted state.*_y_type"):
        fastbp.load(io.BytesIO(_save(est)))


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda a: a.pop("classes_"), "missing"),
        (lambda a: a.update(_y_type=[1]), "invalid _y_type"),
        (lambda a: a.update(_index={"ant": 0}), "unknown attributes"),
        (lambda a: a.update(classes_={"$strings": ["ant", "bee"]}), "classes_"),
        (lambda a: a["classes_"]["$labels"].update(values=["ant", "ant"]), "twice"),
        (lambda a: a["classes_"]["$labels"].update(values=["a", "b", "c"]),
         "2 outputs cannot give 3 classes"),
    ],
)
def test_loaded_labels_are_checked(labelled, edit, match):
    est, _ = _fit(labelled, n_outputs=2)
    data = _save(est)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    metadata = json.loads(members["metadata.json"])
    edit(metadata["attributes"])
    members["metadata.json"] = json.dumps(metadata).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    with pytest.raises(ModelFileError, match=match):
        fastbp.load(io.BytesIO(buffer.getvalue()))


def test_labels_in_a_version_1_file_are_refused(labelled):
    est, _ = _fit(labelled, n_outputs=2)
    data = _save(est)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    metadata = json.loads(members["metadata.json"])
    metadata["format_version"] = 1
    members["metadata.json"] = json.dumps(metadata).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    with pytest.raises(ModelFileError, match=r"\$labels needs format_version 2"):
        fastbp.load(io.BytesIO(buffer.getvalue()))


def test_unregistered_classes_are_neither_saved_nor_loaded(labelled):
    est, _ = _fit(labelled, n_outputs=2)
    data = _save(est)
    _persist.unregister(labelled)
    with pytest.raises(TypeError, match="Use pickle or joblib"):
        est.save(io.BytesIO())
    with pytest.raises(ModelFileError, match="unknown estimator 'Labelled'"):
        fastbp.load(io.BytesIO(data))

    class Unregistered(BPRegressor):
        pass

    est, _ = _fit(Unregistered)
    with pytest.raises(TypeError, match="BPRegressor"):
        est.save(io.BytesIO())


def test_register_checks_the_declarations():
    class NoSchema(BPRegressor):
        _fitted_attributes = ()

    class Both(BPRegressor):
        _derived_attributes = ("coefs_",)

    class Labelled(BPRegressor):  # same name as the registered one
        pass

    for cls in (NoSchema, Both):
        with pytest.raises(TypeError):
            _persist.register(cls)
    _persist.register(globals()["Labelled"])
    try:
        with pytest.raises(ValueError, match="already registered"):
            _persist.register(Labelled)
    finally:
        _persist.unregister(globals()["Labelled"])
    assert _persist.register(BPRegressor) is BPRegressor  # idempotent


def test_output_activations_come_from_one_table():
    from fastbp import BPClassifier

    assert set(_persist._OUTPUTS["regression"]) == set(BPRegressor._output_activations)
    assert set(_persist._OUTPUTS["classification"]) == set(
        BPClassifier._output_activations)
