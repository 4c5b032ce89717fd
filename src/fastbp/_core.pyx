# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Typed kernels for backpropagation training of dense networks.

Design
------
- Python decides, Cython computes. Every array that reaches a kernel has been
  validated by the Python side: C-contiguous, of the right dtype, of matching
  shapes, finite. Kernels never validate data, never allocate inside the batch
  loop and never raise; the ``def`` entry points check the shape facts and row
  indices that protect memory (O(1), or O(n) for an order array) before any
  work without the GIL.
- Input rows reach the kernels as ``Rows``: a dense C-contiguous array, or CSR
  parts whose structure ``Rows.csr`` has checked. A CSR first layer is computed
  straight from the sparse rows; nothing densifies X.
- float32 and float64 share one source through the ``floating`` fused type; the
  dtype branch is taken at compile time.
- Matrices are row-major. ``_gemm`` is the only door to BLAS and the only place
  where ``const`` is cast away.
- Activation derivatives are taken from the layer *output* (``tanh' = 1 - a*a``,
  ``elu' = a + 1`` for a < 0, ``softplus' = 1 - exp(-a)``). gelu, silu, mish and
  sin are not invertible functions of their output, so only layers with one of
  those keep their pre-activations (``Net.pre``), and only while training;
  gelu and silu read their sigmoid back as a / z (no second exp).
- Dropout masks are not stored: a counter-based hash draws them (SplitMix64's
  mixer of (seed, row of X, layer) gives a row's 64-bit key, then a 32-bit hash
  of (key, unit) each unit's bits, in _simd.h's vectorized loops), so the
  backward pass draws the same mask again, and the mask of a row does not
  depend on the batch, thread or instruction set that computes it.
- The element-wise loops of leaky_relu, elu, selu, softplus, gelu, silu and
  mish, forward and backward, run in _simd.h, one copy per instruction set,
  with fastbp's own vectorizable exp, expm1 and log1p (a few ulp from libm's,
  bitwise the same on every instruction set); so do relu, identity, tanh
  (through expm1) and logistic (1 / (1 + exp(-z)), as scipy's expit). The
  exp output, softmax and sin keep their loops here on libm.
- Gradients are scaled as scikit-learn scales them:
  ``dW = (a_prev.T @ delta + alpha * W) / n_batch``, ``db = sum(delta) / n_batch``.
- Sample weights scale each row's delta; a batch's gradients are divided by
  ``n_batch * mean(weight)``, so minibatches are unbiased for the weighted loss.
- All the work of an epoch runs with the GIL released. The parameter and
  optimizer arrays belong to the estimator; a ``Trainer`` holds pointer tables
  over them plus the per-fit workspaces (per thread) and a snapshot buffer.
- With ``n_threads > 1`` each thread runs its share of a batch's rows, then sums
  the gradients of its slice of the parameters in thread order and applies the
  step to it: results depend on the thread count, never on timing.
- Between minibatches (and between row blocks of ``predict`` and ``loss_grad``)
  the main thread polls for signals a few times a second, so Ctrl-C stops a long
  call: the handler's exception propagates through ``except -1`` helpers, and the
  estimator then rolls back to the last epoch.
- What a loop without the GIL trusts to index memory (CSR structure, row orders)
  is a private copy, validated after it was taken: no other thread, and no signal
  handler run by a poll, can change it under the loop.
- At most ``MAX_THREADS`` threads share a batch; ``max_threads()`` caps OpenMP's
  budget to it. Without OpenMP the module builds serial and ``max_threads()`` is 1.
"""

import threading

import numpy as np

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport INFINITY, cos, cosf, exp, expf, fabs, log, pow, sin, sinf, sqrt, sqrtf
from libc.stdint cimport uint32_t, uint64_t
from libc.float cimport DBL_EPSILON, FLT_EPSILON
from libc.stdlib cimport free, malloc
from cpython.exc cimport PyErr_CheckSignals
from libc.string cimport memcpy, memset
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec
from scipy.linalg.cython_blas cimport dgemm, sgemm


cpdef enum Activation:
    IDENTITY = 0
    LOGISTIC = 1
    TANH = 2
    RELU = 3
    EXP = 4
    SOFTMAX = 5         # output layer only, paired with LOG_LOSS
    LEAKY_RELU = 6      # slope from Net.act_param
    ELU = 7
    SELU = 8
    SOFTPLUS = 9
    GELU = 10           # tanh form; needs the pre-activation
    SILU = 11           # needs the pre-activation
    MISH = 12           # needs the pre-activation
    SIN = 13            # needs the pre-activation


cpdef enum Loss:
    SQUARED_ERROR = 0
    POISSON = 1
    LOG_LOSS = 2        # softmax output: multiclass
    BINARY_LOG_LOSS = 3  # logistic outputs: binary and multilabel
    ABSOLUTE_ERROR = 4
    HUBER = 5           # delta from Net.loss_param
    QUANTILE = 6        # pinball loss; quantile from Net.loss_param


cpdef enum Solver:
    SGD = 0
    ADAM = 1
    ADAMW = 2           # Adam with decoupled weight decay (Step.decay)


# The most threads a Trainer splits a batch over; OpenMP budgets above it are
# capped, never refused.
MAX_THREADS = 256

# OpenMP's budget, or 1 in a serial build (compiled without OpenMP): the one
# place that needs OpenMP's header, so the module builds without it.
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define FASTBP_OPENMP 1
    static int fastbp_omp_max_threads(void) { return omp_get_max_threads(); }
    #else
    #define FASTBP_OPENMP 0
    static int fastbp_omp_max_threads(void) { return 1; }
    #endif
    """
    const int FASTBP_OPENMP
    int fastbp_omp_max_threads() noexcept nogil

# Whether this build runs threads at all (False: a serial build).
OPENMP = bool(FASTBP_OPENMP)


# --------------------------------------------------------------------------
# What the kernels pass around
# --------------------------------------------------------------------------
# Structs are not fused, so they hold untyped pointers; each kernel casts them
# to its own ``floating``, which a typed argument (a buffer, or a NULL
# ``dtype_marker``) selects.

cdef struct Input:
    const void* dense             # (n_rows, n_features) row-major, or NULL if CSR
    const void* data              # CSR values
    const Py_ssize_t* indices     # CSR column of each value
    const Py_ssize_t* indptr      # CSR row starts, n_rows + 1
    Py_ssize_t n_rows
    Py_ssize_t n_features


# One block of rows of X: rows row_idx[i], or start + i when row_idx is NULL,
# for i < n_rows. a0 is the block as a dense matrix (a slice of X or a gather),
# or NULL when X is CSR and the first layer reads the sparse rows.
cdef struct Block:
    const Input* x
    const void* a0
    const Py_ssize_t* row_idx
    Py_ssize_t start
    Py_ssize_t n_rows


# What one thread needs to run its share of a batch, without the GIL.
cdef struct Net:
    Py_ssize_t n_layers
    Py_ssize_t n_threads
    const Py_ssize_t* units
    void** coef
    void** intercept
    void** act
    void** delta
    void** coef_grad
    void** intercept_grad
    void** moment_1
    void** moment_2
    void** pre              # per thread, per layer: z, or NULL if not needed
    void** wt               # per thread: room for wt_size values of a W.T
    Py_ssize_t wt_size      # layers with n_in * n_out <= wt_size go through it
    const int* activations  # n_layers: each layer's activation, output last
    const double* dropout   # n_layers + 1 drop rates of act[l] (NULL: none)
    uint64_t seed           # this epoch's dropout seed
    double act_param        # leaky_relu's slope
    double loss_param       # huber's delta, or the quantile
    int activation
    int out_activation
    int loss
    # A softmax output split into blocks of these sizes (one per categorical
    # target column), each its own softmax; NULL: one block of every output.
    const Py_ssize_t* out_groups
    Py_ssize_t n_out_groups


# One optimizer step's settings, shared by the threads that apply it.
cdef struct Step:
    int solver
    double scale        # gradients are divided by it: n_batch * mean weight
    double lr           # SGD's rate, or Adam's bias-corrected step
    double alpha
    double momentum
    bint nesterov
    double beta_1
    double beta_2
    double epsilon
    double decay        # AdamW: lr * weight_decay, applied to the weights


# What an epoch reports; adam_t goes in as the step count so far.
cdef struct EpochResult:
    double loss          # sum over batches of batch_loss * n_batch
    double coef_sq       # sum of squared weights after the epoch (inf: diverged)
    double intercept_sq
    Py_ssize_t adam_t


# The optimizer and reduction loops, one copy per instruction set (_simd.h).
cdef extern from "_simd.h":
    ctypedef struct fastbp_step:
        double scale
        double lr
        double alpha
        double momentum
        int nesterov
        double beta_1
        double beta_2
        double epsilon
        double decay
    ctypedef struct fastbp_kernels:
        void (*adam_d)(double*, const double*, double*, double*, Py_ssize_t,
                       const fastbp_step*) noexcept nogil
        void (*adam_s)(float*, const float*, float*, float*, Py_ssize_t,
                       const fastbp_step*) noexcept nogil
        void (*sgd_d)(double*, const double*, double*, Py_ssize_t,
                      const fastbp_step*) noexcept nogil
        void (*sgd_s)(float*, const float*, float*, Py_ssize_t,
                      const fastbp_step*) noexcept nogil
        double (*sumsq_d)(const double*, Py_ssize_t) noexcept nogil
        double (*sumsq_s)(const float*, Py_ssize_t) noexcept nogil
        void (*gemm_d)(Py_ssize_t, Py_ssize_t, Py_ssize_t, const double*, Py_ssize_t,
                       Py_ssize_t, const double*, Py_ssize_t, double*,
                       Py_ssize_t) noexcept nogil
        void (*gemm_s)(Py_ssize_t, Py_ssize_t, Py_ssize_t, const float*, Py_ssize_t,
                       Py_ssize_t, const float*, Py_ssize_t, float*,
                       Py_ssize_t) noexcept nogil
        void (*colsum_d)(double*, const double*, Py_ssize_t, Py_ssize_t,
                         int) noexcept nogil
        void (*colsum_s)(float*, const float*, Py_ssize_t, Py_ssize_t,
                         int) noexcept nogil
        void (*outer_d)(const double*, const double*, Py_ssize_t, Py_ssize_t,
                        double*) noexcept nogil
        void (*outer_s)(const float*, const float*, Py_ssize_t, Py_ssize_t,
                        float*) noexcept nogil
        void (*transpose_d)(const double*, Py_ssize_t, Py_ssize_t, double*) noexcept nogil
        void (*transpose_s)(const float*, Py_ssize_t, Py_ssize_t, float*) noexcept nogil
        void (*act_d)(double*, const double*, Py_ssize_t, Py_ssize_t, int, double,
                      double*) noexcept nogil
        void (*act_s)(float*, const float*, Py_ssize_t, Py_ssize_t, int, double,
                      float*) noexcept nogil
        void (*act_grad_d)(double*, const double*, const double*, Py_ssize_t, int,
                           double) noexcept nogil
        void (*act_grad_s)(float*, const float*, const float*, Py_ssize_t, int,
                           double) noexcept nogil
        void (*drop_d)(double*, Py_ssize_t, uint32_t, uint32_t, uint32_t,
                       double) noexcept nogil
        void (*drop_s)(float*, Py_ssize_t, uint32_t, uint32_t, uint32_t,
                       double) noexcept nogil
        void (*drop_grad_d)(double*, double*, Py_ssize_t, uint32_t, uint32_t, uint32_t,
                            double) noexcept nogil
        void (*drop_grad_s)(float*, float*, Py_ssize_t, uint32_t, uint32_t, uint32_t,
                            double) noexcept nogil
        void (*math_d)(double*, Py_ssize_t, int) noexcept nogil
        void (*math_s)(float*, Py_ssize_t, int) noexcept nogil
    fastbp_kernels fastbp_k
    const int FASTBP_EW_LEAKY_RELU
    const int FASTBP_EW_ELU
    const int FASTBP_EW_SELU
    const int FASTBP_EW_SOFTPLUS
    const int FASTBP_EW_GELU
    const int FASTBP_EW_SILU
    const int FASTBP_EW_MISH
    const int FASTBP_EW_RELU
    const int FASTBP_EW_IDENTITY
    const int FASTBP_EW_TANH
    const int FASTBP_EW_LOGISTIC
    const int FASTBP_MATH_EXP
    const int FASTBP_MATH_EXPM1
    const int FASTBP_MATH_LOG1P
    const int FASTBP_MATH_TANH
    const int FASTBP_MATH_LOGISTIC
    uint32_t fastbp_unit_bits(uint32_t lo, uint32_t hi, Py_ssize_t unit) noexcept nogil
    const int FASTBP_N_ISA
    const int FASTBP_ISA_BASE
    int fastbp_isa_current
    const char* fastbp_isa_names[3]
    int fastbp_isa_supported(int isa) noexcept nogil
    int fastbp_isa_set(int isa) noexcept nogil
    int fastbp_isa_best() noexcept nogil


# Products of at most this many multiply-adds run in _simd.h's kernel, not
# BLAS (see _gemm; 0 sends every product to BLAS). set_small_gemm changes it.
cdef Py_ssize_t _small_gemm_limit = 0
# Backward products delta @ W.T of at most this many multiply-adds (for a
# thread's full share of a batch) run as delta @ (a transposed copy of W), a
# product without a transposed operand, which OpenBLAS sends to its
# small-matrix kernels and _simd.h's kernel takes. A Trainer sets aside room
# for the copy by it (Net.wt_size); 0 keeps BLAS's transposed call.
# set_nn_backward changes it.
cdef Py_ssize_t _nn_backward_limit = 0


cdef inline fastbp_step _simd_step(const Step* step, double alpha) noexcept nogil:
    """The settings of one optimizer step for the _simd.h loops."""
    cdef fastbp_step s
    s.scale = step.scale
    s.lr = step.lr
    s.alpha = alpha
    s.momentum = step.momentum
    s.nesterov = step.nesterov
    s.beta_1 = step.beta_1
    s.beta_2 = step.beta_2
    s.epsilon = step.epsilon
    s.decay = 0.0
    return s


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------

cdef inline floating _exp(floating x) noexcept nogil:
    """exp in the argument's precision."""
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating _sqrt(floating x) noexcept nogil:
    """sqrt in the argument's precision."""
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline bint _is_single(const floating* dtype_marker) noexcept nogil:
    """Whether this specialization is float32; the marker only picks it."""
    if floating is float:
        return True
    else:
        return False


cdef bint _all_finite(const floating* x, Py_ssize_t size) noexcept nogil:
    """Whether every x[k] is finite."""
    cdef Py_ssize_t k
    cdef double s = 0.0
    for k in range(size):
        s += x[k] * 0
    # x * 0 is 0 for finite x and NaN for inf or NaN, so one sum tells.
    return s == 0


cdef inline const floating* _first(const floating[:, ::1] a) noexcept nogil:
    """Address of a[0, 0], or NULL for an array without elements."""
    if a.shape[0] == 0 or a.shape[1] == 0:
        return NULL
    return &a[0, 0]


cdef inline Py_ssize_t _row(const Block* block, Py_ssize_t i) noexcept nogil:
    """The row of X that row i of the block is."""
    return block.row_idx[i] if block.row_idx != NULL else block.start + i


# --------------------------------------------------------------------------
# BLAS
# --------------------------------------------------------------------------

cdef void _gemm(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                const floating* a, int lda, const floating* b, int ldb,
                floating beta, floating* c, int ldc) noexcept nogil:
    """Row-major c[m, n] = alpha * op(a) @ op(b) + beta * c."""
    # Fortran BLAS reads a row-major matrix as its transpose, so computing
    # c.T = op(b).T @ op(a).T in column-major order gives c in row-major order.
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if (not trans_b and alpha == 1 and beta == 0
            and <Py_ssize_t> m * n * k <= _small_gemm_limit):
        # Small products: _simd.h's kernel, which needs no small-matrix path
        # in the BLAS (OpenBLAS's AVX2 kernels have none).
        if floating is float:
            fastbp_k.gemm_s(m, n, k, a, lda if not trans_a else 1,
                            1 if not trans_a else lda, b, ldb, c, ldc)
        else:
            fastbp_k.gemm_d(m, n, k, a, lda if not trans_a else 1,
                            1 if not trans_a else lda, b, ldb, c, ldc)
        return
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> b, &ldb, <float*> a, &lda,
              &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> b, &ldb, <double*> a, &lda,
              &beta, c, &ldc)


