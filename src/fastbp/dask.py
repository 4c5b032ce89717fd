# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Training on data that live in a Dask cluster.

``fit_incremental`` trains over the row blocks of a dask array or the
partitions of a dask dataframe with ``partial_fit``. The model goes to the data,
not the data to the model: each step is one task that runs where its block is
held and hands the updated model (a few arrays) to the next step, so no machine,
the client included, ever holds more than one block::

    from distributed import Client
    import dask.array as da
    from fastbp import BPRegressor
    from fastbp.dask import fit_incremental

    client = Client()  # a LocalCluster; Client("tcp://scheduler:8786") for a real one
    X = da.random.random((1_000_000, 20), chunks=(50_000, 20))
    y = X.sum(axis=1)
    est = fit_incremental(BPRegressor(hidden_layer_sizes=(64,)), X, y, n_epochs=3)

A ``BPClassifier`` trains the same way. Its first ``partial_fit`` must know
every class; ``fit_incremental`` passes ``classes=`` through, or finds the
classes of y on the cluster when it is not given.

The same code runs on a cluster of many machines: point the ``Client`` at its
scheduler instead of starting a local one. Without a ``Client``, Dask's default
scheduler runs the steps in this process, one block in memory at a time.

For hyperparameter search, scikit-learn's ``GridSearchCV`` runs its fits on
the cluster through joblib's Dask backend::

    import joblib
    with joblib.parallel_backend("dask"):
        GridSearchCV(BPRegressor(), grid, n_jobs=-1).fit(X_numpy, y_numpy)

