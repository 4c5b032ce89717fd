# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Per-epoch reporting: verbose >= 2 progress, and sklearn.callback support.

The estimator's epoch loop talks to one ``EpochReporter`` per call of ``fit`` or
``partial_fit``: ``begin_epoch()`` before an epoch, ``end_epoch(...)`` after its
bookkeeping (a True return asks the loop to stop), ``close()`` at the end.
"""

import contextlib
import sys
import time

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


class EpochReporter:
    """Report the epochs of one training call.

    Parameters
    ----------
    estimator : BPRegressor
        The estimator being trained.
    n_train : int
        Training rows per epoch (for samples/s).
    max_epochs : int
        The most epochs this call may run.
    """

    def __init__(self, estimator, n_train, max_epochs):
        self.estimator = estimator
        self.n_train = n_train
        self.verbose = int(estimator.verbose)
        self.context = None
        self.epoch_context = None
        if getattr(estimator, "_skl_callbacks", None) and hasattr(
            estimator, "_init_callback_context"
        ):
            self.context = estimator._init_callback_context(
                task_name="fit", max_subtasks=max_epochs
            )
        self.started = None

    def begin_epoch(self):
        self.started = time.perf_counter()
        if self.context is not None:
            self.epoch_context = self.context.subcontext(task_name="epoch")
            self.epoch_context.call_on_fit_task_begin(estimator=self.estimator)

    def end_epoch(self, loss, validation_score):
        """Report the finished epoch; return True to stop training."""
        est = self.estimator
        seconds = max(time.perf_counter() - self.started, 1e-12)
        if self.verbose >= 2:
            line = "epoch %d  loss %.6g" % (est.n_iter_, loss)
            if validation_score is not None:
                line += "  validation R2 %.4f" % validation_score
            line += "  %.0f samples/s" % (self.n_train / seconds)
            print(line, file=sys.stdout, flush=True)
        if self.epoch_context is None:
            return False
        return bool(
            self.epoch_context.call_on_fit_task_end(
                estimator=est,
                metadata={"loss": loss, "validation_score": validation_score},
                reconstruction_attributes=_fitted_state(est),
            )
        )

    def close(self):
        pass


def _fitted_state(est):
    """The attributes a callback needs to rebuild a model that can predict."""
    state = {
        name: getattr(est, name)
        for name in ("n_layers_", "n_outputs_", "out_activation_", "n_features_in_",
                     "n_iter_", "t_", "loss_")
        if hasattr(est, name)
    }
    state["coefs_"] = [c.copy() for c in est.coefs_]
    state["intercepts_"] = [b.copy() for b in est.intercepts_]
    if hasattr(est, "feature_names_in_"):
        state["feature_names_in_"] = est.feature_names_in_
    return state
