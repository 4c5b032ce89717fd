# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""The GEMM-only time of a training epoch or a forward pass, timed in C.

The benchmark's "machine limit": the exact sequence of GEMMs that one epoch of
minibatch backpropagation runs (forward ``a @ W`` per layer; backward
``a_prev.T @ delta`` per layer and ``delta @ W.T`` for every layer but the
first), through the same BLAS that fastbp calls (``scipy.linalg.cython_blas``),
with nothing else in the loop: no activation, no loss, no optimizer, no Python.
Compiled on the fly by ``benchmarks/bench.py``; never imported by the package.
"""

from cython cimport floating
from libc.stdlib cimport free, malloc
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec
from scipy.linalg.cython_blas cimport dgemm, sgemm


cdef double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + 1e-9 * ts.tv_nsec


cdef void _gemm(bint trans_a, bint trans_b, int m, int n, int k,
                const floating* a, int lda, const floating* b, int ldb,
                floating* c, int ldc) noexcept nogil:
    """Row-major c[m, n] = op(a) @ op(b), called exactly as fastbp calls BLAS."""
    # Column-major BLAS sees a row-major matrix transposed: c.T = op(b).T @ op(a).T.
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef floating one = 1, zero = 0
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &one, <float*> b, &ldb, <float*> a, &lda,
              &zero, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &one, <double*> b, &ldb, <double*> a, &lda,
              &zero, c, &ldc)


cdef void _fill(floating* x, Py_ssize_t size, unsigned int seed) noexcept nogil:
    """Values in [-0.5, 0.5) from a small LCG: no zeros, no denormals."""
    cdef Py_ssize_t i
    cdef unsigned int s = seed * 2654435761u + 1u
    for i in range(size):
        s = s * 1664525u + 1013904223u
        x[i] = <floating> ((s >> 8) * (1.0 / 16777216.0) - 0.5)


cdef double _epoch(floating* marker, Py_ssize_t L, Py_ssize_t* units, Py_ssize_t n,
                   Py_ssize_t batch, bint backward, floating* x, floating** w,
                   floating** act, floating** delta, floating** grad) noexcept nogil:
    """One timed pass over n rows of x in blocks of ``batch``; returns seconds."""
    cdef Py_ssize_t start, nb, l
    cdef const floating* a_prev
    cdef double t0 = _now()
    start = 0
    while start < n:
        nb = batch if start + batch <= n else n - start
        a_prev = x + start * units[0]
        for l in range(L):
            _gemm(False, False, <int> nb, <int> units[l + 1], <int> units[l],
                  a_prev, <int> units[l], w[l], <int> units[l + 1],
                  act[l + 1], <int> units[l + 1])
            a_prev = act[l + 1]
        if backward:
            for l in range(L - 1, -1, -1):
                a_prev = (x + start * units[0]) if l == 0 else act[l]
                _gemm(True, False, <int> units[l], <int> units[l + 1], <int> nb,
                      a_prev, <int> units[l], delta[l], <int> units[l + 1],
                      grad[l], <int> units[l + 1])
                if l > 0:
                    _gemm(False, True, <int> nb, <int> units[l], <int> units[l + 1],
                          delta[l], <int> units[l + 1], w[l], <int> units[l + 1],
                          delta[l - 1], <int> units[l])
        start += nb
    return _now() - t0


cdef list _run(floating* marker, list layer_units, Py_ssize_t n, Py_ssize_t batch,
               bint backward, int repeats):
    cdef Py_ssize_t L = len(layer_units) - 1, l, size
    cdef Py_ssize_t* units = <Py_ssize_t*> malloc((L + 1) * sizeof(Py_ssize_t))
    cdef floating** tables = <floating**> malloc(4 * (L + 1) * sizeof(floating*))
    cdef floating** w
    cdef floating** act
    cdef floating** delta
    cdef floating** grad
    cdef floating* x = NULL
    cdef int r
    cdef double seconds
    cdef list times = []
    if units == NULL or tables == NULL:
        free(units)
        free(tables)
        raise MemoryError()
    for l in range(4 * (L + 1)):
        tables[l] = NULL
    w = tables
    act = tables + (L + 1)
    delta = tables + 2 * (L + 1)
    grad = tables + 3 * (L + 1)
    try:
        for l in range(L + 1):
            units[l] = layer_units[l]
        x = <floating*> malloc(n * units[0] * sizeof(floating))
        if x == NULL:
            raise MemoryError()
        _fill(x, n * units[0], 1)
        for l in range(L):
            size = units[l] * units[l + 1]
            w[l] = <floating*> malloc(size * sizeof(floating))
            act[l + 1] = <floating*> malloc(batch * units[l + 1] * sizeof(floating))
            if w[l] == NULL or act[l + 1] == NULL:
                raise MemoryError()
            _fill(w[l], size, 2 + l)
            _fill(act[l + 1], batch * units[l + 1], 4 + l)
            if backward:
                grad[l] = <floating*> malloc(size * sizeof(floating))
                delta[l] = <floating*> malloc(batch * units[l + 1] * sizeof(floating))
                if grad[l] == NULL or delta[l] == NULL:
                    raise MemoryError()
                _fill(grad[l], size, 3 + l)
                _fill(delta[l], batch * units[l + 1], 5 + l)
        for r in range(repeats):
            with nogil:
                seconds = _epoch(marker, L, units, n, batch, backward, x, w, act,
                                 delta, grad)
            times.append(seconds)
    finally:
        free(x)
        for l in range(L + 1):
            free(w[l])
            free(act[l])
            free(delta[l])
            free(grad[l])
        free(tables)
        free(units)
    return times


def gemm_epoch_times(list layer_units, Py_ssize_t n, Py_ssize_t batch, bint single,
                     bint backward=True, int repeats=3):
    """Seconds of each of ``repeats`` timed passes of the GEMMs alone.

    ``backward=True``: one training epoch over n rows in minibatches of ``batch``.
    ``backward=False``: the forward pass of n rows in blocks of ``batch``.
    """
    cdef float fmarker = 0
    cdef double dmarker = 0
    if n < 1 or batch < 1 or len(layer_units) < 2 or repeats < 1:
        raise ValueError("need n, batch, repeats >= 1 and at least one layer")
    batch = min(batch, n)
    if single:
        return _run(&fmarker, layer_units, n, batch, backward, repeats)
    return _run(&dmarker, layer_units, n, batch, backward, repeats)