Requires the ``dask`` extra: ``pip install fastbp[dask]``.
"""

import copy

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils import check_random_state

from ._typing import Any, ArrayLike, BP

try:
    import dask
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "fastbp.dask needs dask: pip install fastbp[dask] (%s)" % exc
    ) from exc

__all__ = ["fit_incremental"]


def _partial_fit(estimator, X, y, classes=None):
    # Runs on a worker. Each step trains a copy: the previous step's model may
    # be shared in the worker's memory (or be the caller's object under a local
    # scheduler), and a step that is run again after a worker failure must
    # start from the same model.
    estimator = copy.deepcopy(estimator)
    if len(X):
        if classes is None:
            estimator.partial_fit(X, y)
        else:
            estimator.partial_fit(X, y, classes=classes)
    return estimator


def _all_classes(y):
    """The sorted classes of a 1-D dask target, computed on the cluster."""
    import dask.array as da
    import dask.dataframe as dd

    if isinstance(y, dd.Series):
        y = y.to_dask_array(lengths=True)
    return da.unique(y).compute()


def _blocks(X, y):
    """Lists of delayed row blocks of X and y, aligned."""
    import dask.array as da
    import dask.dataframe as dd

    if isinstance(X, dd.DataFrame):
        if isinstance(y, (dd.DataFrame, dd.Series)):
            if X.npartitions != y.npartitions or (
                X.known_divisions and y.known_divisions
                and tuple(X.divisions) != tuple(y.divisions)
            ):
                raise ValueError(
                    "X and y must have the same partitions; got %d and %d "
                    "partitions with divisions %s and %s."
                    % (X.npartitions, y.npartitions, X.divisions, y.divisions)
                )
            return X.to_delayed(), y.to_delayed()
        raise TypeError(
            "When X is a dask DataFrame, y must be a dask Series or DataFrame; "
            "got %s." % type(y).__name__
        )
    if isinstance(X, da.Array):
        if X.ndim != 2:
            raise ValueError("X must be 2-D; got %d dimensions." % X.ndim)
        if isinstance(y, (dd.Series, dd.DataFrame)):
            y = y.to_dask_array(lengths=True)
        if not isinstance(y, da.Array):
            raise TypeError(
                "When X is a dask array, y must be a dask array; got %s."
                % type(y).__name__
            )
        if y.shape[0] != X.shape[0]:
            raise ValueError(
                "X and y have %s and %s rows." % (X.shape[0], y.shape[0])
            )
        # One block per group of rows, with all of its columns.
        X = X.rechunk({1: -1})
        y = y.rechunk({0: X.chunks[0]} if y.ndim == 1 else {0: X.chunks[0], 1: -1})
        return list(X.to_delayed().ravel()), list(y.to_delayed().ravel())
    raise TypeError(
        "fit_incremental takes a dask array or dask DataFrame; got %s. For data in "
        "memory, call estimator.fit." % type(X).__name__
    )


def fit_incremental(estimator: BP, X: Any, y: Any, *, n_epochs: int = 1,
                    shuffle_blocks: bool = False, random_state: Any = None,
                    classes: ArrayLike | None = None) -> BP:
    """Train ``estimator`` with ``partial_fit`` over the blocks of dask data.

    One epoch calls ``partial_fit`` once per block of rows, in order (or in a
    random order with ``shuffle_blocks``), so an epoch over blocks is one
    ``partial_fit`` pass over the whole data set. The steps run on the workers
    that hold the blocks; the data are never gathered.

    Parameters
    ----------
    estimator : BPRegressor or BPClassifier
        An estimator with ``partial_fit``: a stochastic solver, without
        early stopping. A fitted one continues where it stands.
    X : dask.array.Array or dask.dataframe.DataFrame
        The features. A dataframe keeps its column names, which then become
        ``feature_names_in_``.
    y : dask.array.Array, dask.dataframe.Series or dask.dataframe.DataFrame
        The targets (for a classifier: labels, or a multilabel indicator
        matrix), with the same row blocks or partitions as X.
    n_epochs : int, default=1
        Passes over all the blocks.
    shuffle_blocks : bool, default=False
        Visit the blocks in a new random order in each epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the block order when ``shuffle_blocks`` is True.
    classes : array-like of shape (n_classes,), default=None
        Classifiers only: every class of the whole data, passed to each
        ``partial_fit`` call (a block need not hold every class). When None,
        an unfitted classifier with one column of labels gets
        ``dask.array.unique(y)``, computed on the cluster first: one extra
        pass over y (not X). Pass ``classes`` to save that pass. A multilabel
        target needs none: its columns are the labels.

    Returns
    -------
    estimator : BPRegressor or BPClassifier
        The same object, now holding the trained state.

    Examples
    --------
    >>> import dask.array as da
    >>> from fastbp import BPRegressor
    >>> from fastbp.dask import fit_incremental
    >>> X = da.random.default_rng(0).normal(size=(400, 3), chunks=(100, 3))
    >>> y = X.sum(axis=1)
    >>> est = fit_incremental(BPRegressor(hidden_layer_sizes=(8,), random_state=0),
    ...                       X, y, n_epochs=2)
    >>> est.n_features_in_, len(est.loss_curve_)
    (3, 8)

    A classifier's classes are found on the cluster when not given:

    >>> from fastbp import BPClassifier
    >>> labels = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    >>> clf = fit_incremental(BPClassifier(hidden_layer_sizes=(8,), random_state=0),
    ...                       X, labels)
    >>> clf.classes_.tolist()
    [0, 1, 2]
    """
    if not hasattr(estimator, "partial_fit"):
        raise TypeError(
            "%s has no partial_fit (BPRegressor and BPClassifier have it with "
            "solver='sgd' or 'adam')." % type(estimator).__name__
        )
    classifier = is_classifier(estimator)
    if classes is not None and not classifier:
        raise ValueError(
            "classes is for classifiers; %s is not one." % type(estimator).__name__
        )
    if int(n_epochs) != n_epochs or n_epochs < 1:
        raise ValueError("n_epochs must be a positive integer; got %r." % (n_epochs,))
    X_blocks, y_blocks = _blocks(X, y)
    if len(X_blocks) != len(y_blocks):
        raise ValueError("X and y have %d and %d blocks."
                         % (len(X_blocks), len(y_blocks)))
    rng = check_random_state(random_state)
    if (classifier and classes is None and not hasattr(estimator, "classes_")
            and getattr(y, "ndim", 2) == 1):
        classes = _all_classes(y)

    step = dask.delayed(_partial_fit, pure=False)
    model = estimator
    for _ in range(int(n_epochs)):
        order = np.arange(len(X_blocks))
        if shuffle_blocks:
            rng.shuffle(order)
        for i in order:
            # Every step gets the classes, not only the first: a leading empty
            # block skips its partial_fit, and partial_fit only checks them later.
            model = step(model, X_blocks[i], y_blocks[i], classes)
    (trained,) = dask.compute(model)
    # Hand the trained state back to the caller's object, as fit does.
    estimator.__dict__.update(trained.__dict__)
    return estimator
