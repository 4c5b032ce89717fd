# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
# Included by _core.pyx: many epochs in one compiled call.
#
# When nothing watches the epochs from Python (no verbose output, no
# callbacks, no early stopping to score), the whole stochastic loop runs here:
# the shuffle of each epoch, the epoch itself, the loss-based stopping rule and
# the learning-rate schedules, and the per-epoch checkpoint. The shuffle is
# drawn from the estimator's MT19937 state exactly as ``RandomState.shuffle``
# draws it, so the rows come in the same order as in scikit-learn.

from libc.stdint cimport uint32_t, uint64_t
from libc.math cimport isfinite
from cpython.pycapsule cimport PyCapsule_GetPointer

cdef extern from *:
    """
    /* numpy's bit generator interface (numpy/random/bitgen.h, bitgen_t), as
       the capsule of every numpy BitGenerator holds it. */
    typedef struct fastbp_bitgen {
        void *state;
        uint64_t (*next_uint64)(void *st);
        uint32_t (*next_uint32)(void *st);
        double (*next_double)(void *st);
        uint64_t (*next_raw)(void *st);
    } fastbp_bitgen;

    /* A uniform integer in [0, max], drawn as numpy's legacy RandomState
       draws it for shuffle: draws masked to the smallest all-ones mask >= max,
       rejected while above max; 32-bit draws while max fits in 32 bits. */
    static uint64_t fastbp_interval(fastbp_bitgen *bg, uint64_t max)
    {
        uint64_t mask = max, value;
        if (max == 0)
            return 0;
        mask |= mask >> 1;
        mask |= mask >> 2;
        mask |= mask >> 4;
        mask |= mask >> 8;
        mask |= mask >> 16;
        mask |= mask >> 32;
        if (max <= 0xffffffffULL) {
            while ((value = (bg->next_uint32(bg->state) & mask)) > max)
                ;
        } else {
            while ((value = (bg->next_uint64(bg->state) & mask)) > max)
                ;
        }
        return value;
    }
    """
    ctypedef struct fastbp_bitgen:
        pass
    uint64_t fastbp_interval(fastbp_bitgen* bg, uint64_t max) noexcept nogil


cdef void _shuffle_rows(Py_ssize_t* x, Py_ssize_t n, fastbp_bitgen* bg) noexcept nogil:
    """Permute x in place with the swaps ``RandomState.shuffle`` makes."""
    cdef Py_ssize_t i, j, tmp
    i = n - 1
    while i > 0:
        j = <Py_ssize_t> fastbp_interval(bg, <uint64_t> i)
        tmp = x[i]
        x[i] = x[j]
        x[j] = tmp
        i -= 1


cdef fastbp_bitgen* _bit_generator(object random_state) except NULL:
    """The C interface of a RandomState's bit generator (its lock must be held
    while it is used)."""
    return <fastbp_bitgen*> PyCapsule_GetPointer(
        random_state._bit_generator.capsule, "BitGenerator")


def shuffle_rows(Py_ssize_t[::1] x, object random_state):
    """Shuffle x in place as ``random_state.shuffle(x)`` would (the same
    permutation, the same draws from the legacy ``RandomState``)."""
    cdef fastbp_bitgen* bg = _bit_generator(random_state)
    if x.shape[0] > 1:
        with random_state._bit_generator.lock:
            with nogil:
                _shuffle_rows(&x[0], x.shape[0], bg)


# Why train_epochs stopped.
cpdef enum Stop:
    STOP_MAX_EPOCHS = 0    # it ran every epoch it was given
    STOP_NO_CHANGE = 1     # the training loss stopped improving (tol, n_iter_no_change)
    STOP_DIVERGED = 2      # the last epoch was not finite; its weights were undone