# --------------------------------------------------------------------------
# Activations, each beside its derivative
# --------------------------------------------------------------------------

cdef inline floating _sin(floating x) noexcept nogil:
    if floating is float:
        return sinf(x)
    else:
        return sin(x)


cdef inline floating _cos(floating x) noexcept nogil:
    if floating is float:
        return cosf(x)
    else:
        return cos(x)


cdef inline int _elementwise_kind(int activation) noexcept nogil:
    """The loop of _simd.h's act/act_grad kernels that computes activation, or
    -1 for the activations that keep their own loops here."""
    if activation == LEAKY_RELU:
        return FASTBP_EW_LEAKY_RELU
    if activation == ELU:
        return FASTBP_EW_ELU
    if activation == SELU:
        return FASTBP_EW_SELU
    if activation == SOFTPLUS:
        return FASTBP_EW_SOFTPLUS
    if activation == GELU:
        return FASTBP_EW_GELU
    if activation == SILU:
        return FASTBP_EW_SILU
    if activation == MISH:
        return FASTBP_EW_MISH
    if activation == RELU:
        return FASTBP_EW_RELU
    if activation == IDENTITY:
        return FASTBP_EW_IDENTITY
    if activation == TANH:
        return FASTBP_EW_TANH
    if activation == LOGISTIC:
        return FASTBP_EW_LOGISTIC
    return -1


cdef inline bint needs_pre(int activation) noexcept nogil:
    """Whether act' cannot be written through the output a = act(z)."""
    return activation == GELU or activation == SILU or activation == MISH or activation == SIN


cdef void _bias_activate(floating* z, const floating* intercept, Py_ssize_t n_rows,
                         Py_ssize_t n_cols, int activation, double act_param,
                         floating* pre_out) noexcept nogil:
    """z = act(z + intercept), in place; pre_out (if not NULL) receives z +
    intercept. z, pre_out: (n_rows, n_cols), intercept: (n_cols,)."""
    cdef Py_ssize_t i, j
    cdef floating v
    cdef floating* row
    cdef int kind = _elementwise_kind(activation)
    if kind >= 0:
        # One copy per instruction set, with fastbp's own exp (_simd.h).
        if floating is float:
            fastbp_k.act_s(z, intercept, n_rows, n_cols, kind, act_param, pre_out)
        else:
            fastbp_k.act_d(z, intercept, n_rows, n_cols, kind, act_param, pre_out)
        return
    for i in range(n_rows):
        row = z + i * n_cols
        if activation == EXP:
            for j in range(n_cols):
                row[j] = _exp(row[j] + intercept[j])
        elif activation == SOFTMAX:
            _softmax_row(row, intercept, n_cols)
        elif activation == SIN:
            for j in range(n_cols):
                v = row[j] + intercept[j]
                if pre_out != NULL:
                    pre_out[i * n_cols + j] = v
                row[j] = _sin(v)


cdef inline void _softmax_row(floating* row, const floating* intercept,
                              Py_ssize_t n_cols) noexcept nogil:
    """row = exp(z - max z) / sum exp(z - max z), z = row + intercept; as
    scikit-learn's inplace_softmax computes it, in the row's dtype. (n_cols,)"""
    cdef Py_ssize_t j
    cdef floating top, total = 0
    for j in range(n_cols):
        row[j] = row[j] + intercept[j]
    # A NaN in row[0] makes top NaN; one elsewhere makes its exp and so the sum
    # NaN: either way the whole row is NaN, as with NumPy's max.
    top = row[0]
    for j in range(1, n_cols):
        if row[j] > top:
            top = row[j]
    for j in range(n_cols):
        row[j] = _exp(row[j] - top)
        total += row[j]
    for j in range(n_cols):
        row[j] = row[j] / total


cdef void _grouped_softmax(floating* z, const floating* intercept, Py_ssize_t n_rows,
                           Py_ssize_t n_cols, const Py_ssize_t* groups,
                           Py_ssize_t n_groups) noexcept nogil:
    """z = softmax(z + intercept) in place, separately on each block of columns
    of sizes groups[0..n_groups) (summing to n_cols). z: (n_rows, n_cols).

    With the log-loss, each block's delta is still p - y: the loss is a sum of
    one cross-entropy per block, each the canonical link of its softmax.
    """
    cdef Py_ssize_t i, g, start
    for i in range(n_rows):
        start = 0
        for g in range(n_groups):
            _softmax_row(z + i * n_cols + start, intercept + start, groups[g])
            start += groups[g]


cdef void _activation_derivative(floating* delta, const floating* a,
                                 const floating* pre, Py_ssize_t size,
                                 int activation, double act_param) noexcept nogil:
    """delta *= act'(z), with act' written through a = act(z), or through z =
    pre for the activations that need it (needs_pre). All of (size,)."""
    cdef Py_ssize_t i
    cdef int kind = _elementwise_kind(activation)
    if kind >= 0:
        if floating is float:
            fastbp_k.act_grad_s(delta, a, pre, size, kind, act_param)
        else:
            fastbp_k.act_grad_d(delta, a, pre, size, kind, act_param)
        return
    if activation == SIN:
        for i in range(size):
            delta[i] *= _cos(pre[i])
    elif activation == EXP:
        # An exp output under a loss other than Poisson's.
        for i in range(size):
            delta[i] *= a[i]
    # SOFTMAX is an output activation only, paired with its loss


# --------------------------------------------------------------------------
# Dropout: a counter-based generator, so masks are drawn again, not stored
# --------------------------------------------------------------------------

