"""
The single neuron
=================

One neuron, ``z = w·x + b``, learns ``y = 2x`` by plain gradient descent on the
mean squared error: the smallest network fastbp trains, and the one the
:ref:`algorithm` page works through. ``hidden_layer_sizes=()`` means no hidden
layer; ``solver="sgd"`` with ``momentum=0`` and a batch of all 200 rows makes
every epoch one gradient step with learning rate ``learning_rate_init``.
"""

# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause

import matplotlib.pyplot as plt
import numpy as np

from fastbp import BPRegressor

rng = np.random.default_rng(0)
X = rng.uniform(-1, 1, size=(200, 1))
y = 2 * X[:, 0] + 0.05 * rng.standard_normal(200)

params = dict(hidden_layer_sizes=(), solver="sgd", learning_rate_init=0.5,
              momentum=0.0, batch_size=200, alpha=0.0, tol=1e-8,
              n_iter_no_change=20, max_iter=500, random_state=0)

# %%
# ``fit`` runs the epochs until the loss stops falling by more than ``tol``.
neuron = BPRegressor(**params).fit(X, y)
print("epochs:", neuron.n_iter_)
print("w = %.4f, b = %.4f" % (neuron.coefs_[0][0, 0], neuron.intercepts_[0][0]))

# %%
# The same training, one epoch (one gradient step) at a time with
# ``partial_fit``, recording the loss and the weights after each step.
step = BPRegressor(**params)
losses, ws, bs = [], [], []
for epoch in range(60):
    step.partial_fit(X, y)
    losses.append(step.loss_)
    ws.append(step.coefs_[0][0, 0])
    bs.append(step.intercepts_[0][0])

fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5), layout="constrained")
left.semilogy(np.arange(1, 61), losses)
left.set(xlabel="epoch", ylabel="loss (half the mean squared error)",
         title="The loss falls")
right.plot(np.arange(1, 61), ws, label="w")
right.plot(np.arange(1, 61), bs, label="b")
right.axhline(2, color="gray", linestyle=":")
right.axhline(0, color="gray", linestyle=":")
right.set(xlabel="epoch", title="w walks to 2, b to 0")
right.legend()
plt.show()

# %%
# Each step moved ``w`` against the gradient of the loss, ``w ← w - η ∂L/∂w``,
# with ``∂L/∂w = mean((ŷ - y)·x)``. Checking the first step by hand, from the
# initial weights:
first = BPRegressor(**params)
first.partial_fit(X, y)
start = BPRegressor(**{**params, "learning_rate_init": 1e-300}).partial_fit(X, y)
w0, b0 = start.coefs_[0][0, 0], start.intercepts_[0][0]
residual = w0 * X[:, 0] + b0 - y
w1 = w0 - 0.5 * np.mean(residual * X[:, 0])
print("by hand: w = %.10f; fastbp: w = %.10f" % (w1, first.coefs_[0][0, 0]))
