# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""The largest differences between BPClassifier and MLPClassifier over the
parity matrix of tests/test_classifier_parity.py (run from the repository root)."""

import sys, warnings, numpy as np
sys.path.insert(0, "tests")
import test_classifier_parity as t
from sklearn.neural_network import MLPClassifier
from fastbp import BPClassifier
worst = {"proba": 0, "coef": 0, "loss": 0}
n = 0
for case in t.CASES:
    act, solver, sched, es, target, shuffle, mode = case
    if mode == "partial_fit" and es: continue
    X, y = t._data(target)
    p = t._params(act, solver, sched, es, shuffle)
    a, b = BPClassifier(**p), MLPClassifier(**p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t._run(a, mode, X, y); t._run(b, mode, X, y)
    if mode == "warm_start" and es:
        continue
    n += 1
    rel = lambda u, v: float(np.max(np.abs(u - v) / np.maximum(np.abs(v), 1e-12)))
    worst["proba"] = max(worst["proba"], float(np.max(np.abs(a.predict_proba(X) - b.predict_proba(X)))))
    worst["coef"] = max(worst["coef"], max(float(np.max(np.abs(u - v))) for u, v in zip(a.coefs_, b.coefs_)))
    worst["loss"] = max(worst["loss"], rel(np.array(a.loss_curve_), np.array(b.loss_curve_)))
print(n, worst)
