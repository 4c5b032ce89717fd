# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""BaseBP: the network that BPRegressor and BPClassifier share.

The base owns everything that is about the *network*: the layers and their
initialisation, the stochastic and L-BFGS training loops, early stopping,
checkpoints and rollback, threads, callbacks and progress, the
``partial_fit``/``warm_start`` bookkeeping and ``save``. A subclass says only
what is about its *task*, through a few methods:

- ``_validate_input(X, y, incremental, reset) -> (X, Y)``: validated X and a
  2-D float target ``Y`` in X's dtype (cast for a regressor, binarized for a
  classifier);
- ``_output_activation()``: the output layer's activation name (the loss
  follows from it, see ``_enums.LOSS_FOR_OUTPUT``);
- ``_validation_score(Y_val, out, sample_weight)``: the early-stopping score
  of the network outputs ``out`` (R² or accuracy);
- ``_stratify(Y)``: what the early-stopping split stratifies on, or None;
- ``_row_weights(Y, incremental)``: per-row weights that multiply
  ``sample_weight`` (a classifier's class weights), or None;
- ``_callback_target(y, Y)`` and ``_output_reason()``: what callbacks compare
  predictions with, and how an error names the task's output;
- the class attributes ``_fitted_attributes`` (the fitted state, in the order
  persistence writes it), ``_derived_attributes`` (rebuilt by
  ``_after_load``, never saved), ``_output_activations`` (the outputs a fit of
  this task can have) and ``_score_name``.
"""

import threading
import warnings
import weakref
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import _core
from ._enums import (
    ACTIVATIONS,
    HIDDEN_ACTIVATIONS,
    LOSS_FOR_OUTPUT,
    N_MOMENTS,
    STOCHASTIC_SOLVERS,
)
from ._progress import CallbackSupport, EpochReporter, callback_scope
from ._solvers import DIVERGED, DIVERGED_ADVICE, Checkpoint, as_rows, fit_lbfgs
from ._threads import blas_threads_for, predict_threads, threads_for

# The fitted state common to every network, in the order it is saved.
NETWORK_ATTRIBUTES = (
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

# A final training loss this many times the best one means a model not worth
# having; see _check_not_exploded.
_LOSS_ROSE = 1e6

# Which thread is fitting each estimator right now (see ``_exclusive``).
_FITTING = weakref.WeakKeyDictionary()
_FITTING_LOCK = threading.Lock()


class _Exclusive:
    """Refuse a second fit of one estimator while another thread fits it.

    One estimator object holds one model; two threads training it at once
    would interleave their epochs and corrupt it. The second caller gets a
    RuntimeError and the first carries on untouched. The same thread may
    re-enter (a callback that predicts during fit).
    """

    def __init__(self, est):
        self.est = est
        self.owner = False

    def __enter__(self):
        me = threading.get_ident()
        with _FITTING_LOCK:
            other = _FITTING.get(self.est)
            if other is not None and other != me:
                raise RuntimeError(_busy_message(self.est, "fit"))
            if other is None:
                _FITTING[self.est] = me
                self.owner = True
        return self

    def __exit__(self, *exc):
        if self.owner:
            with _FITTING_LOCK:
                _FITTING.pop(self.est, None)


def _busy_message(est, what):
    return (
        "%s.%s was called while another thread is fitting this estimator. One "
        "estimator holds one model: fit it from one thread at a time, and give "
        "each thread its own copy (sklearn.base.clone) to train several."
        % (type(est).__name__, what)
    )


def _check_not_fitting(est, what):
    """Refuse to predict from an estimator that another thread is fitting."""
    owner = _FITTING.get(est)
    if owner is not None and owner != threading.get_ident():
        raise RuntimeError(_busy_message(est, what))


class BaseBP(CallbackSupport, BaseEstimator, metaclass=ABCMeta):
    """Base of the fastbp network estimators. Do not use it directly."""

    _fitted_attributes = NETWORK_ATTRIBUTES
    _score_name = "score"

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(HIDDEN_ACTIVATIONS))],
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

    # ------------------------------------------------------- the task's part

    @abstractmethod
    def _validate_input(self, X, y, incremental, reset):
        """Validated ``(X, Y)``: Y 2-D, C-contiguous, in X's dtype."""

    @abstractmethod
    def _output_activation(self):
        """The output activation the task needs."""

    @abstractmethod
    def _validation_score(self, Y_val, out, sample_weight):
        """The early-stopping score of network outputs ``out`` on ``Y_val``."""

    def _stratify(self, Y):
        """What the early-stopping split stratifies on (None: nothing)."""
        return None

    def _row_weights(self, Y, incremental):
        """Per-row weights the task adds to sample_weight (None: none)."""
        return None

    def _callback_target(self, y, Y):
        """The target handed to callbacks (what ``predict`` is compared with)."""
        return Y

    # -------------------------------------------------------------- API

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the network to data X and target(s) y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data. CSR and CSC input is never densified as a whole.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The targets: real values for a regressor, labels for a classifier.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative sample weights. See the Notes for their exact meaning.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _check_solver(self):
        if self.solver not in STOCHASTIC_SOLVERS:
            raise AttributeError(
                "partial_fit is only available for stochastic optimizers. "
                "%s is not stochastic." % self.solver
            )
        return True

    def save(self, path):
        """Save the fitted model to ``path`` in fastbp's pickle-free format.

        See :func:`fastbp.load`.
        """
        from ._persist import save

        return save(self, path)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = False
        return tags

    # ------------------------------------------------------ prediction

    def _network_output(self, X):
        """Validated X through the network: (n_samples, n_outputs_)."""
        _check_not_fitting(self, "predict")
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
        return self._forward(X)

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

    def _forward(self, X):
        """Forward pass of validated X (C-contiguous, CSR/CSC, or the kernels'
        ``Rows`` view of either), in X's dtype."""
        rows = X if isinstance(X, _core.Rows) else as_rows(X)
        # One read of each attribute: the layers and the output they belong to.
        coefs, intercepts = self.coefs_, self.intercepts_
        activation, out_activation = self.activation, self.out_activation_
        if coefs[0].dtype != X.dtype:
            coefs = [np.ascontiguousarray(c, dtype=X.dtype) for c in coefs]
            intercepts = [np.ascontiguousarray(b, dtype=X.dtype) for b in intercepts]
        units = [coefs[0].shape[0]] + [c.shape[1] for c in coefs]
        out = np.empty((X.shape[0], units[-1]), dtype=X.dtype)
        with predict_threads(units, X.shape[0]):
            _core.predict(
                rows,
                coefs,
                intercepts,
                ACTIVATIONS[activation],
                ACTIVATIONS[out_activation],
                out,
            )
        return out

    # --------------------------------------------------------- fitting

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

    def _fit(self, X, y, sample_weight, incremental, **task):
        """One call of fit or partial_fit, as a transaction.

        Whatever ends the call with an exception (bad data, divergence in the
        first epoch, an error raised by a callback, a warning turned into an
        error, a broken pipe while printing), the estimator is left bitwise as
        it was: its attributes come back from a shallow copy, the arrays that
        training changes in place are fresh copies of the old ones, and a
        ``RandomState`` passed as ``random_state`` gets its state back.
        """
        with _Exclusive(self):
            before = dict(self.__dict__)
            rng = self.random_state
            rng_state = rng.get_state() if isinstance(rng, np.random.RandomState) else None
            try:
                with callback_scope(self):
                    return self._fit_unguarded(X, y, sample_weight, incremental, **task)
            except BaseException:
                self.__dict__.clear()
                self.__dict__.update(before)
                if rng_state is not None:
                    rng.set_state(rng_state)
                raise

    def _fit_unguarded(self, X, y, sample_weight, incremental, **task):
        hidden = self._hidden_layers()
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")

        first_pass = not hasattr(self, "coefs_") or (
            not self.warm_start and not incremental
        )
        X, Y = self._validate_input(X, y, incremental, reset=first_pass, **task)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(
                sample_weight, X, dtype=X.dtype, ensure_non_negative=True
            )
        row_weights = self._row_weights(Y, incremental)
        if row_weights is not None:
            row_weights = row_weights.astype(X.dtype)
            sample_weight = row_weights if sample_weight is None else sample_weight * row_weights
        layer_units = [X.shape[1]] + hidden + [Y.shape[1]]
        if not first_pass:
            fitted_units = [self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_]
            if fitted_units != layer_units:
                raise ValueError(
                    "The network has layer sizes %s but X, y and hidden_layer_sizes "
                    "ask for %s; fit again without warm_start to change them."
                    % (fitted_units, layer_units)
                )
            wanted = self._output_activation()
            if self.out_activation_ != wanted:
                raise ValueError(
                    "%s needs output activation %r but the model has %r; fit "
                    "again without warm_start to change it."
                    % (self._output_reason(), wanted, self.out_activation_)
                )
            self._own_state()

        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(Y, layer_units, X.dtype)
        else:
            self._switch_stopping_rule()
        callback_data = dict(X=X, y=self._callback_target(y, Y),
                             sample_weight=sample_weight)
        if self.solver == "lbfgs":
            fit_lbfgs(self, X, Y, sample_weight, callback_data)
        else:
            self._fit_stochastic(X, Y, sample_weight, incremental, callback_data)
        return self

    def _output_reason(self):
        """Why the model needs its output activation, for error messages."""
        return "This target"

    def _own_state(self):
        """Give this call its own copies of everything training changes in
        place, so that the state before the call survives a failure."""
        self.coefs_ = [np.array(c, order="C") for c in self.coefs_]
        self.intercepts_ = [np.array(b, order="C") for b in self.intercepts_]
        self.loss_curve_ = list(self.loss_curve_)
        if self.validation_scores_ is not None:
            self.validation_scores_ = list(self.validation_scores_)
        state = getattr(self, "_optimizer_state", None)
        if state is not None:
            self._optimizer_state = {
                **state, "moments": [np.array(m, order="C") for m in state["moments"]]
            }

    def _initialize(self, Y, layer_units, dtype):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = Y.shape[1]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._output_activation()
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
        return {
            "solver": self.solver,
            "learning_rate": float(self.learning_rate_init),
            "t": 0,
            "moments": [np.zeros_like(p) for _ in range(N_MOMENTS[self.solver])
                        for p in params],
        }

    def _fit_stochastic(self, X, Y, sample_weight, incremental, callback_data):
        self._adopt_dtype(X.dtype)
        state = getattr(self, "_optimizer_state", None)
        if not incremental or state is None or state["solver"] != self.solver:
            state = self._optimizer_state = self._new_optimizer_state()

        if self.early_stopping:
            train_idx, val_idx = self._early_stopping_split(Y)
            val_weight = None if sample_weight is None else sample_weight[val_idx]
            # Rows once per fit: scoring every epoch then converts nothing.
            validation = (as_rows(X[val_idx]), Y[val_idx], val_weight)
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
        n_threads = threads_for(layer_units, batch_size)
        trainer = _core.Trainer(
            self.coefs_,
            self.intercepts_,
            state["moments"],
            batch_size,
            ACTIVATIONS[self.activation],
            ACTIVATIONS[self.out_activation_],
            LOSS_FOR_OUTPUT[self.out_activation_],
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
        with blas_threads_for(layer_units, batch_size, n_threads):
            self._run_epochs(trainer, as_rows(X), Y, weights, train_idx, n_train,
                             batch_size, validation, incremental, callback_data)
        if self.early_stopping:
            self.coefs_ = [c.copy() for c in self._best_coefs]
            self.intercepts_ = [b.copy() for b in self._best_intercepts]
        else:
            self._check_not_exploded()

    def _check_not_exploded(self):
        """Flag a model whose training loss ended far above its best.

        A learning rate far too large (Adam with learning_rate_init=1e10) can
        throw the weights to huge but finite values: no epoch is non-finite,
        the loss stops improving and the stopping rule ends the fit on a model
        that predicts garbage. A final loss a million times the best one the
        model reached is that case, and gets a ConvergenceWarning that says
        so. It is a warning, not an error, as for the divergence that
        ``_diverged`` handles after the first epoch: the model is the one the
        optimizer produced, and the warning tells what it is worth.
        """
        curve = np.asarray(self.loss_curve_, dtype=np.float64)
        curve = curve[np.isfinite(curve) & (curve > 0)]
        if curve.size < 2 or not self.loss_ > _LOSS_ROSE * curve.min():
            return
        warnings.warn(
            "The training loss rose from %.6g to %.6g: the model is most likely "
            "useless. %s" % (curve.min(), self.loss_, DIVERGED_ADVICE),
            ConvergenceWarning,
        )

    def _early_stopping_split(self, Y):
        # Splitting indices draws the same permutation as splitting X would,
        # without copying the training rows.
        train_idx, val_idx = train_test_split(
            np.arange(Y.shape[0]),
            random_state=self._random_state,
            test_size=self.validation_fraction,
            stratify=self._stratify(Y),
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

    def _run_epochs(self, trainer, rows, Y, weights, train_idx, n_train, batch_size,
                    validation, incremental, callback_data):
        """The epoch loop: shuffle, one compiled epoch, bookkeeping, stopping."""
        state = self._optimizer_state
        gather = bool(self.shuffle or train_idx is not None)
        sample_idx = np.arange(n_train, dtype=np.intp)
        order = sample_idx if train_idx is None else train_idx
        checkpoint = Checkpoint(self, trainer)
        reporter = EpochReporter(self, n_train, 1 if incremental else self.max_iter,
                                 **callback_data)
        sample_weight, weight_scale = weights if weights is not None else (None, 1.0)
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
                    trainer, rows, Y, order, gather, batch_size,
                    state["learning_rate"], state["t"], sample_weight, weight_scale,
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
                    state["learning_rate"] = _invscaling(
                        self.learning_rate_init, self.t_, self.power_t
                    )
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
                % (DIVERGED, DIVERGED_ADVICE)
            )
        self.loss_ = self.loss_curve_[-2]
        warnings.warn(
            "Training diverged at epoch %d (the loss or the weights became "
            "non-finite). Stopped and restored the weights of epoch %d. %s"
            % (self.n_iter_, self.n_iter_ - 1, DIVERGED_ADVICE),
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
            X_val, Y_val, w_val = validation
            out = self._forward(X_val)
            if np.isfinite(out).all():
                score = self._validation_score(Y_val, out, w_val)
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


def _invscaling(learning_rate_init, t, power_t):
    """scikit-learn's inverse-scaling rate ``lr0 / (t + 1) ** power_t``; a
    power too large for a float gives the rate's limit, 0, instead of an
    OverflowError."""
    try:
        return float(learning_rate_init) / (t + 1) ** power_t
    except OverflowError:
        return 0.0
