# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Type aliases of the public signatures (the package ships ``py.typed``)."""

import os
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, TypeVar, Union

from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    from scipy.sparse import sparray, spmatrix

    from ._base import BaseBP

#: X: an array-like (NumPy array, list of rows, pandas or polars DataFrame) or
#: a SciPy sparse matrix or array (CSR, CSC).
MatrixLike = Union[ArrayLike, "spmatrix", "sparray"]

#: Validation data of one's own: ``(X_val, y_val)`` or
#: ``(X_val, y_val, sample_weight_val)``.
EvalSet = Union[tuple[MatrixLike, ArrayLike], tuple[MatrixLike, ArrayLike, ArrayLike]]

#: Where a model file is written or read: a path, or a binary file object.
PathOrFile = Union[str, "os.PathLike[str]", BinaryIO]

#: The estimator a method was called on (``fit`` returns ``self``).
BP = TypeVar("BP", bound="BaseBP")

_F = TypeVar("_F", bound=Callable[..., Any])

if TYPE_CHECKING:
    # scikit-learn has no type information, so a method decorated with its
    # ``_fit_context`` or ``available_if`` would lose its signature for type
    # checkers; these say that the decorators keep it, as they do at run time.
    def _fit_context(*, prefer_skip_nested_validation: bool) -> Callable[[_F], _F]: ...

    def available_if(check: Callable[[Any], Any]) -> Callable[[_F], _F]: ...
else:
    from sklearn.base import _fit_context
    from sklearn.utils.metaestimators import available_if

__all__ = ["Any", "ArrayLike", "BP", "EvalSet", "MatrixLike", "NDArray", "PathOrFile",
           "_fit_context", "available_if"]
