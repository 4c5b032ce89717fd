# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""The kernels of the options beyond scikit-learn against their oracles: the
plain-NumPy reference, central finite differences and hand-written steps."""

import numpy as np
import pytest
from conftest import DTYPES, random_data, random_network
from numpy_reference import (
    adamw_step,
    clip_by_global_norm,
    irprop_minus,
    loss_and_grads_ext,
)

from fastbp import _core
from fastbp._enums import ACTIVATIONS, REGRESSION_LOSSES

NEW_ACTIVATIONS = ["leaky_relu", "elu", "selu", "softplus", "gelu", "silu", "mish", "sin"]
FD_STEP = 1e-5
FD_TOL = dict(rtol=1e-6, atol=1e-9)


def trainer_for(coefs, intercepts, activations, out, loss, max_batch=8, state=(),
                solver=_core.Solver.SGD, **options):
    return _core.Trainer(list(coefs), list(intercepts), list(state), max_batch,
                         0, ACTIVATIONS[out], loss, solver,
                         activations=[ACTIVATIONS[a] for a in activations]
                         + [ACTIVATIONS[out]], **options)


def packed(coef_grads, intercept_grads):
    return np.concatenate([g.ravel() for g in coef_grads + intercept_grads])


def finite_differences(trainer, X, Y, params, h=FD_STEP):
    scratch = np.empty(sum(p.size for p in params))
    out = []
    for p in params:
        flat = p.reshape(-1)
        for k in range(flat.size):
            saved = flat[k]
            flat[k] = saved + h
            up = _core.loss_grad(trainer, X, Y, scratch)
            flat[k] = saved - h
            down = _core.loss_grad(trainer, X, Y, scratch)
            flat[k] = saved
            out.append((up - down) / (2 * h))
    return np.array(out)


def check_gradient(trainer, X, Y, coefs, intercepts, reference):
    params = coefs + intercepts
    grad = np.empty(sum(p.size for p in params))
    loss = _core.loss_grad(trainer, X, Y, grad)
    value, cg, ig = reference
    np.testing.assert_allclose(loss, value, rtol=1e-12)
    np.testing.assert_allclose(grad, packed(cg, ig), rtol=1e-10, atol=1e-13)
    assert np.abs(grad).max() > 1e-3
    np.testing.assert_allclose(grad, finite_differences(trainer, X, Y, params), **FD_TOL)


@pytest.mark.parametrize("activation", NEW_ACTIVATIONS)
@pytest.mark.parametrize("hidden", [(5,), (4, 3)])
def test_activation_gradient(rng, activation, hidden):
    X, Y = random_data(rng, 30, 3, 2)
    coefs, intercepts = random_network(rng, [3, *hidden, 2], scale=0.7)
    acts = [activation] * len(hidden)
    if activation == "leaky_relu":
        # Keep the units away from the kink at 0, where differences straddle it.
        z = X @ coefs[0] + intercepts[0]
        keep = (np.abs(z) > 0.05).all(axis=1)
        X, Y = np.ascontiguousarray(X[keep]), np.ascontiguousarray(Y[keep])
        if len(hidden) == 2:
            acts = ["leaky_relu", "tanh"]
    trainer = trainer_for(coefs, intercepts, acts, "identity",
                          _core.Loss.SQUARED_ERROR, act_param=0.1, alpha=0.3)
    reference = loss_and_grads_ext(X, Y, coefs, intercepts, acts, "identity",
                                   "squared_error", 0.3, slope=0.1)
    check_gradient(trainer, X, Y, coefs, intercepts, reference)


def test_per_layer_activations_gradient(rng):
    X, Y = random_data(rng, 30, 3, 1)
    coefs, intercepts = random_network(rng, [3, 4, 4, 3, 1], scale=0.7)
    acts = ["gelu", "tanh", "selu"]
    trainer = trainer_for(coefs, intercepts, acts, "identity", _core.Loss.SQUARED_ERROR)
    reference = loss_and_grads_ext(X, Y, coefs, intercepts, acts, "identity",
                                   "squared_error", 0.0)
    check_gradient(trainer, X, Y, coefs, intercepts, reference)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", NEW_ACTIVATIONS)
def test_predict_matches_reference(rng, dtype, activation):
    X, _ = random_data(rng, 50, 3, 2)
    coefs, intercepts = random_network(rng, [3, 6, 5, 2], scale=1.5)
    acts = [activation, "mish"]
    out = np.empty((50, 2), dtype=dtype)
    _core.predict(X.astype(dtype), [c.astype(dtype) for c in coefs],
                  [b.astype(dtype) for b in intercepts],
                  [ACTIVATIONS[a] for a in acts], ACTIVATIONS["softplus"], out,
                  act_param=0.2)
    # The forward pass of the reference, through its loss (Y = 0, squared error).
    from numpy_reference import activate_ext
    a = X
    for layer, (W, b) in enumerate(zip(coefs, intercepts)):
        name = acts[layer] if layer < 2 else "softplus"
        a = activate_ext(a @ W + b, name, 0.2)
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(out, a, **tol)


def away_from_kinks(X, Y, coefs, intercepts, out, loss, param, margin=0.05):
    """Rows whose residuals stay off the loss's kinks (0, or +-delta)."""
    from numpy_reference import activate_ext
    pred = activate_ext(np.tanh(X @ coefs[0] + intercepts[0]) @ coefs[1] + intercepts[1],
                        out)
    d = np.abs(pred - Y)
    keep = (d > margin).all(axis=1)
    if loss == "huber":
        keep &= (np.abs(d - param) > margin).all(axis=1)
    return np.ascontiguousarray(X[keep]), np.ascontiguousarray(Y[keep])