cdef inline uint64_t _mix64(uint64_t z) noexcept nogil:
    """SplitMix64's finalizer: a bijective avalanche of 64 bits."""
    z = (z ^ (z >> 30)) * <uint64_t> 0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * <uint64_t> 0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef inline uint64_t _row_key(uint64_t seed, Py_ssize_t row, Py_ssize_t layer) noexcept nogil:
    """The generator's 64-bit key for one (row of X, layer) of one epoch; each
    unit's 32 bits are fastbp_unit_bits(key's low half, key's high half, unit)."""
    return _mix64(seed + <uint64_t> 0x9E3779B97F4A7C15ULL * (
        (<uint64_t> row << 8) + <uint64_t> layer + 1))


cdef inline uint32_t _drop_threshold(double p) noexcept nogil:
    """A unit is dropped when its 32 bits fall under p * 2**32 (0 <= p < 1)."""
    return <uint32_t> (p * 4294967296.0)


cdef void _dropout(const Net* net, const Block* block, Py_ssize_t layer,
                   floating* a) noexcept nogil:
    """Inverted dropout on a = act[layer] (n_rows, units[layer]), in place:
    a *= mask / (1 - p). Row by row, in _simd.h's loops."""
    cdef Py_ssize_t i, n = net.units[layer]
    cdef double p = net.dropout[layer]
    cdef uint32_t threshold = _drop_threshold(p)
    cdef uint64_t key
    for i in range(block.n_rows):
        key = _row_key(net.seed, _row(block, i), layer)
        if floating is float:
            fastbp_k.drop_s(a + i * n, n, <uint32_t> key, <uint32_t> (key >> 32),
                            threshold, p)
        else:
            fastbp_k.drop_d(a + i * n, n, <uint32_t> key, <uint32_t> (key >> 32),
                            threshold, p)


cdef void _dropout_backward(const Net* net, const Block* block, Py_ssize_t layer,
                            floating* delta, floating* a) noexcept nogil:
    """delta *= mask / (1 - p), the same mask as the forward pass drew; and a
    (the dropped output, updated in place) back to act(z) = a * (1 - p), which
    the derivative is written through. Both (n_rows, units[layer])."""
    cdef Py_ssize_t i, n = net.units[layer]
    cdef double p = net.dropout[layer]
    cdef uint32_t threshold = _drop_threshold(p)
    cdef uint64_t key
    for i in range(block.n_rows):
        key = _row_key(net.seed, _row(block, i), layer)
        if floating is float:
            fastbp_k.drop_grad_s(delta + i * n, a + i * n, n, <uint32_t> key,
                                 <uint32_t> (key >> 32), threshold, p)
        else:
            fastbp_k.drop_grad_d(delta + i * n, a + i * n, n, <uint32_t> key,
                                 <uint32_t> (key >> 32), threshold, p)


def dropout_mask(uint64_t seed, const Py_ssize_t[::1] rows, Py_ssize_t layer,
                 Py_ssize_t n_units, double p):
    """The keep-mask (len(rows), n_units) that training draws for act[layer]
    of the given rows of X under an epoch's seed: for tests and inspection."""
    if not 0 <= p < 1:
        raise ValueError("p must be in [0, 1), got %r" % p)
    if n_units < 0:
        raise ValueError("n_units must be >= 0, got %d" % n_units)
    cdef Py_ssize_t i, j
    cdef uint64_t key
    cdef uint32_t threshold = _drop_threshold(p)
    mask = np.empty((rows.shape[0], n_units), dtype=bool)
    cdef unsigned char[:, ::1] m = mask.view(np.uint8)
    for i in range(rows.shape[0]):
        key = _row_key(seed, rows[i], layer)
        for j in range(n_units):
            m[i, j] = fastbp_unit_bits(<uint32_t> key, <uint32_t> (key >> 32), j) >= threshold
    return mask


def elementwise_math(str function, x):
    """fastbp's own exp, expm1, log1p (for 0 <= x <= 1), tanh or logistic of a
    1-D float32 or float64 array, as the activation loops compute them under
    the current instruction set: a new array. For tests and inspection."""
    cdef int which
    if function == "exp":
        which = FASTBP_MATH_EXP
    elif function == "expm1":
        which = FASTBP_MATH_EXPM1
    elif function == "log1p":
        which = FASTBP_MATH_LOG1P
    elif function == "tanh":
        which = FASTBP_MATH_TANH
    elif function == "logistic":
        which = FASTBP_MATH_LOGISTIC
    else:
        raise ValueError("function must be 'exp', 'expm1', 'log1p', 'tanh' or "
                         "'logistic', got %r" % (function,))
    out = np.array(x, copy=True, order="C")
    if out.ndim != 1 or out.dtype not in (np.float32, np.float64):
        raise ValueError("x must be a 1-D float32 or float64 array, got %s %r"
                         % (out.dtype, out.shape))
    if which == FASTBP_MATH_LOG1P and ((out < 0) | (out > 1)).any():
        raise ValueError("log1p is defined here for 0 <= x <= 1 (and NaN) only")
    cdef float[::1] xs
    cdef double[::1] xd
    if out.dtype == np.float32:
        xs = out
        if xs.shape[0]:
            with nogil:
                fastbp_k.math_s(&xs[0], xs.shape[0], which)
    else:
        xd = out
        if xd.shape[0]:
            with nogil:
                fastbp_k.math_d(&xd[0], xd.shape[0], which)
    return out


# --------------------------------------------------------------------------
# Losses, each beside its output delta
# --------------------------------------------------------------------------

cdef inline double _xlogy(double x, double y) noexcept nogil:
    """x log(y), and 0 for x = 0 unless y is NaN (scipy.special.xlogy)."""
    if x == 0 and y == y:
        return 0.0
    return x * log(y)


cdef inline floating _clip_probability(floating p) noexcept nogil:
    """p clipped to [eps, 1 - eps] in its own dtype, as the log losses of
    scikit-learn clip it; NaN stays NaN."""
    cdef floating eps
    if floating is float:
        eps = FLT_EPSILON
    else:
        eps = DBL_EPSILON
    if p < eps:
        return eps
    if p > 1 - eps:
        return 1 - eps
    return p


cdef double _loss_and_delta(const floating* pred, const floating* y,
                            const floating* sample_weight, const Block* block,
                            const Net* net, floating* delta_out) noexcept nogil:
    """Return sum_i w_i loss_i and write delta = w_i * dloss/dz.

    With d = pred - y, per output j (summed over outputs):
    squared error:   loss = d^2 / 2;                   dloss/dpred = d
    absolute error:  loss = |d|;                       dloss/dpred = sign(d)
    huber (delta h): loss = d^2 / 2 if |d| <= h, else h (|d| - h / 2);
                     dloss/dpred = clip(d, -h, h)
    quantile q:      loss = q max(-d, 0) + (1 - q) max(d, 0) (pinball);
                     dloss/dpred = 1 - q if d > 0, -q if d < 0, 0 at 0
    poisson:         loss = y log(y / pred) - y + pred, pred = exp(z);
    log loss:        loss = -y log(p), pred = softmax(z);
    binary log loss: loss = -y log(p) - (1 - y) log(1 - p), pred = logistic(z);
                     log loss with one output is binary log loss, as in
                     scikit-learn.
    Squared error with an identity output, Poisson with exp and the log losses
    with theirs are canonical links: dloss/dz = pred - y. Any other pair
    multiplies dloss/dpred by out'(z), written through pred. For both log
    losses p is pred clipped to [eps, 1 - eps] in pred's dtype; the delta uses
    pred itself (the gradient of the unclipped loss, as scikit-learn has it).
    pred, delta_out: (n_rows, n_outputs). Row i of the block is row r =
    _row(block, i) of y and sample_weight; no weights is w = 1.
    """
    cdef Py_ssize_t i, j, r, n_rows = block.n_rows, n_outputs = net.units[net.n_layers]
    cdef int loss = net.loss, out = net.out_activation
    cdef double total = 0.0, row_total, d, t, h = net.loss_param
    cdef floating w, p
    cdef floating fh = <floating> net.loss_param
    cdef const floating* y_row
    cdef floating* d_row
    cdef bint binary = loss == BINARY_LOG_LOSS or (loss == LOG_LOSS and n_outputs == 1)
    cdef bint squared = loss == SQUARED_ERROR
    cdef bint canonical = ((squared and out == IDENTITY) or loss == POISSON
                           or loss == LOG_LOSS or loss == BINARY_LOG_LOSS)
    for i in range(n_rows):
        r = _row(block, i)
        y_row = y + r * n_outputs
        d_row = delta_out + i * n_outputs
        row_total = 0.0
        for j in range(n_outputs):
            d_row[j] = pred[i * n_outputs + j] - y_row[j]
            if loss == POISSON:
                t = y_row[j]
                d = pred[i * n_outputs + j]
                if t > 0:
                    row_total += t * log(t / d) - t + d
                else:
                    row_total += d
            elif binary:
                p = _clip_probability(pred[i * n_outputs + j])
                row_total -= (_xlogy(y_row[j], p)
                              + _xlogy(<floating> (1 - y_row[j]), <floating> (1 - p)))
            elif loss == LOG_LOSS:
                row_total -= _xlogy(y_row[j], _clip_probability(pred[i * n_outputs + j]))
            elif loss == ABSOLUTE_ERROR:
                d = d_row[j]
                row_total += fabs(d)
                d_row[j] = 1 if d > 0 else (-1 if d < 0 else 0)
            elif loss == HUBER:
                d = d_row[j]
                if fabs(d) <= h:
                    row_total += 0.5 * d * d
                else:
                    row_total += h * (fabs(d) - 0.5 * h)
                    d_row[j] = fh if d > 0 else -fh
            elif loss == QUANTILE:
                d = d_row[j]
                if d > 0:
                    row_total += (1 - h) * d
                    d_row[j] = <floating> (1 - h)
                elif d < 0:
                    row_total -= h * d
                    d_row[j] = <floating> (-h)
                else:
                    d_row[j] = 0
            else:
                d = d_row[j]
                row_total += d * d
        if squared:
            row_total *= 0.5
        if not canonical:
            _activation_derivative(d_row, pred + i * n_outputs, <floating*> NULL,
                                   n_outputs, out, 0.0)
        if sample_weight != NULL:
            w = sample_weight[r]
            row_total *= w
            for j in range(n_outputs):
                d_row[j] *= w
        total += row_total
    return total


# --------------------------------------------------------------------------
# Input rows: dense row-major, or CSR
# --------------------------------------------------------------------------

cdef const floating* _dense_block(const Block* block,
                                  floating* gathered) noexcept nogil:
    """The block's rows as a contiguous matrix: a slice of X or a gather into
    gathered (n_rows, n_features); NULL for CSR input, whose first layer is
    computed straight from the sparse rows."""
    cdef Py_ssize_t i, nf = block.x.n_features
    cdef const floating* dense = <const floating*> block.x.dense
    if dense == NULL:
        return NULL
    if block.row_idx == NULL:
        return dense + block.start * nf
    for i in range(block.n_rows):
        memcpy(gathered + i * nf, dense + block.row_idx[i] * nf, nf * sizeof(floating))
    return gathered