cdef class EpochLoop:
    """The settings and the running state of one ``train_epochs`` call.

    The estimator's loop state goes in (``lr``, ``adam_t``, ``t``,
    ``best_loss``, ``no_improvement``; ``random_state`` draws the shuffles), and
    comes back after the last completed epoch, also when the call ends by an
    exception (Ctrl-C): an epoch cut short is undone, weights and all.
    ``losses[:n_done]`` are the epochs' mean training losses, the last one
    non-finite if the loop stopped on divergence.
    """

    cdef public double lr, lr0, power_t, tol, n_iter_no_change, best_loss
    cdef public bint invscaling, adaptive, shuffle
    cdef public Py_ssize_t adam_t, t, no_improvement, n_done
    cdef public int stop
    cdef public object random_state, losses

    def __init__(self, *, double lr, double lr0, double power_t, double tol,
                 double n_iter_no_change, double best_loss, bint invscaling,
                 bint adaptive, bint shuffle, Py_ssize_t adam_t, Py_ssize_t t,
                 Py_ssize_t no_improvement, object random_state,
                 Py_ssize_t max_epochs):
        self.lr = lr
        self.lr0 = lr0
        self.power_t = power_t
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.best_loss = best_loss
        self.invscaling = invscaling
        self.adaptive = adaptive
        self.shuffle = shuffle
        self.adam_t = adam_t
        self.t = t
        self.no_improvement = no_improvement
        self.random_state = random_state
        self.losses = np.empty(max(max_epochs, 0), dtype=np.float64)
        self.n_done = 0
        self.stop = STOP_MAX_EPOCHS


cdef int _loop_epochs(Trainer tr, EpochLoop loop, Block* epoch, const floating* Y,
                      const floating* sample_weight, double weight_scale,
                      Py_ssize_t batch_size, Py_ssize_t max_epochs, double* losses,
                      fastbp_bitgen* bg) except -1 nogil:
    """The epochs of ``train_epochs``, each as the Python loop of
    ``BaseBP._run_epochs`` runs it; loop holds the state after each one."""
    cdef Py_ssize_t e, n = epoch.n_rows
    cdef Py_ssize_t* order = <Py_ssize_t*> epoch.row_idx
    cdef EpochResult result
    cdef double loss
    cdef Poll poll = _start_polling(tr.poll_signals)
    for e in range(max_epochs):
        tr._copy(True)
        if loop.shuffle:
            _shuffle_rows(order, n, bg)
        result.adam_t = loop.adam_t
        if _run_epoch(tr, epoch, Y, sample_weight, weight_scale, batch_size,
                      loop.lr, &result) < 0:
            # Cut inside the epoch: back to the last completed one.
            tr._copy(False)
            return -1
        loss = result.loss / n
        losses[e] = loss
        loop.n_done += 1
        if loss > loop.best_loss - loop.tol:
            loop.no_improvement += 1
        else:
            loop.no_improvement = 0
        if loss < loop.best_loss:
            loop.best_loss = loss
        if not (isfinite(loss) and isfinite(result.coef_sq + result.intercept_sq)):
            tr._copy(False)
            loop.stop = STOP_DIVERGED
            return 0
        loop.adam_t = result.adam_t
        loop.t += n
        if loop.invscaling:
            loop.lr = loop.lr0 / pow(<double> (loop.t + 1), loop.power_t)
        if loop.no_improvement > loop.n_iter_no_change:
            if not loop.adaptive or loop.lr <= 1e-6:
                loop.stop = STOP_NO_CHANGE
                return 0
            loop.lr /= 5.0
            loop.no_improvement = 0
        if e + 1 < max_epochs:
            _poll(&poll)
    return 0


