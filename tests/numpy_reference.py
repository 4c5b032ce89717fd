# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""A short plain-NumPy multi-layer perceptron: the oracle the kernels answer to.

It follows scikit-learn's ``MLPRegressor`` and ``MLPClassifier`` conventions. The
loss is the (weighted) mean over samples of a per-sample loss summed over the
outputs, plus ``alpha/(2n) * sum(W**2)`` over the weights (never the intercepts),
with n the sum of the sample weights. Gradients are scaled by the
number of samples, and the SGD and Adam steps are written as scikit-learn's
``_stochastic_optimizers`` writes them. Everything is computed in float64,
whatever the dtype of the inputs, so float32 kernels can be held against it.
"""

import numpy as np
from scipy.special import xlogy


def softmax(z):
    """Row-wise exp(z - max z) / sum exp(z - max z)."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def activate(z, name):
    """Return act(z) for one of identity, logistic, tanh, relu, exp, softmax."""
    if name == "identity":
        return z
    if name == "logistic":
        return 1 / (1 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0)
    if name == "exp":
        return np.exp(z)
    if name == "softmax":
        return softmax(z)
    raise ValueError("unknown activation %r" % name)


def derivative(a, name):
    """Return act'(z) written through the layer output a = act(z)."""
    if name == "identity":
        return np.ones_like(a)
    if name == "logistic":
        return a * (1 - a)
    if name == "tanh":
        return 1 - a * a
    if name == "relu":
        return (a > 0).astype(a.dtype)
    raise ValueError("unknown hidden activation %r" % name)


def as64(arrays):
    """Return float64 copies of a list of arrays."""
    return [np.array(a, dtype=np.float64) for a in arrays]


def forward(X, coefs, intercepts, activation, out_activation):
    """Return the activations [X, a_1, ..., a_L] of every layer, in float64."""
    acts = [np.asarray(X, dtype=np.float64)]
    for layer, (W, b) in enumerate(zip(as64(coefs), as64(intercepts))):
        name = activation if layer + 1 < len(coefs) else out_activation
        acts.append(activate(acts[-1] @ W + b, name))
    return acts


def per_sample_loss(Y, pred, loss, eps=np.finfo(np.float64).eps):
    """Return each row's loss, summed over the outputs.

    squared_error: 0.5*(p - y)**2; poisson: the half Poisson deviance; log_loss:
    -y log(p) (with one output, the binary form, as scikit-learn does);
    binary_log_loss: -y log(p) - (1 - y) log(1 - p). The log losses clip p to
    [eps, 1 - eps].
    """
    if loss == "squared_error":
        per_entry = 0.5 * (pred - Y) ** 2
    elif loss == "poisson":
        per_entry = xlogy(Y, Y / pred) - Y + pred
    elif loss in ("log_loss", "binary_log_loss"):
        p = np.clip(pred, eps, 1 - eps)
        per_entry = -xlogy(Y, p)
        if loss == "binary_log_loss" or Y.shape[1] == 1:
            per_entry -= xlogy(1 - Y, 1 - p)
    else:
        raise ValueError("unknown loss %r" % loss)
    return per_entry.sum(axis=1)


def data_loss(Y, pred, loss, sample_weight=None):
    """Return the (weighted) mean over rows of per_sample_loss."""
    return np.average(per_sample_loss(Y, pred, loss), weights=sample_weight)


def l2_penalty(coefs, alpha, n_samples):
    """Return alpha / (2 n) * sum(W**2); intercepts are not penalised."""
    return alpha / (2 * n_samples) * sum(np.sum(W**2) for W in as64(coefs))


def loss_and_grads(X, Y, coefs, intercepts, activation, out_activation, loss, alpha,
                   sample_weight=None):
    """Return (loss, coef_grads, intercept_grads), scaled the scikit-learn way."""
    coefs = as64(coefs)
    Y = np.asarray(Y, dtype=np.float64)
    if sample_weight is None:
        w = np.ones(X.shape[0])
    else:
        w = np.asarray(sample_weight, dtype=np.float64)
    n = w.sum()
    acts = forward(X, coefs, intercepts, activation, out_activation)
    value = data_loss(Y, acts[-1], loss, w) + l2_penalty(coefs, alpha, n)
    # Each loss is paired with its canonical output (identity, exp, softmax,
    # logistic), so dloss/dz of the output layer is pred - y for all of them.
    delta = (acts[-1] - Y) * w[:, None]
    coef_grads, intercept_grads = [None] * len(coefs), [None] * len(coefs)
    for layer in range(len(coefs) - 1, -1, -1):
        coef_grads[layer] = (acts[layer].T @ delta + alpha * coefs[layer]) / n
        intercept_grads[layer] = delta.sum(axis=0) / n
        if layer > 0:
            delta = (delta @ coefs[layer].T) * derivative(acts[layer], activation)
    return value, coef_grads, intercept_grads


