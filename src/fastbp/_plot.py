# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""TrainingCurveDisplay: the training loss and validation curves of a fit."""

from typing import TYPE_CHECKING

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._typing import Any, ArrayLike

if TYPE_CHECKING:
    from ._base import BaseBP


def check_matplotlib_support(caller):
    """Raise an ImportError that says how to install matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "%s needs matplotlib: pip install fastbp[plot]" % caller
        ) from exc


class TrainingCurveDisplay:
    """Training loss and validation score per epoch, with the best epoch marked.

    Follows scikit-learn's Display convention: build it with
    :meth:`from_estimator`, or from the curves themselves and then call
    :meth:`plot`. Needs matplotlib (``pip install fastbp[plot]``).

    The training loss is drawn on the left axis. The validation score
    (recorded with ``early_stopping=True``: R² for a regressor, accuracy for a
    classifier) is drawn on a second y axis on the right. A dashed vertical
    line marks the best epoch: the best validation score when there is one,
    else the lowest training loss.

    Parameters
    ----------
    loss_curve : array-like of shape (n_epochs,)
        The training loss of each epoch (``loss_curve_``).
    validation_scores : array-like of shape (n_epochs,), default=None
        The validation score of each epoch (``validation_scores_``).
    best_epoch : int, default=None
        The epoch to mark, counted from 1; None picks it from the curves.
    estimator_name : str, default=None
        Used in the title.
    xlabel : str, default="epoch"
        The label of the x axis ("iteration" for L-BFGS).
    score_name : str, default=None
        The name of the validation score ("R²", "accuracy"), used in its axis
        label and legend; None means "score".

    Attributes
    ----------
    ax_ : matplotlib Axes
        The axes of the loss curve.
    validation_ax_ : matplotlib Axes or None
        The twin axes of the validation curve.
    figure_ : matplotlib Figure
        The figure holding the axes.
    loss_line_ : matplotlib Line2D
        The training loss curve.
    validation_line_ : matplotlib Line2D or None
        The validation curve.
    best_epoch_line_ : matplotlib Line2D
        The vertical line at the best epoch.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from fastbp import BPRegressor, TrainingCurveDisplay
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> y = X @ [1.0, -2.0, 0.5]
    >>> est = BPRegressor(hidden_layer_sizes=(8,), early_stopping=True,
    ...                   max_iter=300, random_state=0).fit(X, y)
    >>> display = TrainingCurveDisplay.from_estimator(est)
    >>> display.best_epoch == 1 + int(np.argmax(est.validation_scores_))
    True
    """

    def __init__(self, *, loss_curve: ArrayLike, validation_scores: ArrayLike | None = None,
                 best_epoch: int | None = None, estimator_name: str | None = None,
                 xlabel: str = "epoch", score_name: str | None = None) -> None:
        self.loss_curve = loss_curve
        self.validation_scores = validation_scores
        self.best_epoch = best_epoch
        self.estimator_name = estimator_name
        self.xlabel = xlabel
        self.score_name = score_name

    @classmethod
    def from_estimator(cls, estimator: "BaseBP", *, ax: Any = None, name: str | None = None,
                       **kwargs: Any) -> "TrainingCurveDisplay":
        """Plot the curves recorded by a fitted estimator.

        Parameters
        ----------
        estimator : BPRegressor, BPClassifier or Pipeline ending in one
            A fitted estimator with ``loss_curve_``. Its class's score (R²,
            accuracy) names the validation curve.
        ax : matplotlib Axes, default=None
            Where to draw; None makes a new figure.
        name : str, default=None
            Title; defaults to the estimator's class name.
        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : TrainingCurveDisplay
            The display, already plotted.
        """
        check_matplotlib_support("TrainingCurveDisplay.from_estimator")
        if hasattr(estimator, "steps"):
            estimator = estimator.steps[-1][1]
        check_is_fitted(estimator)
        curve = getattr(estimator, "loss_curve_", None)
        if curve is None or len(curve) == 0:
            raise ValueError(
                "%s has no loss_curve_ to plot; fit it first."
                % type(estimator).__name__
            )
        scores = getattr(estimator, "validation_scores_", None)
        display = cls(
            loss_curve=curve,
            validation_scores=scores if scores else None,
            estimator_name=name or type(estimator).__name__,
            xlabel="iteration" if getattr(estimator, "solver", None) == "lbfgs"
            else "epoch",
            score_name=(estimator._validation_score_name()
                        if hasattr(estimator, "_validation_score_name")
                        else getattr(type(estimator), "_score_name", None)),
        )
        return display.plot(ax=ax, **kwargs)

    def _best_epoch(self, loss, scores):
        if self.best_epoch is not None:
            return int(self.best_epoch)
        if scores is not None and np.isfinite(scores).any():
            return 1 + int(np.nanargmax(np.where(np.isfinite(scores), scores, np.nan)))
        finite = np.where(np.isfinite(loss), loss, np.nan)
        return 1 + int(np.nanargmin(finite)) if np.isfinite(finite).any() else 1

    def plot(self, ax: Any = None, *, name: str | None = None,
             loss_kwargs: dict[str, Any] | None = None,
             validation_kwargs: dict[str, Any] | None = None) -> "TrainingCurveDisplay":
        """Draw the curves.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Where to draw; None makes a new figure.
        name : str, default=None
            Title; defaults to ``estimator_name``.
        loss_kwargs, validation_kwargs : dict, default=None
            Passed to ``ax.plot`` for each curve.

        Returns
        -------
        self : TrainingCurveDisplay
            With the matplotlib objects in its attributes.
        """
        check_matplotlib_support("TrainingCurveDisplay.plot")
        import matplotlib.pyplot as plt

        loss = np.asarray(self.loss_curve, dtype=np.float64)
        scores = (None if self.validation_scores is None
                  else np.asarray(self.validation_scores, dtype=np.float64))
        if loss.ndim != 1 or loss.size == 0:
            raise ValueError("loss_curve must be a non-empty 1-D sequence.")
        if scores is not None and scores.shape != loss.shape:
            raise ValueError(
                "validation_scores has %d values but loss_curve has %d."
                % (scores.size, loss.size)
            )
        if ax is None:
            _, ax = plt.subplots()
        epochs = np.arange(1, loss.size + 1)
        self.best_epoch = best = self._best_epoch(loss, scores)

        style = {"color": "C0", "label": "training loss", **(loss_kwargs or {})}
        (self.loss_line_,) = ax.plot(epochs, loss, **style)
        ax.set_xlabel(self.xlabel)
        ax.set_ylabel("training loss")
        handles = [self.loss_line_]

        self.validation_ax_ = self.validation_line_ = None
        if scores is not None:
            self.validation_ax_ = ax.twinx()
            label = "validation %s" % (self.score_name or "score")
            style = {"color": "C1", "label": label, **(validation_kwargs or {})}
            (self.validation_line_,) = self.validation_ax_.plot(epochs, scores, **style)
            self.validation_ax_.set_ylabel(label)
            handles.append(self.validation_line_)

        self.best_epoch_line_ = ax.axvline(
            best, color="0.3", linestyle="--", linewidth=1,
            label="best %s (%d)" % (self.xlabel, best),
        )
        handles.append(self.best_epoch_line_)
        # On the top axes, so that no curve is drawn over it.
        (self.validation_ax_ or ax).legend(handles=handles, loc="center right")
        title = name or self.estimator_name
        if title:
            ax.set_title(title)
        self.ax_ = ax
        self.figure_ = ax.figure
        return self
