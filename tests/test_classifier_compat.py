# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""BPClassifier as a scikit-learn citizen: estimator checks and the
meta-estimators, scorers and persistence a classification pipeline uses."""

import pickle

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import make_classification
from sklearn.ensemble import StackingClassifier, VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    GridSearchCV,
    StratifiedKFold,
    TunedThresholdClassifierCV,
    cross_validate,
)
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastbp import BPClassifier

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning"
)


@parametrize_with_checks(
    [
        BPClassifier(max_iter=100, random_state=0),
        BPClassifier(solver="sgd", hidden_layer_sizes=(20,), max_iter=100,
                     random_state=0),
        BPClassifier(solver="lbfgs", hidden_layer_sizes=(8,), max_iter=100,
                     random_state=0),
    ]
)
def test_sklearn_compatible_classifier(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def binary():
    X, y = make_classification(n_samples=200, n_features=6, n_informative=4,
                               weights=[0.7, 0.3], random_state=0)
    return X, np.array(["no", "yes"])[y]


@pytest.fixture(scope="module")
def multiclass():
    X, y = make_classification(n_samples=240, n_features=6, n_informative=4,
                               n_classes=3, random_state=0)
    return X, y


def _small(**params):
    return BPClassifier(hidden_layer_sizes=(8,), learning_rate_init=0.01,
                        max_iter=100, random_state=0, **params)


def test_pipeline_and_stratified_grid_search(multiclass):
    X, y = multiclass
    pipe = make_pipeline(StandardScaler(), _small())
    search = GridSearchCV(pipe, {"bpclassifier__alpha": [1e-4, 1e-1]}, cv=3)
    search.fit(X, y)
    assert isinstance(search.cv, int)  # an int cv means stratified folds
    assert search.best_score_ > 0.5
    assert set(search.predict(X)) <= set(y)


@pytest.mark.parametrize("scoring", ["roc_auc", "neg_log_loss", "balanced_accuracy"])
def test_cross_validate_with_probability_scorers(binary, scoring):
    X, y = binary
    scores = cross_validate(make_pipeline(StandardScaler(), _small()), X, y,
                            scoring=scoring, cv=StratifiedKFold(3))
    assert np.isfinite(scores["test_score"]).all()
    if scoring != "neg_log_loss":
        assert scores["test_score"].mean() > 0.6


def test_calibrated_voting_stacking_ovr_tuned_threshold(binary, multiclass):
    X, y = binary
    Xs = StandardScaler().fit_transform(X)
    calibrated = CalibratedClassifierCV(_small(), cv=3).fit(Xs, y)
    proba = calibrated.predict_proba(Xs)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    voting = VotingClassifier(
        [("bp", _small()), ("lr", LogisticRegression())], voting="soft"
    ).fit(Xs, y)
    assert voting.score(Xs, y) > 0.7
    stacking = StackingClassifier(
        [("bp", _small()), ("lr", LogisticRegression())],
        final_estimator=LogisticRegression(), cv=3,
    ).fit(Xs, y)
    assert stacking.score(Xs, y) > 0.7
    tuned = TunedThresholdClassifierCV(_small(), cv=3, scoring="balanced_accuracy")
    tuned.fit(Xs, y)
    assert 0.0 < tuned.best_threshold_ < 1.0
    X3, y3 = multiclass
    ovr = OneVsRestClassifier(_small()).fit(StandardScaler().fit_transform(X3), y3)
    assert len(ovr.estimators_) == 3


def test_clone_pickle_joblib_round_trips(multiclass, tmp_path):
    X, y = multiclass
    est = _small().fit(X, y)
    again = clone(est)
    assert again.get_params() == est.get_params()
    assert not hasattr(again, "coefs_")
    for loaded in (pickle.loads(pickle.dumps(est)),
                   joblib.load(joblib.dump(est, tmp_path / "m.joblib")[0])):
        np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
        np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
        loaded.partial_fit(X, y)  # training goes on after a round trip
