# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Runtime instruction-set dispatch (_simd.h): the optimizer loops, the
small matrix products, and the activation and dropout loops.

Every copy must give bitwise the weights of the baseline copy: each test
trains the same model under every instruction set this machine runs, with
the small products in BLAS and in fastbp's own kernel, and compares the
results exactly. The own kernel is checked against BLAS (and NumPy), and
bitwise against its definition (one fused multiply-add per term, in order).
The backward product ``delta @ W.T`` on a transposed copy of W is checked
against BLAS's transposed call. ``FASTBP_ISA`` pins a set at import,
``FASTBP_SMALL_GEMM`` the product size up to which the own kernel runs.
"""

import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from fastbp import _core

SUPPORTED = _core.isa_supported()


@pytest.fixture
def restore_isa():
    before, small, nn = _core.get_isa(), _core.get_small_gemm(), _core.get_nn_backward()
    yield
    _core.set_isa(before)
    _core.set_small_gemm(small)
    _core.set_nn_backward(nn)


def _train(case, isa, dtype, hidden=(9, 5), **params):
    _core.set_isa(isa)
    X = case.X.astype(dtype)
    est = case(hidden_layer_sizes=hidden, max_iter=6, batch_size=13, tol=0,
               random_state=0, alpha=1e-2, **params)
    est.fit(X, case.y)
    case.partial_fit(est, X, case.y)
    return est


def _fits_under_every_isa(case, dtype, **params):
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return {isa: _train(case, isa, dtype, **params) for isa in SUPPORTED}


def _assert_same_weights(models, dtype):
    base = models["default"]
    for isa, est in models.items():
        assert est.loss_curve_ == base.loss_curve_, isa
        for p, q in zip(est.coefs_ + est.intercepts_, base.coefs_ + base.intercepts_):
            assert p.dtype == dtype
            np.testing.assert_array_equal(p, q, err_msg=isa)


# (9, 5): remainders of every block; (37,) and (70, 3): a single-output
# gradient long enough for the kernel's vectors down the rows, and columns
# left over for its 16-byte vectors.
@pytest.mark.parametrize("hidden", [(9, 5), (37,), (70, 3)])
@pytest.mark.parametrize("small_gemm, nn_backward", [(0, 0), (0, 1 << 30), (1 << 30, 1 << 30)],
                         ids=["blas", "blas-nn", "own"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("solver", [
    dict(solver="adam"),
    dict(solver="sgd", nesterovs_momentum=True, learning_rate_init=0.05),
    dict(solver="sgd", nesterovs_momentum=False, learning_rate_init=0.05),
])
def test_every_instruction_set_trains_the_same_weights(estimator_case, restore_isa,
                                                       dtype, solver, small_gemm, nn_backward,
                                                       hidden):
    if len(SUPPORTED) < 2:
        pytest.skip("this machine runs one instruction set only: %s" % SUPPORTED)
    _core.set_small_gemm(small_gemm)
    _core.set_nn_backward(nn_backward)
    models = _fits_under_every_isa(estimator_case, dtype, hidden=hidden, **solver)
    _assert_same_weights(models, dtype)
    for isa, est in models.items():
        for m, n in zip(est._optimizer_state["moments"],
                        models["default"]._optimizer_state["moments"]):
            np.testing.assert_array_equal(m, n, err_msg=isa)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", [
    dict(activation="gelu"), dict(activation="silu"), dict(activation="mish"),
    dict(activation="elu"), dict(activation="selu"), dict(activation="softplus"),
    dict(activation="leaky_relu"), dict(activation="tanh"), dict(activation="logistic"),
    dict(solver="adamw", weight_decay=0.05),
    dict(dropout=0.3), dict(activation="gelu", dropout=(0.2, 0.5)),
], ids=lambda o: "-".join("%s=%s" % kv for kv in o.items()))
def test_every_instruction_set_trains_the_same_elementwise_nets(
        estimator_case, restore_isa, dtype, options):
    """The activation and dropout loops of _simd.h (fastbp's own exp, expm1,
    log1p; the dropout hash) give bitwise the same weights on every set, at
    widths that fill whole vectors and leave remainders."""
    if len(SUPPORTED) < 2:
        pytest.skip("this machine runs one instruction set only: %s" % SUPPORTED)
    models = _fits_under_every_isa(estimator_case, dtype, **options)
    _assert_same_weights(models, dtype)
    wide = _fits_under_every_isa(estimator_case, dtype, hidden=(37, 16), **options)
    _assert_same_weights(wide, dtype)


def test_set_isa_refuses_what_it_cannot_run(restore_isa):
    assert _core.get_isa() in SUPPORTED
    assert SUPPORTED[0] == "default" == _core.isa_names()[0]
    with pytest.raises(ValueError, match="unknown instruction set"):
        _core.set_isa("sse9")
    for name in _core.isa_names():
        if name in SUPPORTED:
            assert _core.set_isa(name) == name
        else:
            with pytest.raises(ValueError, match="does not run"):
                _core.set_isa(name)
    assert _core.set_isa("best") == SUPPORTED[-1]


def _fresh_import(variable, value, getter):
    """A new interpreter's ``_core.<getter>()`` with the environment variable
    set, and what it printed to stderr (warnings always shown)."""
    env = dict(os.environ, **{variable: value})
    code = ("import warnings; warnings.simplefilter('always')\n"
            "import fastbp._core as c; print(c.%s())" % getter)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    return out.stdout.strip(), out.stderr


@pytest.mark.parametrize("value", ["default", "avx2", "avx512", "", "best", "nonsense"])
def test_fastbp_isa_pins_the_instruction_set(value):
    got, stderr = _fresh_import("FASTBP_ISA", value, "get_isa")
    if value in SUPPORTED:
        assert got == value
        assert "FASTBP_ISA" not in stderr
    else:
        assert got == SUPPORTED[-1]
        if value in ("", "best"):
            assert "FASTBP_ISA" not in stderr
        else:
            assert "FASTBP_ISA=%s ignored" % value in stderr


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("isa", SUPPORTED)
def test_own_small_products_are_blas_products(restore_isa, isa, dtype):
    # Forward passes through layers of awkward sizes (rows and columns that
    # leave every kind of remainder of the kernel's blocks), with the small
    # products in the own kernel and in BLAS, and in NumPy as a third opinion.
    _core.set_isa(isa)
    rng = np.random.default_rng(3)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for n_rows, units in [(1, [1, 1]), (3, [5, 7, 1]), (4, [10, 100, 1]),
                          (33, [10, 64, 64, 3]), (67, [13, 37, 19, 2]),
                          (130, [8, 33, 17])]:
        X = rng.standard_normal((n_rows, units[0])).astype(dtype)
        coefs = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype)
                 for a, b in zip(units, units[1:])]
        intercepts = [rng.standard_normal(b).astype(dtype) for b in units[1:]]
        outs = []
        for limit in (0, 1 << 30):
            _core.set_small_gemm(limit)
            out = np.empty((n_rows, units[-1]), dtype=dtype)
            _core.predict(X, coefs, intercepts, _core.Activation.IDENTITY,
                          _core.Activation.IDENTITY, out)
            outs.append(out)
        expected = X.astype(np.float64)
        for c, b in zip(coefs, intercepts):
            expected = expected @ c.astype(np.float64) + b
        np.testing.assert_allclose(outs[1], outs[0], rtol=tol, atol=tol)
        np.testing.assert_allclose(outs[1], expected, rtol=10 * tol, atol=10 * tol)


def _fma(x, y, z):
    """x * y + z rounded once to float64 (Fraction is exact; float() rounds
    correctly)."""
    return float(Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z)))


def _fma_chain(a, b):
    """The own kernel's float64 product by its definition: c[i, j] =
    fma(a[i, k-1], b[k-1, j], ... fma(a[i, 0], b[0, j], 0)); except that a
    single column over k >= 8 terms runs as dot products for the rows in
    whole groups of four: lane t fuses the terms p = t mod 8 in order, the
    lanes are added pairwise ((0+1)+(2+3))+((4+5)+(6+7)), and the terms past
    the last whole 8 are fused on after that."""
    m, k = a.shape
    out = np.empty((m, b.shape[1]))
    dot_rows = m - m % 4 if b.shape[1] == 1 and k >= 8 else 0
    for i in range(m):
        for j in range(b.shape[1]):
            if i < dot_rows:
                kend = k - k % 8
                lanes = [0.0] * 8
                for p in range(kend):
                    lanes[p % 8] = _fma(a[i, p], b[p, j], lanes[p % 8])
                while len(lanes) > 1:
                    lanes = [lanes[2 * t] + lanes[2 * t + 1] for t in range(len(lanes) // 2)]
                s, start = lanes[0], kend
            else:
                s, start = 0.0, 0
            for p in range(start, k):
                s = _fma(a[i, p], b[p, j], s)
            out[i, j] = s
    return out


@pytest.mark.parametrize("isa", SUPPORTED)
def test_own_small_products_are_the_fused_sums_in_order(restore_isa, isa):
    # Bitwise, at every instruction set: each entry is its terms fused one by
    # one, at shapes that run the 4-row blocks, single rows, full and 16-byte
    # vectors, scalar columns, and a single column as dot products and as
    # eight-row chains (k below one 64-byte vector).
    _core.set_isa(isa)
    _core.set_small_gemm(1 << 30)
    rng = np.random.default_rng(11)
    for n_rows, n_in, n_out in [(6, 37, 19), (9, 5, 33), (6, 70, 1), (12, 3, 1)]:
        X = rng.standard_normal((n_rows, n_in))
        W = rng.standard_normal((n_in, n_out))
        out = np.empty((n_rows, n_out))
        _core.predict(X, [W], [np.zeros(n_out)], _core.Activation.IDENTITY,
                      _core.Activation.IDENTITY, out)
        np.testing.assert_array_equal(out, _fma_chain(X, W) + 0.0)


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("hidden", [(9, 5), (37, 16), (70, 3, 40)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_on_transposed_weights_trains_the_blas_model(
        estimator_case, restore_isa, dtype, hidden, n_jobs):
    # delta @ W.T as BLAS's transposed call and as a product on W.T copied
    # (in BLAS and in the own kernel): the same model up to rounding.
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    models = []
    for small, nn in [(0, 0), (0, 1 << 30), (1 << 30, 1 << 30)]:
        _core.set_small_gemm(small)
        _core.set_nn_backward(nn)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            models.append(_train(estimator_case, "best", dtype, hidden, n_jobs=n_jobs))
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for other in models[1:]:
        for p, q in zip(models[0].coefs_ + models[0].intercepts_,
                        other.coefs_ + other.intercepts_):
            np.testing.assert_allclose(p, q, rtol=tol, atol=tol)


def test_backward_on_transposed_weights_only_where_it_has_room(restore_isa):
    # Room for W.T is set aside only for layers whose full share of a batch
    # fits the limit; a short last batch of a larger layer must keep BLAS's
    # transposed call (no copy past the room). 35 rows in batches of 32: the
    # second batch has 3 rows, under the limit for the (300, 200) layer.
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from fastbp import BPRegressor

    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((35, 6)), rng.standard_normal(35)
    models = []
    for nn in (0, 300 * 200 * 3):
        _core.set_nn_backward(nn)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            models.append(BPRegressor(hidden_layer_sizes=(300, 200), batch_size=32,
                                      max_iter=3, random_state=0).fit(X, y))
    for p, q in zip(models[0].coefs_, models[1].coefs_):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("hidden", [(9, 5), (37,), (70, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_own_small_products_train_the_blas_model(estimator_case, restore_isa, dtype,
                                                 hidden):
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    models = []
    for limit in (0, 1 << 30):
        _core.set_small_gemm(limit)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            models.append(_train(estimator_case, "best", dtype, hidden))
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for p, q in zip(models[0].coefs_ + models[0].intercepts_,
                    models[1].coefs_ + models[1].intercepts_):
        np.testing.assert_allclose(p, q, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", ["small_gemm", "nn_backward"])
def test_product_limits_refuse_negative_values(restore_isa, name):
    set_limit, get_limit = getattr(_core, "set_" + name), getattr(_core, "get_" + name)
    with pytest.raises(ValueError, match=">= 0"):
        set_limit(-1)
    previous = set_limit(123)
    assert get_limit() == 123
    assert set_limit(previous) == 123


@pytest.mark.parametrize("value", ["0", "4096", "junk"])
def test_fastbp_small_gemm_sets_the_limit(value):
    got, stderr = _fresh_import("FASTBP_SMALL_GEMM", value, "get_small_gemm")
    if value == "junk":
        assert "FASTBP_SMALL_GEMM=junk ignored" in stderr
        assert int(got) in (0, _core.SMALL_GEMM_DEFAULT)
    else:
        assert int(got) == int(value)
    # The backward product runs on W.T at least as far as the own kernel runs.
    nn, _ = _fresh_import("FASTBP_SMALL_GEMM", value, "get_nn_backward")
    assert int(nn) >= int(got)


def test_baseline_instruction_set_leaves_small_products_to_blas():
    # Its products would fuse through the C library's fma, one call a term.
    env = dict(os.environ, FASTBP_ISA="default")
    env.pop("FASTBP_SMALL_GEMM", None)
    code = "import fastbp._core as c; print(c.get_isa(), c.get_small_gemm())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.split() == ["default", "0"]
