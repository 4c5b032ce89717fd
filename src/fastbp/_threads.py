# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Thread rules: when to split batches over OpenMP threads, when to pin BLAS.

Small networks run best on one thread with BLAS pinned to one thread (the GEMMs
are too short to share, and BLAS threads then cost more than they give); large
ones split each minibatch over OpenMP's threads while BLAS stays on one.
"""

import contextlib
import os
import threading

from threadpoolctl import ThreadpoolController

from . import _core

# Below this many multiply-adds per GEMM, BLAS threads cost more than they give
# (measured on 2 cores: diabetes-sized nets train ~2x faster on one thread).
SMALL_GEMM = 1 << 20
# From this many rows on, predict pins BLAS like fit does for small networks.
PIN_PREDICT_ROWS = 4096
# A predict row block holds about this many hidden values (the core's rule).
PREDICT_BLOCK_VALUES = 65536


class OneBlasThread:
    """Pin BLAS to one thread while any small-network fit runs.

    threadpoolctl's limit is process-wide, so fits running in several Python
    threads share one pin: the first to enter sets it, the last to leave lifts
    it. Nobody restores a limit under a fit that still relies on it.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.users = 0
        self.controller = None
        self.limit = None

    @contextlib.contextmanager
    def __call__(self):
        with self.lock:
            if self.users == 0:
                if self.controller is None:
                    self.controller = ThreadpoolController()
                self.limit = self.controller.limit(limits=1, user_api="blas")
            self.users += 1
        try:
            yield
        finally:
            with self.lock:
                self.users -= 1
                if self.users == 0:
                    self.limit.restore_original_limits()
                    self.limit = None


one_blas_thread = OneBlasThread()


def is_small(layer_units, batch_size):
    """Whether every GEMM of a batch is below SMALL_GEMM multiply-adds."""
    largest = max(batch_size * a * b for a, b in zip(layer_units, layer_units[1:]))
    return largest < SMALL_GEMM


def threads_for(layer_units, batch_size):
    """Threads to split each minibatch over: all of OpenMP's budget for large
    layers (about 2**20 multiply-adds per GEMM and up), one for small ones,
    whose batches are too short to share."""
    if is_small(layer_units, batch_size):
        return 1
    return max(1, min(_core.max_threads(), batch_size))


def blas_threads_for(layer_units, batch_size, n_threads=1):
    """A context that pins BLAS to one thread when its GEMMs are small or when
    fastbp's own threads already share the batch."""
    if n_threads == 1 and not is_small(layer_units, batch_size):
        return contextlib.nullcontext()
    return one_blas_thread()


def predict_threads(layer_units, n_rows, n_threads=1):
    """The BLAS context of a predict over n_rows: pinned for many rows of a
    small network (the pin's fixed cost is then paid back), or when fastbp's
    own threads share the row blocks; untouched for few rows."""
    if n_rows < PIN_PREDICT_ROWS:
        return contextlib.nullcontext()
    block = min(n_rows, PREDICT_BLOCK_VALUES // max([1] + list(layer_units[1:-1])))
    return blas_threads_for(layer_units, block, n_threads)


def predict_split(layer_units, n_rows, budget=None):
    """OpenMP threads to share a predict's row blocks: the budget (OpenMP's,
    or the n_jobs given) when there are rows enough for two blocks per thread
    (from PIN_PREDICT_ROWS rows on), else 1, which leaves the blocks to one
    thread (and BLAS)."""
    if n_rows < PIN_PREDICT_ROWS:
        return 1
    block = max(1, min(n_rows, PREDICT_BLOCK_VALUES // max([1] + list(layer_units[1:-1]))))
    n_blocks = -(-n_rows // block)
    if budget is None:
        budget = _core.max_threads()
    return max(1, min(budget, n_blocks // 2))


def resolve_n_jobs(n_jobs):
    """n_jobs as a thread count: None stays None (the automatic choice); -1 is
    every core, -2 all but one, and so on, as in joblib; 0 is an error."""
    if n_jobs is None:
        return None
    n_jobs = int(n_jobs)
    if n_jobs == 0:
        raise ValueError("n_jobs=0 means no thread; use None, a positive count or -1.")
    if n_jobs < 0:
        return max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return n_jobs


_CONTROLLER = []


@contextlib.contextmanager
def blas_threads(n_threads):
    """Limit BLAS to n_threads for the time of the block (process-wide, as
    every threadpoolctl limit is), then put the previous limits back."""
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    limit = _CONTROLLER[0].limit(limits=n_threads, user_api="blas")
    try:
        yield
    finally:
        limit.restore_original_limits()
