# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Saving and loading in fastbp's pickle-free format."""

import doctest
import io
import json
import pickle
import warnings
import zipfile

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LinearRegression

import fastbp
from fastbp import BPRegressor, _persist

# Attributes rebuilt by every fit call, so not part of the saved state.
NOT_SAVED = {"_random_state"}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 4))
    y = X @ [1.0, -2.0, 0.5, 0.0] + 0.1 * rng.standard_normal(120)
    return X, y


def _fit(X, y, **params):
    params = {"hidden_layer_sizes": (6, 5), "max_iter": 8, "random_state": 0, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return BPRegressor(**params).fit(X, y)


def _assert_same_value(a, b, name):
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), name
        for i, (u, v) in enumerate(zip(a, b)):
            _assert_same_value(u, v, "%s[%d]" % (name, i))
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), name
        for key in a:
            _assert_same_value(a[key], b[key], "%s[%r]" % (name, key))
    elif isinstance(a, float):
        assert isinstance(b, float) and (a == b or (np.isnan(a) and np.isnan(b))), name
    elif isinstance(a, np.random.RandomState):
        _assert_same_value(list(a.get_state()), list(b.get_state()), name)
    else:
        assert a == b and type(a) is type(b), name


def _assert_same_state(est, loaded):
    saved = set(vars(est)) - NOT_SAVED
    assert set(vars(loaded)) - NOT_SAVED == saved
    for name in saved:
        _assert_same_value(getattr(est, name), getattr(loaded, name), name)


def _round_trip(est, tmp_path):
    path = tmp_path / "model.npz"
    est.save(path)
    return fastbp.load(path)


CASES = {
    "adam": dict(),
    "sgd": dict(solver="sgd", learning_rate="invscaling"),
    "early_stopping": dict(early_stopping=True),
    "tanh_no_hidden": dict(activation="tanh", hidden_layer_sizes=()),
    "n_iter_no_change_inf": dict(n_iter_no_change=np.inf, batch_size=16),
    "random_state_instance": dict(random_state=np.random.RandomState(3)),
    "lbfgs": dict(solver="lbfgs"),
}