@pytest.mark.parametrize("loss,param", [("squared_error", 0.0), ("absolute_error", 0.0),
                                        ("huber", 0.4), ("quantile", 0.8)])
@pytest.mark.parametrize("out", ["identity", "logistic", "softplus", "exp"])
def test_loss_and_out_activation_gradient(rng, loss, param, out):
    X, Y = random_data(rng, 60, 3, 2)
    Y = np.ascontiguousarray(np.abs(Y) * 0.5)
    coefs, intercepts = random_network(rng, [3, 5, 2], scale=0.7)
    X, Y = away_from_kinks(X, Y, coefs, intercepts, out, loss, param)
    assert X.shape[0] >= 20
    trainer = trainer_for(coefs, intercepts, ["tanh"], out, REGRESSION_LOSSES[loss],
                          loss_param=param, alpha=0.1)
    reference = loss_and_grads_ext(X, Y, coefs, intercepts, ["tanh"], out, loss, 0.1,
                                   loss_param=param)
    check_gradient(trainer, X, Y, coefs, intercepts, reference)


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu", "elu"])
def test_dropout_gradient_with_fixed_mask(rng, activation):
    """The masks are a function of (seed, row, layer, unit): with the seed fixed
    the loss is a smooth function of the parameters, so finite differences of
    loss_grad hold it, and the reference holds it with the masks made explicit."""
    X, Y = random_data(rng, 30, 3, 2)
    coefs, intercepts = random_network(rng, [3, 6, 5, 2], scale=0.7)
    acts = [activation, "tanh"]
    if activation == "relu":
        z = X @ coefs[0] + intercepts[0]
        keep = (np.abs(z) > 0.05).all(axis=1)
        X, Y = np.ascontiguousarray(X[keep]), np.ascontiguousarray(Y[keep])
    rates = [0.3, 0.5]
    trainer = trainer_for(coefs, intercepts, acts, "identity", _core.Loss.SQUARED_ERROR,
                          dropout=rates)
    seed = 12345
    trainer.set_dropout_seed(seed)
    rows = np.arange(X.shape[0], dtype=np.intp)
    masks = [_core.dropout_mask(seed, rows, layer + 1, coefs[layer].shape[1], rates[layer])
             for layer in range(2)]
    assert not masks[0].all() and masks[0].any()
    reference = loss_and_grads_ext(X, Y, coefs, intercepts, acts, "identity",
                                   "squared_error", 0.0, masks=masks, rates=rates)
    check_gradient(trainer, X, Y, coefs, intercepts, reference)


