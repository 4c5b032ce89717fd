# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Per-epoch reporting: verbose >= 2 progress, and sklearn.callback support.

The estimator's epoch loop talks to one ``EpochReporter`` per call of ``fit`` or
``partial_fit``: ``begin_epoch()`` before an epoch, ``end_epoch(...)`` after its
bookkeeping (a True return asks the loop to stop), ``close()`` at the end, also
when the loop ends by an exception.

- ``verbose >= 2`` shows a live bar (tqdm, when installed) with the epoch, the
  loss, the validation score (named by the estimator's ``_score_name``: R²,
  accuracy) and samples/s, or else prints one plain line per
  epoch. A call of a single epoch (``partial_fit``) always prints a line: a bar
  that is full at once tells nothing.
- With scikit-learn's experimental ``sklearn.callback`` API (1.9+), ``fit`` is
  the root task and every epoch is one subtask, so ``ProgressBar`` draws one
  bar per fit, ``ScoringMonitor`` scores the model after every epoch, and any
  callback whose ``on_fit_task_end`` returns True stops training after that
  epoch.
"""

import contextlib
import sys
import time

import numpy as np

try:  # scikit-learn >= 1.9 (experimental API)
    from sklearn.callback import CallbackSupportMixin as CallbackSupport
    from sklearn.callback._callback_support import callback_management_context
except ImportError:  # pragma: no cover - older scikit-learn

    class CallbackSupport:
        """Stand-in when the installed scikit-learn has no sklearn.callback."""

    callback_management_context = None


def callback_scope(estimator):
    """Context that tears the estimator's callbacks down when a call ends."""
    if callback_management_context is None:
        return contextlib.nullcontext()
    return callback_management_context(estimator)


def _progress_bar(total, desc):
    """A tqdm bar on stderr, or None when tqdm is not installed."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="epoch", file=sys.stderr,
                dynamic_ncols=True, leave=True)


class EpochReporter:
    """Report the epochs of one training call.

    Parameters
    ----------
    estimator : BPRegressor or BPClassifier
        The estimator being trained.
    n_train : int
        Training rows per epoch (for samples/s).
    max_epochs : int
        The most epochs this call may run.
    X, y : ndarray or None, default=None
        The training data, handed to the callbacks (``ScoringMonitor`` scores
        the model on them after every epoch).
    sample_weight : ndarray or None, default=None
        Handed to the callbacks as metadata (scorers weight their score by it).
    """

    def __init__(self, estimator, n_train, max_epochs, X=None, y=None,
                 sample_weight=None):
        self.estimator = estimator
        self.n_train = n_train
        self.verbose = int(estimator.verbose)
        if y is not None and y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]  # the shape predict gives, for scorers
        self.X, self.y = X, y
        if X is not None and getattr(estimator, "_skl_callbacks", None):
            self.X = _with_feature_names(estimator, X)
        self.metadata = None if sample_weight is None else {
            "sample_weight": sample_weight
        }
        self.max_epochs = max_epochs
        # Plain ASCII for terminals: "R2", "accuracy".
        name = getattr(estimator, "_validation_score_name", None)
        name = name() if name else getattr(type(estimator), "_score_name", "score")
        self.score_name = name.replace("²", "2")
        self.n_begun = 0
        self.started = None
        self.bar = None
        if self.verbose >= 2 and max_epochs > 1:
            self.bar = _progress_bar(max_epochs, type(estimator).__name__)
        self.context = None
        self.epoch_context = None
        if getattr(estimator, "_skl_callbacks", None) and hasattr(
            estimator, "_init_callback_context"
        ):
            self.context = estimator._init_callback_context(
                task_name="fit", max_subtasks=max_epochs
            )
            self.context.call_on_fit_task_begin(
                estimator=estimator, X=self.X, y=self.y, metadata=self.metadata
            )

    def begin_epoch(self):
        """Start timing an epoch and open its callback task."""
        self.started = time.perf_counter()
        # A solver that opens the next epoch before it knows whether it will run
        # one (L-BFGS's callback) must not open more tasks than announced.
        if self.context is not None and self.n_begun < self.max_epochs:
            self.n_begun += 1
            self.epoch_context = self.context.subcontext(task_name="epoch")
            self.epoch_context.call_on_fit_task_begin(
                estimator=self.estimator, X=self.X, y=self.y, metadata=self.metadata
            )

    def end_epoch(self, loss, validation_score):
        """Report the finished epoch; return True to stop training."""
        est = self.estimator
        rate = self.n_train / max(time.perf_counter() - self.started, 1e-12)
        if self.verbose >= 2:
            # Count every epoch the model has trained (partial_fit, warm start).
            epoch = len(getattr(est, "loss_curve_", None) or ()) or est.n_iter_
            self._show(epoch, loss, validation_score, rate)
        context, self.epoch_context = self.epoch_context, None
        if context is None:
            return False
        return bool(
            context.call_on_fit_task_end(
                estimator=est,
                X=self.X,
                y=self.y,
                metadata=self.metadata,
                reconstruction_attributes=lambda: _fitted_state(est),
            )
        )

    def _show(self, epoch, loss, validation_score, rate):
        if self.bar is not None:
            postfix = "loss=%.4g" % loss
            if validation_score is not None:
                postfix += ", val_%s=%.4f" % (self.score_name.lower(), validation_score)
            postfix += ", %.3g samples/s" % rate
            self.bar.set_postfix_str(postfix, refresh=False)
            self.bar.update(1)
            return
        line = "epoch %d  loss %.6g" % (epoch, loss)
        if validation_score is not None:
            line += "  validation %s %.4f" % (self.score_name, validation_score)
        line += "  %.0f samples/s" % rate
        print(line, file=sys.stdout, flush=True)

    def close(self):
        """Close the bar and the callback tasks, however the loop ended."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.context is None:
            return
        context, self.context = self.context, None
        if self.epoch_context is not None:
            # An epoch cut short (divergence, interruption): end its task empty,
            # as its work was undone.
            self.epoch_context.call_on_fit_task_end(estimator=self.estimator)
            self.epoch_context = None
        # No fitted model for the whole task: with early stopping the best
        # weights are only put back after the loop; the epochs' models are the
        # ones to score.
        context.call_on_fit_task_end(estimator=self.estimator)


def _with_feature_names(estimator, X):
    """X as a DataFrame view with the fitted column names, when it had them.

    The data reach the reporter validated into an array; a scorer calling
    predict on it would warn, at every epoch, that the names are gone.
    """
    names = getattr(estimator, "feature_names_in_", None)
    if names is None or not isinstance(X, np.ndarray):
        return X
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - names came from polars
        return X
    return pd.DataFrame(X, columns=names, copy=False)


def _fitted_state(est):
    """The attributes a callback needs to rebuild a model that can predict:
    the public fitted state the class declares, and what it derives from it
    (a classifier's label binarizer). Arrays and lists are copied, so later
    epochs do not change a snapshot."""
    cls = type(est)
    names = [name for name in cls._fitted_attributes if not name.startswith("_")]
    names += list(getattr(cls, "_derived_attributes", ()))
    state = {}
    for name in names:
        if not hasattr(est, name):
            continue
        value = getattr(est, name)
        if isinstance(value, list):
            value = [v.copy() if isinstance(v, np.ndarray) else v for v in value]
        state[name] = value
    return state