cdef void _sparse_dot(const Block* block, const floating* coef, Py_ssize_t n_out,
                      floating* z_out) noexcept nogil:
    """z_out = X[block] @ coef for CSR X. coef: (n_features, n_out)."""
    cdef Py_ssize_t i, p, j, r, n_rows = block.n_rows
    cdef const Input* x = block.x
    cdef const floating* data = <const floating*> x.data
    cdef const floating* w_row
    cdef floating* z_row
    cdef floating v
    memset(z_out, 0, n_rows * n_out * sizeof(floating))
    for i in range(n_rows):
        r = _row(block, i)
        z_row = z_out + i * n_out
        for p in range(x.indptr[r], x.indptr[r + 1]):
            v = data[p]
            w_row = coef + x.indices[p] * n_out
            for j in range(n_out):
                z_row[j] += v * w_row[j]


cdef void _sparse_grad(const Block* block, const floating* delta, Py_ssize_t n_out,
                       floating* grad, bint accumulate) noexcept nogil:
    """grad (+)= X[block].T @ delta for CSR X. grad: (n_features, n_out)."""
    cdef Py_ssize_t i, p, j, r, n_rows = block.n_rows
    cdef const Input* x = block.x
    cdef const floating* data = <const floating*> x.data
    cdef const floating* d_row
    cdef floating* g_row
    cdef floating v
    if not accumulate:
        memset(grad, 0, x.n_features * n_out * sizeof(floating))
    for i in range(n_rows):
        r = _row(block, i)
        d_row = delta + i * n_out
        for p in range(x.indptr[r], x.indptr[r + 1]):
            v = data[p]
            g_row = grad + x.indices[p] * n_out
            for j in range(n_out):
                g_row[j] += v * d_row[j]


cdef class Rows:
    """The input matrix X as the kernels read it: dense C-contiguous, or CSR.

    ``Rows(X)`` for a dense array; ``Rows.csr(data, indices, indptr, n_features)``
    for CSR parts. The constructor checks everything the kernels rely on, so no
    row or column index can point outside the arrays. A ``Rows`` is initialised
    once and never changes: a call in progress relies on it.
    """

    cdef Input c
    cdef readonly bint sparse
    cdef readonly bint single
    cdef object keep

    def __init__(self, X):
        if self.keep is not None:
            raise TypeError("Rows are initialised once")
        if isinstance(X, Rows):
            self.c = (<Rows> X).c
            self.sparse = (<Rows> X).sparse
            self.single = (<Rows> X).single
            self.keep = (<Rows> X).keep
            return
        X = np.asanyarray(X)
        if X.ndim != 2 or X.dtype not in (np.float32, np.float64):
            raise TypeError("X must be a 2-D float32 or float64 array")
        if not X.flags.c_contiguous:
            raise ValueError("X must be C-contiguous")
        self.keep = X
        self.sparse = False
        self.single = X.dtype == np.float32
        self.c.n_rows = X.shape[0]
        self.c.n_features = X.shape[1]
        self.c.dense = _address(X) if X.size else NULL
        self.c.data = NULL
        self.c.indices = NULL
        self.c.indptr = NULL

    @staticmethod
    def csr(data, indices, indptr, Py_ssize_t n_features):
        """Rows over CSR parts.

        ``indices`` and ``indptr`` are always copied (as intp) into arrays the
        ``Rows`` owns, and the copies are what is checked and what the kernels
        read: nothing the caller does to its arrays afterwards, or from another
        thread meanwhile, can send a kernel outside X. ``data`` is read in place
        (made C-contiguous if it is not): its values only ever scale rows, so a
        change shows in the results but cannot reach outside any array, and not
        copying it keeps the memory of a large sparse X single.
        """
        cdef Rows self = Rows.__new__(Rows)
        data = np.ascontiguousarray(data)
        indices = np.array(indices, dtype=np.intp, order="C", copy=True)
        indptr = np.array(indptr, dtype=np.intp, order="C", copy=True)
        if data.ndim != 1 or data.dtype not in (np.float32, np.float64):
            raise TypeError("CSR data must be a 1-D float32 or float64 array")
        if (indices.ndim != 1 or indptr.ndim != 1 or indptr.shape[0] < 1
                or indices.shape[0] != data.shape[0] or indptr[0] != 0
                or indptr[indptr.shape[0] - 1] != data.shape[0] or np.any(np.diff(indptr) < 0)):
            raise ValueError("inconsistent CSR structure")
        if n_features < 1 or (indices.shape[0]
                              and (indices.min() < 0 or indices.max() >= n_features)):
            raise ValueError("CSR column indices out of range")
        self.keep = (data, indices, indptr)
        self.sparse = True
        self.single = data.dtype == np.float32
        self.c.dense = NULL
        self.c.data = _address(data) if data.shape[0] else NULL
        self.c.indices = <const Py_ssize_t*> _address(indices) if indices.shape[0] else NULL
        self.c.indptr = <const Py_ssize_t*> _address(indptr)
        self.c.n_rows = indptr.shape[0] - 1
        self.c.n_features = n_features
        return self

    @property
    def shape(self):
        return (self.c.n_rows, self.c.n_features)

    @property
    def dtype(self):
        return np.dtype(np.float32 if self.single else np.float64)

    @property
    def array(self):
        """The dense array the rows read (None for CSR)."""
        return None if self.sparse else self.keep


cdef Rows _as_rows(object X):
    """X itself if it is a ``Rows``, else a ``Rows`` over the dense array X."""
    return X if isinstance(X, Rows) else Rows(X)


# --------------------------------------------------------------------------
# The network: forward and backward over one block of rows
# --------------------------------------------------------------------------

cdef void _forward(const Net* net, const Block* block,
                   floating** act_out, floating** pre_out) noexcept nogil:
    """act_out[l + 1] = act_l(act_out[l] @ coef[l] + intercept[l]), act_out[0] = a0.

    a0 is block.a0, or the CSR rows of the block when that is NULL.
    act_out[l]: (n_rows, units[l]); act_out[0] is not read. pre_out (NULL when
    predicting) holds per layer a buffer for z, or NULL where act' needs none.
    Hidden outputs with a drop rate are dropped (net.dropout, training only).
    """
    cdef Py_ssize_t l, n_layers = net.n_layers, n_rows = block.n_rows
    cdef const Py_ssize_t* units = net.units
    cdef floating** coef = <floating**> net.coef
    cdef floating** intercept = <floating**> net.intercept
    cdef const floating* a0 = <const floating*> block.a0
    cdef const floating* a_prev = a0
    cdef floating* z
    for l in range(n_layers):
        z = act_out[l + 1]
        if l == 0 and a0 == NULL:
            _sparse_dot(block, coef[0], units[1], z)
        else:
            _gemm(False, False, <int> n_rows, <int> units[l + 1], <int> units[l],
                  <floating> 1, a_prev, <int> units[l], coef[l], <int> units[l + 1],
                  <floating> 0, z, <int> units[l + 1])
        if l + 1 == n_layers and net.out_groups != NULL:
            _grouped_softmax(z, intercept[l], n_rows, units[l + 1], net.out_groups,
                             net.n_out_groups)
        else:
            _bias_activate(z, intercept[l], n_rows, units[l + 1], net.activations[l],
                           net.act_param, pre_out[l] if pre_out != NULL else NULL)
        if net.dropout != NULL and l + 1 < n_layers and net.dropout[l + 1] > 0:
            _dropout(net, block, l + 1, z)
        a_prev = z


cdef void _backward(const Net* net, const Block* block, floating** act,
                    floating** pre, floating** delta, floating** coef_grad,
                    floating** intercept_grad, floating* wt,
                    bint accumulate) noexcept nogil:
    """Backpropagate delta[n_layers - 1] (the output delta) to raw gradients.

    coef_grad[l] (+)= a_prev.T @ delta[l]; intercept_grad[l] (+)= sum_rows delta[l];
    delta[l - 1] = (delta[l] @ coef[l].T) * act'(act[l]) (times the dropout
    mask and scale where the forward pass dropped; act[l] is then rescaled in
    place, after its last use as an input). The first layer's input is
    block.a0, or the CSR rows of the block when that is NULL. pre[l] is layer
    l's z where act' needs it. wt is scratch room for net.wt_size values:
    the backward product of every layer whose weights fit there runs on their
    transposed copy (the Trainer makes room for exactly those layers).
    """
    cdef Py_ssize_t l, n_in, n_out, n_layers = net.n_layers
    cdef Py_ssize_t n_rows = block.n_rows
    cdef const Py_ssize_t* units = net.units
    cdef floating** coef = <floating**> net.coef
    cdef const floating* a0 = <const floating*> block.a0
    cdef const floating* a_prev
    cdef floating* d
    cdef floating* gb
    for l in range(n_layers - 1, -1, -1):
        n_in = units[l]
        n_out = units[l + 1]
        d = delta[l]
        if l == 0 and a0 == NULL:
            _sparse_grad(block, d, n_out, coef_grad[0], accumulate)
        else:
            a_prev = a0 if l == 0 else act[l]
            _gemm(True, False, <int> n_in, <int> n_out, <int> n_rows, <floating> 1,
                  a_prev, <int> n_in, d, <int> n_out,
                  <floating> (1 if accumulate else 0), coef_grad[l], <int> n_out)
        gb = intercept_grad[l]
        if floating is float:
            fastbp_k.colsum_s(gb, d, n_rows, n_out, accumulate)
        else:
            fastbp_k.colsum_d(gb, d, n_rows, n_out, accumulate)
        if l > 0:
            # delta must travel back through the weights before they change.
            if n_out == 1:
                _outer(d, coef[l], n_rows, n_in, delta[l - 1])
            elif n_in * n_out <= net.wt_size:
                if floating is float:
                    fastbp_k.transpose_s(coef[l], n_in, n_out, wt)
                else:
                    fastbp_k.transpose_d(coef[l], n_in, n_out, wt)
                _gemm(False, False, <int> n_rows, <int> n_in, <int> n_out, <floating> 1,
                      d, <int> n_out, wt, <int> n_in, <floating> 0,
                      delta[l - 1], <int> n_in)
            else:
                _gemm(False, True, <int> n_rows, <int> n_in, <int> n_out, <floating> 1,
                      d, <int> n_out, coef[l], <int> n_out, <floating> 0,
                      delta[l - 1], <int> n_in)
            if net.dropout != NULL and net.dropout[l] > 0:
                _dropout_backward(net, block, l, delta[l - 1], act[l])
            _activation_derivative(delta[l - 1], act[l], pre[l - 1], n_rows * n_in,
                                   net.activations[l - 1], net.act_param)


