"""
Training curves
===============

:class:`fastbp.TrainingCurveDisplay` follows scikit-learn's Display
convention. It draws the training loss, the validation score (recorded with
``early_stopping=True``: R² for a regressor, accuracy for a classifier) on a
second axis, and marks the best epoch.
"""

# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause

import matplotlib.pyplot as plt
import numpy as np

from fastbp import BPClassifier, BPRegressor, TrainingCurveDisplay

rng = np.random.default_rng(0)
X = rng.normal(size=(3000, 20))
y = np.tanh(X[:, :5].sum(axis=1))
est = BPRegressor(hidden_layer_sizes=(64,), learning_rate_init=0.01,
                  early_stopping=True, random_state=0).fit(X, y)
display = TrainingCurveDisplay.from_estimator(est)
print("best epoch:", display.best_epoch, "of", est.n_iter_)

# %%
# The display can draw into axes of your own, here side by side with the
# curves of a classifier trained on the sign of the same target.
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
TrainingCurveDisplay.from_estimator(est, ax=left)
clf = BPClassifier(hidden_layer_sizes=(64,), learning_rate_init=0.01,
                   early_stopping=True, random_state=0).fit(X, y > 0)
TrainingCurveDisplay.from_estimator(clf, ax=right)
plt.show()
