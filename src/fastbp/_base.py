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
from sklearn.base import BaseEstimator
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
    SOLVERS,
    STOCHASTIC_SOLVERS,
)
from ._progress import CallbackSupport, EpochReporter, callback_scope
from ._solvers import DIVERGED, DIVERGED_ADVICE, Checkpoint, as_rows, fit_lbfgs, fit_rprop
from ._threads import (
    blas_threads,
    blas_threads_for,
    one_blas_thread,
    predict_split,
    predict_threads,
    resolve_n_jobs,
    threads_for,
)
from ._typing import BP, ArrayLike, EvalSet, MatrixLike, PathOrFile, _fit_context

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
    "validation_loss_curve_",
    "_best_coefs",
    "_best_intercepts",
    "_no_improvement_count",
    "_optimizer_state",
)

# Learning-rate schedules (see _epoch_learning_rate) and weight initialisations
# (see _init_coef).
LEARNING_RATES = ("constant", "invscaling", "adaptive", "cosine", "exponential")
WEIGHT_INITS = ("glorot_uniform", "he_uniform", "he_normal", "lecun_normal")

# A final training loss this many times the best one means a model not worth
# having; see _check_not_exploded.
_LOSS_ROSE = 1e6

# Run the stochastic epoch loop in one compiled call when nothing watches it
# from Python (see BaseBP._compiled_loop_state). False runs the Python loop
# always; tests that step into the loop epoch by epoch set it so.
COMPILED_LOOP = True