cdef inline void _outer(const floating* d, const floating* w, Py_ssize_t n_rows,
                        Py_ssize_t n_in, floating* out) noexcept nogil:
    """out[i, j] = d[i] * w[j]: ``d @ W.T`` for a single output unit (W of shape
    (n_in, 1)), exactly as GEMM gives it (one product per entry, no sum), without
    a BLAS call whose transposed small case is slow. The loop is _simd.h's."""
    if floating is float:
        fastbp_k.outer_s(d, w, n_rows, n_in, out)
    else:
        fastbp_k.outer_d(d, w, n_rows, n_in, out)


# --------------------------------------------------------------------------
# Optimizer updates (one parameter array at a time)
# --------------------------------------------------------------------------

cdef void _sgd_update(floating* param, const floating* grad, floating* velocity,
                      Py_ssize_t size, double alpha, const Step* step) noexcept nogil:
    """g = (grad + alpha*param) / scale; v = mu*v - lr*g; param += v (or nesterov).

    All of (size,); scale, lr, mu and nesterov come from step. alpha is the
    step's for weights and 0 for intercepts. The loop is _simd.h's.
    """
    cdef fastbp_step s = _simd_step(step, alpha)
    if floating is float:
        fastbp_k.sgd_s(param, grad, velocity, size, &s)
    else:
        fastbp_k.sgd_d(param, grad, velocity, size, &s)


cdef void _adam_update(floating* param, const floating* grad, floating* m,
                       floating* v, Py_ssize_t size, double alpha, double decay,
                       const Step* step) noexcept nogil:
    """g = (grad + alpha*param) / scale; Adam moments; param -= lr m / (sqrt(v)+eps)
    + decay * param (AdamW's decoupled decay, of the parameter before the step).

    All of (size,); step.lr is the bias-corrected step of this update. alpha
    and decay are the step's for weights and 0 for intercepts. The loop is
    _simd.h's, at the instruction set chosen at import.
    """
    cdef fastbp_step s = _simd_step(step, alpha)
    s.decay = decay
    if floating is float:
        fastbp_k.adam_s(param, grad, m, v, size, &s)
    else:
        fastbp_k.adam_d(param, grad, m, v, size, &s)


cdef double _sum_squares(const floating* x, Py_ssize_t size) noexcept nogil:
    """sum(x**2) in double, with four running sums in a fixed order (_simd.h)."""
    if floating is float:
        return fastbp_k.sumsq_s(x, size)
    else:
        return fastbp_k.sumsq_d(x, size)


# --------------------------------------------------------------------------
# Trainer: pointer tables over the estimator's arrays, and the workspaces
# --------------------------------------------------------------------------

cdef void* _address(object array) except NULL:
    """Address of the first element of a validated C-contiguous array."""
    cdef Py_ssize_t address = array.__array_interface__["data"][0]
    return <void*> address