@pytest.mark.parametrize("params", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_round_trip_keeps_everything(data, tmp_path, params, dtype):
    X, y = (a.astype(dtype) for a in data)
    est = _fit(X, y, **params)
    loaded = _round_trip(est, tmp_path)
    assert type(loaded) is BPRegressor
    _assert_same_state(est, loaded)
    pred = loaded.predict(X)
    assert pred.dtype == dtype
    np.testing.assert_array_equal(pred, est.predict(X))


def test_round_trip_multi_output_poisson_and_feature_names(data, tmp_path):
    X, y = data
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    counts = np.round(np.exp(X[:, :2] * [0.5, -0.5]))
    est = _fit(frame, counts, loss="poisson")
    assert est.out_activation_ == "exp"
    loaded = _round_trip(est, tmp_path)
    _assert_same_state(est, loaded)
    assert list(loaded.feature_names_in_) == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(loaded.predict(frame), est.predict(frame))
    with pytest.raises(ValueError, match="feature names"):
        loaded.predict(frame[["b", "a", "c", "d"]])


def test_round_trip_keeps_non_finite_curves(data, tmp_path):
    X, y = data
    est = _fit(X, y)
    est.loss_curve_ = est.loss_curve_[:-2] + [np.inf, np.nan]
    est.best_loss_ = -np.inf
    loaded = _round_trip(est, tmp_path)
    assert np.isinf(loaded.loss_curve_[-2]) and np.isnan(loaded.loss_curve_[-1])
    assert loaded.best_loss_ == -np.inf


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_loaded_model_continues_exactly_with_partial_fit(data, tmp_path, solver):
    X, y = data
    est = _fit(X, y, solver=solver, max_iter=5)
    loaded = _round_trip(est, tmp_path)
    for _ in range(3):
        est.partial_fit(X[:60], y[:60])
        loaded.partial_fit(X[:60], y[:60])
    _assert_same_state(est, loaded)


def test_optimizer_state_is_what_makes_continuation_exact(data, tmp_path):
    # Without the saved Adam moments, the next step would differ: the
    # continuation test above checks something real.
    X, y = data
    est = _fit(X, y)
    loaded = _round_trip(est, tmp_path)
    del loaded._optimizer_state
    est.partial_fit(X, y)
    loaded.partial_fit(X, y)
    assert not np.array_equal(est.coefs_[0], loaded.coefs_[0])


def test_file_is_a_documented_npz(data, tmp_path):
    X, y = data
    est = _fit(X, y)
    path = tmp_path / "model.npz"
    est.save(path)
    with np.load(path, allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["coefs_.0"], est.coefs_[0])
        np.testing.assert_array_equal(npz["loss_curve_"], est.loss_curve_)
    with zipfile.ZipFile(path) as zf:
        metadata = json.loads(zf.read("metadata.json"))
    assert metadata["format"] == "fastbp-model"
    assert metadata["format_version"] == _persist.FORMAT_VERSION == 1
    assert metadata["fastbp_version"] == fastbp.__version__
    assert metadata["estimator"] == "BPRegressor"
    assert metadata["params"]["hidden_layer_sizes"] == [6, 5]
    assert metadata["attributes"]["n_iter_"] == est.n_iter_


def test_saving_is_deterministic_and_works_with_file_objects(data, tmp_path):
    X, y = data
    est = _fit(X, y)
    est.save(tmp_path / "a.npz")
    est.save(tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    buffer = io.BytesIO()
    est.save(buffer)
    assert buffer.getvalue() == (tmp_path / "a.npz").read_bytes()
    buffer.seek(0)
    np.testing.assert_array_equal(fastbp.load(buffer).predict(X), est.predict(X))


def test_pickle_and_joblib_keep_working(data, tmp_path):
    X, y = data
    est = _fit(X, y)
    unpickled = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(unpickled.predict(X), est.predict(X))
    joblib.dump(est, tmp_path / "model.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "model.joblib").predict(X),
                                  est.predict(X))


def test_load_docstring_example():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for test in finder.find(_persist.load, "load", globs={}):
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0 and result.failed == 0


# ------------------------------------------------------------ refusing to save


def test_save_needs_a_fitted_bpregressor(data, tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(b"keep me")
    with pytest.raises(NotFittedError):
        BPRegressor().save(path)
    with pytest.raises(TypeError, match="BPRegressor"):
        _persist.save(LinearRegression().fit(*data), path)
    assert path.read_bytes() == b"keep me"


def test_callbacks_are_not_saved(data, tmp_path):
    callback = pytest.importorskip("sklearn.callback")
    X, y = data
    est = _fit(X, y)
    est.set_callbacks(callback.ScoringMonitor(scoring="r2"))
    loaded = _round_trip(est, tmp_path)
    assert hasattr(est, "_skl_callbacks") and not hasattr(loaded, "_skl_callbacks")
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


def test_save_refuses_state_the_format_does_not_know(data, tmp_path):
    X, y = data
    est = _fit(X, y)
    est.new_state_ = np.zeros(3)
    with pytest.raises(TypeError, match="new_state_"):
        est.save(tmp_path / "model.npz")


# ----------------------------------------------- bad files and safe loading


@pytest.fixture(scope="module")
def saved(data, tmp_path_factory):
    X, y = data
    path = tmp_path_factory.mktemp("saved") / "model.npz"
    _fit(X, y).save(path)
    return path


def _members(path):
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _write_members(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)


def _edit_metadata(saved, path, edit):
    members = _members(saved)
    metadata = json.loads(members["metadata.json"])
    edit(metadata)
    members["metadata.json"] = json.dumps(metadata)
    _write_members(path, members)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_file(saved, tmp_path, fraction):
    content = saved.read_bytes()
    path = tmp_path / "cut.npz"
    path.write_bytes(content[: int(fraction * len(content))])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        fastbp.load(path)


def test_flipped_byte_is_caught(saved, tmp_path):
    content = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as zf:
        info = zf.getinfo("coefs_.0.npy")
    # A byte inside the array data (past the local header and the .npy header).
    content[info.header_offset + 200] ^= 0xFF
    path = tmp_path / "flipped.npz"
    path.write_bytes(bytes(content))
    with pytest.raises(ValueError, match="corrupted"):
        fastbp.load(path)


def test_edited_weights_fail_the_checksum(saved, tmp_path):
    members = _members(saved)
    weights = np.load(io.BytesIO(members["coefs_.0.npy"]))
    buffer = io.BytesIO()
    np.save(buffer, weights + 1.0)
    members["coefs_.0.npy"] = buffer.getvalue()
    path = tmp_path / "edited.npz"
    _write_members(path, members)  # a valid zip with correct CRCs
    with pytest.raises(ValueError, match="checksum of coefs_.0.npy does not match"):
        fastbp.load(path)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda m: m.update(format="something-else"), "not a fastbp model file"),
        (lambda m: m.update(format_version=99), "format version 99.*Upgrade fastbp"),
        (lambda m: m.update(estimator="os.system"), "unknown estimator 'os.system'"),
        (lambda m: m["params"].update(activation="evil"), "invalid hyperparameters"),
        (lambda m: m["params"].update(new_param=1), "unknown hyperparameters"),
        (lambda m: m["attributes"].update(out_activation_="softmax"),
         "unknown out_activation_"),
        (lambda m: m["attributes"].update(n_features_in_=7),
         "do not match the weights"),
        (lambda m: m["attributes"].update(__class__="x"), "unknown attributes"),
        (lambda m: m["attributes"].pop("coefs_"), "not used by any attribute"),
        (lambda m: m["arrays"]["coefs_.0"].update(shape=[4, 7]), "shape"),
        (lambda m: m["arrays"]["coefs_.0"].update(dtype="|O"), "invalid description"),
        (lambda m: m["arrays"].pop("coefs_.0"), "members its metadata lists"),
    ],
)
def test_tampered_metadata_gives_a_clear_error(saved, tmp_path, edit, match):
    path = tmp_path / "tampered.npz"
    _edit_metadata(saved, path, edit)
    with pytest.raises(ValueError, match=match):
        fastbp.load(path)