# Parameter settings that passed validation, per class (see
# BaseBP._validate_params); bounded, as a search may try many settings.
_VALID_PARAMS = {}
_VALID_PARAMS_MAX = 4096

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
        "activation": [StrOptions(set(HIDDEN_ACTIVATIONS)), list, tuple],
        "solver": [StrOptions({"lbfgs", "sgd", "adam", "adamw", "rprop"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions(set(LEARNING_RATES))],
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
        "lr_decay": [Interval(Real, 0, 1, closed="right")],
        "warmup_fraction": [Interval(Real, 0, 1, closed="left")],
        "schedule_adam": ["boolean"],
        "early_stopping_scoring": [None, str, callable],
        "restore_best_weights": ["boolean"],
        "stop_loss": [None, Interval(Real, None, None, closed="neither")],
        "weight_init": [StrOptions(set(WEIGHT_INITS))],
        "coefs_init": [None, list, tuple],
        "intercepts_init": [None, list, tuple],
        "n_jobs": [None, Integral],
        "leaky_relu_slope": [Interval(Real, 0, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left"), list, tuple],
        "gradient_clip": [None, Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "rprop_increase_factor": [Interval(Real, 1, None, closed="neither")],
        "rprop_decrease_factor": [Interval(Real, 0, 1, closed="neither")],
        "rprop_delta_init": [Interval(Real, 0, None, closed="neither")],
        "rprop_delta_min": [Interval(Real, 0, None, closed="left")],
        "rprop_delta_max": [Interval(Real, 0, None, closed="neither")],
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
        lr_decay=0.95,
        warmup_fraction=0.0,
        schedule_adam=False,
        early_stopping_scoring=None,
        restore_best_weights=True,
        stop_loss=None,
        weight_init="glorot_uniform",
        coefs_init=None,
        intercepts_init=None,
        n_jobs=None,
        leaky_relu_slope=0.01,
        dropout=0.0,
        gradient_clip=None,
        weight_decay=0.01,
        rprop_increase_factor=1.2,
        rprop_decrease_factor=0.5,
        rprop_delta_init=0.1,
        rprop_delta_min=0.0,
        rprop_delta_max=50.0,
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
        self.lr_decay = lr_decay
        self.warmup_fraction = warmup_fraction
        self.schedule_adam = schedule_adam
        self.early_stopping_scoring = early_stopping_scoring
        self.restore_best_weights = restore_best_weights
        self.stop_loss = stop_loss
        self.weight_init = weight_init
        self.coefs_init = coefs_init
        self.intercepts_init = intercepts_init
        self.n_jobs = n_jobs
        self.leaky_relu_slope = leaky_relu_slope
        self.dropout = dropout
        self.gradient_clip = gradient_clip
        self.weight_decay = weight_decay
        self.rprop_increase_factor = rprop_increase_factor
        self.rprop_decrease_factor = rprop_decrease_factor
        self.rprop_delta_init = rprop_delta_init
        self.rprop_delta_min = rprop_delta_min
        self.rprop_delta_max = rprop_delta_max

    # ------------------------------------------------------- fast set-up

    @classmethod
    def _get_param_names(cls):
        """scikit-learn's parameter names (the ``__init__`` signature), read once
        per class and ``__init__``: ``get_params`` and ``clone`` ask for them on
        every call, and reading a signature of this many parameters costs about
        as much as a short fit's set-up, under the GIL (a threaded search pays
        it once per candidate and fold)."""
        return list(cls._param_names_cached())

    @classmethod
    def _param_names_cached(cls):
        """The names as a tuple, cached in the class beside its ``__init__``."""
        init = cls.__init__
        cached = cls.__dict__.get("_param_names_cache")
        if cached is None or cached[0] is not init:
            cached = (init, tuple(super()._get_param_names()))
            cls._param_names_cache = cached
        return cached[1]

    def _validate_params(self):
        """scikit-learn's parameter validation, once per setting.

        The constraints of every parameter depend on its value and type alone,
        so a setting (class, and each parameter's type and value) that passed
        once passes again: a search that fits one setting on many folds
        validates it once. Settings with unhashable values (a list of layer
        sizes) are validated every time.
        """
        cls = type(self)
        try:
            key = (cls,) + tuple(
                (type(v), v) for v in (getattr(self, n) for n in cls._param_names_cached())
            )
            known = key in _VALID_PARAMS
        except TypeError:  # an unhashable value
            key, known = None, False
        if known:
            return
        super()._validate_params()
        if key is not None:
            if len(_VALID_PARAMS) >= _VALID_PARAMS_MAX:
                _VALID_PARAMS.clear()
            _VALID_PARAMS[key] = True

    def _validate_fit_data(self, X, y, reset, y_kinds, **check_params):
        """``validate_data(self, X, y, reset=reset, **check_params)`` for fit,
        without its cost for plain arrays.

        X a finite, C-contiguous float32/float64 ndarray with rows and columns,
        and y an ndarray of matching rows whose dtype kind is in ``y_kinds``
        (finite if floating), of a model without feature names: validate_data
        would return both unchanged and only record ``n_features_in_``. Anything
        else, including every case validate_data refuses, goes through it.
        """
        if (
            type(X) is np.ndarray
            and type(y) is np.ndarray
            and X.ndim == 2
            and X.shape[0] > 0
            and X.shape[1] > 0
            and (X.dtype == np.float64 or X.dtype == np.float32)
            and X.flags.c_contiguous
            and (y.ndim == 1 or (y.ndim == 2 and y.shape[1] > 0))
            and y.shape[0] == X.shape[0]
            and y.dtype.kind in y_kinds
            and (reset or (
                "feature_names_in_" not in self.__dict__
                and getattr(self, "n_features_in_", None) == X.shape[1]
            ))
            and bool(np.isfinite(X).all())
            and (y.dtype.kind != "f" or bool(np.isfinite(y).all()))
        ):
            if reset:
                self.n_features_in_ = X.shape[1]
                self.__dict__.pop("feature_names_in_", None)
            return X, y
        return validate_data(self, X, y, reset=reset, **check_params)

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

    def _output_groups(self):
        """Sizes of the output blocks that each get their own softmax (None:
        the output activation applies to the whole output layer)."""
        return None

    def _training_target(self, Y):
        """The target the loss is computed on (a classifier smooths its labels)."""
        return Y

    def _core_loss(self):
        """The core's loss enum for the fitted output."""
        return LOSS_FOR_OUTPUT[self.out_activation_]

    def _loss_param(self):
        """The loss's parameter for the core (huber's delta, the quantile)."""
        return 0.0

    def _check_options(self, n_hidden, incremental):
        """Options that cannot combine: a ValueError naming both parameters."""
        self._hidden_activations(n_hidden)
        dropout = self._dropout_rates(n_hidden)
        if self.solver in ("lbfgs", "rprop"):
            if dropout is not None:
                raise ValueError(
                    "dropout=%r needs a stochastic solver; solver=%r evaluates the "
                    "exact full-batch loss (use solver='sgd', 'adam' or 'adamw')."
                    % (self.dropout, self.solver))
            if self.gradient_clip is not None:
                raise ValueError(
                    "gradient_clip=%r applies to minibatch steps; solver=%r does not "
                    "take any (use solver='sgd', 'adam' or 'adamw')."
                    % (self.gradient_clip, self.solver))
        if self.solver == "rprop":
            if self.batch_size != "auto":
                raise ValueError(
                    "solver='rprop' is full-batch (iRPROP-); batch_size=%r cannot be "
                    "used with it: leave batch_size='auto'." % (self.batch_size,))
            if self.early_stopping:
                raise ValueError(
                    "early_stopping=True needs a stochastic solver; solver='rprop' "
                    "stops on the training loss (tol, n_iter_no_change).")
            if not self.rprop_delta_min <= self.rprop_delta_init <= self.rprop_delta_max:
                raise ValueError(
                    "rprop_delta_init=%r must lie between rprop_delta_min=%r and "
                    "rprop_delta_max=%r." % (self.rprop_delta_init,
                                             self.rprop_delta_min, self.rprop_delta_max))

    def _hidden_activations(self, n_hidden):
        """One activation name per hidden layer."""
        activation = self.activation
        if isinstance(activation, str):
            return [activation] * n_hidden
        names = list(activation)
        if len(names) != n_hidden:
            raise ValueError(
                "activation has %d entries but hidden_layer_sizes=%r has %d hidden "
                "layers: give one activation per hidden layer."
                % (len(names), self.hidden_layer_sizes, n_hidden))
        for name in names:
            if not isinstance(name, str) or name not in HIDDEN_ACTIVATIONS:
                raise ValueError("activation entries must be among %s; got %r."
                                 % (list(HIDDEN_ACTIVATIONS), name))
        return names

    def _dropout_rates(self, n_hidden):
        """One drop rate per hidden layer, or None when nothing is dropped."""
        dropout = self.dropout
        if isinstance(dropout, (list, tuple)):
            rates = list(dropout)
            if len(rates) != n_hidden:
                raise ValueError(
                    "dropout has %d entries but hidden_layer_sizes=%r has %d hidden "
                    "layers: give one rate per hidden layer, or one float."
                    % (len(rates), self.hidden_layer_sizes, n_hidden))
            for p in rates:
                if isinstance(p, bool) or not isinstance(p, Real) or not 0 <= p < 1:
                    raise ValueError("dropout rates must be floats in [0, 1); got %r."
                                     % (p,))
            rates = [float(p) for p in rates]
        else:
            rates = [float(dropout)] * n_hidden
        return rates if any(p > 0 for p in rates) else None

    def _activation_codes(self, n_hidden):
        """The core's activation enum of every layer, the output's last."""
        return ([ACTIVATIONS[a] for a in self._hidden_activations(n_hidden)]
                + [ACTIVATIONS[self.out_activation_]])

    def _trainer_options(self, n_hidden):
        """The Trainer keywords the options of this section set."""
        return dict(
            activations=self._activation_codes(n_hidden),
            act_param=float(self.leaky_relu_slope),
            loss_param=float(self._loss_param()),
            dropout=self._dropout_rates(n_hidden),
            weight_decay=float(self.weight_decay) if self.solver == "adamw" else 0.0,
            gradient_clip=float(self.gradient_clip or 0.0),
        )

    # -------------------------------------------------------------- API

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self: BP, X: MatrixLike, y: ArrayLike,
            sample_weight: ArrayLike | None = None,
            eval_set: EvalSet | None = None) -> BP:
        """Fit the network to data X and target(s) y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data. CSR and CSC input is never densified as a whole.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The targets: real values for a regressor, labels for a classifier.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative sample weights. See the Notes for their exact meaning.
        eval_set : tuple (X_val, y_val) or (X_val, y_val, sample_weight_val), default=None
            Validation data kept apart from training, as in LightGBM and
            XGBoost. With ``early_stopping=True`` it replaces the internal
            ``validation_fraction`` split; either way its loss is recorded in
            ``validation_loss_curve_`` each epoch. Stochastic solvers only.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight, incremental=False, eval_set=eval_set)

    def _check_solver(self):
        if self.solver not in STOCHASTIC_SOLVERS:
            raise AttributeError(
                "partial_fit is only available for stochastic optimizers. "
                "%s is not stochastic." % self.solver
            )
        return True

    def save(self, path: PathOrFile) -> None:
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
        if isinstance(activation, str):
            activation = ACTIVATIONS[activation]
        else:
            activation = [ACTIVATIONS[a] for a in self._hidden_activations(len(coefs) - 1)]
        if coefs[0].dtype != X.dtype:
            coefs = [np.ascontiguousarray(c, dtype=X.dtype) for c in coefs]
            intercepts = [np.ascontiguousarray(b, dtype=X.dtype) for b in intercepts]
        units = [coefs[0].shape[0]] + [c.shape[1] for c in coefs]
        out = np.empty((X.shape[0], units[-1]), dtype=X.dtype)
        n_jobs = getattr(self, "n_jobs", None)  # None too for models of older pickles
        if n_jobs is None:
            # Many rows: their blocks shared by OpenMP's threads, BLAS on one.
            n_threads = predict_split(units, X.shape[0])
            threads = predict_threads(units, X.shape[0], n_threads)
        else:
            # The same with n_jobs threads; few rows: BLAS on n_jobs threads.
            # The blocks do not depend on the threads, nor do the outputs.
            n_jobs = resolve_n_jobs(n_jobs)
            n_threads = predict_split(units, X.shape[0], n_jobs)
            threads = (predict_threads(units, X.shape[0], n_threads) if n_threads > 1
                       else blas_threads(n_jobs))
        with threads:
            _core.predict(
                rows,
                coefs,
                intercepts,
                activation,
                ACTIVATIONS[out_activation],
                out,
                self._output_groups(),
                n_threads,
                float(getattr(self, "leaky_relu_slope", 0.01)),
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

    def _fit(self, X, y, sample_weight, incremental, eval_set=None, **task):
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
                    return self._fit_unguarded(X, y, sample_weight, incremental,
                                               eval_set, **task)
            except BaseException:
                self.__dict__.clear()
                self.__dict__.update(before)
                if rng_state is not None:
                    rng.set_state(rng_state)
                raise

    def _fit_unguarded(self, X, y, sample_weight, incremental, eval_set, **task):
        hidden = self._hidden_layers()
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        self._check_training_options(eval_set)
        self._check_options(len(hidden), incremental)

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

        if eval_set is not None:
            eval_set = self._validate_eval_set(eval_set, X)
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(Y, layer_units, X.dtype)
        else:
            self._switch_stopping_rule()
        callback_data = dict(X=X, y=self._callback_target(y, Y),
                             sample_weight=sample_weight)
        if self.solver == "lbfgs":
            fit_lbfgs(self, X, self._training_target(Y), sample_weight, callback_data)
        elif self.solver == "rprop":
            fit_rprop(self, X, self._training_target(Y), sample_weight, callback_data)
        else:
            self._fit_stochastic(X, Y, sample_weight, incremental, callback_data,
                                 eval_set)
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
        if getattr(self, "validation_loss_curve_", None) is not None:
            self.validation_loss_curve_ = list(self.validation_loss_curve_)
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
        self._use_given_weights(layer_units, dtype)
        # Set only by fits with validation data, as scikit-learn's main branch has it.
        self.__dict__.pop("validation_loss_curve_", None)
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
        """One layer's initial weights and intercepts, drawn per weight_init.

        glorot_uniform is scikit-learn's draw exactly: U(-b, b) for the weights
        then for the intercepts, b = sqrt(6 / (fan_in + fan_out)) (2 instead of
        6 for a logistic activation). he_uniform: weights U(-b, b) with b =
        sqrt(6 / fan_in); he_normal: N(0, 2 / fan_in); lecun_normal: N(0, 1 /
        fan_in) (plain, untruncated normals); these three start the intercepts
        at zero and draw nothing for them.
        """
        rng = self._random_state
        init = self.weight_init
        if init == "glorot_uniform":
            factor = 2.0 if self.activation == "logistic" else 6.0
            bound = np.sqrt(factor / (fan_in + fan_out))
            coef = rng.uniform(-bound, bound, (fan_in, fan_out))
            intercept = rng.uniform(-bound, bound, fan_out)
        else:
            if init == "he_uniform":
                bound = np.sqrt(6.0 / fan_in)
                coef = rng.uniform(-bound, bound, (fan_in, fan_out))
            else:
                variance = (2.0 if init == "he_normal" else 1.0) / fan_in
                coef = rng.normal(0.0, np.sqrt(variance), (fan_in, fan_out))
            intercept = np.zeros(fan_out)
        return coef.astype(dtype, copy=False), intercept.astype(dtype, copy=False)

    def _use_given_weights(self, layer_units, dtype):
        """Replace the drawn parameters by coefs_init / intercepts_init.

        The draws still happen first, so that the shuffles and the
        early-stopping split stay those of a fit without given weights; the
        user's arrays are validated and copied, never kept or changed.
        """
        shapes = {
            "coefs_init": list(zip(layer_units[:-1], layer_units[1:])),
            "intercepts_init": [(n,) for n in layer_units[1:]],
        }
        for name, target in (("coefs_init", self.coefs_),
                             ("intercepts_init", self.intercepts_)):
            given = getattr(self, name)
            if given is None:
                continue
            wanted = shapes[name]
            if len(given) != len(wanted):
                raise ValueError(
                    "%s has %d arrays but the network has %d layers of weights "
                    "(layer sizes %s)." % (name, len(given), len(wanted), layer_units)
                )
            for i, (array, shape) in enumerate(zip(given, wanted)):
                a = np.asarray(array)
                if a.dtype.kind not in "fiu" or a.dtype.kind == "b":
                    raise ValueError("%s[%d] must hold real numbers; got dtype %s."
                                     % (name, i, a.dtype))
                if a.shape != shape:
                    raise ValueError("%s[%d] has shape %s; the network needs %s."
                                     % (name, i, a.shape, shape))
                copy = np.array(a, dtype=dtype, order="C", copy=True)
                if not np.isfinite(copy).all():
                    raise ValueError("%s[%d] has non-finite values (in %s)."
                                     % (name, i, np.dtype(dtype).name))
                target[i] = copy

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

    def _fit_stochastic(self, X, Y, sample_weight, incremental, callback_data,
                        eval_set=None):
        self._adopt_dtype(X.dtype)
        state = getattr(self, "_optimizer_state", None)
        if not incremental or state is None or state["solver"] != self.solver:
            state = self._optimizer_state = self._new_optimizer_state()

        if eval_set is not None:
            train_idx, validation = None, eval_set
            n_train = X.shape[0]
        elif self.early_stopping:
            train_idx, val_idx = self._early_stopping_split(Y)
            val_weight = None if sample_weight is None else sample_weight[val_idx]
            validation = _Validation(X[val_idx], Y[val_idx], val_weight,
                                     callback_data["y"][val_idx])
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
        n_threads = self._fit_threads(layer_units, batch_size)
        n_hidden = len(self.coefs_) - 1
        options = self._trainer_options(n_hidden)
        if options["dropout"] is not None:
            # Drawn only when dropping, so that other fits draw what sklearn draws;
            # t_ moves the masks on from one partial_fit call to the next.
            base = int(self._random_state.randint(np.iinfo(np.int32).max))
            options["dropout_seed"] = (base * 0x9E3779B97F4A7C15 + self.t_) % 2**64
        trainer = _core.Trainer(
            self.coefs_,
            self.intercepts_,
            state["moments"],
            batch_size,
            ACTIVATIONS["identity"],  # per layer: options["activations"]
            ACTIVATIONS[self.out_activation_],
            self._core_loss(),
            SOLVERS[self.solver],
            alpha=float(self.alpha),
            momentum=float(self.momentum),
            nesterov=bool(self.nesterovs_momentum),
            beta_1=float(self.beta_1),
            beta_2=float(self.beta_2),
            epsilon=float(self.epsilon),
            dense_input=not sp.issparse(X),
            n_threads=n_threads,
            out_groups=self._output_groups(),
            **options,
        )
        self.n_iter_ = 0
        blas = (blas_threads_for(layer_units, batch_size, n_threads)
                if self.n_jobs is None else one_blas_thread())
        with blas:
            self._run_epochs(trainer, as_rows(X), self._training_target(Y), weights,
                             train_idx, n_train,
                             batch_size, validation, incremental, callback_data)
        if self.early_stopping and self.restore_best_weights:
            self.coefs_ = [c.copy() for c in self._best_coefs]
            self.intercepts_ = [b.copy() for b in self._best_intercepts]
        elif not self.early_stopping:
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
        if self._compiled_loop_ok(validation, train_idx):
            self._run_epochs_compiled(trainer, rows, Y, weights, n_train, batch_size,
                                      incremental)
            return
        state = self._optimizer_state
        gather = bool(self.shuffle or train_idx is not None)
        sample_idx = np.arange(n_train, dtype=np.intp)
        order = sample_idx if train_idx is None else train_idx
        checkpoint = Checkpoint(self, trainer)
        reporter = EpochReporter(self, n_train, 1 if incremental else self.max_iter,
                                 **callback_data)
        sample_weight, weight_scale = weights if weights is not None else (None, 1.0)
        # Validation data that early stopping watches (it may also be there
        # only for validation_loss_curve_).
        monitored = validation if self.early_stopping else None
        in_epoch = False
        try:
            for _ in range(self.max_iter):
                checkpoint.save()
                reporter.begin_epoch()
                in_epoch = True
                self._schedule_learning_rate(state, incremental)
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
                self._update_no_improvement_count(monitored)
                self._record_validation_loss(validation)
                if not (np.isfinite(self.loss_) and np.isfinite(coef_sq + intercept_sq)):
                    self._diverged(checkpoint)
                    break
                in_epoch = False
                score = self.validation_scores_[-1] if monitored is not None else None
                if reporter.end_epoch(self.loss_, score):
                    break

                if self.learning_rate == "invscaling" and self._scheduled():
                    state["learning_rate"] = _invscaling(
                        self.learning_rate_init, self.t_, self.power_t
                    )
                if self._no_improvement_count > self.n_iter_no_change:
                    if self._trigger_stopping(monitored is not None, state):
                        break
                    self._no_improvement_count = 0
                if self._reached_stop_loss():
                    break
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

    def _compiled_loop_ok(self, validation, train_idx):
        """Whether the whole epoch loop can run in one compiled call.

        It can when nothing looks at the epochs from Python (no verbose output,
        no callbacks, no validation data to score), the schedule is one the
        compiled loop knows (constant, invscaling, adaptive; no warm-up, no
        stop_loss), and the random state is a plain ``RandomState``
        whose bit generator the compiled loop can draw the shuffles from.
        """
        return not (
            not COMPILED_LOOP
            or validation is not None
            or train_idx is not None
            or self.verbose
            or getattr(self, "_skl_callbacks", None)
            or self.learning_rate not in ("constant", "invscaling", "adaptive")
            or self.warmup_fraction != 0
            or self.stop_loss is not None
            or type(self._random_state) is not np.random.RandomState
            or not hasattr(getattr(self._random_state, "_bit_generator", None), "capsule")
        )

    def _run_epochs_compiled(self, trainer, rows, Y, weights, n_train, batch_size,
                             incremental):
        """``_run_epochs`` in one compiled call: the same shuffles, stopping rule,
        schedules, divergence and Ctrl-C handling, without Python per epoch."""
        state = self._optimizer_state
        scheduled = self._scheduled()
        max_epochs = 1 if incremental else self.max_iter
        loop = _core.EpochLoop(
            lr=float(state["learning_rate"]),
            lr0=float(self.learning_rate_init),
            power_t=float(self.power_t),
            tol=float(self.tol),
            n_iter_no_change=float(self.n_iter_no_change),
            best_loss=float(self.best_loss_),
            invscaling=scheduled and self.learning_rate == "invscaling",
            adaptive=scheduled and self.learning_rate == "adaptive",
            shuffle=bool(self.shuffle),
            adam_t=int(state["t"]),
            t=int(self.t_),
            no_improvement=int(self._no_improvement_count),
            random_state=self._random_state,
            max_epochs=max_epochs,
        )
        sample_weight, weight_scale = weights if weights is not None else (None, 1.0)
        sample_idx = np.arange(n_train, dtype=np.intp)
        try:
            _core.train_epochs(trainer, rows, Y, sample_idx, loop, batch_size,
                               sample_weight, weight_scale)
        except KeyboardInterrupt:
            self._take_loop(loop, state)
            warnings.warn("Training interrupted by user.")
            return
        self._take_loop(loop, state)
        if loop.stop == _core.Stop.STOP_DIVERGED:
            # The compiled loop has already put the previous epoch's weights back.
            self._report_divergence(first_epoch=self.n_iter_ == 1)
        elif (loop.stop == _core.Stop.STOP_MAX_EPOCHS and not incremental
              and self.n_iter_ == self.max_iter):
            warnings.warn(
                "Stochastic Optimizer: Maximum iterations (%d) "
                "reached and the optimization hasn't converged yet."
                % self.max_iter,
                ConvergenceWarning,
            )

    def _take_loop(self, loop, state):
        """The estimator's record of the epochs a compiled loop completed."""
        n_done = loop.n_done
        if n_done == 0:
            return
        losses = loop.losses[:n_done].tolist()
        self.loss_curve_.extend(losses)
        self.loss_ = losses[-1]
        self.n_iter_ += n_done
        self.t_ = loop.t
        self.best_loss_ = loop.best_loss
        self._no_improvement_count = loop.no_improvement
        state["t"] = loop.adam_t
        state["learning_rate"] = loop.lr

    def _diverged(self, checkpoint):
        first_epoch = self.n_iter_ == 1
        checkpoint.restore(keep_curves=not first_epoch)
        self._report_divergence(first_epoch)

    def _report_divergence(self, first_epoch):
        """After the weights were restored: the error of a first epoch that
        diverged, or the warning of a later one (loss_ back to the epoch before)."""
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
        if self.learning_rate != "adaptive" or not self._scheduled():
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
            out = validation.output(self)
            if np.isfinite(out).all():
                score = self._early_stopping_score(validation, out)
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

    # ------------------------------------- schedules, validation, stopping, threads
    # Each option of this block acts once per epoch, from _run_epochs, in
    # Python, except those the compiled loop runs itself: _compiled_loop_ok
    # says which fits hand every epoch back to Python.

    def _scheduled(self):
        """Whether invscaling and adaptive act on this solver: always on sgd, on
        adam only with schedule_adam=True (scikit-learn leaves Adam alone)."""
        return self.solver == "sgd" or self.schedule_adam

    def _check_training_options(self, eval_set):
        """Refuse the combinations of options that mean nothing together."""
        stochastic = self.solver in STOCHASTIC_SOLVERS
        if eval_set is not None and not stochastic:
            raise ValueError(
                "eval_set needs a stochastic solver: solver=%r has no epochs "
                "to validate; use solver='adam' or 'sgd'." % self.solver
            )
        if not stochastic and (self.learning_rate in ("cosine", "exponential")
                               or self.warmup_fraction > 0):
            raise ValueError(
                "learning_rate=%r and warmup_fraction=%r schedule the stochastic "
                "solvers; solver=%r has no learning rate."
                % (self.learning_rate, self.warmup_fraction, self.solver)
            )
        if self.warmup_fraction > 0 and self.learning_rate in ("invscaling", "adaptive"):
            raise ValueError(
                "warmup_fraction=%r cannot combine with learning_rate=%r; use it with "
                "'constant', 'cosine' or 'exponential'."
                % (self.warmup_fraction, self.learning_rate)
            )
        if self.early_stopping_scoring is not None and not self.early_stopping:
            raise ValueError(
                "early_stopping_scoring=%r is used only with early_stopping=True."
                % (self.early_stopping_scoring,)
            )
        if not self.restore_best_weights and not self.early_stopping:
            raise ValueError(
                "restore_best_weights=False is used only with early_stopping=True "
                "(without early stopping the last weights are always kept)."
            )
        if isinstance(self.early_stopping_scoring, str):
            from sklearn.metrics import get_scorer

            get_scorer(self.early_stopping_scoring)  # a clear error for a bad name
        resolve_n_jobs(self.n_jobs)

    def _validate_eval_set(self, eval_set, X):
        """eval_set as a _Validation of rows in X's dtype and layout."""
        if not isinstance(eval_set, (tuple, list)) or len(eval_set) not in (2, 3):
            raise ValueError(
                "eval_set must be a tuple (X_val, y_val) or (X_val, y_val, "
                "sample_weight_val); got %s." % type(eval_set).__name__
            )
        X_val, y_val = eval_set[0], eval_set[1]
        w_val = eval_set[2] if len(eval_set) == 3 else None
        X_val, Y_val = self._validate_input(X_val, y_val, incremental=True, reset=False)
        X_val = X_val.astype(X.dtype, copy=False)
        Y_val = np.ascontiguousarray(Y_val, dtype=X.dtype)
        if sp.issparse(X_val) and X_val.format != "csr":
            X_val = X_val.tocsr()
        if w_val is not None:
            w_val = _check_sample_weight(w_val, X_val, dtype=X.dtype,
                                         ensure_non_negative=True)
            if not w_val.sum() > 0:
                raise ValueError("eval_set's sample weights are all zero.")
        return _Validation(X_val, Y_val, w_val, self._callback_target(y_val, Y_val))

    def _epoch_learning_rate(self, epoch):
        """The scheduled learning rate of epoch ``epoch`` (0-based).

        cosine: lr0 * (1 + cos(pi * e / max_iter)) / 2, held at its value for
        e = max_iter - 1 past it; exponential: lr0 * lr_decay ** e; constant:
        lr0. A warm-up of W = ceil(warmup_fraction * max_iter) epochs then
        multiplies the rate by (e + 1) / (W + 1) for e < W.
        """
        lr0 = float(self.learning_rate_init)
        if self.learning_rate == "cosine":
            e = min(epoch, self.max_iter - 1)
            rate = lr0 * 0.5 * (1.0 + np.cos(np.pi * e / self.max_iter))
        elif self.learning_rate == "exponential":
            rate = lr0 * float(self.lr_decay) ** epoch
        else:
            rate = lr0
        warmup = int(np.ceil(self.warmup_fraction * self.max_iter))
        if epoch < warmup:
            rate *= (epoch + 1) / (warmup + 1)
        return float(rate)

    def _schedule_learning_rate(self, state, incremental):
        """Set this epoch's rate for the schedules that are functions of the
        epoch (invscaling and adaptive update it after epochs instead).

        A ``fit`` counts epochs from 0 (a warm start too); ``partial_fit``
        counts every epoch of the model so far (``len(loss_curve_)``), so the
        schedule goes on across calls.
        """
        if self.learning_rate in ("invscaling", "adaptive"):
            return
        if self.learning_rate == "constant" and self.warmup_fraction == 0:
            return
        epoch = len(self.loss_curve_) if incremental else self.n_iter_
        state["learning_rate"] = self._epoch_learning_rate(epoch)

    def _validation_score_name(self):
        """What validation_scores_ hold, for progress lines and plots."""
        scoring = self.early_stopping_scoring
        if scoring is None:
            return self._score_name
        return scoring if isinstance(scoring, str) else "score"

    def _early_stopping_score(self, validation, out):
        """The task's score of the outputs, or early_stopping_scoring's."""
        scoring = self.early_stopping_scoring
        if scoring is None:
            return self._validation_score(validation.Y, out, validation.weight)
        if isinstance(scoring, str):
            from sklearn.metrics import get_scorer

            scoring = get_scorer(scoring)
        kwargs = {} if validation.weight is None else {"sample_weight": validation.weight}
        with warnings.catch_warnings():
            # The rows are validated arrays, without a data frame's column names.
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            return float(scoring(self, validation.X, validation.target, **kwargs))

    def _record_validation_loss(self, validation):
        """Append the loss of the validation rows to validation_loss_curve_."""
        if validation is None:
            return
        if getattr(self, "validation_loss_curve_", None) is None:
            self.validation_loss_curve_ = []
        out = validation.output(self)
        self.validation_loss_curve_.append(
            validation_loss(self.out_activation_, validation.Y, out, validation.weight,
                            self.coefs_, self.alpha, getattr(self, "loss", None),
                            self._loss_param())
        )

    def _reached_stop_loss(self, loss=None):
        """Whether the training loss (of the last epoch, or ``loss``) fell
        under stop_loss."""
        loss = self.loss_ if loss is None else loss
        if self.stop_loss is None or not loss < self.stop_loss:
            return False
        if self.verbose:
            print("Training loss %.8f is under stop_loss=%g. Stopping."
                  % (loss, self.stop_loss))
        return True

    def _fit_threads(self, layer_units, batch_size):
        """OpenMP threads of a stochastic fit: the automatic choice, or n_jobs."""
        if self.n_jobs is None:
            return threads_for(layer_units, batch_size)
        return max(1, min(resolve_n_jobs(self.n_jobs), batch_size,
                          _core.MAX_THREADS))


class _Validation:
    """Validation rows, kept once per fit, and their outputs for one epoch."""

    def __init__(self, X, Y, weight, target):
        self.X = X  # validated, for a scorer
        self.rows = as_rows(X)  # converted once: every epoch converts nothing
        self.Y = Y
        self.weight = weight
        self.target = np.asarray(target)
        if self.target.ndim == 2 and self.target.shape[1] == 1:
            self.target = self.target.ravel()
        self._key = None

    def output(self, est):
        """The network's outputs on the rows, computed once per epoch."""
        key = len(est.loss_curve_)
        if self._key != key:
            self._out = est._forward(self.rows)
            self._key = key
        return self._out


def validation_loss(out_activation, Y, out, weight, coefs, alpha, loss=None,
                    loss_param=0.0):
    """The training objective on validation rows, in float64.

    The (weighted) mean over rows of the loss of ``out_activation`` (half the
    squared error, the Poisson deviance or the log-loss, probabilities clipped
    to [eps, 1 - eps] of their dtype as the core clips them) plus
    ``alpha / (2 n) * sum(W ** 2)``, n the number of rows or their total
    weight: the same objective as ``loss_curve_``. A regressor's ``loss``
    (with its ``loss_param``, huber's delta or the quantile) takes precedence
    over the output activation, which it need not match.
    """
    from scipy.special import xlogy

    eps = np.finfo(out.dtype).eps
    pred = out.astype(np.float64)
    y = Y.astype(np.float64)
    d = pred - y
    if loss == "absolute_error":
        per_row = np.abs(d).sum(axis=1)
    elif loss == "huber":
        h = loss_param
        per_row = np.where(np.abs(d) <= h, 0.5 * d**2, h * (np.abs(d) - 0.5 * h)).sum(axis=1)
    elif loss == "quantile":
        q = loss_param
        per_row = (q * np.maximum(-d, 0) + (1 - q) * np.maximum(d, 0)).sum(axis=1)
    elif out_activation == "identity" or loss == "squared_error":
        per_row = 0.5 * ((pred - y) ** 2).sum(axis=1)
    elif out_activation == "exp":
        per_row = (xlogy(y, np.where(y > 0, y, 1.0) / pred) - y + pred).sum(axis=1)
    else:
        p = np.clip(out, eps, 1 - eps).astype(np.float64)
        if out_activation == "logistic" or p.shape[1] == 1:
            per_row = -(xlogy(y, p) + xlogy(1 - y, 1 - p)).sum(axis=1)
        else:
            per_row = -xlogy(y, p).sum(axis=1)
    if weight is None:
        n = per_row.shape[0]
        data = per_row.mean()
    else:
        w = weight.astype(np.float64)
        n = w.sum()
        data = (w * per_row).sum() / n
    penalty = sum(float(np.square(c, dtype=np.float64).sum()) for c in coefs)
    return float(data + 0.5 * alpha * penalty / n)


def _invscaling(learning_rate_init, t, power_t):
    """scikit-learn's inverse-scaling rate ``lr0 / (t + 1) ** power_t``; a
    power too large for a float gives the rate's limit, 0, instead of an
    OverflowError."""
    try:
        return float(learning_rate_init) / (t + 1) ** power_t
    except OverflowError:
        return 0.0