cdef class Trainer:
    """Pointer tables and per-fit workspaces for one network.

    Parameters
    ----------
    coefs, intercepts : lists of C-contiguous, writable arrays of one dtype
        The estimator's parameters, updated in place.
    state : list of arrays
        Optimizer state, in the order ``coefs + intercepts`` per moment:
        SGD velocities (one moment), or Adam first then second moments.
    max_batch : int
        The largest number of rows a block will hold.
    activations : list of int, default=None
        Each layer's activation, the output layer's last; None: ``activation``
        for every hidden layer and ``out_activation`` for the output.
    act_param : float, default=0.01
        leaky_relu's slope (>= 0).
    loss_param : float, default=0.0
        huber's delta, or the quantile of the quantile loss.
    dropout : list of float, default=None
        Drop rate in [0, 1) of each hidden layer's output (None: no dropout).
        The mask of an epoch comes from ``set_dropout_seed``.
    weight_decay : float, default=0.0
        AdamW's decoupled decay: each step multiplies the weights (not the
        intercepts) by ``1 - learning_rate * weight_decay``.
    gradient_clip : float, default=0.0
        If > 0, each minibatch's gradient (L2 term included) is scaled down
        to this global L2 norm when it is longer.
    dropout_seed : int, default=0
        Seeds the dropout masks: epoch e of this Trainer draws them with the
        seed ``mix(dropout_seed + e)``.
    n_threads : int, default=1
        Threads that share each minibatch, at most ``MAX_THREADS``: thread t runs the forward and
        backward pass of rows ``[t*nb/T, (t+1)*nb/T)`` of the batch with its own
        workspace, and the gradients are summed in thread order, so results are
        bitwise reproducible for a given ``n_threads``. BLAS should run on one
        thread meanwhile.
    """

    cdef readonly Py_ssize_t n_layers
    cdef readonly Py_ssize_t max_batch
    cdef readonly Py_ssize_t n_threads
    cdef readonly Py_ssize_t chunk     # rows of a batch one thread works on
    cdef readonly bint single
    cdef readonly int activation, out_activation, loss, solver
    cdef readonly bint poll_signals
    cdef double alpha, momentum, beta_1, beta_2, epsilon
    cdef double weight_decay, gradient_clip
    cdef uint64_t dropout_seed, dropout_epochs
    cdef bint nesterov
    cdef Py_ssize_t* units
    cdef int* acts             # n_layers
    cdef double* drop          # n_layers + 1, or NULL: no dropout
    cdef void** coef
    cdef void** intercept
    cdef void** moment_1       # 2 * n_layers: coefs then intercepts
    cdef void** moment_2
    # Per thread t, tables at offsets t * (n_layers + 1) for act and
    # t * n_layers for the others; thread 0's gradients receive the sum.
    cdef void** act            # act[0] is the row-gather buffer
    cdef void** delta
    cdef void** coef_grad
    cdef void** intercept_grad
    cdef void** pre            # T * n_layers: z where act' needs it, else NULL
    cdef void** wt             # T: room for the W.T of _backward's copies
    cdef double* part_loss     # n_threads
    cdef Net net
    cdef void* work
    cdef void* saved           # a copy of parameters and moments (snapshot)
    cdef Py_ssize_t n_params
    cdef list keep

    def __cinit__(self):
        self.units = NULL
        self.acts = NULL
        self.drop = NULL
        self.coef = NULL
        self.act = NULL
        self.part_loss = NULL
        self.work = NULL
        self.saved = NULL

    def __init__(self, list coefs, list intercepts, list state,
                 Py_ssize_t max_batch, int activation, int out_activation,
                 int loss, int solver, double alpha=0.0, double momentum=0.9,
                 bint nesterov=True, double beta_1=0.9, double beta_2=0.999,
                 double epsilon=1e-8, bint dense_input=True, Py_ssize_t n_threads=1,
                 object out_groups=None, object activations=None,
                 double act_param=0.01, double loss_param=0.0, object dropout=None,
                 double weight_decay=0.0, double gradient_clip=0.0,
                 uint64_t dropout_seed=0):
        cdef Py_ssize_t L = len(coefs), l, t, total, per_thread, itemsize, offset, wt_size
        cdef Py_ssize_t T = n_threads
        if self.units != NULL:
            # Its tables may be in use by a call that a signal handler interrupts.
            raise TypeError("a Trainer is initialised once")
        if L < 1 or len(intercepts) != L or max_batch < 1:
            raise ValueError("Trainer needs at least one layer and max_batch >= 1")
        if not 1 <= n_threads <= MAX_THREADS:
            raise ValueError("n_threads must be in [1, %d] (MAX_THREADS)" % MAX_THREADS)
        dtype = np.dtype(coefs[0].dtype)
        if dtype != np.float32 and dtype != np.float64:
            raise TypeError("Trainer works on float32 or float64 parameters")
        if solver != SGD and solver != ADAM and solver != ADAMW:
            raise ValueError("unknown solver %r" % solver)
        n_moments = 1 if solver == SGD else 2
        if activations is None:
            activations = [activation] * (L - 1) + [out_activation]
        activations = [int(a) for a in activations]
        if len(activations) != L or not all(IDENTITY <= a <= SIN for a in activations):
            raise ValueError("activations must give one known activation per layer")
        if dropout is not None:
            dropout = [float(p) for p in dropout]
            if len(dropout) != L - 1 or not all(0.0 <= p < 1.0 for p in dropout):
                raise ValueError("dropout must give one rate in [0, 1) per hidden layer")
        if not (act_param >= 0 and weight_decay >= 0 and gradient_clip >= 0):
            raise ValueError("act_param, weight_decay and gradient_clip must be >= 0")
        if len(state) not in (0, 2 * L * n_moments):
            raise ValueError("optimizer state does not match the layers")
        self.keep = [list(coefs), list(intercepts), list(state)]
        self.n_layers = L
        self.max_batch = max_batch
        self.n_threads = T
        self.chunk = (max_batch + T - 1) // T
        self.single = dtype == np.float32
        self.activation = activation
        self.out_activation = out_activation
        self.loss = loss
        self.solver = solver
        self.alpha = alpha
        self.momentum = momentum
        self.nesterov = nesterov
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.weight_decay = weight_decay if solver == ADAMW else 0.0
        self.gradient_clip = gradient_clip
        self.dropout_seed = dropout_seed
        self.dropout_epochs = 0
        # Signal handlers run in the main thread only; elsewhere polling is moot.
        self.poll_signals = threading.current_thread() is threading.main_thread()

        self.units = <Py_ssize_t*> malloc((L + 1) * sizeof(Py_ssize_t))
        # Two tables hold all pointer tables, so two frees release them.
        self.coef = <void**> malloc(6 * L * sizeof(void*))
        self.act = <void**> malloc(T * (5 * L + 2) * sizeof(void*))
        self.part_loss = <double*> malloc(T * sizeof(double))
        self.acts = <int*> malloc(L * sizeof(int))
        if dropout is not None:
            self.drop = <double*> malloc((L + 1) * sizeof(double))
        if (self.units == NULL or self.coef == NULL or self.act == NULL
                or self.part_loss == NULL or self.acts == NULL
                or (dropout is not None and self.drop == NULL)):
            raise MemoryError()
        memset(self.coef, 0, 6 * L * sizeof(void*))
        memset(self.act, 0, T * (5 * L + 2) * sizeof(void*))
        for l in range(L):
            self.acts[l] = activations[l]
        if dropout is not None:
            self.drop[0] = 0.0
            self.drop[L] = 0.0
            for l in range(L - 1):
                self.drop[l + 1] = dropout[l]
        self.intercept = self.coef + L
        self.moment_1 = self.coef + 2 * L
        self.moment_2 = self.coef + 4 * L
        self.delta = self.act + T * (L + 1)
        self.coef_grad = self.delta + T * L
        self.intercept_grad = self.coef_grad + T * L
        self.pre = self.intercept_grad + T * L
        self.wt = self.pre + T * L

        for l in range(L):
            c = coefs[l]
            b = intercepts[l]
            if (c.ndim != 2 or b.ndim != 1 or c.dtype != dtype or b.dtype != dtype
                    or not c.flags.c_contiguous or not c.flags.writeable
                    or not b.flags.c_contiguous or not b.flags.writeable
                    or b.shape[0] != c.shape[1]
                    or (l > 0 and c.shape[0] != coefs[l - 1].shape[1])):
                raise ValueError("layer %d: parameters must be writable C-contiguous "
                                 "arrays of one dtype with chained shapes" % l)
            self.units[l] = c.shape[0]
            self.units[l + 1] = c.shape[1]
            self.coef[l] = _address(c)
            self.intercept[l] = _address(b)
        params = list(coefs) + list(intercepts)
        for l in range(len(state)):
            s = state[l]
            p = params[l % (2 * L)]
            if (s.shape != p.shape or s.dtype != dtype or not s.flags.c_contiguous
                    or not s.flags.writeable):
                raise ValueError("optimizer state %d does not match its parameter" % l)
            if l < 2 * L:
                self.moment_1[l] = _address(s)
            else:
                self.moment_2[l - 2 * L] = _address(s)

        itemsize = dtype.itemsize
        # The row-gather buffer serves dense input only; CSR rows are read in place.
        per_thread = self.chunk * self.units[0] if dense_input else 0
        for l in range(L):
            per_thread += 2 * self.chunk * self.units[l + 1]
            per_thread += self.units[l] * self.units[l + 1] + self.units[l + 1]
            if l + 1 < L and needs_pre(self.acts[l]):
                per_thread += self.chunk * self.units[l + 1]
        # Room for the transposed weights of the layers whose backward product
        # (for a thread's full share of a batch) is within _nn_backward_limit:
        # whether n_in * n_out fits the room then tells _backward which layers
        # those are, as chunk is the same for all. None for large layers.
        wt_size = 0
        for l in range(1, L):
            if (self.units[l + 1] > 1 and self.chunk * self.units[l] * self.units[l + 1]
                    <= _nn_backward_limit):
                wt_size = max(wt_size, self.units[l] * self.units[l + 1])
        per_thread += wt_size
        total = T * per_thread
        self.work = malloc(total * itemsize)
        if self.work == NULL:
            raise MemoryError("cannot allocate %d bytes of workspace" % (total * itemsize))
        offset = 0
        for t in range(T):
            if dense_input:
                self.act[t * (L + 1)] = <char*> self.work + offset
                offset += self.chunk * self.units[0] * itemsize
            for l in range(L):
                self.act[t * (L + 1) + l + 1] = <char*> self.work + offset
                offset += self.chunk * self.units[l + 1] * itemsize
                self.delta[t * L + l] = <char*> self.work + offset
                offset += self.chunk * self.units[l + 1] * itemsize
                self.coef_grad[t * L + l] = <char*> self.work + offset
                offset += self.units[l] * self.units[l + 1] * itemsize
                self.intercept_grad[t * L + l] = <char*> self.work + offset
                offset += self.units[l + 1] * itemsize
                if l + 1 < L and needs_pre(self.acts[l]):
                    self.pre[t * L + l] = <char*> self.work + offset
                    offset += self.chunk * self.units[l + 1] * itemsize
            self.wt[t] = <char*> self.work + offset
            offset += wt_size * itemsize
        self.net.n_layers = L
        self.net.n_threads = T
        self.net.units = self.units
        self.net.coef = self.coef
        self.net.intercept = self.intercept
        self.net.act = self.act
        self.net.delta = self.delta
        self.net.coef_grad = self.coef_grad
        self.net.intercept_grad = self.intercept_grad
        self.net.moment_1 = self.moment_1
        self.net.moment_2 = self.moment_2
        self.net.pre = self.pre
        self.net.wt = self.wt
        self.net.wt_size = wt_size
        self.net.activations = self.acts
        self.net.dropout = self.drop
        self.net.seed = 0
        self.net.act_param = act_param
        self.net.loss_param = loss_param
        self.net.activation = activation
        self.net.out_activation = out_activation
        self.net.loss = loss
        groups = _group_table(out_groups, out_activation, self.units[L])
        if groups is not None:
            self.keep.append(groups)
            self.net.out_groups = <const Py_ssize_t*> _address(groups)
            self.net.n_out_groups = groups.shape[0]
        self.n_params = 0
        for l in range(L):
            self.n_params += self.units[l] * self.units[l + 1] + self.units[l + 1]
        # Room for the parameters and each moment (moments exist only if given).
        self.saved = malloc(self.n_params * (1 + len(state) // (2 * L)) * itemsize)
        if self.saved == NULL:
            raise MemoryError()

    def set_dropout_seed(self, uint64_t seed):
        """The seed of the dropout masks of the next epoch (or evaluation)."""
        self.net.seed = seed

    def snapshot(self):
        """Copy the parameters and optimizer moments aside (one memcpy each)."""
        with nogil:
            self._copy(True)

    def restore(self):
        """Put back what the last ``snapshot`` copied."""
        with nogil:
            self._copy(False)

    cdef void _copy(self, bint save) noexcept nogil:
        """Parameters, then each moment, to (save) or from the snapshot buffer."""
        cdef Py_ssize_t L = self.n_layers, l, k, size, offset = 0
        cdef Py_ssize_t itemsize = 4 if self.single else 8
        cdef char* saved = <char*> self.saved
        cdef void* array
        cdef Py_ssize_t n_moments = 0
        if self.moment_1[0] != NULL:
            n_moments = 2 if self.moment_2[0] != NULL else 1
        for k in range(1 + n_moments):
            for l in range(2 * L):
                if l < L:
                    size = self.units[l] * self.units[l + 1]
                else:
                    size = self.units[l - L + 1]
                if k == 0:
                    array = self.coef[l] if l < L else self.intercept[l - L]
                elif k == 1:
                    array = self.moment_1[l]
                else:
                    array = self.moment_2[l]
                if save:
                    memcpy(saved + offset, array, size * itemsize)
                else:
                    memcpy(array, saved + offset, size * itemsize)
                offset += size * itemsize

    def __dealloc__(self):
        free(self.saved)
        free(self.acts)
        free(self.drop)
        free(self.units)
        free(self.coef)
        free(self.act)
        free(self.part_loss)
        free(self.work)

    def __reduce__(self):
        raise TypeError("a Trainer lives for one fit and is never pickled")

    @property
    def layer_units(self):
        return [self.units[l] for l in range(self.n_layers + 1)]


cdef double _params_sum_squares(Trainer tr, floating* dtype_marker,
                                double* intercept_sq) noexcept nogil:
    """sum(W**2) over the weights; intercept_sq receives sum(b**2)."""
    cdef Py_ssize_t l
    cdef double s = 0.0, si = 0.0
    for l in range(tr.n_layers):
        s += _sum_squares(<floating*> tr.coef[l], tr.units[l] * tr.units[l + 1])
        si += _sum_squares(<floating*> tr.intercept[l], tr.units[l + 1])
    intercept_sq[0] = si
    return s


# --------------------------------------------------------------------------
# Signals: Ctrl-C inside a long epoch
# --------------------------------------------------------------------------

# The time of the last poll, and whether this call polls at all (only the main
# thread runs signal handlers; elsewhere a poll would cost a GIL round trip for
# nothing).
cdef struct Poll:
    bint enabled
    double last


cdef int _check_signals() except -1 with gil:
    """Run Python's signal handlers; an exception one raises (Ctrl-C) propagates."""
    PyErr_CheckSignals()
    return 0


cdef inline double _now() noexcept nogil:
    """Seconds on the monotonic clock."""
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + 1e-9 * ts.tv_nsec


cdef inline Poll _start_polling(bint enabled) noexcept nogil:
    cdef Poll poll
    poll.enabled = enabled
    poll.last = _now() if enabled else 0.0
    return poll


cdef inline int _poll(Poll* poll) except -1 nogil:
    """Check for signals if 50 ms have passed since the last check: a check costs
    a GIL round trip, so it happens a few times a second."""
    cdef double now
    if poll.enabled:
        now = _now()
        if now - poll.last > 0.05:
            poll.last = now
            _check_signals()
    return 0


cdef bint _in_main_thread():
    return threading.get_ident() == _MAIN_THREAD_ID


_MAIN_THREAD_ID = threading.main_thread().ident


# --------------------------------------------------------------------------
# One epoch: each batch shared by the threads, then one update
# --------------------------------------------------------------------------

cdef double _share_gradients(const Net* net, Py_ssize_t t, const Block* batch,
                             const floating* Y,
                             const floating* sample_weight) noexcept nogil:
    """Thread t's share of a batch: rows [t*nb/T, (t+1)*nb/T) of it.

    Forward, output delta and backward into thread t's own buffers; returns the
    share's summed (weighted) loss. An empty share leaves zero gradients.
    """
    cdef Py_ssize_t L = net.n_layers, T = net.n_threads, l, nb = batch.n_rows
    cdef Py_ssize_t lo = t * nb // T, hi = (t + 1) * nb // T, m = hi - lo
    cdef floating** act = <floating**> net.act + t * (L + 1)
    cdef floating** delta = <floating**> net.delta + t * L
    cdef floating** cg = <floating**> net.coef_grad + t * L
    cdef floating** ig = <floating**> net.intercept_grad + t * L
    cdef floating** pre = <floating**> net.pre + t * L
    cdef Block share
    cdef double loss
    if m == 0:
        for l in range(L):
            memset(cg[l], 0, net.units[l] * net.units[l + 1] * sizeof(floating))
            memset(ig[l], 0, net.units[l + 1] * sizeof(floating))
        return 0.0
    share.x = batch.x
    share.row_idx = batch.row_idx + lo if batch.row_idx != NULL else NULL
    share.start = batch.start + lo
    share.n_rows = m
    share.a0 = _dense_block(&share, act[0])
    _forward(net, &share, act, pre)
    loss = _loss_and_delta(act[L], Y, sample_weight, &share, net, delta[L - 1])
    _backward(net, &share, act, pre, delta, cg, ig, <floating*> net.wt[t], False)
    return loss


cdef double _batch_gradients(Trainer tr, const Block* batch, const floating* Y,
                             const floating* sample_weight) noexcept nogil:
    """Raw gradients of one batch, one share per thread; returns its loss.

    Each thread's gradients stay in its own buffers: ``_update_slice`` adds
    them up, in thread order, as it applies the step. The losses are added in
    thread order too, so nothing depends on timing.
    """
    cdef const Net* net = &tr.net
    cdef Py_ssize_t T = tr.n_threads, t
    cdef double* part = tr.part_loss
    cdef double loss
    if T == 1:
        return _share_gradients(net, 0, batch, Y, sample_weight)
    for t in prange(T, num_threads=T, schedule="static", chunksize=1):
        part[t] = _share_gradients(net, t, batch, Y, sample_weight)
    loss = part[0]
    for t in range(1, T):
        loss += part[t]
    return loss


cdef double _gradient_norm(const Net* net, double alpha, double scale,
                           floating* dtype_marker) noexcept nogil:
    """The global L2 norm of the batch's step gradient (grad + alpha W) / scale,
    the threads' gradients added in the order ``_update_slice`` adds them."""
    cdef Py_ssize_t L = net.n_layers, T = net.n_threads, l, k, u, size
    cdef const floating* param
    cdef floating g
    cdef floating a
    cdef double total = 0.0
    for l in range(2 * L):
        if l < L:
            size = net.units[l] * net.units[l + 1]
            param = (<floating**> net.coef)[l]
            a = <floating> alpha
        else:
            size = net.units[l - L + 1]
            param = (<floating**> net.intercept)[l - L]
            a = 0
        for k in range(size):
            if l < L:
                g = (<floating**> net.coef_grad)[l][k]
                for u in range(1, T):
                    g = g + (<floating**> net.coef_grad)[u * L + l][k]
            else:
                g = (<floating**> net.intercept_grad)[l - L][k]
                for u in range(1, T):
                    g = g + (<floating**> net.intercept_grad)[u * L + l - L][k]
            g = (g + a * param[k]) / <floating> scale
            total += <double> g * g
    return sqrt(total)


cdef void _update_slice(const Net* net, const Step* step, Py_ssize_t t,
                        floating* dtype_marker) noexcept nogil:
    """Thread t's slice [t*size/T, (t+1)*size/T) of every parameter array:
    sum the threads' gradients into thread 0's buffer (in thread order), then
    apply the optimizer step to that slice."""
    cdef Py_ssize_t L = net.n_layers, T = net.n_threads, l, k, u, size, lo, hi
    cdef floating* param
    cdef floating* grad
    cdef const floating* other
    cdef floating* m
    cdef floating* v
    cdef double alpha
    for l in range(2 * L):
        if l < L:
            size = net.units[l] * net.units[l + 1]
            param = (<floating**> net.coef)[l]
            grad = (<floating**> net.coef_grad)[l]
            alpha = step.alpha
        else:
            size = net.units[l - L + 1]
            param = (<floating**> net.intercept)[l - L]
            grad = (<floating**> net.intercept_grad)[l - L]
            alpha = 0.0
        lo = t * size // T
        hi = (t + 1) * size // T
        if hi == lo:
            continue
        for u in range(1, T):
            if l < L:
                other = (<floating**> net.coef_grad)[u * L + l]
            else:
                other = (<floating**> net.intercept_grad)[u * L + l - L]
            for k in range(lo, hi):
                grad[k] += other[k]
        m = (<floating**> net.moment_1)[l]
        if step.solver == ADAM or step.solver == ADAMW:
            v = (<floating**> net.moment_2)[l]
            _adam_update(param + lo, grad + lo, m + lo, v + lo, hi - lo, alpha,
                         step.decay if l < L else 0.0, step)
        else:
            _sgd_update(param + lo, grad + lo, m + lo, hi - lo, alpha, step)


cdef int _run_epoch(Trainer tr, const Block* epoch, const floating* Y,
                    const floating* sample_weight, double weight_scale,
                    Py_ssize_t batch_size, double lr,
                    EpochResult* result) except -1 nogil:
    """One pass over the rows of the block epoch, in batches of batch_size.

    Each batch: gather, forward, output delta, backward, update. The L2 term of
    a batch uses the weights it started from, as scikit-learn does. A batch's
    gradients are divided by n_batch * weight_scale (the mean sample weight), so
    weighted minibatches estimate the weighted full-batch gradient without bias.
    Returns 0, or -1 with the exception set if a signal handler raised (the
    epoch stops between batches).
    """
    cdef Py_ssize_t L = tr.n_layers, start = 0, nb = 0, n = epoch.n_rows
    cdef Py_ssize_t n_outputs = tr.units[L]
    cdef floating** act = <floating**> tr.act
    cdef Block batch = epoch[0]
    cdef double total = 0.0, wsq, isq = 0.0, norm
    cdef double alpha = tr.alpha
    cdef Poll poll = _start_polling(tr.poll_signals)
    cdef Py_ssize_t t
    cdef Step opt
    opt.solver = tr.solver
    opt.lr = lr
    opt.alpha = alpha
    opt.momentum = tr.momentum
    opt.nesterov = tr.nesterov
    opt.beta_1 = tr.beta_1
    opt.beta_2 = tr.beta_2
    opt.epsilon = tr.epsilon
    opt.decay = lr * tr.weight_decay

    if tr.drop != NULL:
        tr.dropout_epochs += 1
        tr.net.seed = _mix64(tr.dropout_seed
                             + <uint64_t> 0x9E3779B97F4A7C15ULL * tr.dropout_epochs)
    wsq = _params_sum_squares(tr, act[L], &isq)
    while start < n:
        nb = batch_size if start + batch_size <= n else n - start
        batch.row_idx = epoch.row_idx + start if epoch.row_idx != NULL else NULL
        batch.start = epoch.start + start
        batch.n_rows = nb
        total += (_batch_gradients(tr, &batch, Y, sample_weight)
                  + 0.5 * alpha * wsq) / weight_scale
        opt.scale = nb * weight_scale
        if tr.gradient_clip > 0:
            norm = _gradient_norm(&tr.net, alpha, opt.scale, act[L])
            if norm > tr.gradient_clip:
                opt.scale = opt.scale * (norm / tr.gradient_clip)
        if tr.solver == ADAM or tr.solver == ADAMW:
            result.adam_t += 1
            opt.lr = lr * sqrt(1.0 - pow(tr.beta_2, <double> result.adam_t)) / (
                1.0 - pow(tr.beta_1, <double> result.adam_t))
        if tr.n_threads == 1:
            _update_slice(&tr.net, &opt, 0, act[L])
        else:
            for t in prange(tr.n_threads, num_threads=tr.n_threads,
                            schedule="static", chunksize=1):
                _update_slice(&tr.net, &opt, t, act[L])
        if alpha != 0:
            # The next batch's L2 term; without L2 it is only needed at the end.
            wsq = _params_sum_squares(tr, act[L], &isq)
        start += nb
        if start < n:
            _poll(&poll)
    result.loss = total
    result.coef_sq = _params_sum_squares(tr, act[L], &isq)
    result.intercept_sq = isq
    if n > 0:
        # The last update may have made the weights finite but too large for the
        # dtype to carry through the layers (float32 overflows first). The first
        # rows of the last batch, forwarded once more, show it: report that as
        # divergence.
        if batch.n_rows > tr.chunk:
            batch.n_rows = tr.chunk
        batch.a0 = _dense_block(&batch, act[0])
        _forward(&tr.net, &batch, act, <floating**> tr.pre)
        if not _all_finite(act[L], batch.n_rows * n_outputs):
            result.coef_sq = INFINITY
    return 0


# --------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------

def train_epoch(Trainer trainer, object X, const floating[:, ::1] Y,
                const Py_ssize_t[::1] order, bint gather, Py_ssize_t batch_size,
                double learning_rate, Py_ssize_t adam_t, object sample_weight=None,
                double weight_scale=1.0):
    """Train one epoch over the rows X[order] (or all rows in order if not gather).

    X is an array or a ``Rows``; Y is (n_rows, n_outputs) in the same dtype, and
    so is ``sample_weight`` (n_rows,) when given; ``weight_scale`` is the mean
    weight of the training rows. Returns ``(loss_sum, coef_sq, intercept_sq,
    adam_t)``: the sum over batches of ``batch_loss * n_batch`` (scikit-learn's
    accumulated loss), the sums of squared weights and intercepts after the epoch
    (non-finite if training diverged) and the Adam step count. A signal handler
    that raises (Ctrl-C) stops the epoch between batches and its exception
    propagates, with the parameters part-way through the epoch. ``order`` is
    copied before it is checked and used.
    """
    cdef Rows rows = _as_rows(X)
    cdef Py_ssize_t n, k, n_rows = rows.c.n_rows
    cdef Block epoch
    cdef EpochResult result
    cdef const floating[::1] sw_view
    cdef const floating* sw
    cdef Py_ssize_t* order_copy = NULL
    if (rows.single != trainer.single
            or _is_single(<floating*> NULL) != trainer.single):
        raise TypeError("X, Y and the parameters must share one dtype")
    if rows.c.n_features != trainer.units[0] or Y.shape[1] != trainer.units[trainer.n_layers]:
        raise ValueError("X or Y columns do not match the network")
    if Y.shape[0] != n_rows or not (1 <= batch_size <= trainer.max_batch):
        raise ValueError("Y rows or batch_size do not match")
    if trainer.moment_1[0] == NULL:
        raise ValueError("the Trainer has no optimizer state")
    if rows.c.dense != NULL and trainer.act[0] == NULL and gather:
        raise ValueError("the Trainer has no gather buffer for dense rows")
    if not weight_scale > 0:
        raise ValueError("weight_scale must be positive")
    sw = NULL
    if sample_weight is not None:
        sw_view = sample_weight
        if sw_view.shape[0] != n_rows:
            raise ValueError("sample_weight does not have one value per row of X")
        if n_rows > 0:
            sw = &sw_view[0]
    n = order.shape[0] if gather else n_rows
    if gather and n > 0:
        # The epoch reads a private copy of the order, checked after it was
        # taken, so the caller cannot move a row index out of range under it.
        order_copy = <Py_ssize_t*> malloc(n * sizeof(Py_ssize_t))
        if order_copy == NULL:
            raise MemoryError()
        memcpy(order_copy, &order[0], n * sizeof(Py_ssize_t))
        for k in range(n):
            if not 0 <= order_copy[k] < n_rows:
                free(order_copy)
                raise ValueError("order holds a row index out of range")
    epoch.x = &rows.c
    epoch.a0 = NULL
    epoch.row_idx = order_copy
    epoch.start = 0
    epoch.n_rows = n
    result.adam_t = adam_t
    try:
        with nogil:
            _run_epoch(trainer, &epoch, _first(Y), sw, weight_scale, batch_size,
                       learning_rate, &result)
    finally:
        free(order_copy)
    return result.loss, result.coef_sq, result.intercept_sq, result.adam_t


def loss_grad(Trainer trainer, object X, const floating[:, ::1] Y,
              floating[::1] grad_out, object sample_weight=None):
    """Full-batch loss and packed gradient at the trainer's current parameters.

    loss = (sum_i w_i loss_i + alpha/2 sum(W**2)) / sum_i w_i (w = 1 without
    weights); grad_out holds ``[dW_0.ravel(), ..., dW_{L-1}.ravel(), db_0, ...,
    db_{L-1}]``, each scaled as scikit-learn scales it. Rows are processed in
    blocks of ``max_batch`` and the gradients summed, so memory stays bounded.
    A signal handler that raises (Ctrl-C) stops it between blocks, and its
    exception propagates.
    """
    cdef Rows rows = _as_rows(X)
    cdef Py_ssize_t L = trainer.n_layers, n = rows.c.n_rows, start, nb, l, k, off
    cdef Py_ssize_t n_outputs, size
    cdef double total = 0.0, wsq, isq = 0.0, weight_sum
    cdef floating** coef = <floating**> trainer.coef
    cdef floating** act = <floating**> trainer.act
    cdef floating** delta = <floating**> trainer.delta
    cdef floating** pre = <floating**> trainer.pre
    cdef floating** cg
    cdef floating** ig
    cdef floating* g
    cdef floating* w
    cdef Block block
    cdef const floating[::1] sw_view
    cdef const floating* sw
    cdef floating alpha = <floating> trainer.alpha, denom
    cdef Poll poll = _start_polling(_in_main_thread())
    if rows.single != trainer.single or _is_single(<floating*> NULL) != trainer.single:
        raise TypeError("X, Y and the parameters must share one dtype")
    n_outputs = trainer.units[L]
    size = 0
    for l in range(L):
        size += trainer.units[l] * trainer.units[l + 1] + trainer.units[l + 1]
    if (rows.c.n_features != trainer.units[0] or Y.shape[1] != n_outputs
            or Y.shape[0] != n or grad_out.shape[0] != size or n == 0):
        raise ValueError("shapes do not match the network")
    if rows.c.dense != NULL and trainer.act[0] == NULL:
        raise ValueError("the Trainer has no buffer for dense rows")
    sw = NULL
    if sample_weight is not None:
        sw_view = sample_weight
        if sw_view.shape[0] != n:
            raise ValueError("sample_weight does not have one value per row of X")
        sw = &sw_view[0]
    if sw == NULL:
        weight_sum = n
    else:
        weight_sum = 0.0
        for k in range(n):
            weight_sum += sw[k]
        if not weight_sum > 0:
            raise ValueError("sample weights must not all be zero")
    denom = <floating> weight_sum
    cg = <floating**> malloc(2 * L * sizeof(floating*))
    if cg == NULL:
        raise MemoryError()
    ig = cg + L
    off = 0
    for l in range(L):
        cg[l] = &grad_out[off]
        off += trainer.units[l] * trainer.units[l + 1]
    for l in range(L):
        ig[l] = &grad_out[off]
        off += trainer.units[l + 1]
    block.x = &rows.c
    block.row_idx = NULL
    try:
        with nogil:
            start = 0
            while start < n:
                nb = trainer.chunk if start + trainer.chunk <= n else n - start
                block.start = start
                block.n_rows = nb
                block.a0 = _dense_block(&block, act[0])
                _forward(&trainer.net, &block, act, pre)
                total += _loss_and_delta(act[L], _first(Y), sw, &block, &trainer.net,
                                         delta[L - 1])
                _backward(&trainer.net, &block, act, pre, delta, cg, ig,
                          <floating*> trainer.wt[0], start > 0)
                start += nb
                if start < n:
                    _poll(&poll)
            wsq = _params_sum_squares(trainer, act[L], &isq)
            for l in range(L):
                g = cg[l]
                w = coef[l]
                for k in range(trainer.units[l] * trainer.units[l + 1]):
                    g[k] = (g[k] + alpha * w[k]) / denom
                g = ig[l]
                for k in range(trainer.units[l + 1]):
                    g[k] = g[k] / denom
    finally:
        free(cg)
    return (total + 0.5 * trainer.alpha * wsq) / weight_sum


def rprop_update(floating[::1] param, const floating[::1] grad, floating[::1] prev_grad,
                 floating[::1] step, double increase, double decrease, double step_min,
                 double step_max):
    """One iRPROP- step over flat parameters, all arrays (n_params,), in place.

    Where grad keeps its sign, step *= increase (at most step_max); where it
    flips, step *= decrease (at least step_min) and that gradient is forgotten
    (iRPROP-: no step back, and no step now). param -= sign(grad) * step;
    prev_grad receives grad, or 0 where it flipped.
    """
    cdef Py_ssize_t k, n = param.shape[0]
    cdef floating g, s
    cdef floating up = <floating> increase, down = <floating> decrease
    cdef floating lo = <floating> step_min, hi = <floating> step_max
    if grad.shape[0] != n or prev_grad.shape[0] != n or step.shape[0] != n:
        raise ValueError("rprop arrays must have one length")
    with nogil:
        for k in range(n):
            g = grad[k]
            s = g * prev_grad[k]
            if s > 0:
                step[k] = step[k] * up if step[k] * up < hi else hi
            elif s < 0:
                step[k] = step[k] * down if step[k] * down > lo else lo
                g = 0
            if g > 0:
                param[k] -= step[k]
            elif g < 0:
                param[k] += step[k]
            prev_grad[k] = g


def max_threads():
    """OpenMP's thread budget (OMP_NUM_THREADS, threadpoolctl limits), capped to
    ``MAX_THREADS``; 1 in a build without OpenMP."""
    return max(1, min(fastbp_omp_max_threads(), MAX_THREADS))


# --------------------------------------------------------------------------
# Prediction
# --------------------------------------------------------------------------

def _group_table(object out_groups, int out_activation, Py_ssize_t n_outputs):
    """out_groups as a validated intp array, or None for one softmax block."""
    if out_groups is None:
        return None
    groups = np.ascontiguousarray(out_groups, dtype=np.intp)
    if (out_activation != SOFTMAX or groups.ndim != 1 or groups.shape[0] < 1
            or (groups < 1).any() or groups.sum() != n_outputs):
        raise ValueError("out_groups must be positive block sizes summing to the "
                         "outputs of a softmax layer")
    return groups


cdef void _predict_block(const Net* net, const Input* x, Py_ssize_t blk,
                         Py_ssize_t block_rows, Py_ssize_t widest, floating* work,
                         floating** bufs, floating* out) noexcept nogil:
    """Rows [blk * block_rows, ...) of x through the network into out, with
    one thread's workspace (2 * block_rows * widest) and buffer table."""
    cdef Py_ssize_t l, L = net.n_layers, n = x.n_rows
    cdef Py_ssize_t start = blk * block_rows
    cdef Block block
    block.x = x
    block.row_idx = NULL
    block.start = start
    block.n_rows = block_rows if start + block_rows <= n else n - start
    for l in range(1, L):
        bufs[l] = work + (l % 2) * block_rows * widest
    bufs[L] = out + start * net.units[L]
    block.a0 = _dense_block(&block, <floating*> NULL)
    _forward(net, &block, bufs, NULL)


def predict(object X, list coefs, list intercepts, object activation,
            int out_activation, floating[:, ::1] out, object out_groups=None,
            Py_ssize_t n_threads=1, double act_param=0.01):
    """out = forward(X) through the given layers, in row blocks, GIL released.

    ``activation`` is the hidden layers' activation, or a list of one per
    hidden layer; ``act_param`` is leaky_relu's slope.

    X is an array or a ``Rows`` (dense or CSR) of out's dtype. With
    ``n_threads`` > 1 the blocks are shared by that many OpenMP threads, each
    with its own workspace (BLAS should run on one thread meanwhile); the
    blocks are the same whatever the thread count, and so are the results. A
    signal handler that raises (Ctrl-C) stops it between blocks (between
    rounds of blocks with threads), and its exception propagates; out is then
    filled part-way.
    """
    cdef Rows rows = _as_rows(X)
    cdef Py_ssize_t L = len(coefs), n = rows.c.n_rows, l, widest = 1, block_rows
    cdef Py_ssize_t n_blocks, T, b0, b1, blk, t
    cdef Py_ssize_t nf = rows.c.n_features
    cdef Py_ssize_t* units
    cdef floating** table
    cdef floating* work
    cdef floating** bufs
    cdef int* acts
    cdef Net net
    cdef const floating[:, ::1] c
    cdef const floating[::1] b
    cdef Poll poll = _start_polling(_in_main_thread())
    if L < 1 or len(intercepts) != L:
        raise ValueError("predict needs at least one layer")
    if rows.single != _is_single(<floating*> NULL):
        raise TypeError("X and out must share one dtype")
    groups = _group_table(out_groups, out_activation, out.shape[1])
    # Our own lists hold every layer's array for the whole call, whatever
    # happens to the caller's lists meanwhile.
    coefs = list(coefs)
    intercepts = list(intercepts)
    if isinstance(activation, (list, tuple)):
        hidden = [int(a) for a in activation]
    else:
        hidden = [int(activation)] * (L - 1)
    if len(hidden) != L - 1 or not all(IDENTITY <= a <= SIN for a in hidden + [out_activation]):
        raise ValueError("activation must give one known activation per hidden layer")
    if not act_param >= 0:
        raise ValueError("act_param must be >= 0")
    units = <Py_ssize_t*> malloc((L + 1) * sizeof(Py_ssize_t) + L * sizeof(int))
    table = <floating**> malloc((3 * L + 1) * sizeof(floating*))
    if units == NULL or table == NULL:
        free(units)
        free(table)
        raise MemoryError()
    acts = <int*> (units + L + 1)
    for l in range(L - 1):
        acts[l] = hidden[l]
    acts[L - 1] = out_activation
    try:
        for l in range(L):
            c = coefs[l]
            b = intercepts[l]
            if (b.shape[0] != c.shape[1] or (l == 0 and c.shape[0] != nf)
                    or (l > 0 and c.shape[0] != units[l])):
                raise ValueError("layer %d does not chain with its input" % l)
            units[l] = c.shape[0]
            units[l + 1] = c.shape[1]
            table[l] = <floating*> &c[0, 0]
            table[L + l] = <floating*> &b[0]
            if l + 1 < L and units[l + 1] > widest:
                widest = units[l + 1]
        if out.shape[0] != n or out.shape[1] != units[L]:
            raise ValueError("out has the wrong shape")
    except BaseException:
        free(units)
        free(table)
        raise
    if n == 0:
        free(units)
        free(table)
        return
    # Blocks of about 64k hidden values keep the workspace in cache-sized pieces
    # while leaving the GEMMs large enough to run at full speed.
    block_rows = max(1, min(n, 65536 // widest))
    n_blocks = (n + block_rows - 1) // block_rows
    T = max(1, min(n_threads, MAX_THREADS, n_blocks))
    work = <floating*> malloc(T * 2 * block_rows * widest * sizeof(floating))
    bufs = <floating**> malloc(T * (L + 1) * sizeof(floating*))
    if work == NULL or bufs == NULL:
        free(work)
        free(bufs)
        free(units)
        free(table)
        raise MemoryError()
    memset(&net, 0, sizeof(Net))
    net.n_layers = L
    net.n_threads = 1
    net.units = units
    net.coef = <void**> table
    net.intercept = <void**> (table + L)
    net.activations = acts
    net.act_param = act_param
    net.out_activation = out_activation
    if groups is not None:
        net.out_groups = <const Py_ssize_t*> _address(groups)
        net.n_out_groups = groups.shape[0]
    try:
        with nogil:
            b0 = 0
            while b0 < n_blocks:
                # Rounds of a few blocks per thread, with a signal check between.
                b1 = b0 + 8 * T if b0 + 8 * T <= n_blocks else n_blocks
                if T == 1:
                    for blk in range(b0, b1):
                        _predict_block(&net, &rows.c, blk, block_rows, widest, work,
                                       bufs, &out[0, 0])
                else:
                    for blk in prange(b0, b1, num_threads=T, schedule="static"):
                        t = threadid()
                        _predict_block(&net, &rows.c, blk, block_rows, widest,
                                       work + t * 2 * block_rows * widest,
                                       bufs + t * (L + 1), &out[0, 0])
                b0 = b1
                if b0 < n_blocks:
                    _poll(&poll)
    finally:
        free(work)
        free(bufs)
        free(units)
        free(table)


include "_epochs.pxi"
