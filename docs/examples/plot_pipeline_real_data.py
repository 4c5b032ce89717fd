"""
A pipeline on real data
=======================

``BPRegressor`` and ``BPClassifier`` are scikit-learn estimators, so they go
into a ``Pipeline`` behind a scaler and into ``GridSearchCV`` like any other.
Networks learn best from standardised features, which is what the
``StandardScaler`` is for. Both data sets ship with scikit-learn.
"""

# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause

import warnings

import numpy as np
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fastbp import BPClassifier, BPRegressor

warnings.simplefilter("ignore", ConvergenceWarning)  # short fits, on purpose

# %%
# Regression: disease progression from ten measurements
# -----------------------------------------------------
# The target is standardised too, through ``TransformedTargetRegressor``, so
# the loss starts near 1 whatever the target's units. A small grid search
# picks the L2 penalty ``alpha`` and the width of the hidden layer.
X, y = load_diabetes(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)

network = TransformedTargetRegressor(
    make_pipeline(StandardScaler(),
                  BPRegressor(max_iter=300, early_stopping=True, random_state=0)),
    transformer=StandardScaler())
grid = {"regressor__bpregressor__alpha": [1e-3, 1.0],
        "regressor__bpregressor__hidden_layer_sizes": [(8,), (32,)]}
search = GridSearchCV(network, grid, cv=3).fit(X_train, y_train)
print("best:", search.best_params_)
print("network test R²: %.3f" % search.score(X_test, y_test))

linear = make_pipeline(StandardScaler(), Ridge()).fit(X_train, y_train)
print("Ridge   test R²: %.3f" % linear.score(X_test, y_test))

# %%
# Classification: benign or malignant
# -----------------------------------
# ``BPClassifier`` takes any labels (here the data set's names for them) and
# gives one probability column per class, in the order of ``classes_``.
data = load_breast_cancer()
labels = data.target_names[data.target]
X_train, X_test, y_train, y_test = train_test_split(
    data.data, labels, stratify=labels, random_state=0)
clf = make_pipeline(StandardScaler(),
                    BPClassifier(hidden_layer_sizes=(16,), max_iter=200,
                                 random_state=0))
clf.fit(X_train, y_train)
print("classes:", clf.classes_)
print("test accuracy: %.3f" % clf.score(X_test, y_test))
print(np.round(clf.predict_proba(X_test[:3]), 3))