def train_epochs(Trainer trainer, object X, const floating[:, ::1] Y,
                 Py_ssize_t[::1] sample_idx, EpochLoop loop, Py_ssize_t batch_size,
                 object sample_weight=None, double weight_scale=1.0):
    """Up to ``len(loop.losses)`` epochs over the rows X[sample_idx], in one call.

    ``sample_idx`` (a permutation of the rows of X, or any row indices) is
    shuffled in place before each epoch when ``loop.shuffle``; the stopping
    rule on the training loss, the invscaling and adaptive schedules and the
    checkpoint of each epoch are those of ``BaseBP._run_epochs``. X, Y,
    ``sample_weight`` and ``weight_scale`` are as for ``train_epoch``. A signal
    handler that raises (Ctrl-C) stops the loop between batches or epochs and
    its exception propagates, with the model and ``loop`` as they were after
    the last completed epoch.
    """
    cdef Rows rows = _as_rows(X)
    cdef Py_ssize_t k, n, n_rows = rows.c.n_rows, max_epochs
    cdef Block epoch
    cdef const floating[::1] sw_view
    cdef const floating* sw = NULL
    cdef fastbp_bitgen* bg = _bit_generator(loop.random_state)
    cdef double[::1] losses = loop.losses
    cdef Py_ssize_t* order = NULL
    if (rows.single != trainer.single
            or _is_single(<floating*> NULL) != trainer.single):
        raise TypeError("X, Y and the parameters must share one dtype")
    if rows.c.n_features != trainer.units[0] or Y.shape[1] != trainer.units[trainer.n_layers]:
        raise ValueError("X or Y columns do not match the network")
    if Y.shape[0] != n_rows or not (1 <= batch_size <= trainer.max_batch):
        raise ValueError("Y rows or batch_size do not match")
    if trainer.moment_1[0] == NULL:
        raise ValueError("the Trainer has no optimizer state")
    if rows.c.dense != NULL and trainer.act[0] == NULL:
        raise ValueError("the Trainer has no gather buffer for dense rows")
    if not weight_scale > 0:
        raise ValueError("weight_scale must be positive")
    if sample_weight is not None:
        sw_view = sample_weight
        if sw_view.shape[0] != n_rows:
            raise ValueError("sample_weight does not have one value per row of X")
        if n_rows > 0:
            sw = &sw_view[0]
    n = sample_idx.shape[0]
    max_epochs = losses.shape[0] - loop.n_done
    if n == 0 or max_epochs <= 0:
        return
    # As in train_epoch, the loop reads a private copy of the order, checked
    # after it was taken; it goes back to sample_idx when the call ends.
    order = <Py_ssize_t*> malloc(n * sizeof(Py_ssize_t))
    if order == NULL:
        raise MemoryError()
    memcpy(order, &sample_idx[0], n * sizeof(Py_ssize_t))
    for k in range(n):
        if not 0 <= order[k] < n_rows:
            free(order)
            raise ValueError("sample_idx holds a row index out of range")
    epoch.x = &rows.c
    epoch.a0 = NULL
    epoch.row_idx = order
    epoch.start = 0
    epoch.n_rows = n
    try:
        with loop.random_state._bit_generator.lock:
            with nogil:
                _loop_epochs(trainer, loop, &epoch, _first(Y), sw, weight_scale,
                             batch_size, max_epochs, &losses[loop.n_done], bg)
    finally:
        memcpy(&sample_idx[0], order, n * sizeof(Py_ssize_t))
        free(order)


# --------------------------------------------------------------------------
# Instruction sets of the optimizer loops (_simd.h)
# --------------------------------------------------------------------------

def isa_names():
    """The instruction sets this build has a copy of the loops for, in order."""
    return [fastbp_isa_names[i].decode() for i in range(FASTBP_N_ISA)]


def isa_supported():
    """The instruction sets of this build that this CPU runs."""
    return [fastbp_isa_names[i].decode() for i in range(FASTBP_N_ISA)
            if fastbp_isa_supported(i)]


def get_isa():
    """The instruction set the optimizer loops run with now."""
    return fastbp_isa_names[fastbp_isa_current].decode()


def set_isa(name):
    """Run the optimizer loops with instruction set ``name`` ("default",
    "avx2", "avx512", or "best"); every set gives bitwise the same results.
    Not to be called while a fit runs. Returns the set now in use."""
    cdef int i
    if name == "best":
        fastbp_isa_set(fastbp_isa_best())
        return get_isa()
    for i in range(FASTBP_N_ISA):
        if fastbp_isa_names[i].decode() == name:
            if not fastbp_isa_set(i):
                raise ValueError("this CPU does not run instruction set %r; it runs %s"
                                 % (name, isa_supported()))
            return get_isa()
    raise ValueError("unknown instruction set %r; this build has %s"
                     % (name, isa_names()))


