"""
Export to ONNX
==============

``import fastbp.onnx`` registers fastbp's estimators with skl2onnx, so
``skl2onnx.to_onnx`` converts a ``BPRegressor`` or a ``BPClassifier``, or a
pipeline that holds one. onnxruntime then predicts without Python, fastbp or
scikit-learn. Needs the ``onnx`` extra.
"""

# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause

import warnings

import numpy as np
import onnxruntime as ort
from skl2onnx import to_onnx
from sklearn.exceptions import ConvergenceWarning
from sklearn.datasets import load_diabetes, load_wine
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import fastbp.onnx  # noqa: F401 (registers the converters)
from fastbp import BPClassifier, BPRegressor

warnings.simplefilter("ignore", ConvergenceWarning)  # short fits, on purpose

# %%
# A regression pipeline, in float32
# ---------------------------------
# The graph computes in the input's float type: the sample row given to
# ``to_onnx`` is float32, so the graph is float32.
X, y = load_diabetes(return_X_y=True)
X = X.astype(np.float32)
pipe = make_pipeline(StandardScaler(),
                     BPRegressor(hidden_layer_sizes=(32,), max_iter=200,
                                 random_state=0))
pipe.fit(X, (y / y.std()).astype(np.float32))
onx = to_onnx(pipe, X[:1])
session = ort.InferenceSession(onx.SerializeToString(),
                               providers=["CPUExecutionProvider"])
pred = session.run(None, {session.get_inputs()[0].name: X})[0]
print("output shape:", pred.shape)
print("largest difference from predict: %.1e" % np.abs(pred[:, 0] - pipe.predict(X)).max())

# %%
# A classifier, in float64
# ------------------------
# A classifier's graph has two outputs, the labels and the probabilities. In
# a pipeline, ``options={BPClassifier: {"zipmap": False}}`` keeps the
# probabilities a tensor (skl2onnx would otherwise ask for a ZipMap, which
# only float32 graphs have).
Xw, yw = load_wine(return_X_y=True)
clf = make_pipeline(StandardScaler(),
                    BPClassifier(hidden_layer_sizes=(16,), max_iter=300,
                                 random_state=0)).fit(Xw, yw)
onx = to_onnx(clf, Xw[:1], options={BPClassifier: {"zipmap": False}})
session = ort.InferenceSession(onx.SerializeToString(),
                               providers=["CPUExecutionProvider"])
labels, proba = session.run(None, {session.get_inputs()[0].name: Xw})
print("outputs:", [o.name for o in session.get_outputs()])
print("labels agree:", bool((labels == clf.predict(Xw)).all()))
print("largest probability difference: %.1e"
      % np.abs(proba - clf.predict_proba(Xw)).max())
