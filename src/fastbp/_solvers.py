# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""The full-batch solvers (L-BFGS, iRPROP-) and the epoch checkpoint of the
stochastic ones.

Both work on a ``BaseBP`` estimator through its public fitted attributes and
the compiled core; neither knows whether the network regresses or classifies.
"""

import warnings

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

from . import _core
from ._enums import ACTIVATIONS
from ._progress import EpochReporter
from ._threads import blas_threads, blas_threads_for, resolve_n_jobs

# Rows per block of a full-batch (lbfgs) evaluation: large enough for GEMM speed,
# small enough that the workspace stays a few MB however many rows there are.
LBFGS_BLOCK = 2048

DIVERGED = (
    "Solver produced non-finite parameter weights. The input data may contain "
    "large values and need to be preprocessed."
)
DIVERGED_ADVICE = "Scale X (for example with StandardScaler) or lower learning_rate_init."


def as_rows(X):
    """The kernels' view of validated X: dense C-contiguous or CSR."""
    if sp.issparse(X):
        X = X.tocsr()
        return _core.Rows.csr(X.data, X.indices, X.indptr, X.shape[1])
    return _core.Rows(X)


def fit_lbfgs(est, X, Y, sample_weight, callback_data):
    """Full-batch L-BFGS-B over one flat parameter vector in X's dtype.

    SciPy's optimizer works in float64; the network does not: each evaluation
    copies the float64 point into the (float32 or float64) parameters, and one
    compiled call returns the loss and the gradient. Ctrl-C keeps the last
    completed iteration, as the stochastic solvers keep the last completed epoch.
    """
    theta, coefs, intercepts, rows, trainer = _full_batch_trainer(est, X)
    grad = np.empty_like(theta)

    def loss_and_grad(x):
        np.copyto(theta, x, casting="unsafe")
        loss = _core.loss_grad(trainer, rows, Y, grad, sample_weight)
        return loss, grad.astype(np.float64)

    best = {"loss": np.inf, "x": None}
    last = {"loss": None, "x": theta.astype(np.float64)}
    reporter = EpochReporter(est, X.shape[0], est.max_iter, **callback_data)
    est.n_iter_ = 0

    def iteration_done(intermediate_result):
        loss = float(intermediate_result.fun)
        last["loss"], last["x"] = loss, np.array(intermediate_result.x)
        est.n_iter_ += 1
        est.loss_curve_.append(loss)
        if np.isfinite(loss) and loss < best["loss"]:
            best["loss"], best["x"] = loss, np.array(intermediate_result.x)
        if est.verbose == 1:
            print("Iteration %d, loss = %.8f" % (est.n_iter_, loss))
        if reporter.end_epoch(loss, None):
            raise StopIteration
        if est._reached_stop_loss(loss):
            raise StopIteration
        reporter.begin_epoch()

    x0 = theta.astype(np.float64)
    reporter.begin_epoch()
    try:
        blas = (blas_threads_for(trainer.layer_units, trainer.max_batch)
                if est.n_jobs is None else blas_threads(resolve_n_jobs(est.n_jobs)))
        with blas:
            result = scipy.optimize.minimize(
                loss_and_grad,
                x0,
                method="L-BFGS-B",
                jac=True,
                callback=iteration_done,
                options={
                    "maxfun": est.max_fun,
                    "maxiter": est.max_iter,
                    "gtol": est.tol,
                },
            )
    except KeyboardInterrupt:
        warnings.warn("Training interrupted by user.")
        np.copyto(theta, last["x"], casting="unsafe")
        if last["loss"] is not None:
            est.loss_ = last["loss"]
        est.coefs_ = [c.copy() for c in coefs]
        est.intercepts_ = [b.copy() for b in intercepts]
        return
    finally:
        reporter.close()
    x, loss = result.x, float(result.fun)
    if not (np.isfinite(loss) and np.isfinite(x).all()):
        if best["x"] is None:
            raise ValueError("%s %s" % (DIVERGED, DIVERGED_ADVICE))
        warnings.warn(
            "L-BFGS reached non-finite values; kept its best finite iterate. %s"
            % DIVERGED_ADVICE,
            ConvergenceWarning,
        )
        x, loss = best["x"], best["loss"]
    elif not result.success and result.status != 99:
        # status 99: stopped by a callback on purpose.
        warnings.warn(
            "lbfgs failed to converge after %d iteration(s) (status=%d): %s. "
            "Increase max_iter or max_fun, or scale the data."
            % (result.nit, result.status, result.message),
            ConvergenceWarning,
        )
    np.copyto(theta, x, casting="unsafe")
    est.n_iter_ = min(int(result.nit), est.max_iter)
    est.loss_ = loss
    est.coefs_ = [c.copy() for c in coefs]
    est.intercepts_ = [b.copy() for b in intercepts]
    if est.loss_curve_:
        est.best_loss_ = float(np.nanmin(est.loss_curve_ + [np.inf]))


def _full_batch_trainer(est, X):
    """The parameters as views of one flat vector, and a Trainer over them."""
    est._adopt_dtype(X.dtype)
    shapes = [c.shape for c in est.coefs_] + [b.shape for b in est.intercepts_]
    sizes = [int(np.prod(shape)) for shape in shapes]
    theta = np.concatenate([p.ravel() for p in est.coefs_ + est.intercepts_])
    views = np.split(theta, np.cumsum(sizes)[:-1])
    params = [v.reshape(shape) for v, shape in zip(views, shapes)]
    n_layers = len(est.coefs_)
    coefs, intercepts = params[:n_layers], params[n_layers:]
    trainer = _core.Trainer(
        coefs,
        intercepts,
        [],
        min(X.shape[0], LBFGS_BLOCK),
        ACTIVATIONS["identity"],  # per layer: the options' activations
        ACTIVATIONS[est.out_activation_],
        est._core_loss(),
        _core.Solver.SGD,  # unused: loss_grad takes no optimizer step
        alpha=float(est.alpha),
        dense_input=not sp.issparse(X),
        out_groups=est._output_groups(),
        **est._trainer_options(n_layers - 1),
    )
    return theta, coefs, intercepts, as_rows(X), trainer


