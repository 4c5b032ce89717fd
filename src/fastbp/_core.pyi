# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Type stub of the compiled core, ``fastbp._core`` (see ``_core.pyx``).

The core is private: these are the types its Python callers rely on. Arrays
are float32 or float64, C-contiguous; ``tests/test_typing.py`` checks this
stub against the compiled module with ``mypy.stubtest``.
"""

import enum
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from typing_extensions import disjoint_base

_Float = np.float32 | np.float64
_FloatArray = NDArray[np.float32] | NDArray[np.float64]

MAX_THREADS: int
OPENMP: bool

class Activation(enum.IntEnum):
    IDENTITY = 0
    LOGISTIC = 1
    TANH = 2
    RELU = 3
    EXP = 4
    SOFTMAX = 5

class Loss(enum.IntEnum):
    SQUARED_ERROR = 0
    POISSON = 1
    LOG_LOSS = 2
    BINARY_LOG_LOSS = 3

class Solver(enum.IntEnum):
    SGD = 0
    ADAM = 1

@disjoint_base
class Rows:
    """The input matrix X as the kernels read it: dense C-contiguous, or CSR."""

    @property
    def sparse(self) -> bool: ...
    @property
    def single(self) -> bool: ...
    def __init__(self, X: Any) -> None: ...
    @staticmethod
    def csr(data: Any, indices: Any, indptr: Any, n_features: int) -> Rows: ...
    @property
    def shape(self) -> tuple[int, int]: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...
    @property
    def array(self) -> _FloatArray | None: ...

@disjoint_base
class Trainer:
    """Pointer tables and per-fit workspaces for one network."""

    @property
    def n_layers(self) -> int: ...
    @property
    def max_batch(self) -> int: ...
    @property
    def n_threads(self) -> int: ...
    @property
    def chunk(self) -> int: ...
    @property
    def single(self) -> bool: ...
    @property
    def activation(self) -> int: ...
    @property
    def out_activation(self) -> int: ...
    @property
    def loss(self) -> int: ...
    @property
    def solver(self) -> int: ...
    @property
    def poll_signals(self) -> bool: ...
    @property
    def layer_units(self) -> list[int]: ...
    def __init__(
        self,
        coefs: list[_FloatArray],
        intercepts: list[_FloatArray],
        state: list[_FloatArray],
        max_batch: int,
        activation: int,
        out_activation: int,
        loss: int,
        solver: int,
        alpha: float = ...,
        momentum: float = ...,
        nesterov: bool = ...,
        beta_1: float = ...,
        beta_2: float = ...,
        epsilon: float = ...,
        dense_input: bool = ...,
        n_threads: int = ...,
        out_groups: ArrayLike | None = None,
    ) -> None: ...
    def snapshot(self) -> None: ...
    def restore(self) -> None: ...

def train_epoch(
    trainer: Trainer,
    X: Rows | _FloatArray,
    Y: _FloatArray,
    order: NDArray[np.intp],
    gather: bool,
    batch_size: int,
    learning_rate: float,
    adam_t: int,
    sample_weight: _FloatArray | None = None,
    weight_scale: float = 1.0,
) -> tuple[float, float, float, int]: ...
def loss_grad(
    trainer: Trainer,
    X: Rows | _FloatArray,
    Y: _FloatArray,
    grad_out: _FloatArray,
    sample_weight: _FloatArray | None = None,
) -> float: ...
def max_threads() -> int: ...
def predict(
    X: Rows | _FloatArray,
    coefs: list[_FloatArray],
    intercepts: list[_FloatArray],
    activation: int,
    out_activation: int,
    out: _FloatArray,
    out_groups: ArrayLike | None = None,
) -> None: ...