def test_dropout_mask_rate_and_independence():
    rows = np.arange(4000, dtype=np.intp)
    a = _core.dropout_mask(7, rows, 1, 50, 0.3)
    b = _core.dropout_mask(8, rows, 1, 50, 0.3)
    c = _core.dropout_mask(7, rows, 2, 50, 0.3)
    # 200000 Bernoulli(0.7) draws: the kept fraction is within 5 standard errors.
    se = np.sqrt(0.3 * 0.7 / a.size)
    for m in (a, b, c):
        assert abs(m.mean() - 0.7) < 5 * se
    # Another seed or another layer draws independent masks: agreement 0.58.
    for other in (b, c):
        assert abs((a == other).mean() - 0.58) < 5 * np.sqrt(0.58 * 0.42 / a.size)
    np.testing.assert_array_equal(a, _core.dropout_mask(7, rows, 1, 50, 0.3))
    assert _core.dropout_mask(7, rows[:10], 1, 5, 0.0).all()
    # Neighbouring units, neighbouring rows, and units further apart within a
    # row (the counter's steps) agree as independent draws do.
    agree = 0.58
    for x, y in ((a[:, :-1], a[:, 1:]), (a[:-1], a[1:]), (a[:, :-7], a[:, 7:]),
                 (a[0::2], a[1::2])):
        n = x.size
        assert abs((x == y).mean() - agree) < 5 * np.sqrt(agree * 0.42 / n)
    # Each unit's keep rate over the rows, and each row's over a wide layer.
    wide = _core.dropout_mask(7, rows[:200], 1, 4000, 0.3)
    for rates, n in ((a.mean(axis=0), a.shape[0]), (wide.mean(axis=1), wide.shape[1])):
        assert np.all(np.abs(rates - 0.7) < 5 * np.sqrt(0.21 / n))


@pytest.mark.parametrize("p", [0.05, 0.5, 0.9])
def test_dropout_mask_pairs_are_independent(p):
    """The four (kept, kept) combinations of two units, or of one unit in two
    rows, or of one unit in two epochs (seeds), fall as independent draws do."""
    rows = np.arange(3000, dtype=np.intp)
    a = _core.dropout_mask(11, rows, 3, 64, p)
    e = _core.dropout_mask(12, rows, 3, 64, p)
    q = 1 - p
    for x, y in ((a[:, 0::2], a[:, 1::2]), (a[:-1], a[1:]), (a, e)):
        for u, v in ((True, True), (True, False), (False, True), (False, False)):
            expect = (q if u else p) * (q if v else p)
            got = ((x == u) & (y == v)).mean()
            assert abs(got - expect) < 5 * np.sqrt(expect * (1 - expect) / x.size)


def test_dropout_mask_refuses_bad_rates():
    rows = np.arange(3, dtype=np.intp)
    for p in (-0.1, 1.0, 1.5, np.nan):
        with pytest.raises(ValueError, match="p must be in"):
            _core.dropout_mask(1, rows, 1, 4, p)


