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
SMALL_GEMM_DEFAULT: int
BLAS_SMALL_PATH_LIMIT: int

class Activation(enum.IntEnum):
    IDENTITY = 0
    LOGISTIC = 1
    TANH = 2
    RELU = 3
    EXP = 4
    SOFTMAX = 5
    LEAKY_RELU = 6
    ELU = 7
    SELU = 8
    SOFTPLUS = 9
    GELU = 10
    SILU = 11
    MISH = 12
    SIN = 13

class Loss(enum.IntEnum):
    SQUARED_ERROR = 0
    POISSON = 1
    LOG_LOSS = 2
    BINARY_LOG_LOSS = 3
    ABSOLUTE_ERROR = 4
    HUBER = 5
    QUANTILE = 6

class Solver(enum.IntEnum):
    SGD = 0
    ADAM = 1
    ADAMW = 2

class Stop(enum.IntEnum):
    STOP_MAX_EPOCHS = 0
    STOP_NO_CHANGE = 1
    STOP_DIVERGED = 2

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
        activations: list[int] | None = None,
        act_param: float = 0.01,
        loss_param: float = 0.0,
        dropout: list[float] | None = None,
        weight_decay: float = 0.0,
        gradient_clip: float = 0.0,
        dropout_seed: int = 0,
    ) -> None: ...
    def set_dropout_seed(self, seed: int) -> None: ...
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
    activation: int | list[int],
    out_activation: int,
    out: _FloatArray,
    out_groups: ArrayLike | None = None,
    n_threads: int = 1,
    act_param: float = 0.01,
) -> None: ...
def dropout_mask(
    seed: int, rows: NDArray[np.intp], layer: int, n_units: int, p: float
) -> NDArray[np.bool_]: ...
def elementwise_math(function: str, x: ArrayLike) -> _FloatArray: ...
def rprop_update(
    param: _FloatArray,
    grad: _FloatArray,
    prev_grad: _FloatArray,
    step: _FloatArray,
    increase: float,
    decrease: float,
    step_min: float,
    step_max: float,
) -> None: ...

@disjoint_base
class EpochLoop:
    """The settings and the running state of one ``train_epochs`` call."""

    lr: float
    lr0: float
    power_t: float
    tol: float
    n_iter_no_change: float
    best_loss: float
    invscaling: bool
    adaptive: bool
    shuffle: bool
    adam_t: int
    t: int
    no_improvement: int
    n_done: int
    stop: int
    random_state: Any
    losses: Any
    def __init__(
        self,
        *,
        lr: float,
        lr0: float,
        power_t: float,
        tol: float,
        n_iter_no_change: float,
        best_loss: float,
        invscaling: bool,
        adaptive: bool,
        shuffle: bool,
        adam_t: int,
        t: int,
        no_improvement: int,
        random_state: Any,
        max_epochs: int,
    ) -> None: ...

def shuffle_rows(x: NDArray[np.intp], random_state: Any) -> None: ...
def train_epochs(
    trainer: Trainer,
    X: Rows | _FloatArray,
    Y: _FloatArray,
    sample_idx: NDArray[np.intp],
    loop: EpochLoop,
    batch_size: int,
    sample_weight: _FloatArray | None = None,
    weight_scale: float = 1.0,
) -> None: ...
def isa_names() -> list[str]: ...
def isa_supported() -> list[str]: ...
def get_isa() -> str: ...
def set_isa(name: str) -> str: ...
def set_small_gemm(limit: int) -> int: ...
def get_small_gemm() -> int: ...
def set_nn_backward(limit: int) -> int: ...
def get_nn_backward() -> int: ...
