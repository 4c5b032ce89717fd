# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""BPRegressor: a backpropagation network regressor over the Cython core."""

import contextlib
import threading
import warnings
from numbers import Integral, Real

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
from threadpoolctl import ThreadpoolController

from . import _core
from ._persist import register
from ._progress import CallbackSupport, EpochReporter, callback_scope

_STOCHASTIC_SOLVERS = ("sgd", "adam")
_LOSSES = {"squared_error": _core.Loss.SQUARED_ERROR, "poisson": _core.Loss.POISSON}
# Rows per block of a full-batch (lbfgs) evaluation: large enough for GEMM speed,
# small enough that the workspace stays a few MB however many rows there are.
_LBFGS_BLOCK = 2048
_ACTIVATIONS = {
    "identity": _core.Activation.IDENTITY,
    "logistic": _core.Activation.LOGISTIC,
    "tanh": _core.Activation.TANH,
    "relu": _core.Activation.RELU,
    "exp": _core.Activation.EXP,
}
_DIVERGED = (
    "Solver produced non-finite parameter weights. The input data may contain "
    "large values and need to be preprocessed."
)
_DIVERGED_ADVICE = "Scale X (for example with StandardScaler) or lower learning_rate_init."
# Below this many multiply-adds per GEMM, BLAS threads cost more than they give
# (measured on 2 cores: diabetes-sized nets train ~2x faster on one thread).
_SMALL_GEMM = 1 << 20
# From this many rows on, predict pins BLAS like fit does for small networks.
_PIN_PREDICT_ROWS = 4096


class _OneBlasThread:
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


_one_blas_thread = _OneBlasThread()


def _is_small(layer_units, batch_size):
    """Whether every GEMM of a batch is below _SMALL_GEMM multiply-adds."""
    largest = max(batch_size * a * b for a, b in zip(layer_units, layer_units[1:]))
    return largest < _SMALL_GEMM


def _threads_for(layer_units, batch_size):
    """Threads to split each minibatch over: all of OpenMP's budget for large
    layers (about 2**20 multiply-adds per GEMM and up), one for small ones,
    whose batches are too short to share."""
    if _is_small(layer_units, batch_size):
        return 1
    return max(1, min(_core.max_threads(), batch_size))


def _blas_threads_for(layer_units, batch_size, n_threads=1):
    """A context that pins BLAS to one thread when its GEMMs are small or when
    fastbp's own threads already share the batch."""
    if n_threads == 1 and not _is_small(layer_units, batch_size):
        return contextlib.nullcontext()
    return _one_blas_thread()