def one_step(dtype, solver, n_threads=1, **options):
    """One minibatch step of the core and of the reference, from one network."""
    rng = np.random.default_rng(3)
    X, Y = random_data(rng, 16, 3, 2)
    coefs, intercepts = random_network(rng, [3, 5, 2], scale=0.7)
    c32 = [c.astype(dtype) for c in coefs]
    i32 = [b.astype(dtype) for b in intercepts]
    n_moments = 1 if solver == _core.Solver.SGD else 2
    state = [np.zeros_like(p) for _ in range(n_moments) for p in c32 + i32]
    trainer = trainer_for(c32, i32, ["tanh"], "identity", _core.Loss.SQUARED_ERROR,
                          max_batch=16, state=state, solver=solver, alpha=0.2,
                          n_threads=n_threads, **options)
    _core.train_epoch(trainer, X.astype(dtype), Y.astype(dtype),
                      np.arange(16, dtype=np.intp), False, 16, 0.05, 0)
    _, cg, ig = loss_and_grads_ext(X, Y, coefs, intercepts, ["tanh"], "identity",
                                   "squared_error", 0.2)
    return c32 + i32, coefs + intercepts, cg + ig


@pytest.mark.parametrize("dtype", DTYPES)
def test_adamw_step_matches_reference(dtype):
    got, params, grads = one_step(dtype, _core.Solver.ADAMW, weight_decay=0.3)
    zeros = [np.zeros_like(p) for p in params]
    adamw_step(params, grads, zeros, [z.copy() for z in zeros], 0, 0.05, 0.9, 0.999,
               1e-8, 0.3, n_coefs=2)
    tol = dict(rtol=1e-12, atol=1e-15) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    for g, p in zip(got, params):
        np.testing.assert_allclose(g, p, **tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_gradient_clip_step_matches_reference(dtype, n_threads):
    max_norm = 0.05
    got, params, grads = one_step(dtype, _core.Solver.SGD, n_threads=n_threads,
                                  gradient_clip=max_norm, momentum=0.0)
    assert np.sqrt(sum(np.sum(g**2) for g in grads)) > 5 * max_norm
    clipped = clip_by_global_norm(grads, max_norm)
    tol = dict(rtol=1e-12, atol=1e-15) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    for g, p, c in zip(got, params, clipped):
        np.testing.assert_allclose(g, p - 0.05 * c, **tol)


def test_gradient_clip_above_norm_changes_nothing():
    got, params, grads = one_step(np.float64, _core.Solver.SGD, gradient_clip=1e6,
                                  momentum=0.0)
    for g, p, d in zip(got, params, grads):
        np.testing.assert_allclose(g, p - 0.05 * d, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rprop_update_matches_reference(rng, dtype):
    n = 200
    param = rng.standard_normal(n)
    prev = rng.standard_normal(n) * (rng.random(n) > 0.2)
    grad = rng.standard_normal(n) * (rng.random(n) > 0.1)
    step = rng.uniform(0.01, 1.0, n)
    expected = irprop_minus(param, grad, prev, step, 1.2, 0.5, 0.02, 0.9)
    p, g, pv, s = (a.astype(dtype) for a in (param, grad, prev, step))
    _core.rprop_update(p, g, pv, s, 1.2, 0.5, 0.02, 0.9)
    tol = dict(rtol=1e-15) if dtype == np.float64 else dict(rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(p, expected[0], **tol)
    np.testing.assert_allclose(pv, expected[1], **tol)
    np.testing.assert_allclose(s, expected[2], **tol)


def test_default_options_keep_the_old_kernels(rng):
    """activations given per layer as the old single code gives them: same bits."""
    X, Y = random_data(rng, 30, 3, 2)
    coefs, intercepts = random_network(rng, [3, 5, 4, 2], scale=0.7)
    grads = []
    for per_layer in (False, True):
        kw = dict(activations=[ACTIVATIONS["tanh"]] * 2 + [0]) if per_layer else {}
        trainer = _core.Trainer(list(coefs), list(intercepts), [], 8,
                                ACTIVATIONS["tanh"], 0, 0, 0, **kw)
        grad = np.empty(sum(p.size for p in coefs + intercepts))
        _core.loss_grad(trainer, X, Y, grad)
        grads.append(grad)
    np.testing.assert_array_equal(grads[0], grads[1])