def _isa_from_environment():
    """FASTBP_ISA pins an instruction set; unset, empty or "best" picks the
    best this CPU runs. A value this machine cannot honour warns and falls
    back to the best."""
    import os
    import warnings

    name = os.environ.get("FASTBP_ISA", "").strip().lower() or "best"
    try:
        set_isa(name)
    except ValueError as exc:
        warnings.warn("FASTBP_ISA=%s ignored: %s" % (name, exc), RuntimeWarning)
        set_isa("best")


_isa_from_environment()


def set_small_gemm(Py_ssize_t limit):
    """Send matrix products of at most ``limit`` multiply-adds (beta 0, b not
    transposed) to fastbp's own kernel instead of BLAS; 0 turns it off.
    Not to be called while a fit runs. Returns the previous limit."""
    global _small_gemm_limit
    cdef Py_ssize_t previous = _small_gemm_limit
    if limit < 0:
        raise ValueError("limit must be >= 0")
    _small_gemm_limit = limit
    return previous


def get_small_gemm():
    """The current limit of ``set_small_gemm``."""
    return _small_gemm_limit


def set_nn_backward(Py_ssize_t limit):
    """Run the backward products ``delta @ W.T`` of at most ``limit``
    multiply-adds as ``delta @ W.T.copy()`` (a product with no transposed
    operand, which OpenBLAS's small-matrix kernels and fastbp's own take);
    0 turns it off. Not to be called while a fit runs. Returns the previous
    limit."""
    global _nn_backward_limit
    cdef Py_ssize_t previous = _nn_backward_limit
    if limit < 0:
        raise ValueError("limit must be >= 0")
    _nn_backward_limit = limit
    return previous


def get_nn_backward():
    """The current limit of ``set_nn_backward``."""
    return _nn_backward_limit


# OpenBLAS kernels with a small-matrix path of their own (OpenBLAS's
# SMALL_MATRIX_OPT): there BLAS is faster than _simd.h's products, elsewhere
# (the Haswell/AVX2 kernels, say) the own products win up to this size.
_BLAS_WITH_SMALL_PATH = ("skylakex", "cooperlake", "sapphirerapids")
SMALL_GEMM_DEFAULT = 1 << 20
# OpenBLAS's small-matrix path takes products of up to 100**3 multiply-adds
# without a transposed first operand; the backward product is then faster on
# a transposed copy of W (benchmarks/RESULTS.md).
BLAS_SMALL_PATH_LIMIT = 100 ** 3


def _blas_has_small_path():
    """Whether the BLAS fastbp calls (scipy's OpenBLAS) runs kernels with a
    small-matrix path."""
    try:
        from threadpoolctl import threadpool_info

        for lib in threadpool_info():
            if (lib.get("internal_api") == "openblas"
                    and "scipy.libs" in str(lib.get("filepath", "")).replace("\\", "/")
                    and str(lib.get("architecture", "")).lower() in _BLAS_WITH_SMALL_PATH):
                return True
    except Exception:  # pragma: no cover - threadpoolctl cannot inspect: keep ours
        pass
    return False


def _small_gemm_from_environment():
    """FASTBP_SMALL_GEMM=N sets the limit of ``set_small_gemm``; otherwise it is
    SMALL_GEMM_DEFAULT, or 0 where the BLAS fastbp calls (scipy's OpenBLAS)
    runs kernels with a small-matrix path or the instruction set is the
    baseline (whose products fuse their multiply-adds through the C library,
    slowly). The backward products run on a transposed W up to the size that
    either small path takes."""
    import os
    import warnings

    small_path = _blas_has_small_path()
    default = 0 if small_path or fastbp_isa_current == FASTBP_ISA_BASE else SMALL_GEMM_DEFAULT
    limit = default
    value = os.environ.get("FASTBP_SMALL_GEMM", "").strip()
    if value:
        try:
            limit = int(value)
            if limit < 0:
                raise ValueError(value)
        except ValueError:
            warnings.warn("FASTBP_SMALL_GEMM=%s ignored: not an integer >= 0" % value,
                          RuntimeWarning)
            limit = default
    set_small_gemm(limit)
    set_nn_backward(max(limit, BLAS_SMALL_PATH_LIMIT if small_path else 0))


_small_gemm_from_environment()