class _Payload:
    """Unpickling this would create a file: the proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickled_payload_is_never_executed(saved, tmp_path):
    marker = tmp_path / "pwned"
    members = _members(saved)
    buffer = io.BytesIO()
    np.save(buffer, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    members["coefs_.0.npy"] = buffer.getvalue()
    path = tmp_path / "evil.npz"
    _write_members(path, members)
    with pytest.raises(ValueError, match="coefs_.0.npy holds object"):
        fastbp.load(path)
    # The same payload under a dtype the metadata allows is refused too.
    _edit_metadata(path, path, lambda m: m["arrays"]["coefs_.0"].update(dtype="|O"))
    with pytest.raises(ValueError):
        fastbp.load(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "not a fastbp model file"),
        (b"a,b\n1,2\n", "not a fastbp model file"),
        (pickle.dumps({"coefs_": [1.0]}), "not a fastbp model file"),
        (json.dumps({"format": "fastbp-model"}).encode(), "not a fastbp model file"),
    ],
    ids=["empty", "csv", "pickle", "json"],
)
def test_foreign_files(tmp_path, content, match):
    path = tmp_path / "foreign"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        fastbp.load(path)


def test_plain_npz_and_bad_json(saved, tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, coefs=np.zeros(3))
    with pytest.raises(ValueError, match="it has no metadata.json"):
        fastbp.load(path)
    members = _members(saved)
    members["metadata.json"] = b'{"format": NaN}'
    _write_members(path, members)
    with pytest.raises(ValueError, match="not valid JSON"):
        fastbp.load(path)