def fit_rprop(est, X, Y, sample_weight, callback_data):
    """iRPROP- (Igel and Huesken 2000), full batch, as the FANN library trains.

    Each iteration is one compiled full-batch loss and gradient evaluation and
    one compiled sign-based step. Stops on the training loss as the stochastic
    solvers do (``tol``, ``n_iter_no_change``), or after ``max_iter``
    iterations; Ctrl-C keeps the last completed iteration.
    """
    theta, coefs, intercepts, rows, trainer = _full_batch_trainer(est, X)
    grad = np.empty_like(theta)
    prev_grad = np.zeros_like(theta)
    step = np.full_like(theta, est.rprop_delta_init)
    last = theta.copy()
    n = X.shape[0]
    reporter = EpochReporter(est, n, est.max_iter, **callback_data)
    est.n_iter_ = 0

    def evaluate():
        loss = float(_core.loss_grad(trainer, rows, Y, grad, sample_weight))
        return loss if np.isfinite(loss) and np.isfinite(grad).all() else np.nan

    def keep(params):
        np.copyto(theta, params)
        est.coefs_ = [c.copy() for c in coefs]
        est.intercepts_ = [b.copy() for b in intercepts]

    try:
        blas = (blas_threads_for(trainer.layer_units, trainer.max_batch)
                if est.n_jobs is None else blas_threads(resolve_n_jobs(est.n_jobs)))
        with blas:
            loss = evaluate()
            for _ in range(est.max_iter):
                reporter.begin_epoch()
                if not np.isfinite(loss):
                    break
                np.copyto(last, theta)
                _core.rprop_update(theta, grad, prev_grad, step,
                                   float(est.rprop_increase_factor),
                                   float(est.rprop_decrease_factor),
                                   float(est.rprop_delta_min),
                                   float(est.rprop_delta_max))
                loss = evaluate()
                est.n_iter_ += 1
                est.t_ += n
                est.loss_curve_.append(loss)
                if not np.isfinite(loss):
                    break
                est.loss_ = loss
                if est.verbose == 1:
                    print("Iteration %d, loss = %.8f" % (est.n_iter_, loss))
                if reporter.end_epoch(loss, None) or est._reached_stop_loss(loss):
                    break
                if loss > est.best_loss_ - est.tol:
                    est._no_improvement_count += 1
                else:
                    est._no_improvement_count = 0
                est.best_loss_ = min(est.best_loss_, loss)
                if est._no_improvement_count > est.n_iter_no_change:
                    if est.verbose:
                        print("Training loss did not improve more than tol=%f for %d "
                              "consecutive epochs. Stopping." % (est.tol,
                                                                 est.n_iter_no_change))
                    break
            else:
                warnings.warn(
                    "rprop: Maximum iterations (%d) reached and the optimization "
                    "hasn't converged yet." % est.max_iter, ConvergenceWarning)
    except KeyboardInterrupt:
        warnings.warn("Training interrupted by user.")
        keep(last)
        return
    finally:
        reporter.close()
    if not np.isfinite(loss):
        if est.n_iter_ <= 1:
            raise ValueError("%s %s" % (DIVERGED, DIVERGED_ADVICE))
        warnings.warn("rprop reached non-finite values; kept the last finite "
                      "iterate. %s" % DIVERGED_ADVICE, ConvergenceWarning)
        keep(last)
        return
    keep(theta)


class Checkpoint:
    """The state of an estimator at the start of an epoch, to go back to.

    The trainer copies parameters and optimizer moments aside in compiled code;
    counters and curves are remembered by value and by length.
    """

    # Remembered by reference: the best weights are replaced, never changed.
    _SCALARS = ("t_", "n_iter_", "best_loss_", "best_validation_score_",
                "_no_improvement_count", "_best_coefs", "_best_intercepts")

    def __init__(self, est, trainer):
        self.est = est
        self.trainer = trainer

    def save(self):
        est = self.est
        self.trainer.snapshot()
        self.scalars = {name: getattr(est, name) for name in self._SCALARS}
        self.loss = getattr(est, "loss_", None)
        self.optimizer = {k: est._optimizer_state[k] for k in ("t", "learning_rate")}
        self.curve = len(est.loss_curve_)
        val_curve = getattr(est, "validation_loss_curve_", None)
        self.val_curve = None if val_curve is None else len(val_curve)
        scores = est.validation_scores_
        self.scores = None if scores is None else len(scores)

    def restore(self, keep_curves):
        """Put back the weights and optimizer; with keep_curves, keep the record
        of the epoch that is undone (its loss in loss_curve_, n_iter_)."""
        est = self.est
        self.trainer.restore()
        est._optimizer_state.update(self.optimizer)
        est.t_ = self.scalars["t_"]
        if keep_curves:
            return
        for name, value in self.scalars.items():
            setattr(est, name, value)
        if self.loss is None:
            est.__dict__.pop("loss_", None)
        else:
            est.loss_ = self.loss
        del est.loss_curve_[self.curve:]
        if self.val_curve is not None:
            del est.validation_loss_curve_[self.val_curve:]
        else:
            est.__dict__.pop("validation_loss_curve_", None)
        if self.scores is not None:
            del est.validation_scores_[self.scores:]