class BPRegressor(CallbackSupport, RegressorMixin, BaseEstimator):
    """Multi-layer perceptron regressor trained by backpropagation, in Cython.

    A line-for-line replacement for :class:`sklearn.neural_network.MLPRegressor`:
    the same parameters with the same defaults, the same fitted attributes, and,
    for the same ``random_state``, the same initial weights, shuffles,
    early-stopping split and results. The whole minibatch loop of an epoch runs
    in compiled code with the GIL released.

    Parameters
    ----------
    loss : {'squared_error', 'poisson'}, default='squared_error'
        The loss: half the squared error, or half the Poisson deviance with an
        ``exp`` output activation (y must be >= 0).

    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element is the number of neurons in the ith hidden layer. ``()``
        means no hidden layer: a single layer of neurons ``z = X @ w + b``, the
        textbook neuron trained by gradient descent on the squared error.

    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Activation of the hidden layers.

    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        The weight optimizer. ``'lbfgs'`` is SciPy's L-BFGS-B over full-batch
        loss and gradient evaluations computed in compiled code, in the data's
        dtype (float32 stays float32).

    alpha : float, default=0.0001
        Strength of the L2 penalty on the weights (not the intercepts). As in
        scikit-learn, it is divided by the number of samples in the batch.

    batch_size : int or 'auto', default='auto'
        Minibatch size; ``'auto'`` means ``min(200, n_samples)``.

    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Learning-rate schedule for ``solver='sgd'``.

    learning_rate_init : float, default=0.001
        The initial learning rate (sgd and adam).

    power_t : float, default=0.5
        Exponent of the inverse-scaling schedule.

    max_iter : int, default=200
        Maximum number of epochs.

    shuffle : bool, default=True
        Whether to shuffle the samples in each epoch.

    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation, the early-stopping split and the
        shuffles, drawn in the same order as scikit-learn draws them.

    tol : float, default=1e-4
        Improvement threshold for the stopping rule.

    verbose : bool or int, default=False
        1 (or True): one line per epoch, as scikit-learn prints it. 2: a live
        progress bar with the loss, validation score and samples/s (tqdm when
        installed, else one plain line per epoch).

    warm_start : bool, default=False
        Reuse the previous weights in ``fit``; the optimizer state starts afresh,
        as in scikit-learn.

    momentum : float, default=0.9
        Momentum of ``solver='sgd'``.

    nesterovs_momentum : bool, default=True
        Use Nesterov's momentum with ``solver='sgd'``.

    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data, stop when its R² stops
        improving and restore the best weights.

    validation_fraction : float, default=0.1
        Fraction of the training data held out for early stopping.

    beta_1, beta_2, epsilon : float, defaults 0.9, 0.999, 1e-8
        Adam's moment decay rates and numerical-stability term.

    n_iter_no_change : int or np.inf, default=10
        Number of epochs without ``tol`` improvement before stopping.

    max_fun : int, default=15000
        Maximum number of loss evaluations for ``solver='lbfgs'``.

    Attributes
    ----------
    coefs_ : list of ndarray of shape (n_in, n_out)
        The weight matrix of each layer.
    intercepts_ : list of ndarray of shape (n_out,)
        The bias vector of each layer.
    loss_ : float
        The training loss of the last completed epoch.
    best_loss_ : float or None
        The lowest training loss reached (None with early stopping).
    loss_curve_ : list of float
        The training loss of each epoch.
    validation_scores_ : list of float or None
        The validation R² of each epoch (None without early stopping).
    best_validation_score_ : float or None
        The best validation R² (None without early stopping).
    t_ : int
        The number of training samples seen by the optimizer.
    n_iter_ : int
        The number of epochs run by the last call of ``fit`` or ``partial_fit``.
    n_layers_ : int
        Number of layers, input and output included.
    n_outputs_ : int
        Number of outputs.
    out_activation_ : str
        The output activation: ``'identity'``, or ``'exp'`` for Poisson.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen during fit, when X has string column names.

    Notes
    -----
    Deliberate differences from scikit-learn's ``MLPRegressor`` (1.9):

    - **Multi-output loss.** With several outputs, scikit-learn reports the
      squared error averaged over the outputs while it follows the gradient of the
      error summed over them (scikit-learn issue #8349). ``BPRegressor`` follows
      the same gradient, so it trains the same weights, and reports the loss that
      gradient belongs to: summed over outputs. ``loss_``, ``loss_curve_`` and
      ``best_loss_`` are therefore larger by about ``n_outputs`` (exactly so with
      ``alpha=0``), and the ``tol`` stopping rule on the training loss sees those
      values.
    - **Tags.** ``__sklearn_tags__`` says ``multi_output=True``; scikit-learn's
      says False although its estimator fits several outputs.
    - **float32** data trains in float32 throughout, including the targets (which
      scikit-learn keeps in float64, mixing precisions in the last layer).
    - **Divergence.** When an epoch's loss or weights become non-finite (or the
      sum of the squared weights overflows), training stops, the weights and
      optimizer state go back to the previous epoch and a ``ConvergenceWarning``
      says so; the diverged epoch's loss (non-finite, or huge) stays in
      ``loss_curve_``. If the first epoch of a call diverges, the call raises
      ``ValueError`` and leaves the estimator as it was before the call.
      scikit-learn instead goes on training on NaN and then raises, leaving
      NaN weights behind.
    - **Early stopping and warm start.** After an early-stopped fit,
      scikit-learn's ``coefs_`` are the very arrays it keeps as the best weights,
      so a warm-started fit that never beats the old best score trains them in
      place and ends with its last epoch. ``BPRegressor`` keeps copies and ends
      with the best weights, as early stopping promises.
    - **Callbacks.** scikit-learn 1.9's experimental ``sklearn.callback`` API
      works (``set_callbacks``, ``ProgressBar``, ``ScoringMonitor``, stopping
      from ``on_fit_task_end``): ``fit`` is one task and each epoch (or L-BFGS
      iteration) one subtask. ``MLPRegressor`` does not support it.
    - **Threads.** Networks whose per-batch GEMMs reach about 2**20
      multiply-adds split each minibatch across OpenMP's threads (limit them
      with ``OMP_NUM_THREADS`` or ``threadpoolctl``); the gradients are summed
      in thread order, so a fit is bitwise reproducible for a given number of
      threads. Smaller networks run on one thread with BLAS pinned to one
      thread, and release the GIL, so many of them train in parallel threads.
    - **partial_fit** exists only for the stochastic solvers (scikit-learn's
      regressor offers it with ``'lbfgs'`` and runs a full fit).
    - **Sample weights** mean the weighted loss ``sum_i w_i loss_i / sum_i w_i``
      for every solver. Full-batch training (lbfgs, or ``batch_size`` at least
      the number of rows) gives the same model for a weight of 2 as for a
      duplicated row, and for a weight of 0 as for a dropped row. In minibatches,
      each batch's gradient is divided by ``n_batch * mean(w)`` over the training
      rows, so every batch is an unbiased estimate of that weighted gradient.
      scikit-learn 1.9 instead divides by the batch's own weight sum, so a batch
      of heavy rows counts no more than a batch of light ones and weighting
      stops being equivalent to duplication; with minibatches, weighted fits of
      the two libraries therefore differ. As with duplicated rows, the L2
      penalty is relative to the total weight: weights ``c`` on every row give
      the model that ``alpha / c`` gives without weights (the same model when
      ``c = 1`` or ``alpha = 0``). Negative, NaN or all-zero weights raise
      ``ValueError``.
    - **L-BFGS** keeps float32 data in float32 (scikit-learn upcasts the whole
      network to float64), fills ``loss_curve_`` with the loss of each
      iteration and prints it with ``verbose=True`` (scikit-learn with SciPy
      >= 1.15 does neither).
    - **Poisson** checks that y >= 0 and says so in the error.
    - **Mixed dtypes.** When ``partial_fit`` or a warm-started ``fit`` receives
      data of another floating dtype than the model, the parameters are cast to
      the data's dtype and training goes on in it.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbp import BPRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, size=(200, 1))
    >>> y = 2 * X[:, 0] + 0.01 * rng.standard_normal(200)
    >>> neuron = BPRegressor(hidden_layer_sizes=(), solver="sgd", momentum=0.0,
    ...                      learning_rate_init=0.5, batch_size=200, alpha=0.0,
    ...                      tol=1e-8, n_iter_no_change=20, max_iter=500,
    ...                      random_state=0).fit(X, y)
    >>> w, b = neuron.coefs_[0][0, 0], neuron.intercepts_[0][0]
    >>> round(float(w), 2), abs(float(b)) < 0.01
    (2.0, True)
    """

    # The fitted state, in the order fastbp's model files store it. Anything
    # else in __dict__ is drawn afresh by every fit (``_random_state``) or
    # belongs to the running process (callbacks).
    _fitted_attributes = (
        "n_features_in_",
        "feature_names_in_",
        "n_outputs_",
        "n_layers_",
        "out_activation_",
        "coefs_",
        "intercepts_",
        "n_iter_",
        "t_",
        "loss_",
        "best_loss_",
        "loss_curve_",
        "validation_scores_",
        "best_validation_score_",
        "_best_coefs",
        "_best_intercepts",
        "_no_improvement_count",
        "_optimizer_state",
    )

    _parameter_constraints: dict = {
        "loss": [StrOptions({"squared_error", "poisson"})],
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [
            Interval(Integral, 1, None, closed="left"),
            Options(Real, {np.inf}),
        ],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        loss="squared_error",
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
    ):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun

    # ------------------------------------------------------------------ API

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the network to data X and target(s) y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data. CSR and CSC input is never densified as a whole.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative sample weights. See the Notes for their exact meaning.

        Returns
        -------
        self : BPRegressor
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _check_solver(self):
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError(
                "partial_fit is only available for stochastic optimizers. "
                "%s is not stochastic." % self.solver
            )
        return True

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Update the model with one epoch over X and y.

        The optimizer state (Adam moments, SGD velocities and learning rate)
        carries over from one call to the next.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative sample weights.

        Returns
        -------
        self : BPRegressor
            The updated estimator.
        """
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Predict with the network.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predicted values, in X's floating dtype.
        """
        if not self._plain_rows(X):
            check_is_fitted(self)
            X = validate_data(
                self,
                X,
                reset=False,
                accept_sparse=["csr", "csc"],
                dtype=(np.float64, np.float32),
                order="C",
            )
        y_pred = self._forward(X)
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred

    def _plain_rows(self, X):
        """Whether X needs none of validate_data's work: a fitted model without
        feature names, and a finite, C-contiguous float array of the right width.

        Single-row predictions are dominated by validation; this is the fast
        path that gives them the same checks at a fraction of the cost.
        """
        return (
            type(X) is np.ndarray
            and "coefs_" in self.__dict__
            and "feature_names_in_" not in self.__dict__
            and X.ndim == 2
            and X.shape[0] > 0
            and X.shape[1] == self.n_features_in_
            and (X.dtype == np.float64 or X.dtype == np.float32)
            and X.flags.c_contiguous
            and bool(np.isfinite(X).all())
        )

    def score(self, X, y, sample_weight=None):
        """Return the coefficient of determination R² of the prediction.

        As :meth:`sklearn.base.RegressorMixin.score`, but computed on targets
        and predictions rescaled by their largest magnitude when that is huge,
        so that targets near the float limit (1e300) do not overflow to NaN.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Test samples.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            True values for X.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            R² of ``self.predict(X)`` against ``y``.
        """
        from sklearn.metrics import r2_score

        y_pred = self.predict(X)
        y_true = np.asarray(y)
        if y_true.dtype.kind in "fiu" and y_true.size and np.isfinite(y_true).all():
            # R² does not change when y and the predictions share a scale.
            big = max(np.abs(y_true).max(), np.abs(y_pred).max())
            if np.isfinite(big) and big > 1e100:
                y, y_pred = y_true / big, y_pred / big
        return r2_score(y, y_pred, sample_weight=sample_weight)

    def save(self, path):
        """Save the fitted model to ``path`` in fastbp's pickle-free format.

        See :func:`fastbp.load`.
        """
        from ._persist import save

        return save(self, path)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = False
        return tags

    # ------------------------------------------------------------ internals

    def _forward(self, X):
        """Forward pass of validated X (C-contiguous, CSR/CSC, or the kernels'
        ``Rows`` view of either), in X's dtype."""
        rows = X if isinstance(X, _core.Rows) else _rows(X)
        coefs, intercepts = self.coefs_, self.intercepts_
        if coefs[0].dtype != X.dtype:
            coefs = [np.ascontiguousarray(c, dtype=X.dtype) for c in coefs]
            intercepts = [np.ascontiguousarray(b, dtype=X.dtype) for b in intercepts]
        out = np.empty((X.shape[0], self.n_outputs_), dtype=X.dtype)
        pin = contextlib.nullcontext()
        if X.shape[0] >= _PIN_PREDICT_ROWS:
            # Many rows of a small network: one BLAS thread is faster, and the
            # pin's fixed cost is paid back. Few rows keep the fast path.
            units = [c.shape[0] for c in coefs] + [self.n_outputs_]
            block = min(X.shape[0], 65536 // max([1] + units[1:-1]))
            pin = _blas_threads_for(units, block)
        with pin:
            _core.predict(
                rows,
                coefs,
                intercepts,
                _ACTIVATIONS[self.activation],
                _ACTIVATIONS[self.out_activation_],
                out,
            )
        return out

    def _hidden_layers(self):
        sizes = self.hidden_layer_sizes
        if not hasattr(sizes, "__iter__"):
            sizes = [sizes]
        sizes = list(sizes)
        for size in sizes:
            if (
                isinstance(size, (bool, np.bool_))
                or not isinstance(size, (Integral, np.integer))
                or size <= 0
            ):
                raise ValueError(
                    "hidden_layer_sizes must be > 0, got %s." % (sizes,)
                )
        return [int(s) for s in sizes]

    def _validate_input(self, X, y, reset):
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            y_numeric=True,
            dtype=(np.float64, np.float32),
            order="C",
            reset=reset,
        )
        if y.dtype.kind not in "biuf":
            raise ValueError(
                "y must hold real numbers; got an array of dtype %s." % y.dtype
            )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        y = np.ascontiguousarray(y, dtype=X.dtype)
        if np.isnan(y).any():
            raise ValueError("Input y contains NaN.")
        if not np.isfinite(y).all():
            raise ValueError("Input y contains infinity or a value too large for %r."
                             % y.dtype)
        if self.loss == "poisson" and (y < 0).any():
            raise ValueError(
                "loss='poisson' requires y >= 0; y has negative values."
            )
        if sp.issparse(X) and X.format != "csr":
            X = X.tocsr()
        return X, y

    def _fit(self, X, y, sample_weight, incremental):
        # A call that fails leaves the estimator as it was: attributes are put
        # back from this shallow copy, and arrays trained in place are restored
        # by the epoch checkpoint before the error propagates.
        before = dict(self.__dict__)
        try:
            with callback_scope(self):
                return self._fit_unguarded(X, y, sample_weight, incremental)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    def _fit_unguarded(self, X, y, sample_weight, incremental):
        hidden = self._hidden_layers()
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")

        first_pass = not hasattr(self, "coefs_") or (
            not self.warm_start and not incremental
        )
        X, y = self._validate_input(X, y, reset=first_pass)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(
                sample_weight, X, dtype=X.dtype, ensure_non_negative=True
            )
        n_features = X.shape[1]
        layer_units = [n_features] + hidden + [y.shape[1]]
        if not first_pass:
            fitted_units = [self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_]
            if fitted_units != layer_units:
                raise ValueError(
                    "The network has layer sizes %s but X, y and hidden_layer_sizes "
                    "ask for %s; fit again without warm_start to change them."
                    % (fitted_units, layer_units)
                )

            wanted = "exp" if self.loss == "poisson" else "identity"
            if self.out_activation_ != wanted:
                raise ValueError(
                    "loss=%r needs output activation %r but the model has %r; fit "
                    "again without warm_start to change the loss."
                    % (self.loss, wanted, self.out_activation_)
                )

        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(y, layer_units, X.dtype)
        else:
            self._switch_stopping_rule()
        if self.solver == "lbfgs":
            self._fit_lbfgs(X, y, sample_weight)
        else:
            self._fit_stochastic(X, y, sample_weight, incremental)
        return self

    def _initialize(self, y, layer_units, dtype):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = "exp" if self.loss == "poisson" else "identity"
        self.coefs_ = []
        self.intercepts_ = []
        for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:]):
            coef, intercept = self._init_coef(fan_in, fan_out, dtype)
            self.coefs_.append(coef)
            self.intercepts_.append(intercept)
        self._best_coefs = [c.copy() for c in self.coefs_]
        self._best_intercepts = [b.copy() for b in self.intercepts_]
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping and self.solver != "lbfgs":
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _switch_stopping_rule(self):
        """A warm start may turn early stopping on or off: start the records
        the new rule keeps (scikit-learn crashes on this)."""
        if self.solver == "lbfgs":
            return
        if self.early_stopping and self.validation_scores_ is None:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
            self._best_coefs = [c.copy() for c in self.coefs_]
            self._best_intercepts = [b.copy() for b in self.intercepts_]
            self._no_improvement_count = 0
        elif not self.early_stopping and self.best_loss_ is None:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self._no_improvement_count = 0

    def _init_coef(self, fan_in, fan_out, dtype):
        # Glorot uniform, drawn exactly as scikit-learn draws it.
        factor = 2.0 if self.activation == "logistic" else 6.0
        bound = np.sqrt(factor / (fan_in + fan_out))
        coef = self._random_state.uniform(-bound, bound, (fan_in, fan_out))
        intercept = self._random_state.uniform(-bound, bound, fan_out)
        return coef.astype(dtype, copy=False), intercept.astype(dtype, copy=False)

    def _adopt_dtype(self, dtype):
        """Make the parameters writable, C-contiguous arrays of ``dtype``."""

        def own(a):
            return np.require(a, dtype=dtype, requirements=["C", "W", "O"])

        self.coefs_ = [own(c) for c in self.coefs_]
        self.intercepts_ = [own(b) for b in self.intercepts_]
        state = getattr(self, "_optimizer_state", None)
        if state is not None:
            # A new dict, so that a failed call that restores __dict__ also gets
            # the old moments back.
            self._optimizer_state = {**state, "moments": [own(m) for m in state["moments"]]}

    def _new_optimizer_state(self):
        params = self.coefs_ + self.intercepts_
        n_moments = 2 if self.solver == "adam" else 1
        return {
            "solver": self.solver,
            "learning_rate": float(self.learning_rate_init),
            "t": 0,
            "moments": [np.zeros_like(p) for _ in range(n_moments) for p in params],
        }

    def _fit_stochastic(self, X, y, sample_weight, incremental):
        self._adopt_dtype(X.dtype)
        state = getattr(self, "_optimizer_state", None)
        if not incremental or state is None or state["solver"] != self.solver:
            state = self._optimizer_state = self._new_optimizer_state()

        if self.early_stopping:
            train_idx, val_idx = self._early_stopping_split(X.shape[0])
            val_weight = None if sample_weight is None else sample_weight[val_idx]
            # Rows once per fit: scoring every epoch then converts nothing.
            validation = (_rows(X[val_idx]), y[val_idx], val_weight)
            n_train = train_idx.shape[0]
        else:
            train_idx, validation = None, None
            n_train = X.shape[0]
        weights = None
        if sample_weight is not None:
            train_weight = sample_weight if train_idx is None else sample_weight[train_idx]
            mean_weight = float(np.mean(train_weight, dtype=np.float64))
            if not mean_weight > 0:
                raise ValueError(
                    "The training rows have zero total sample_weight; give some of "
                    "them a positive weight."
                )
            weights = (sample_weight, mean_weight)
        batch_size = self._batch_size(n_train)
        layer_units = [self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_]
        n_threads = _threads_for(layer_units, batch_size)
        trainer = _core.Trainer(
            self.coefs_,
            self.intercepts_,
            state["moments"],
            batch_size,
            _ACTIVATIONS[self.activation],
            _ACTIVATIONS[self.out_activation_],
            _LOSSES[self.loss],
            _core.Solver.ADAM if self.solver == "adam" else _core.Solver.SGD,
            alpha=float(self.alpha),
            momentum=float(self.momentum),
            nesterov=bool(self.nesterovs_momentum),
            beta_1=float(self.beta_1),
            beta_2=float(self.beta_2),
            epsilon=float(self.epsilon),
            dense_input=not sp.issparse(X),
            n_threads=n_threads,
        )
        self.n_iter_ = 0
        with _blas_threads_for(layer_units, batch_size, n_threads):
            self._run_epochs(trainer, _rows(X), y, weights, train_idx, n_train,
                             batch_size, validation, incremental,
                             dict(X=X, y=y, sample_weight=sample_weight))
        if self.early_stopping:
            self.coefs_ = [c.copy() for c in self._best_coefs]
            self.intercepts_ = [b.copy() for b in self._best_intercepts]

    def _fit_lbfgs(self, X, y, sample_weight):
        """Full-batch L-BFGS-B over one flat parameter vector in X's dtype.

        SciPy's optimizer works in float64; the network does not: each
        evaluation copies the float64 point into the (float32 or float64)
        parameters, and one compiled call returns the loss and the gradient.
        """
        self._adopt_dtype(X.dtype)
        shapes = [c.shape for c in self.coefs_] + [b.shape for b in self.intercepts_]
        sizes = [int(np.prod(shape)) for shape in shapes]
        theta = np.concatenate([p.ravel() for p in self.coefs_ + self.intercepts_])
        views = np.split(theta, np.cumsum(sizes)[:-1])
        params = [v.reshape(shape) for v, shape in zip(views, shapes)]
        L = len(self.coefs_)
        coefs, intercepts = params[:L], params[L:]
        grad = np.empty_like(theta)
        rows = _rows(X)
        trainer = _core.Trainer(
            coefs,
            intercepts,
            [],
            min(X.shape[0], _LBFGS_BLOCK),
            _ACTIVATIONS[self.activation],
            _ACTIVATIONS[self.out_activation_],
            _LOSSES[self.loss],
            _core.Solver.SGD,
            alpha=float(self.alpha),
            dense_input=not sp.issparse(X),
        )

        def loss_and_grad(x):
            np.copyto(theta, x, casting="unsafe")
            loss = _core.loss_grad(trainer, rows, y, grad, sample_weight)
            return loss, grad.astype(np.float64)

        best = {"loss": np.inf, "x": None}
        last = {"loss": None, "x": theta.astype(np.float64)}
        reporter = EpochReporter(self, X.shape[0], self.max_iter, X=X, y=y,
                                 sample_weight=sample_weight)
        self.n_iter_ = 0

        def iteration_done(intermediate_result):
            loss = float(intermediate_result.fun)
            last["loss"], last["x"] = loss, np.array(intermediate_result.x)
            self.n_iter_ += 1
            self.loss_curve_.append(loss)
            if np.isfinite(loss) and loss < best["loss"]:
                best["loss"], best["x"] = loss, np.array(intermediate_result.x)
            if self.verbose == 1:
                print("Iteration %d, loss = %.8f" % (self.n_iter_, loss))
            if reporter.end_epoch(loss, None):
                raise StopIteration
            reporter.begin_epoch()

        x0 = theta.astype(np.float64)
        reporter.begin_epoch()
        try:
            with _blas_threads_for(trainer.layer_units, trainer.max_batch):
                result = scipy.optimize.minimize(
                    loss_and_grad,
                    x0,
                    method="L-BFGS-B",
                    jac=True,
                    callback=iteration_done,
                    options={
                        "maxfun": self.max_fun,
                        "maxiter": self.max_iter,
                        "gtol": self.tol,
                    },
                )
        except KeyboardInterrupt:
            # Keep the last completed iteration, as the stochastic solvers keep
            # the last completed epoch.
            warnings.warn("Training interrupted by user.")
            np.copyto(theta, last["x"], casting="unsafe")
            if last["loss"] is not None:
                self.loss_ = last["loss"]
            self.coefs_ = [c.copy() for c in coefs]
            self.intercepts_ = [b.copy() for b in intercepts]
            return
        finally:
            reporter.close()
        x, loss = result.x, float(result.fun)
        if not (np.isfinite(loss) and np.isfinite(x).all()):
            if best["x"] is None:
                raise ValueError("%s %s" % (_DIVERGED, _DIVERGED_ADVICE))
            warnings.warn(
                "L-BFGS reached non-finite values; kept its best finite iterate. %s"
                % _DIVERGED_ADVICE,
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
        self.n_iter_ = min(int(result.nit), self.max_iter)
        self.loss_ = loss
        self.coefs_ = [c.copy() for c in coefs]
        self.intercepts_ = [b.copy() for b in intercepts]
        if self.loss_curve_:
            self.best_loss_ = float(np.nanmin(self.loss_curve_ + [np.inf]))

    def _early_stopping_split(self, n_samples):
        # Splitting indices draws the same permutation as splitting X would,
        # without copying the training rows.
        train_idx, val_idx = train_test_split(
            np.arange(n_samples),
            random_state=self._random_state,
            test_size=self.validation_fraction,
        )
        if val_idx.shape[0] < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' "
                "or the size of your dataset."
            )
        return train_idx.astype(np.intp, copy=False), val_idx

    def _batch_size(self, n_train):
        if self.batch_size == "auto":
            return min(200, n_train)
        if self.batch_size > n_train:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than "
                "sample size. It is going to be clipped"
            )
        return int(np.clip(self.batch_size, 1, n_train))

    def _run_epochs(self, trainer, rows, y, weights, train_idx, n_train, batch_size,
                    validation, incremental, callback_data):
        """The epoch loop: shuffle, one compiled epoch, bookkeeping, stopping."""
        state = self._optimizer_state
        gather = bool(self.shuffle or train_idx is not None)
        sample_idx = np.arange(n_train, dtype=np.intp)
        order = sample_idx if train_idx is None else train_idx
        checkpoint = _Checkpoint(self, trainer)
        reporter = EpochReporter(self, n_train, 1 if incremental else self.max_iter,
                                 **callback_data)
        in_epoch = False
        try:
            for _ in range(self.max_iter):
                checkpoint.save()
                reporter.begin_epoch()
                in_epoch = True
                if self.shuffle:
                    # The same draw as sklearn.utils.shuffle(sample_idx).
                    perm = np.arange(n_train)
                    self._random_state.shuffle(perm)
                    sample_idx = sample_idx[perm]
                    order = sample_idx if train_idx is None else train_idx[sample_idx]
                loss_sum, coef_sq, intercept_sq, state["t"] = _core.train_epoch(
                    trainer, rows, y, order, gather, batch_size,
                    state["learning_rate"], state["t"],
                    *(weights or ()),
                )
                self.n_iter_ += 1
                self.loss_ = loss_sum / n_train
                self.t_ += n_train
                self.loss_curve_.append(self.loss_)
                if self.verbose == 1:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
                self._update_no_improvement_count(validation)
                if not (np.isfinite(self.loss_) and np.isfinite(coef_sq + intercept_sq)):
                    self._diverged(checkpoint)
                    break
                in_epoch = False
                score = self.validation_scores_[-1] if validation is not None else None
                if reporter.end_epoch(self.loss_, score):
                    break

                if self.solver == "sgd" and self.learning_rate == "invscaling":
                    state["learning_rate"] = float(self.learning_rate_init) / (
                        self.t_ + 1
                    ) ** self.power_t
                if self._no_improvement_count > self.n_iter_no_change:
                    if self._trigger_stopping(validation is not None, state):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(
                        "Stochastic Optimizer: Maximum iterations (%d) "
                        "reached and the optimization hasn't converged yet."
                        % self.max_iter,
                        ConvergenceWarning,
                    )
        except KeyboardInterrupt:
            if in_epoch:
                # Cut inside an epoch: go back to the last completed one.
                checkpoint.restore(keep_curves=False)
            warnings.warn("Training interrupted by user.")
        finally:
            reporter.close()

    def _diverged(self, checkpoint):
        first_epoch = self.n_iter_ == 1
        checkpoint.restore(keep_curves=not first_epoch)
        if first_epoch:
            raise ValueError(
                "%s %s The model was left as it was before this call."
                % (_DIVERGED, _DIVERGED_ADVICE)
            )
        self.loss_ = self.loss_curve_[-2]
        warnings.warn(
            "Training diverged at epoch %d (the loss or the weights became "
            "non-finite). Stopped and restored the weights of epoch %d. %s"
            % (self.n_iter_, self.n_iter_ - 1, _DIVERGED_ADVICE),
            ConvergenceWarning,
        )

    def _trigger_stopping(self, early_stopping, state):
        """Stop, or (sgd with adaptive schedule) divide the learning rate by 5."""
        if early_stopping:
            msg = (
                "Validation score did not improve more than tol=%f for %d "
                "consecutive epochs." % (self.tol, self.n_iter_no_change)
            )
        else:
            msg = (
                "Training loss did not improve more than tol=%f for %d "
                "consecutive epochs." % (self.tol, self.n_iter_no_change)
            )
        if self.solver != "sgd" or self.learning_rate != "adaptive":
            if self.verbose:
                print(msg + " Stopping.")
            return True
        if state["learning_rate"] <= 1e-6:
            if self.verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        state["learning_rate"] /= 5.0
        if self.verbose:
            print(msg + " Setting learning rate to %f" % state["learning_rate"])
        return False

    def _update_no_improvement_count(self, validation):
        if validation is not None:
            X_val, y_val, w_val = validation
            y_pred = self._forward(X_val)
            if np.isfinite(y_pred).all():
                score = _r2(y_val, y_pred, w_val)
            else:
                score = np.nan
            self.validation_scores_.append(score)
            if self.verbose == 1:
                print("Validation score: %f" % score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_coefs = [c.copy() for c in self.coefs_]
                self._best_intercepts = [b.copy() for b in self.intercepts_]
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]


def _r2(y, y_pred, sample_weight):
    """R², averaged over outputs, as sklearn.metrics.r2_score computes it.

    Called once per epoch with early stopping, where r2_score's own input
    checks cost more than the epoch of a small network.
    """
    w = np.ones(len(y)) if sample_weight is None else sample_weight
    w = w[:, None]
    residual = (w * (y - y_pred) ** 2).sum(axis=0, dtype=np.float64)
    mean = (w * y).sum(axis=0, dtype=np.float64) / w.sum(dtype=np.float64)
    total = (w * (y - mean) ** 2).sum(axis=0, dtype=np.float64)
    scores = np.ones(y.shape[1])
    valid = (total != 0) & (residual != 0)
    scores[valid] = 1 - residual[valid] / total[valid]
    scores[(residual != 0) & (total == 0)] = 0.0
    return float(scores.mean())


def _rows(X):
    """The kernels' view of validated X: dense C-contiguous or CSR."""
    if sp.issparse(X):
        X = X.tocsr()
        return _core.Rows.csr(X.data, X.indices, X.indptr, X.shape[1])
    return _core.Rows(X)


class _Checkpoint:
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
        if self.scores is not None:
            del est.validation_scores_[self.scores:]


register(BPRegressor)