def sgd_step(params, grads, velocities, lr, momentum, nesterov):
    """One SGD step in place: v = mu*v - lr*g; p += v (nesterov: p += mu*v - lr*g)."""
    for p, g, v in zip(params, grads, velocities):
        v[...] = momentum * v - lr * g
        p += momentum * v - lr * g if nesterov else v


def adam_step(params, grads, ms, vs, t, lr_init, beta_1, beta_2, epsilon):
    """One Adam step in place, with the bias-corrected learning rate; returns t + 1."""
    t += 1
    lr = lr_init * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
    for p, g, m, v in zip(params, grads, ms, vs):
        m[...] = beta_1 * m + (1 - beta_1) * g
        v[...] = beta_2 * v + (1 - beta_2) * g**2
        p -= lr * m / (np.sqrt(v) + epsilon)
    return t


def train_epoch(X, Y, rows, coefs, intercepts, state, batch_size, lr, t, *,
                activation="relu", out_activation="identity", loss="squared_error",
                solver="sgd", alpha=0.0, momentum=0.9, nesterov=True, beta_1=0.9,
                beta_2=0.999, epsilon=1e-8):
    """One epoch over X[rows]; returns (loss_sum, coef_sq, intercept_sq, t)."""
    # coefs, intercepts and state are float64 arrays, updated in place.
    n_params = len(coefs) + len(intercepts)
    loss_sum = 0.0
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        value, coef_grads, intercept_grads = loss_and_grads(
            X[batch], Y[batch], coefs, intercepts, activation, out_activation, loss,
            alpha)
        # scikit-learn accumulates batch_loss * n_batch, the L2 term included.
        loss_sum += value * len(batch)
        params, grads = coefs + intercepts, coef_grads + intercept_grads
        if solver == "adam":
            t = adam_step(params, grads, state[:n_params], state[n_params:], t, lr,
                          beta_1, beta_2, epsilon)
        else:
            sgd_step(params, grads, state, lr, momentum, nesterov)
    coef_sq = sum(np.sum(W**2) for W in coefs)
    intercept_sq = sum(np.sum(b**2) for b in intercepts)
    return loss_sum, coef_sq, intercept_sq, t


# --------------------------------------------------------------------------
# Beyond scikit-learn: more activations, robust losses, dropout, AdamW, clipping
# --------------------------------------------------------------------------
# Every derivative here is written through the pre-activation z, from the
# textbook formulas, so the kernels' output-based forms are checked against an
# independent derivation.

SELU_SCALE = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717


def softplus(z):
    return np.logaddexp(0.0, z)


def activate_ext(z, name, slope=0.01):
    """act(z) for every activation fastbp knows."""
    if name == "leaky_relu":
        return np.where(z > 0, z, slope * z)
    if name == "elu":
        return np.where(z > 0, z, np.expm1(np.minimum(z, 0)))
    if name == "selu":
        return SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * np.expm1(np.minimum(z, 0)))
    if name == "softplus":
        return softplus(z)
    if name == "gelu":
        c = np.sqrt(2 / np.pi)
        return 0.5 * z * (1 + np.tanh(c * (z + 0.044715 * z**3)))
    if name == "silu":
        return z / (1 + np.exp(-z))
    if name == "mish":
        return z * np.tanh(softplus(z))
    if name == "sin":
        return np.sin(z)
    return activate(z, name)


def derivative_z(z, name, slope=0.01):
    """act'(z), from z."""
    s = 1 / (1 + np.exp(-z))
    if name == "identity":
        return np.ones_like(z)
    if name == "logistic":
        return s * (1 - s)
    if name == "tanh":
        return 1 - np.tanh(z) ** 2
    if name == "relu":
        return (z > 0).astype(float)
    if name == "exp":
        return np.exp(z)
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, slope)
    if name == "elu":
        return np.where(z > 0, 1.0, np.exp(np.minimum(z, 0)))
    if name == "selu":
        return SELU_SCALE * np.where(z > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(z, 0)))
    if name == "softplus":
        return s
    if name == "gelu":
        c, k = np.sqrt(2 / np.pi), 0.044715
        t = np.tanh(c * (z + k * z**3))
        return 0.5 * (1 + t) + 0.5 * z * (1 - t**2) * c * (1 + 3 * k * z**2)
    if name == "silu":
        return s * (1 + z * (1 - s))
    if name == "mish":
        t = np.tanh(softplus(z))
        return t + z * (1 - t**2) * s
    if name == "sin":
        return np.cos(z)
    raise ValueError("unknown activation %r" % name)


