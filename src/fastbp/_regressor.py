# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""BPRegressor: the network of ``BaseBP`` with a regression output."""

from numbers import Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import RegressorMixin
from sklearn.utils import column_or_1d
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import BaseBP
from ._enums import REGRESSION_LOSSES, REGRESSION_OUT_ACTIVATIONS, REGRESSION_OUTPUTS
from ._persist import register
from ._typing import ArrayLike, EvalSet, MatrixLike, NDArray, _fit_context, available_if


class BPRegressor(RegressorMixin, BaseBP):
    """Multi-layer perceptron regressor trained by backpropagation, in Cython.

    A line-for-line replacement for :class:`sklearn.neural_network.MLPRegressor`:
    the same parameters with the same defaults, the same fitted attributes, and,
    for the same ``random_state``, the same initial weights, shuffles,
    early-stopping split and results. The whole minibatch loop of an epoch runs
    in compiled code with the GIL released.

    Parameters
    ----------
    loss : {'squared_error', 'poisson', 'absolute_error', 'huber', 'quantile'}, \
            default='squared_error'
        The loss: half the squared error; half the Poisson deviance with an
        ``exp`` output activation (y must be >= 0); the absolute error (robust
        to outliers, predicts the median); Huber's loss (squared within
        ``huber_delta`` of the target, absolute beyond: robust yet smooth); or
        the pinball loss of ``quantile`` (predicts that quantile, for
        prediction intervals).

    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element is the number of neurons in the ith hidden layer. ``()``
        means no hidden layer: a single layer of neurons ``z = X @ w + b``, the
        textbook neuron trained by gradient descent on the squared error.

    activation : str or list of str, default='relu'
        Activation of the hidden layers: scikit-learn's ``'identity'``,
        ``'logistic'``, ``'tanh'``, ``'relu'``, and ``'leaky_relu'`` (slope
        ``leaky_relu_slope``), ``'elu'``, ``'selu'``, ``'softplus'``,
        ``'gelu'`` (tanh form), ``'silu'``, ``'mish'`` and ``'sin'``; or a list
        with one of these per hidden layer. gelu, silu and mish often train
        deeper networks more smoothly than relu; sin suits periodic targets
        and coordinate inputs; selu self-normalises deep plain stacks.

    solver : {'lbfgs', 'sgd', 'adam', 'adamw', 'rprop'}, default='adam'
        The weight optimizer. ``'lbfgs'`` is SciPy's L-BFGS-B over full-batch
        loss and gradient evaluations computed in compiled code, in the data's
        dtype (float32 stays float32). ``'adamw'`` is Adam with decoupled weight decay
        (``weight_decay``): use it when the L2 penalty of Adam regularises
        too little on large weights. ``'rprop'`` is iRPROP- (full batch, as
        the FANN library trains): fast and nearly free of tuning on small
        data sets; it has no ``partial_fit``, ``batch_size`` or early stopping.

    alpha : float, default=0.0001
        Strength of the L2 penalty on the weights (not the intercepts). As in
        scikit-learn, it is divided by the number of samples in the batch.

    batch_size : int or 'auto', default='auto'
        Minibatch size; ``'auto'`` means ``min(200, n_samples)``.

    learning_rate : {'constant', 'invscaling', 'adaptive', 'cosine', 'exponential'}, \
default='constant'
        Learning-rate schedule, set once per epoch. ``'invscaling'`` and
        ``'adaptive'`` are scikit-learn's, for ``solver='sgd'`` (and Adam with
        ``schedule_adam=True``). ``'cosine'``: epoch e runs at
        ``learning_rate_init * (1 + cos(pi * e / max_iter)) / 2`` (held at its
        last value past max_iter); ``'exponential'``: at ``learning_rate_init *
        lr_decay ** e``; both for sgd and adam. ``fit`` counts e from 0;
        ``partial_fit`` counts every epoch of the model (``len(loss_curve_)``),
        so the schedule goes on across calls. Use a decay to settle into a
        minimum without tuning the rate by hand.

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
        (With ``fit(..., eval_set=(X_val, y_val))``, the eval_set is watched
        instead of a split of the training data.)
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

    lr_decay : float in (0, 1], default=0.95
        Per-epoch factor of ``learning_rate='exponential'``: epoch e (from 0)
        runs at ``learning_rate_init * lr_decay ** e``. Use it to anneal the
        step when a constant rate keeps bouncing around the minimum.

    warmup_fraction : float in [0, 1), default=0.0
        Linear warm-up over the first ``W = ceil(warmup_fraction * max_iter)``
        epochs: epoch e < W runs at its scheduled rate times ``(e + 1) / (W +
        1)``. With ``'constant'``, ``'cosine'`` or ``'exponential'``. Use it when
        the first epochs of a large rate blow the weights up.

    schedule_adam : bool, default=False
        Whether ``learning_rate='invscaling'`` and ``'adaptive'`` also act on
        Adam's step (``learning_rate_init / (t_ + 1) ** power_t`` after each
        epoch; ÷5 after a plateau instead of stopping, until under 1e-6), as
        they act on sgd. False keeps scikit-learn's behaviour, where they are
        sgd options and Adam's rate stays constant.

    early_stopping_scoring : str, callable or None, default=None
        The score early stopping watches: None is R² (regressor) or accuracy
        (classifier) as in scikit-learn; a scorer name (``'neg_log_loss'``,
        ``'neg_mean_squared_error'``...) or a callable ``scorer(est, X_val,
        y_val[, sample_weight=])``, greater is better. Needs
        ``early_stopping=True``. Use it when the metric you care about is not
        the default one.

    restore_best_weights : bool, default=True
        With early stopping, end on the weights of the best validation epoch
        (True, as scikit-learn) or on those of the last epoch (False). False
        needs ``early_stopping=True``.

    stop_loss : float or None, default=None
        Stop as soon as the training loss of an epoch (an L-BFGS iteration)
        falls under this value, without a ConvergenceWarning. Use it when a
        known error level is good enough.

    weight_init : {'glorot_uniform', 'he_uniform', 'he_normal', 'lecun_normal'}, \
default='glorot_uniform'
        How initial weights are drawn from ``random_state``. ``glorot_uniform``
        is scikit-learn's draw (weights and intercepts uniform in ``±sqrt(6 /
        (fan_in + fan_out))``, 2 instead of 6 for logistic). ``he_uniform``:
        uniform in ``±sqrt(6 / fan_in)``; ``he_normal``: normal of variance
        ``2 / fan_in``; ``lecun_normal``: variance ``1 / fan_in``; these three
        start the intercepts at 0. He suits relu networks, LeCun selu/tanh.

    coefs_init, intercepts_init : list of arrays or None, default=None
        Initial weights (shapes ``(fan_in, fan_out)``) and intercepts
        (``(fan_out,)``) of every layer, used instead of the drawn ones by a
        fit that starts a new model. They are validated (shapes, real and
        finite values), copied in the data's dtype and never modified; the
        draws of ``weight_init`` still happen, so the shuffles are those of a
        fit without them. Use them to start from a known or pretrained model.

    n_jobs : int or None, default=None
        Threads for the time of ``fit`` and ``predict`` only. None keeps the
        automatic choice (one thread for small networks, OpenMP's threads for
        large ones). An int fixes it: stochastic solvers split each minibatch
        over ``n_jobs`` threads with BLAS on one thread; predict shares the
        row blocks of many rows over ``n_jobs`` threads with BLAS on one, and
        runs few rows, like L-BFGS, with BLAS on ``n_jobs`` threads (a
        process-wide limit while the call runs).
        -1 means every core. Results are bitwise identical for a given n_jobs.
        Threads help large layers only; on small networks, or with more threads
        than idle cores, they slow a fit down (often several times).

    leaky_relu_slope : float, default=0.01
        Slope of ``'leaky_relu'`` for negative inputs. Raise it (0.1-0.3) when
        many relu units die (stay at 0 for every row).

    dropout : float or list of float, default=0.0
        Inverted dropout: each hidden unit is zeroed with this probability
        while training (one rate per hidden layer with a list) and the kept
        ones are scaled by ``1 / (1 - p)``; off at predict time. Use it
        against overfitting on wide networks and small data. Masks come from a
        counter-based hash of (a seed drawn from ``random_state``, epoch, row,
        layer, unit), so fits are reproducible, bitwise for a given number of
        threads. Stochastic solvers only (sgd, adam, adamw).

    gradient_clip : float or None, default=None
        Scale each minibatch's gradient (the L2 term included) down to this
        global L2 norm when it is longer. Use it when the loss spikes or
        diverges on outliers or with large learning rates. Stochastic solvers
        only.

    weight_decay : float, default=0.01
        AdamW's decoupled weight decay: each ``solver='adamw'`` step also
        multiplies the weights (not the intercepts) by ``1 - learning_rate *
        weight_decay``, outside Adam's moments. Ignored by the other solvers.
        It is a parameter of its own rather than ``alpha`` because ``alpha``
        keeps scikit-learn's meaning for every solver (an L2 term in the loss,
        divided by the number of rows, that ``loss_`` reports); set
        ``alpha=0`` for AdamW as in the literature. The default is PyTorch's.

    rprop_increase_factor, rprop_decrease_factor : float, defaults 1.2, 0.5
        iRPROP-'s step-size factors when a weight's gradient keeps or flips
        its sign (``solver='rprop'``; FANN's defaults).

    rprop_delta_init, rprop_delta_min, rprop_delta_max : float, defaults 0.1, 0.0, 50.0
        iRPROP-'s initial step size of every weight and its bounds (FANN's
        defaults).

    out_activation : {'identity', 'logistic', 'softplus', 'exp'} or None, \
            default=None
        The output layer's activation; None is scikit-learn's choice (``exp``
        for Poisson, else identity). Use ``'logistic'`` for targets in (0, 1),
        ``'softplus'`` or ``'exp'`` for positive ones. With a loss other than
        its own, the gradient goes through the activation's derivative. Not
        with ``loss='poisson'`` (written for its exp link).

    huber_delta : float, default=1.0
        Where ``loss='huber'`` turns from squared to absolute error, in units
        of y: about the size of the noise you do not want to call an outlier.

    quantile : float in (0, 1), default=0.5
        The quantile ``loss='quantile'`` predicts (0.5: the median).

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
    validation_loss_curve_ : list of float
        The loss of the validation rows (the internal split, or ``eval_set``)
        after each epoch that had them: the same objective as ``loss_curve_``
        (mean loss plus ``alpha / (2 n_val) * sum(W**2)``). Only set when a fit
        had validation data.
    t_ : int
        The number of training samples seen by the optimizer.
    n_iter_ : int
        The number of epochs run by the last call of ``fit`` or ``partial_fit``.
    n_layers_ : int
        Number of layers, input and output included.
    n_outputs_ : int
        Number of outputs.
    out_activation_ : str
        The output activation: ``out_activation``, or when that is None
        ``'identity'``, or ``'exp'`` for Poisson.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
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

    _parameter_constraints: dict = {
        **BaseBP._parameter_constraints,
        "loss": [StrOptions(set(REGRESSION_LOSSES))],
        "out_activation": [None, StrOptions(set(REGRESSION_OUT_ACTIVATIONS))],
        "huber_delta": [Interval(Real, 0, None, closed="neither")],
        "quantile": [Interval(Real, 0, 1, closed="neither")],
    }
    _score_name = "R²"
    _output_activations = REGRESSION_OUT_ACTIVATIONS

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
        out_activation=None,
        huber_delta=1.0,
        quantile=0.5,
    ) -> None:
        # get_params reads this signature, so it restates the base's
        # parameters (as scikit-learn's MLPRegressor does).
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            lr_decay=lr_decay,
            warmup_fraction=warmup_fraction,
            schedule_adam=schedule_adam,
            early_stopping_scoring=early_stopping_scoring,
            restore_best_weights=restore_best_weights,
            stop_loss=stop_loss,
            weight_init=weight_init,
            coefs_init=coefs_init,
            intercepts_init=intercepts_init,
            n_jobs=n_jobs,
            leaky_relu_slope=leaky_relu_slope,
            dropout=dropout,
            gradient_clip=gradient_clip,
            weight_decay=weight_decay,
            rprop_increase_factor=rprop_increase_factor,
            rprop_decrease_factor=rprop_decrease_factor,
            rprop_delta_init=rprop_delta_init,
            rprop_delta_min=rprop_delta_min,
            rprop_delta_max=rprop_delta_max,
        )
        self.out_activation = out_activation
        self.huber_delta = huber_delta
        self.quantile = quantile
        self.loss = loss

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: MatrixLike, y: ArrayLike,
                    sample_weight: ArrayLike | None = None,
                    eval_set: EvalSet | None = None) -> "BPRegressor":
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
        eval_set : tuple (X_val, y_val) or (X_val, y_val, sample_weight_val), default=None
            Validation data kept apart from training (as in LightGBM and
            XGBoost). Its loss after this epoch is appended to
            ``validation_loss_curve_`` (early stopping stays a ``fit`` option).

        Returns
        -------
        self : BPRegressor
            The updated estimator.
        """
        return self._fit(X, y, sample_weight, incremental=True, eval_set=eval_set)

    def predict(self, X: MatrixLike) -> NDArray[np.floating]:
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
        y_pred = self._network_output(X)
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred

    def score(self, X: MatrixLike, y: ArrayLike,
              sample_weight: ArrayLike | None = None) -> float:
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
        if sample_weight is None:
            plain = _plain_r2(y, y_pred)
            if plain is not None:
                return plain
        return r2_score(y, y_pred, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    # ------------------------------------------------- the task, for BaseBP

    def _output_activation(self):
        if self.out_activation is not None:
            return self.out_activation
        return REGRESSION_OUTPUTS[self.loss]

    def _output_reason(self):
        if self.out_activation is not None:
            return "out_activation=%r" % self.out_activation
        return "loss=%r" % self.loss

    def _core_loss(self):
        return REGRESSION_LOSSES[self.loss]

    def _loss_param(self):
        if self.loss == "huber":
            return self.huber_delta
        if self.loss == "quantile":
            return self.quantile
        return 0.0

    def _check_options(self, n_hidden, incremental):
        super()._check_options(n_hidden, incremental)
        if self.loss == "poisson" and self.out_activation not in (None, "exp"):
            raise ValueError(
                "loss='poisson' is written for its log link: out_activation=%r "
                "cannot be used with it (leave out_activation=None, or 'exp')."
                % self.out_activation)

    def _validation_score(self, Y_val, out, sample_weight):
        return r2(Y_val, out, sample_weight)

    def _validate_input(self, X, y, incremental, reset):
        X, y = self._validate_fit_data(
            X,
            y,
            reset,
            "biuf",
            accept_sparse=["csr", "csc"],
            multi_output=True,
            y_numeric=True,
            dtype=(np.float64, np.float32),
            order="C",
        )
        if y.dtype.kind not in "biuf":
            raise ValueError(
                "y must hold real numbers; got an array of dtype %s." % y.dtype
            )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        # validate_data checked y in its own dtype; casting it to a float32 X's
        # dtype can overflow to inf, hence the finiteness check after the cast.
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


def r2(y, y_pred, sample_weight):
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


register(BPRegressor)


def _plain_r2(y_true, y_pred):
    """``r2_score(y_true, y_pred)`` for the case a search scores most: two
    C-contiguous arrays of one float dtype and shape, finite, with at least two
    rows and no sample weights; None for anything else.

    The same operations on the same arrays as scikit-learn's r2_score, so the
    same value to the last bit (tested), without its input checks, which cost
    more than a small network's predict and run under the GIL once per
    candidate and fold of a search.
    """
    if not (isinstance(y_true, np.ndarray) and isinstance(y_pred, np.ndarray)
            and y_true.dtype == y_pred.dtype and y_true.dtype.kind == "f"
            and y_true.dtype.itemsize in (4, 8) and y_true.shape == y_pred.shape
            and y_true.ndim in (1, 2) and y_true.shape[0] >= 2 and y_true.size
            and y_true.flags.c_contiguous and y_pred.flags.c_contiguous
            and np.isfinite(y_true).all() and np.isfinite(y_pred).all()):
        return None
    y_true = y_true.reshape(y_true.shape[0], -1)
    y_pred = y_pred.reshape(y_pred.shape[0], -1)
    numerator = np.sum(1.0 * (y_true - y_pred) ** 2, axis=0)
    denominator = np.sum(1.0 * (y_true - np.average(y_true, axis=0)) ** 2, axis=0)
    # force_finite: a perfect prediction scores 1, a constant target 0.
    scores = np.ones(y_true.shape[1], dtype=numerator.dtype)
    valid = (numerator != 0) & (denominator != 0)
    scores[valid] = 1 - numerator[valid] / denominator[valid]
    scores[(numerator != 0) & (denominator == 0)] = 0.0
    return float(np.average(scores))
