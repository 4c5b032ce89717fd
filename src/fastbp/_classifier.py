# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""BPClassifier: the network of ``BaseBP`` with a classification output."""

from numbers import Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import ClassifierMixin
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import column_or_1d
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels

from ._base import NETWORK_ATTRIBUTES, BaseBP
from ._persist import register
from ._typing import (
    Any, ArrayLike, EvalSet, MatrixLike, NDArray, _fit_context,
    available_if,
)

_MULTILABEL = "multilabel-indicator"
_MULTIOUTPUT = "multiclass-multioutput"


class BPClassifier(ClassifierMixin, BaseBP):
    """Multi-layer perceptron classifier trained by backpropagation, in Cython.

    A line-for-line replacement for :class:`sklearn.neural_network.MLPClassifier`:
    the same parameters with the same defaults, the same fitted attributes, and,
    for the same ``random_state``, the same initial weights, shuffles,
    early-stopping split and results. The whole minibatch loop of an epoch runs
    in compiled code with the GIL released.

    Binary and multilabel targets get a logistic output layer and the binary
    log-loss; multiclass targets a softmax layer and the cross-entropy. Several
    columns of labels (a multiclass-multioutput target, which scikit-learn's
    MLPClassifier refuses) get one softmax block per column: ``predict``
    returns one label per column, ``predict_proba`` a list of one array per
    column and ``score`` the subset accuracy. Labels
    may be integers, strings, booleans, objects or pandas categoricals; a
    multilabel target is an indicator matrix.

    Parameters
    ----------
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element is the number of neurons in the ith hidden layer. ``()``
        means no hidden layer: logistic (or softmax) regression trained by
        gradient descent.

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
        dtype. ``'adamw'`` is Adam with decoupled weight decay
        (``weight_decay``): use it when the L2 penalty of Adam regularises
        too little on large weights. ``'rprop'`` is iRPROP- (full batch, as
        the FANN library trains): fast and nearly free of tuning on small
        data sets; it has no ``partial_fit``, ``batch_size`` or early stopping.

    alpha : float, default=0.0001
        Strength of the L2 penalty on the weights (not the intercepts), divided
        by the number of samples in the batch, as in scikit-learn.

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
        Maximum number of epochs (lbfgs: iterations).

    shuffle : bool, default=True
        Whether to shuffle the samples in each epoch.

    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation, the early-stopping split and the
        shuffles, drawn in the same order as scikit-learn draws them.

    tol : float, default=1e-4
        Improvement threshold for the stopping rule.

    verbose : bool or int, default=False
        1 (or True): one line per epoch, as scikit-learn prints it. 2: a live
        progress bar.

    warm_start : bool, default=False
        Reuse the previous weights in ``fit``; the classes must be the same.

    momentum : float, default=0.9
        Momentum of ``solver='sgd'``.

    nesterovs_momentum : bool, default=True
        Use Nesterov's momentum with ``solver='sgd'``.

    early_stopping : bool, default=False
        (With ``fit(..., eval_set=(X_val, y_val))``, the eval_set is watched
        instead of a split of the training data.)
        Hold out ``validation_fraction`` of the data (stratified for binary
        targets, as scikit-learn does), stop when its accuracy stops improving
        and restore the best weights.

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

    class_weight : dict, 'balanced' or None, default=None
        Weights of the classes: each row's weight is its class's weight times
        its ``sample_weight``. ``'balanced'`` uses
        ``n_samples / (n_classes * np.bincount(y))``. Use it when the classes
        are imbalanced and the rare ones matter. Not for multilabel targets or
        several columns of labels,
        and ``'balanced'`` not with ``partial_fit`` (its counts would change
        from batch to batch; pass a dict computed on the whole data instead).
        scikit-learn's ``MLPClassifier`` has no such parameter.

    label_smoothing : float in [0, 1), default=0.0
        Train on targets ``y (1 - eps) + eps / K`` (K classes for softmax, of
        each label column's block with several columns, 2 for each logistic
        output) instead of 0/1: the model becomes less
        over-confident and its probabilities better calibrated; use 0.05-0.2
        with large networks. Early stopping still scores the true labels.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,) or list of ndarray
        The class labels (for multilabel targets, ``0 .. n_labels - 1``); for
        several columns of labels, one array per column, as scikit-learn's
        multi-output classifiers have it.
    coefs_ : list of ndarray of shape (n_in, n_out)
        The weight matrix of each layer.
    intercepts_ : list of ndarray of shape (n_out,)
        The bias vector of each layer.
    loss_ : float
        The training loss (log-loss) of the last completed epoch.
    best_loss_ : float or None
        The lowest training loss reached (None with early stopping).
    loss_curve_ : list of float
        The training loss of each epoch.
    validation_scores_ : list of float or None
        The validation accuracy of each epoch (None without early stopping).
    best_validation_score_ : float or None
        The best validation accuracy (None without early stopping).
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
        Number of outputs: 1 for binary targets, else the number of classes
        or labels.
    out_activation_ : str
        ``'logistic'`` (binary, multilabel) or ``'softmax'`` (multiclass).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features seen during fit, when X has string column names.

    Notes
    -----
    Deliberate differences from scikit-learn's ``MLPClassifier`` (1.9), beside
    those listed for :class:`BPRegressor` (divergence, threads, sample
    weights in minibatches, float32 throughout, callbacks, L-BFGS curves):

    - **Multilabel partial_fit** infers the labels from the indicator matrix
      of the first call; ``classes`` may be omitted (scikit-learn requires a
      meaningless ``classes`` there, scikit-learn issue #12505).
    - **partial_fit with warm_start=True** checks that a batch's classes are
      among ``classes_``, as any ``partial_fit`` does; scikit-learn demands
      that every batch hold every class when ``warm_start`` is set.
    - **A single class** in ``y`` (with no ``classes`` given to
      ``partial_fit``) raises ``ValueError``: scikit-learn trains a model
      that can only ever predict that class.
    - **class_weight** exists (scikit-learn issues #9113, #10588, #11723,
      #25326 ask for it).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from fastbp import BPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = BPClassifier(hidden_layer_sizes=(16,), solver="lbfgs",
    ...                    max_iter=500, random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 3)
    >>> bool(clf.score(X, y) > 0.95)
    True
    """

    _parameter_constraints: dict = {
        **BaseBP._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
    }
    _fitted_attributes = ("classes_",) + NETWORK_ATTRIBUTES
    _derived_attributes = ("_label_binarizer",)
    _score_name = "accuracy"
    _output_activations = ("logistic", "softmax")

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
        class_weight=None,
        label_smoothing=0.0,
    ) -> None:
        # get_params reads this signature, so it restates the base's parameters.
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
        self.label_smoothing = label_smoothing
        self.class_weight = class_weight

    # ------------------------------------------------------------- API

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: MatrixLike, y: ArrayLike,
            sample_weight: ArrayLike | None = None,
            eval_set: EvalSet | None = None) -> "BPClassifier":
        """Fit the network to data X and labels y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data. CSR and CSC input is never densified as a whole.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a multilabel indicator matrix.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative sample weights, multiplied by the class weights.
        eval_set : tuple (X_val, y_val) or (X_val, y_val, sample_weight_val), default=None
            Validation data kept apart from training (as in LightGBM and
            XGBoost). With ``early_stopping=True`` it replaces the internal
            ``validation_fraction`` split; either way its loss is recorded in
            ``validation_loss_curve_`` each epoch. Stochastic solvers only.

        Returns
        -------
        self : BPClassifier
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight, incremental=False, eval_set=eval_set)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: MatrixLike, y: ArrayLike,
                    sample_weight: ArrayLike | None = None,
                    classes: ArrayLike | None = None,
                    eval_set: EvalSet | None = None) -> "BPClassifier":
        """Update the model with one epoch over X and y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a multilabel indicator matrix.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative sample weights.
        classes : array-like of shape (n_classes,), default=None
            Every class of the whole data (``np.unique(y_all)``). Required on
            the first call unless y is a multilabel indicator matrix; a batch
            need not hold every class.
        eval_set : tuple (X_val, y_val) or (X_val, y_val, sample_weight_val), default=None
            Validation data kept apart from training (as in LightGBM and
            XGBoost). Its loss after this epoch is appended to
            ``validation_loss_curve_`` (early stopping stays a ``fit`` option).

        Returns
        -------
        self : BPClassifier
            The updated estimator.
        """
        return self._fit(X, y, sample_weight, incremental=True, eval_set=eval_set,
                         classes=classes)

    def predict(self, X: MatrixLike) -> NDArray[Any]:
        """Predict class labels (or a multilabel indicator matrix).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_labels)
            The predicted classes.
        """
        out = self._network_output(X)
        if self._is_multioutput():
            return _stack_columns([
                classes[block.argmax(axis=1)]
                for classes, block in zip(self.classes_, self._blocks(out))
            ])
        if out.shape[1] == 1:
            out = out.ravel()
        return self._label_binarizer.inverse_transform(out)

    def predict_proba(
        self, X: MatrixLike
    ) -> NDArray[np.floating] | list[NDArray[np.floating]]:
        """Probability of each class.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes) or list of ndarray
            Probabilities in the order of ``classes_``, in X's floating dtype.
            For multilabel targets, the probability of each label. For several
            columns of labels, a list with one such array per column.
        """
        out = self._network_output(X)
        if self._is_multioutput():
            return [np.ascontiguousarray(block) for block in self._blocks(out)]
        if out.shape[1] == 1:
            p = out[:, 0]
            return np.column_stack([1 - p, p])
        return out

    def predict_log_proba(
        self, X: MatrixLike
    ) -> NDArray[np.floating] | list[NDArray[np.floating]]:
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes) or list of ndarray
            ``log(predict_proba(X))``, a list for several columns of labels.
        """
        proba = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            if isinstance(proba, list):
                return [np.log(p, out=p) for p in proba]
            return np.log(proba, out=proba)

    def score(self, X: MatrixLike, y: ArrayLike,
              sample_weight: ArrayLike | None = None) -> float:
        """Mean accuracy on X and y; for several columns of labels, the subset
        accuracy (a row counts when every column is right), as scikit-learn's
        multi-output classifiers score.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Test samples.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            True labels for X.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            Mean (subset) accuracy of ``self.predict(X)``.
        """
        if not self._is_multioutput():
            if sample_weight is None and isinstance(y, np.ndarray) and y.ndim == 1:
                y_pred = self.predict(X)
                if (y_pred.shape == y.shape and y.dtype.kind in "biuU"
                        and y_pred.dtype.kind == y.dtype.kind):
                    # accuracy_score's value for two 1-D arrays of labels of one
                    # kind (numbers or strings: binary or multiclass targets),
                    # without its target checks, which cost more than a small
                    # network's predict, under the GIL, per fold of a search.
                    return float(np.average(y == y_pred))
                from sklearn.metrics import accuracy_score

                return float(accuracy_score(y, y_pred))
            return super().score(X, y, sample_weight=sample_weight)
        y = np.asarray(y)
        y_pred = self.predict(X)
        if y.shape != y_pred.shape:
            raise ValueError("y has shape %s; the model predicts %s."
                             % (y.shape, y_pred.shape))
        return float(np.average((y == y_pred).all(axis=1), weights=sample_weight))

    # ------------------------------------------------- multiclass-multioutput

    def _is_multioutput(self):
        """Whether the model has several columns of labels (classes_ a list)."""
        return isinstance(getattr(self, "classes_", None), list)

    def _output_groups(self):
        if self._is_multioutput():
            return [len(c) for c in self.classes_]
        return None

    def _blocks(self, out):
        """The output columns of each label column, as views of out."""
        bounds = np.cumsum([0] + [len(c) for c in self.classes_])
        return [out[:, a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    # ------------------------------------------------ the task, for BaseBP

    def _output_activation(self):
        if self._is_multioutput() or self._label_binarizer.y_type_ == "multiclass":
            return "softmax"
        return "logistic"

    def _output_reason(self):
        if self._is_multioutput():
            return "A target of type %r" % _MULTIOUTPUT
        return "A target of type %r" % self._label_binarizer.y_type_

    def _stratify(self, Y):
        # As scikit-learn: only single-output (binary) targets are stratified,
        # on the same boolean column it passes.
        if self._is_multioutput():
            return None
        return Y.astype(bool) if Y.shape[1] == 1 else None

    def _training_target(self, Y):
        """Labels smoothed towards the uniform distribution over the K
        choices of each output: y (1 - eps) + eps / K, K the number of
        classes for softmax, 2 for each logistic output."""
        eps = self.label_smoothing
        if not eps:
            return Y
        if self.out_activation_ != "softmax":
            k = 2
        else:
            # One softmax block per label column: each smooths over its classes.
            groups = self._output_groups() or [Y.shape[1]]
            k = np.repeat(np.asarray(groups, dtype=np.float64), groups)
        return np.ascontiguousarray(Y * (1 - eps) + eps / k, dtype=Y.dtype)

    def _callback_target(self, y, Y):
        # Callbacks compare predict's labels with these.
        return np.asarray(y)

    def _validation_score(self, Y_val, out, sample_weight):
        """Accuracy (exact match for multilabel and several columns of labels)
        of the outputs' labels."""
        if self._is_multioutput():
            correct = np.ones(out.shape[0], dtype=bool)
            for got, want in zip(self._blocks(out), self._blocks(Y_val)):
                correct &= got.argmax(axis=1) == want.argmax(axis=1)
        elif out.shape[1] > 1 and self.out_activation_ == "softmax":
            correct = out.argmax(axis=1) == Y_val.argmax(axis=1)
        else:
            correct = ((out > 0.5) == (Y_val > 0.5)).all(axis=1)
        weights = None if sample_weight is None else sample_weight.astype(np.float64)
        return float(np.average(correct, weights=weights))

    def _validate_input(self, X, y, incremental, reset, classes=None):
        X, y = self._validate_fit_data(
            X,
            y,
            reset,
            "biufU",
            accept_sparse=["csr", "csc"],
            multi_output=True,
            dtype=(np.float64, np.float32),
            order="C",
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        plain = None if self._is_multioutput() else _plain_labels(y)
        if plain is not None:
            # Integer, boolean or string labels: the same checks, classes and
            # encoding as the general path below, from one np.unique instead
            # of half a dozen scans of y.
            seen, y_type, codes = plain
            self._set_classes(y, y_type, incremental, classes, seen=seen)
            Y = self._encode_plain(y, seen, codes, X.dtype)
            if sp.issparse(X) and X.format != "csr":
                X = X.tocsr()
            return X, Y
        columns = None
        if y.ndim == 2 and y.dtype == object:
            # Columns of different kinds (strings beside ints, as a data frame
            # gives them) are checked one by one: they never sort together.
            columns = [_label_column(y[:, k]) for k in range(y.shape[1])]
            for column in columns:
                check_classification_targets(column)
            y_type = _MULTIOUTPUT
        else:
            check_classification_targets(y)
            y_type = type_of_target(y)
        if y_type != _MULTILABEL and y.ndim == 2:
            if y_type != _MULTIOUTPUT:
                raise ValueError(
                    "BPClassifier takes one column of labels, a multilabel "
                    "indicator matrix or several columns of labels; got a target "
                    "of type %r." % y_type
                )
            if columns is None:
                columns = [y[:, k] for k in range(y.shape[1])]
            self._set_column_classes(columns, incremental, classes)
            Y = np.zeros((y.shape[0], sum(len(c) for c in self.classes_)), dtype=X.dtype)
            start = 0
            for k, labels in enumerate(self.classes_):
                index = np.searchsorted(labels, columns[k])
                Y[np.arange(y.shape[0]), start + index] = 1
                start += len(labels)
            if sp.issparse(X) and X.format != "csr":
                X = X.tocsr()
            return X, Y
        if self._is_multioutput() and not (not incremental and (
                not self.warm_start or not hasattr(self, "coefs_"))):
            raise ValueError(
                "The model was fitted on several columns of labels; y is of type "
                "%r." % y_type
            )
        self._set_classes(y, y_type, incremental, classes)
        Y = self._label_binarizer.transform(y)
        if sp.issparse(Y):
            Y = Y.toarray()
        # As scikit-learn: a multilabel indicator's nonzero entries mean "on",
        # whatever their value ({0, 3} or {-1, 1} included).
        Y = np.ascontiguousarray(Y.astype(bool), dtype=X.dtype)
        if sp.issparse(X) and X.format != "csr":
            X = X.tocsr()
        return X, Y

    def _set_column_classes(self, columns, incremental, classes):
        """The classes of each label column: found on a first pass, checked on
        later ones (every label must be known; a batch need not hold each)."""
        fitted = self._is_multioutput()
        if hasattr(self, "classes_") and not fitted and (incremental or self.warm_start):
            raise ValueError(
                "The model was fitted on a target of type %r; y is of type %r."
                % (self._label_binarizer.y_type_, _MULTIOUTPUT)
            )
        if fitted and (incremental or self.warm_start):
            if len(self.classes_) != len(columns):
                raise ValueError("y has %d columns of labels where the model has %d."
                                 % (len(columns), len(self.classes_)))
            for k, labels in enumerate(self.classes_):
                unseen = np.setdiff1d(unique_labels(columns[k]), labels)
                if len(unseen):
                    raise ValueError("column %d of y has classes %s not in "
                                     "classes_[%d]." % (k, unseen, k))
            return
        if incremental:
            if (classes is None or len(classes) != len(columns)
                    or any(np.ndim(c) != 1 for c in classes)):
                raise ValueError(
                    "With several columns of labels, partial_fit's first call needs "
                    "classes: a list of %d arrays, the classes of each column."
                    % len(columns)
                )
            column_classes = [unique_labels(_label_column(np.asarray(c, dtype=object)))
                              for c in classes]
            for k, labels in enumerate(column_classes):
                unseen = np.setdiff1d(unique_labels(columns[k]), labels)
                if len(unseen):
                    raise ValueError("column %d of y has classes %s that are not in "
                                     "classes[%d]." % (k, unseen, k))
        else:
            column_classes = [unique_labels(column) for column in columns]
        for k, labels in enumerate(column_classes):
            if len(labels) < 2:
                raise ValueError("BPClassifier needs at least 2 classes in each "
                                 "column; column %d holds 1 class (%r)." % (k, labels[0]))
        self.classes_ = column_classes
        self._label_binarizer = None

    def _encode_plain(self, y, seen, codes, dtype):
        """Y for labels y whose sorted distinct values are ``seen`` (y ==
        seen[codes]), all of them in ``classes_``: what the binarizer's
        transform gives, as 0/1 in ``dtype``."""
        classes = self.classes_
        try:
            index = np.searchsorted(classes, seen)
            found = index.max(initial=0) < len(classes) and np.array_equal(
                classes[np.minimum(index, len(classes) - 1)], seen)
        except TypeError:  # labels numpy cannot order against classes_
            found = False
        if not found:
            # classes_ that do not sort like y's labels (a loaded model's, say).
            Y = self._label_binarizer.transform(y)
            return np.ascontiguousarray(Y.astype(bool), dtype=dtype)
        codes = index[codes]
        if len(classes) <= 2:
            return np.ascontiguousarray((codes == 1)[:, None], dtype=dtype)
        Y = np.zeros((y.shape[0], len(classes)), dtype=dtype)
        Y[np.arange(y.shape[0]), codes] = 1
        return Y

    def _set_classes(self, y, y_type, incremental, classes, seen=None):
        """Fit the label binarizer on a first pass; check y's labels otherwise.

        ``seen``: y's distinct labels, sorted, when the caller has them
        (integer, boolean or string labels; see ``_plain_labels``)."""
        fitted = hasattr(self, "classes_")
        if incremental and not fitted:
            if y_type == _MULTILABEL:
                labels = y
                if classes is not None and len(classes) != y.shape[1]:
                    raise ValueError(
                        "classes has %d entries but the multilabel y has %d columns."
                        % (len(classes), y.shape[1])
                    )
            elif classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            else:
                labels = unique_labels(classes)
                unseen = np.setdiff1d(unique_labels(y) if seen is None else seen, labels)
                if len(unseen):
                    raise ValueError(
                        "`y` has classes %s that are not in `classes` %s." % (unseen, labels)
                    )
            self._fit_binarizer(labels)
            return
        if not fitted or (not self.warm_start and not incremental):
            if seen is None:
                self._fit_binarizer(y)
            else:
                self._fit_binarizer(y, classes=seen, y_type=y_type)
            return
        if incremental and classes is not None and not np.array_equal(
            unique_labels(classes), self.classes_
        ):
            raise ValueError(
                "`classes=%r` is not the same as on the first call to partial_fit, "
                "which was %r." % (unique_labels(classes), self.classes_)
            )
        if (y_type == _MULTILABEL) != (self._label_binarizer.y_type_ == _MULTILABEL):
            raise ValueError(
                "The model was fitted on a target of type %r; y is of type %r."
                % (self._label_binarizer.y_type_, y_type)
            )
        if y_type == _MULTILABEL:
            if y.shape[1] != len(self.classes_):
                raise ValueError(
                    "y has %d labels where the model has %d."
                    % (y.shape[1], len(self.classes_))
                )
            return
        if seen is None:
            seen = unique_labels(y)
        if self.warm_start and not incremental:
            if set(seen) != set(self.classes_):
                raise ValueError(
                    "warm_start can only be used where `y` has the same classes as "
                    "in the previous call to fit. Previously got %s, `y` has %s"
                    % (self.classes_, seen)
                )
        elif len(np.setdiff1d(seen, self.classes_)):
            raise ValueError(
                "`y` has classes not in `self.classes_`. `self.classes_` has %s. "
                "'y' has %s." % (self.classes_, seen)
            )

    def _fit_binarizer(self, labels, classes=None, y_type=None):
        """Fit the label binarizer on labels; with ``classes`` and ``y_type``
        (from ``_plain_labels``) set what its fit would set, without the scans."""
        if classes is None:
            binarizer = LabelBinarizer().fit(labels)
        else:
            binarizer = LabelBinarizer()
            binarizer.y_type_ = y_type
            binarizer.sparse_input_ = False
            binarizer.classes_ = classes
        if binarizer.y_type_ != _MULTILABEL and len(binarizer.classes_) < 2:
            raise ValueError(
                "BPClassifier needs at least 2 classes; y holds 1 class (%r). "
                "Pass every class to partial_fit with `classes`."
                % (binarizer.classes_[0],)
            )
        self._label_binarizer = binarizer
        self.classes_ = binarizer.classes_

    def _row_weights(self, Y, incremental):
        """Each row's class weight, or None without class_weight."""
        if self.class_weight is None:
            return None
        if self._is_multioutput():
            raise ValueError("class_weight is not defined for several columns of "
                             "labels (multiclass-multioutput targets).")
        if self._label_binarizer.y_type_ == _MULTILABEL:
            raise ValueError("class_weight is not defined for multilabel targets.")
        if incremental and self.class_weight == "balanced":
            raise ValueError(
                "class_weight='balanced' is not supported with partial_fit: the "
                "class counts of one batch are not those of the data. Pass a dict, "
                "for example from sklearn.utils.class_weight.compute_class_weight."
            )
        index = Y.argmax(axis=1) if Y.shape[1] > 1 else Y[:, 0].astype(np.intp)
        weights = compute_class_weight(self.class_weight, classes=self.classes_,
                                       y=self.classes_[index])
        return weights[index]

    def _after_load(self):
        """Rebuild the label binarizer of a loaded model and check its labels
        against the network's output layer."""
        classes = self.classes_
        if isinstance(classes, list):
            sizes = [len(c) if isinstance(c, np.ndarray) and c.ndim == 1 else 0
                     for c in classes]
            if not (classes and min(sizes) >= 2 and sum(sizes) == self.n_outputs_
                    and self.out_activation_ == "softmax"
                    and all(len(np.unique(c)) == len(c) for c in classes)):
                raise ValueError(
                    "classes_ (%d columns of labels) do not match the output layer "
                    "(%s, %d outputs)." % (len(classes), self.out_activation_,
                                           self.n_outputs_))
            if any(not np.array_equal(np.sort(c), c) for c in classes):
                raise ValueError("each array of classes_ must be sorted.")
            self._label_binarizer = None
            return
        if not isinstance(classes, np.ndarray) or classes.ndim != 1:
            raise ValueError("classes_ must be a 1-D array.")
        n = len(classes)
        if self.out_activation_ == "softmax":
            y_type, ok = "multiclass", n > 2 and self.n_outputs_ == n
        elif self.out_activation_ == "logistic" and self.n_outputs_ == 1 and n == 2:
            y_type, ok = "binary", True
        elif self.out_activation_ == "logistic":
            y_type, ok = _MULTILABEL, n == self.n_outputs_ and np.array_equal(
                classes, np.arange(n))
        else:
            y_type, ok = None, False
        if not ok or len(np.unique(classes)) != n:
            raise ValueError(
                "classes_ (%d labels) do not match the output layer (%s, %d outputs)."
                % (n, self.out_activation_, self.n_outputs_)
            )
        binarizer = LabelBinarizer()
        binarizer.classes_ = classes
        binarizer.y_type_ = y_type
        binarizer.sparse_input_ = False
        self._label_binarizer = binarizer


def _label_column(column):
    """An object column of labels as NumPy would type its values: strings stay
    objects, numbers and booleans get their own dtype."""
    if column.dtype == object and not any(isinstance(v, str) for v in column):
        return np.array(column.tolist())
    return column


def _stack_columns(columns):
    """Columns of labels as one (n_samples, n_columns) array; object dtype when
    the columns' dtypes differ (as strings and ints would)."""
    dtypes = {c.dtype for c in columns}
    if len(dtypes) == 1:
        return np.column_stack(columns)
    out = np.empty((columns[0].shape[0], len(columns)), dtype=object)
    for k, c in enumerate(columns):
        out[:, k] = c
    return out


def _plain_labels(y):
    """``(classes, y_type, codes)`` for a 1-D array of integer, boolean or
    string labels, or None for anything else (floats, objects, NaN-capable
    types, 2-D targets), which takes scikit-learn's checks.

    Such labels can hold no NaN and are never continuous, so their target type
    is "binary" (at most two classes) or "multiclass", as ``type_of_target``
    says; ``classes`` are sorted as ``unique_labels`` sorts them, and
    ``codes[i]`` is the index of y[i] in classes.
    """
    if type(y) is not np.ndarray or y.ndim != 1 or y.dtype.kind not in "iubU":
        return None
    classes, codes = np.unique(y, return_inverse=True)
    return classes, "binary" if len(classes) <= 2 else "multiclass", codes.reshape(-1)


register(BPClassifier)