def robust_loss(Y, pred, loss, param):
    """Per-entry loss and dloss/dpred of the regression losses."""
    d = pred - Y
    if loss == "squared_error":
        return 0.5 * d**2, d
    if loss == "absolute_error":
        return np.abs(d), np.sign(d)
    if loss == "huber":
        small = np.abs(d) <= param
        value = np.where(small, 0.5 * d**2, param * (np.abs(d) - 0.5 * param))
        return value, np.clip(d, -param, param)
    if loss == "quantile":
        value = param * np.maximum(-d, 0) + (1 - param) * np.maximum(d, 0)
        return value, np.where(d > 0, 1 - param, np.where(d < 0, -param, 0.0))
    raise ValueError("unknown loss %r" % loss)


def loss_and_grads_ext(X, Y, coefs, intercepts, activations, out_activation, loss,
                       alpha, *, loss_param=0.0, slope=0.01, masks=None, rates=None,
                       sample_weight=None):
    """(loss, coef_grads, intercept_grads) with one activation per hidden layer,
    any output activation, the robust losses and fixed dropout masks.

    masks[l] (n, units) is the keep-mask of hidden layer l, rates[l] its drop
    rate; a kept unit is scaled by 1 / (1 - rate). log losses (softmax or
    logistic outputs) accept soft targets Y.
    """
    coefs = as64(coefs)
    intercepts = as64(intercepts)
    Y = np.asarray(Y, dtype=np.float64)
    w = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, float)
    n = w.sum()
    L = len(coefs)
    a = [np.asarray(X, dtype=np.float64)]
    zs, scales = [], []
    for layer in range(L):
        z = a[-1] @ coefs[layer] + intercepts[layer]
        zs.append(z)
        if layer + 1 < L:
            h = activate_ext(z, activations[layer], slope)
            scale = np.ones_like(h)
            if masks is not None and rates[layer] > 0:
                scale = masks[layer] / (1 - rates[layer])
            scales.append(scale)
            a.append(h * scale)
        else:
            a.append(activate_ext(z, out_activation, slope))
    pred = a[-1]
    if out_activation in ("softmax", "logistic") and loss == "log_loss":
        value_rows = per_sample_loss(Y, pred, "log_loss")
        delta = pred - Y
    else:
        entry, g = robust_loss(Y, pred, loss, loss_param)
        value_rows = entry.sum(axis=1)
        delta = g * derivative_z(zs[-1], out_activation, slope)
    value = np.average(value_rows, weights=w) + l2_penalty(coefs, alpha, n)
    delta = delta * w[:, None]
    coef_grads, intercept_grads = [None] * L, [None] * L
    for layer in range(L - 1, -1, -1):
        coef_grads[layer] = (a[layer].T @ delta + alpha * coefs[layer]) / n
        intercept_grads[layer] = delta.sum(axis=0) / n
        if layer > 0:
            delta = ((delta @ coefs[layer].T) * scales[layer - 1]
                     * derivative_z(zs[layer - 1], activations[layer - 1], slope))
    return value, coef_grads, intercept_grads


def adamw_step(params, grads, ms, vs, t, lr_init, beta_1, beta_2, epsilon,
               weight_decay, n_coefs):
    """One AdamW step in place: the first n_coefs params (the weights) decay by
    lr * weight_decay times their value before the step; returns t + 1."""
    t += 1
    lr = lr_init * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
    for i, (p, g, m, v) in enumerate(zip(params, grads, ms, vs)):
        m[...] = beta_1 * m + (1 - beta_1) * g
        v[...] = beta_2 * v + (1 - beta_2) * g**2
        decay = lr_init * weight_decay * p if i < n_coefs else 0.0
        p -= lr * m / (np.sqrt(v) + epsilon) + decay
    return t


def clip_by_global_norm(grads, max_norm):
    """grads scaled to global L2 norm max_norm when longer."""
    norm = np.sqrt(sum(np.sum(g**2) for g in grads))
    factor = min(1.0, max_norm / norm)
    return [g * factor for g in grads]


def irprop_minus(param, grad, prev_grad, step, increase, decrease, step_min, step_max):
    """One iRPROP- step on float64 copies; returns (param, prev_grad, step)."""
    param, grad, step = param.copy(), grad.copy(), step.copy()
    same = grad * prev_grad > 0
    flip = grad * prev_grad < 0
    step[same] = np.minimum(step[same] * increase, step_max)
    step[flip] = np.maximum(step[flip] * decrease, step_min)
    grad[flip] = 0
    return param - np.sign(grad) * step, grad, step
