# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Typed kernels for backpropagation training of dense networks.

Design
------
- Python decides, Cython computes. Every array that reaches a kernel has been
  validated by the Python side: C-contiguous, of the right dtype, of matching
  shapes, finite. Kernels never validate data, never allocate inside the batch
  loop and never raise; the ``def`` entry points only check O(1) shape facts that
  protect memory.
- float32 and float64 share one source through the ``floating`` fused type; the
  dtype branch is taken at compile time.
- Matrices are row-major. ``_gemm`` is the only door to BLAS and the only place
  where ``const`` is cast away.
- Activation derivatives are taken from the layer *output* (``tanh' = 1 - a*a``),
  so pre-activations are never stored.
- Gradients are scaled as scikit-learn scales them:
  ``dW = (a_prev.T @ delta + alpha * W) / n_batch``, ``db = sum(delta) / n_batch``.
- All the work of an epoch runs with the GIL released. The parameter and
  optimizer arrays belong to the estimator; a ``Trainer`` holds pointer tables
  over them plus the per-fit workspaces.
"""

import numpy as np

from cython cimport floating
from libc.math cimport exp, expf, log, pow, sqrt, tanh, tanhf
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport dgemm, sgemm


cpdef enum Activation:
    IDENTITY = 0
    LOGISTIC = 1
    TANH = 2
    RELU = 3
    EXP = 4


cpdef enum Loss:
    SQUARED_ERROR = 0
    POISSON = 1


cpdef enum Solver:
    SGD = 0
    ADAM = 1


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
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> b, &ldb, <float*> a, &lda,
              &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> b, &ldb, <double*> a, &lda,
              &beta, c, &ldc)


# --------------------------------------------------------------------------
# Activations, each beside its derivative
# --------------------------------------------------------------------------

cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef void _bias_activate(floating* z, const floating* intercept, Py_ssize_t n_rows,
                         Py_ssize_t n_cols, int activation) noexcept nogil:
    """z = act(z + intercept), in place. z: (n_rows, n_cols), intercept: (n_cols,)."""
    cdef Py_ssize_t i, j
    cdef floating v
    cdef floating* row
    for i in range(n_rows):
        row = z + i * n_cols
        if activation == RELU:
            for j in range(n_cols):
                v = row[j] + intercept[j]
                row[j] = v if v > 0 else 0
        elif activation == TANH:
            for j in range(n_cols):
                if floating is float:
                    row[j] = tanhf(row[j] + intercept[j])
                else:
                    row[j] = tanh(row[j] + intercept[j])
        elif activation == LOGISTIC:
            for j in range(n_cols):
                row[j] = 1 / (1 + _exp(-(row[j] + intercept[j])))
        elif activation == EXP:
            for j in range(n_cols):
                row[j] = _exp(row[j] + intercept[j])
        else:
            for j in range(n_cols):
                row[j] = row[j] + intercept[j]


cdef void _activation_derivative(floating* delta, const floating* a, Py_ssize_t size,
                                 int activation) noexcept nogil:
    """delta *= act'(z), with act' written through a = act(z). Both of (size,)."""
    cdef Py_ssize_t i
    if activation == RELU:
        for i in range(size):
            if a[i] <= 0:
                delta[i] = 0
    elif activation == TANH:
        for i in range(size):
            delta[i] *= 1 - a[i] * a[i]
    elif activation == LOGISTIC:
        for i in range(size):
            delta[i] = delta[i] * a[i] * (1 - a[i])
    # identity: act' = 1; EXP is an output activation only, paired with its loss


# --------------------------------------------------------------------------
# Losses, each beside its output delta
# --------------------------------------------------------------------------

cdef double _loss_and_delta(const floating* pred, const floating* y,
                            const Py_ssize_t* rows, Py_ssize_t n_rows,
                            Py_ssize_t n_outputs, int loss,
                            floating* delta_out) noexcept nogil:
    """Return sum_i loss_i and write delta = dloss/dz = pred - y (canonical link).

    squared error: loss_i = 1/2 sum_j (pred_ij - y_ij)^2 (summed over outputs);
    poisson:       loss_i = sum_j y log(y / pred) - y + pred, pred = exp(z).
    pred, delta_out: (n_rows, n_outputs); y rows are y[rows[i]] (or y[i] if rows
    is NULL).
    """
    cdef Py_ssize_t i, j, r
    cdef double total = 0.0, d, t
    cdef const floating* y_row
    for i in range(n_rows):
        r = rows[i] if rows != NULL else i
        y_row = y + r * n_outputs
        for j in range(n_outputs):
            delta_out[i * n_outputs + j] = pred[i * n_outputs + j] - y_row[j]
            if loss == POISSON:
                t = y_row[j]
                d = pred[i * n_outputs + j]
                if t > 0:
                    total += t * log(t / d) - t + d
                else:
                    total += d
            else:
                d = delta_out[i * n_outputs + j]
                total += d * d
    if loss == POISSON:
        return total
    return 0.5 * total


# --------------------------------------------------------------------------
# The network: forward and backward over one block of rows
# --------------------------------------------------------------------------

cdef void _forward(Py_ssize_t n_layers, const Py_ssize_t* units,
                   floating** coef, floating** intercept, int activation,
                   int out_activation, const floating* a0, Py_ssize_t n_rows,
                   floating** act_out) noexcept nogil:
    """act_out[l + 1] = act(act_out[l] @ coef[l] + intercept[l]), act_out[0] = a0.

    act_out[l]: (n_rows, units[l]) for l >= 1; act_out[0] is not read.
    """
    cdef Py_ssize_t l
    cdef const floating* a_prev = a0
    cdef floating* z
    for l in range(n_layers):
        z = act_out[l + 1]
        _gemm(False, False, <int> n_rows, <int> units[l + 1], <int> units[l],
              <floating> 1, a_prev, <int> units[l], coef[l], <int> units[l + 1],
              <floating> 0, z, <int> units[l + 1])
        _bias_activate(z, intercept[l], n_rows, units[l + 1],
                       activation if l + 1 < n_layers else out_activation)
        a_prev = z


cdef void _backward(Py_ssize_t n_layers, const Py_ssize_t* units,
                    floating** coef, int activation, const floating* a0,
                    floating** act, floating** delta, Py_ssize_t n_rows,
                    floating** coef_grad, floating** intercept_grad,
                    bint accumulate) noexcept nogil:
    """Backpropagate delta[n_layers - 1] (the output delta) to raw gradients.

    coef_grad[l] (+)= a_prev.T @ delta[l]; intercept_grad[l] (+)= sum_rows delta[l];
    delta[l - 1] = (delta[l] @ coef[l].T) * act'(act[l]).
    """
    cdef Py_ssize_t l, i, j, n_in, n_out
    cdef const floating* a_prev
    cdef floating* d
    cdef floating* gb
    for l in range(n_layers - 1, -1, -1):
        n_in = units[l]
        n_out = units[l + 1]
        a_prev = a0 if l == 0 else act[l]
        d = delta[l]
        _gemm(True, False, <int> n_in, <int> n_out, <int> n_rows, <floating> 1,
              a_prev, <int> n_in, d, <int> n_out,
              <floating> (1 if accumulate else 0), coef_grad[l], <int> n_out)
        gb = intercept_grad[l]
        if not accumulate:
            memset(gb, 0, n_out * sizeof(floating))
        for i in range(n_rows):
            for j in range(n_out):
                gb[j] += d[i * n_out + j]
        if l > 0:
            # delta must travel back through the weights before they change.
            _gemm(False, True, <int> n_rows, <int> n_in, <int> n_out, <floating> 1,
                  d, <int> n_out, coef[l], <int> n_out, <floating> 0,
                  delta[l - 1], <int> n_in)
            _activation_derivative(delta[l - 1], act[l], n_rows * n_in, activation)


# --------------------------------------------------------------------------
# Optimizer updates (one parameter array at a time)
# --------------------------------------------------------------------------

cdef double _sgd_update(floating* param, const floating* grad, floating* velocity,
                        Py_ssize_t size, double alpha, double scale, double lr,
                        double momentum, bint nesterov) noexcept nogil:
    """g = (grad + alpha*param) * scale; v = mu*v - lr*g; param += v (or nesterov).

    Returns sum(param**2) after the update.
    """
    cdef Py_ssize_t k
    cdef floating g, v, upd
    cdef floating a = <floating> alpha, lr_ = <floating> lr, mu = <floating> momentum
    cdef floating inv = <floating> scale
    cdef double sq = 0.0
    for k in range(size):
        g = (grad[k] + a * param[k]) / inv
        v = mu * velocity[k] - lr_ * g
        velocity[k] = v
        if nesterov:
            upd = mu * v - lr_ * g
        else:
            upd = v
        param[k] += upd
        sq += param[k] * param[k]
    return sq


cdef double _adam_update(floating* param, const floating* grad, floating* m,
                         floating* v, Py_ssize_t size, double alpha, double scale,
                         double lr, double beta_1, double beta_2,
                         double epsilon) noexcept nogil:
    """g = (grad + alpha*param) / scale; Adam moments; param -= lr m / (sqrt(v)+eps).

    lr is the bias-corrected step of this update. Returns sum(param**2) after it.
    """
    cdef Py_ssize_t k
    cdef floating g, mk, vk
    cdef floating a = <floating> alpha, inv = <floating> scale
    cdef floating b1 = <floating> beta_1, b2 = <floating> beta_2
    cdef floating c1 = <floating> (1.0 - beta_1), c2 = <floating> (1.0 - beta_2)
    cdef floating neg_lr = <floating> (-lr), eps = <floating> epsilon
    cdef double sq = 0.0
    for k in range(size):
        g = (grad[k] + a * param[k]) / inv
        mk = b1 * m[k] + c1 * g
        vk = b2 * v[k] + c2 * (g * g)
        m[k] = mk
        v[k] = vk
        param[k] += neg_lr * mk / (<floating> sqrt(vk) + eps)
        sq += param[k] * param[k]
    return sq


cdef double _sum_squares(const floating* x, Py_ssize_t size) noexcept nogil:
    cdef Py_ssize_t k
    cdef double s = 0.0
    for k in range(size):
        s += x[k] * x[k]
    return s


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
    """

    cdef readonly Py_ssize_t n_layers
    cdef readonly Py_ssize_t max_batch
    cdef readonly bint single
    cdef readonly int activation, out_activation, loss, solver
    cdef double alpha, momentum, beta_1, beta_2, epsilon
    cdef bint nesterov
    cdef Py_ssize_t* units
    cdef void** coef
    cdef void** intercept
    cdef void** moment_1       # 2 * n_layers: coefs then intercepts
    cdef void** moment_2
    cdef void** act            # n_layers + 1; act[0] is the row-gather buffer
    cdef void** delta          # n_layers
    cdef void** coef_grad
    cdef void** intercept_grad
    cdef void* work
    cdef list keep

    def __cinit__(self):
        self.units = NULL
        self.coef = NULL
        self.act = NULL
        self.work = NULL

    def __init__(self, list coefs, list intercepts, list state,
                 Py_ssize_t max_batch, int activation, int out_activation,
                 int loss, int solver, double alpha=0.0, double momentum=0.9,
                 bint nesterov=True, double beta_1=0.9, double beta_2=0.999,
                 double epsilon=1e-8):
        cdef Py_ssize_t L = len(coefs), l, total, itemsize, offset
        if L < 1 or len(intercepts) != L or max_batch < 1:
            raise ValueError("Trainer needs at least one layer and max_batch >= 1")
        dtype = np.dtype(coefs[0].dtype)
        if dtype != np.float32 and dtype != np.float64:
            raise TypeError("Trainer works on float32 or float64 parameters")
        if solver != SGD and solver != ADAM:
            raise ValueError("unknown solver %r" % solver)
        n_moments = 2 if solver == ADAM else 1
        if len(state) not in (0, 2 * L * n_moments):
            raise ValueError("optimizer state does not match the layers")
        self.keep = [list(coefs), list(intercepts), list(state)]
        self.n_layers = L
        self.max_batch = max_batch
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

        self.units = <Py_ssize_t*> malloc((L + 1) * sizeof(Py_ssize_t))
        # One table holds all pointer tables, so one free releases them.
        self.coef = <void**> malloc((9 * L + 1) * sizeof(void*))
        if self.units == NULL or self.coef == NULL:
            raise MemoryError()
        self.intercept = self.coef + L
        self.moment_1 = self.coef + 2 * L
        self.moment_2 = self.coef + 4 * L
        self.coef_grad = self.coef + 6 * L
        self.intercept_grad = self.coef + 7 * L
        self.delta = self.coef + 8 * L
        self.act = <void**> malloc((L + 1) * sizeof(void*))
        if self.act == NULL:
            raise MemoryError()
        memset(self.coef, 0, (9 * L + 1) * sizeof(void*))
        memset(self.act, 0, (L + 1) * sizeof(void*))

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
        total = max_batch * self.units[0]
        for l in range(L):
            total += 2 * max_batch * self.units[l + 1]
            total += self.units[l] * self.units[l + 1] + self.units[l + 1]
        self.work = malloc(total * itemsize)
        if self.work == NULL:
            raise MemoryError("cannot allocate %d bytes of workspace" % (total * itemsize))
        offset = 0
        self.act[0] = <char*> self.work + offset
        offset += max_batch * self.units[0] * itemsize
        for l in range(L):
            self.act[l + 1] = <char*> self.work + offset
            offset += max_batch * self.units[l + 1] * itemsize
            self.delta[l] = <char*> self.work + offset
            offset += max_batch * self.units[l + 1] * itemsize
            self.coef_grad[l] = <char*> self.work + offset
            offset += self.units[l] * self.units[l + 1] * itemsize
            self.intercept_grad[l] = <char*> self.work + offset
            offset += self.units[l + 1] * itemsize

    def __dealloc__(self):
        free(self.units)
        free(self.coef)
        free(self.act)
        free(self.work)

    def __reduce__(self):
        raise TypeError("a Trainer lives for one fit and is never pickled")

    @property
    def layer_units(self):
        return [self.units[l] for l in range(self.n_layers + 1)]


cdef inline const floating* _first(const floating[:, ::1] a) noexcept nogil:
    """Address of a[0, 0], or NULL for an array without elements."""
    if a.shape[0] == 0 or a.shape[1] == 0:
        return NULL
    return &a[0, 0]


cdef inline bint _is_single(const floating* dtype_marker) noexcept nogil:
    if floating is float:
        return True
    else:
        return False


cdef double _params_sum_squares(Trainer tr, floating* dummy, double* intercept_sq) noexcept nogil:
    cdef Py_ssize_t l
    cdef double s = 0.0, si = 0.0
    for l in range(tr.n_layers):
        s += _sum_squares(<floating*> tr.coef[l], tr.units[l] * tr.units[l + 1])
        si += _sum_squares(<floating*> tr.intercept[l], tr.units[l + 1])
    intercept_sq[0] = si
    return s


cdef double _run_epoch(Trainer tr, const floating* X, const floating* Y,
                       const Py_ssize_t* order, Py_ssize_t n, bint gather,
                       Py_ssize_t batch_size, double lr, Py_ssize_t* adam_t,
                       double* coef_sq, double* intercept_sq) noexcept nogil:
    """One pass over X[order[:n]] in minibatches; returns the summed batch losses.

    Each batch: gather rows, forward, output delta, backward, update. The L2
    term of a batch uses the weights it started from, as scikit-learn does.
    """
    cdef Py_ssize_t L = tr.n_layers, start, nb, i, l, n_features = tr.units[0]
    cdef Py_ssize_t n_outputs = tr.units[L], size
    cdef floating** coef = <floating**> tr.coef
    cdef floating** intercept = <floating**> tr.intercept
    cdef floating** act = <floating**> tr.act
    cdef floating** delta = <floating**> tr.delta
    cdef floating** coef_grad = <floating**> tr.coef_grad
    cdef floating** intercept_grad = <floating**> tr.intercept_grad
    cdef floating** m1 = <floating**> tr.moment_1
    cdef floating** m2 = <floating**> tr.moment_2
    cdef floating* gathered = act[0]
    cdef const floating* a0
    cdef const Py_ssize_t* rows
    cdef double total = 0.0, wsq, isq = 0.0, step
    cdef double alpha = tr.alpha

    wsq = _params_sum_squares(tr, gathered, &isq)
    start = 0
    while start < n:
        nb = batch_size if start + batch_size <= n else n - start
        if gather:
            rows = order + start
            for i in range(nb):
                memcpy(gathered + i * n_features, X + rows[i] * n_features,
                       n_features * sizeof(floating))
            a0 = gathered
        else:
            rows = NULL
            a0 = X + start * n_features
        _forward(L, tr.units, coef, intercept, tr.activation, tr.out_activation,
                 a0, nb, act)
        total += _loss_and_delta(act[L], Y if gather else Y + start * n_outputs,
                                 rows, nb, n_outputs, tr.loss, delta[L - 1])
        total += 0.5 * alpha * wsq
        _backward(L, tr.units, coef, tr.activation, a0, act, delta, nb,
                  coef_grad, intercept_grad, False)
        wsq = 0.0
        isq = 0.0
        if tr.solver == ADAM:
            adam_t[0] += 1
            step = lr * sqrt(1.0 - pow(tr.beta_2, <double> adam_t[0])) / (
                1.0 - pow(tr.beta_1, <double> adam_t[0]))
            for l in range(L):
                size = tr.units[l] * tr.units[l + 1]
                wsq += _adam_update(coef[l], coef_grad[l], m1[l], m2[l], size,
                                    alpha, <double> nb, step, tr.beta_1, tr.beta_2,
                                    tr.epsilon)
                isq += _adam_update(intercept[l], intercept_grad[l], m1[L + l],
                                    m2[L + l], tr.units[l + 1], 0.0, <double> nb,
                                    step, tr.beta_1, tr.beta_2, tr.epsilon)
        else:
            for l in range(L):
                size = tr.units[l] * tr.units[l + 1]
                wsq += _sgd_update(coef[l], coef_grad[l], m1[l], size, alpha,
                                   <double> nb, lr, tr.momentum, tr.nesterov)
                isq += _sgd_update(intercept[l], intercept_grad[l], m1[L + l],
                                   tr.units[l + 1], 0.0, <double> nb, lr,
                                   tr.momentum, tr.nesterov)
        start += nb
    coef_sq[0] = wsq
    intercept_sq[0] = isq
    return total


def train_epoch(Trainer trainer, const floating[:, ::1] X, const floating[:, ::1] Y,
                const Py_ssize_t[::1] order, bint gather, Py_ssize_t batch_size,
                double learning_rate, Py_ssize_t adam_t):
    """Train one epoch over X[order] (or X in row order if not gather).

    Returns ``(loss_sum, coef_sq, intercept_sq, adam_t)``: the sum over batches
    of ``batch_loss * n_batch`` (scikit-learn's accumulated loss), the sum of
    squared weights and intercepts after the epoch (non-finite if training
    diverged), and the Adam step count.
    """
    cdef Py_ssize_t n = order.shape[0] if gather else X.shape[0]
    cdef double total, wsq = 0.0, isq = 0.0
    cdef const Py_ssize_t* order_ptr = NULL
    if _is_single(_first(X)) != trainer.single:
        raise TypeError("X dtype does not match the parameters")
    if X.shape[1] != trainer.units[0] or Y.shape[1] != trainer.units[trainer.n_layers]:
        raise ValueError("X or Y columns do not match the network")
    if Y.shape[0] != X.shape[0] or not (1 <= batch_size <= trainer.max_batch):
        raise ValueError("Y rows or batch_size do not match")
    if trainer.moment_1[0] == NULL:
        raise ValueError("the Trainer has no optimizer state")
    if gather and order.shape[0] > 0:
        order_ptr = &order[0]
    if X.shape[0] == 0:
        n = 0
    with nogil:
        total = _run_epoch(trainer, _first(X), _first(Y), order_ptr, n, gather,
                           batch_size, learning_rate, &adam_t, &wsq, &isq)
    return total, wsq, isq, adam_t


def loss_grad(Trainer trainer, const floating[:, ::1] X, const floating[:, ::1] Y,
              floating[::1] grad_out):
    """Full-batch loss and packed gradient at the trainer's current parameters.

    loss = sum_i loss_i / n + alpha/(2n) * sum(W**2); grad_out holds
    ``[dW_0.ravel(), ..., dW_{L-1}.ravel(), db_0, ..., db_{L-1}]``, each scaled as
    scikit-learn scales it. Rows are processed in blocks of ``max_batch`` and the
    gradients summed, so memory stays bounded.
    """
    cdef Py_ssize_t L = trainer.n_layers, n = X.shape[0], start, nb, l, k, off
    cdef Py_ssize_t n_features, n_outputs, size
    cdef double total = 0.0, wsq, isq = 0.0
    cdef floating** coef = <floating**> trainer.coef
    cdef floating** act = <floating**> trainer.act
    cdef floating** delta = <floating**> trainer.delta
    cdef floating** cg
    cdef floating** ig
    cdef floating* g
    cdef floating* w
    cdef floating alpha = <floating> trainer.alpha, denom = <floating> n
    if _is_single(_first(X)) != trainer.single:
        raise TypeError("X dtype does not match the parameters")
    n_features = trainer.units[0]
    n_outputs = trainer.units[L]
    size = 0
    for l in range(L):
        size += trainer.units[l] * trainer.units[l + 1] + trainer.units[l + 1]
    if (X.shape[1] != n_features or Y.shape[1] != n_outputs or Y.shape[0] != n
            or grad_out.shape[0] != size or n == 0):
        raise ValueError("shapes do not match the network")
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
    with nogil:
        start = 0
        while start < n:
            nb = trainer.max_batch if start + trainer.max_batch <= n else n - start
            _forward(L, trainer.units, coef, <floating**> trainer.intercept,
                     trainer.activation, trainer.out_activation,
                     &X[start, 0], nb, act)
            total += _loss_and_delta(act[L], &Y[start, 0], NULL, nb, n_outputs,
                                     trainer.loss, delta[L - 1])
            _backward(L, trainer.units, coef, trainer.activation, &X[start, 0],
                      act, delta, nb, cg, ig, start > 0)
            start += nb
        wsq = _params_sum_squares(trainer, act[0], &isq)
        for l in range(L):
            g = cg[l]
            w = coef[l]
            for k in range(trainer.units[l] * trainer.units[l + 1]):
                g[k] = (g[k] + alpha * w[k]) / denom
            g = ig[l]
            for k in range(trainer.units[l + 1]):
                g[k] = g[k] / denom
    free(cg)
    return (total + 0.5 * trainer.alpha * wsq) / n


# --------------------------------------------------------------------------
# Prediction
# --------------------------------------------------------------------------

def predict(const floating[:, ::1] X, list coefs, list intercepts, int activation,
            int out_activation, floating[:, ::1] out):
    """out = forward(X) through the given layers, in row blocks, GIL released."""
    cdef Py_ssize_t L = len(coefs), n = X.shape[0], l, widest = 1, block, start, nb
    cdef Py_ssize_t* units
    cdef floating** table
    cdef floating* work
    cdef floating** bufs
    cdef const floating[:, ::1] c
    cdef const floating[::1] b
    if L < 1 or len(intercepts) != L:
        raise ValueError("predict needs at least one layer")
    units = <Py_ssize_t*> malloc((L + 1) * sizeof(Py_ssize_t))
    table = <floating**> malloc((3 * L + 1) * sizeof(floating*))
    if units == NULL or table == NULL:
        free(units)
        free(table)
        raise MemoryError()
    try:
        for l in range(L):
            c = coefs[l]
            b = intercepts[l]
            if (b.shape[0] != c.shape[1] or (l == 0 and c.shape[0] != X.shape[1])
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
    block = max(1, min(n, 65536 // widest))
    work = <floating*> malloc(2 * block * widest * sizeof(floating))
    if work == NULL:
        free(units)
        free(table)
        raise MemoryError()
    bufs = table + 2 * L
    with nogil:
        start = 0
        while start < n:
            nb = block if start + block <= n else n - start
            for l in range(1, L):
                bufs[l] = work + (l % 2) * block * widest
            bufs[L] = &out[start, 0]
            _forward(L, units, table, table + L, activation, out_activation,
                     &X[start, 0], nb, bufs)
            start += nb
    free(work)
    free(units)
    free(table)
