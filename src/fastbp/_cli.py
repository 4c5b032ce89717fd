# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""``fastbp fit``, ``fastbp predict`` and ``fastbp info``: from the shell.

Data come as CSV, or as Parquet (``.parquet``, ``.pq``) when pyarrow is
installed. Every failure is one line on stderr, never a traceback:

- a bad option or a missing argument: argparse's usage and ``fastbp CMD:
  error: ...``, exit status 2;
- anything else (the data, the model file, an output that cannot be written,
  a network too large for the machine, running out of memory):
  ``fastbp: error: ...``, exit status 1;
- Ctrl-C: ``fastbp: interrupted``, exit status 130; a reader that closes the
  pipe (``fastbp predict ... | head``): no message, exit status 141.

What can be checked before training is checked first, so that a mistake costs
seconds, not a training run; a model file is replaced only once the new one
is complete.
"""

import argparse
import math
import numbers
import os
import sys
import tempfile
import warnings

_PARQUET = (".parquet", ".pq")


class CLIError(Exception):
    """A problem the user can fix; reported as one line, exit status 1."""


# ---------------------------------------------------------------- arguments

# Type functions: argparse reports "argument --OPTION: MESSAGE" for an
# ArgumentTypeError, so each says what it wanted and what it got.


def _number(text, wanted, accept):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or not accept(value):
        raise argparse.ArgumentTypeError("expected %s, got %r" % (wanted, text))
    return value


def _integer(text, wanted, accept):
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not accept(value):
        raise argparse.ArgumentTypeError("expected %s, got %r" % (wanted, text))
    return value


def non_negative_number(text):
    return _number(text, "a number >= 0", lambda v: v >= 0)


def positive_number(text):
    return _number(text, "a number > 0", lambda v: v > 0)


def fraction(text):
    return _number(text, "a fraction in [0, 1)", lambda v: 0 <= v < 1)


def decay(text):
    return _number(text, "a factor in (0, 1]", lambda v: 0 < v <= 1)


def real_number(text):
    return _number(text, "a finite number", lambda v: True)


def n_jobs(text):
    return _integer(text, "a nonzero integer (-1: every core)", lambda v: v != 0)


def positive_integer(text):
    return _integer(text, "a positive integer", lambda v: v > 0)


def batch_size(text):
    if text.strip() == "auto":
        return "auto"
    return _integer(text, "a positive integer or 'auto'", lambda v: v > 0)


def n_iter_no_change(text):
    if text.strip().lower() in ("inf", "infinity"):
        return float("inf")
    return _integer(text, "a positive integer or 'inf'", lambda v: v > 0)


def seed(text):
    # What check_random_state accepts, checked here so that the message names
    # the option rather than an internal function.
    return _integer(text, "an integer in [0, 2**32 - 1]", lambda v: 0 <= v < 2**32)


def layer_sizes(text):
    if text.strip().lower() in ("", "none", "()"):
        return ()
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or any(size <= 0 for size in sizes):
        raise argparse.ArgumentTypeError(
            "expected positive layer sizes like 64,64, or 'none', got %r" % text
        )
    return sizes


def activations(text):
    """One hidden activation, or a comma-separated list of one per layer."""
    from ._enums import HIDDEN_ACTIVATIONS

    names = [name.strip() for name in text.split(",")]
    bad = [name for name in names if name not in HIDDEN_ACTIVATIONS]
    if bad:
        raise argparse.ArgumentTypeError(
            "unknown activation %r; choose among %s, or a comma-separated list of "
            "one per hidden layer" % (bad[0], ", ".join(HIDDEN_ACTIVATIONS)))
    return names[0] if len(names) == 1 else names


def dropout_rates(text):
    """One drop rate in [0, 1), or a comma-separated list of one per layer."""
    try:
        rates = [float(part) for part in text.split(",")]
    except ValueError:
        rates = [-1.0]
    if not all(0 <= rate < 1 for rate in rates):
        raise argparse.ArgumentTypeError(
            "expected drop rates in [0, 1) like 0.2 or 0.2,0.1, got %r" % text)
    return rates[0] if len(rates) == 1 else rates


def column_names(text):
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(
            "expected comma-separated column names, got %r" % text
        )
    return names


def output_path(text):
    if not text:
        raise argparse.ArgumentTypeError("expected a path, got ''")
    return text


_FIT_DESCRIPTION = """\
Train a BPRegressor (or, for a categorical target, a BPClassifier) on the
columns of DATA, report its score on a held-out part of the rows beside that of
a linear model (Ridge, or LogisticRegression for a classifier) on the same
split, and save the whole model in fastbp's pickle-free format (load it with
fastbp.load, apply it with `fastbp predict`, describe it with `fastbp info`).

Every column other than the targets is a feature unless --features or --drop
say otherwise. By default the features go through a scikit-learn pipeline:
  - numeric columns: a missing value is replaced by the column's median over
    the training rows, then the column is standardised (mean 0, variance 1);
  - text, boolean and categorical columns: one-hot encoded; a missing value is
    a category of its own, and a category not seen in training (at predict
    time) encodes as all zeros;
  - constant columns and id-like ones (whole numbers that count through the
    rows, such as a row number, or a text that differs on every row) are
    reported and left out, unless named by --features;
  - rows without a target value are left out.
A regressor's target is standardised too (TransformedTargetRegressor), after
taking its log with --log-target. --no-preprocess trains on the features as
they are. Column options take comma-separated names and may be repeated.
"""

# The estimator's options: (flag, parameter, argparse keywords, help). Their
# defaults are read from BPRegressor itself, so they have one home.
_ESTIMATOR_OPTIONS = [
    ("--hidden", "hidden_layer_sizes", dict(type=layer_sizes, metavar="SIZES"),
     "hidden layer sizes, like 64,64; 'none' for no hidden layer"),
    ("--activation", "activation", dict(type=activations, metavar="NAME[,NAME...]"),
     "hidden activation (relu, tanh, gelu, ...), or one per hidden layer"),
    ("--solver", "solver", dict(choices=["lbfgs", "sgd", "adam", "adamw", "rprop"]),
     "optimizer"),
    ("--loss", "loss", dict(choices=["squared_error", "poisson", "absolute_error",
                                     "huber", "quantile"]), "regression loss"),
    ("--out-activation", "out_activation",
     dict(choices=["identity", "logistic", "softplus", "exp"]),
     "regression output activation (default: the loss's own)"),
    ("--huber-delta", "huber_delta", dict(type=positive_number, metavar="DELTA"),
     "where --loss huber turns from squared to absolute error"),
    ("--quantile", "quantile", dict(type=fraction, metavar="Q"),
     "the quantile that --loss quantile predicts"),
    ("--label-smoothing", "label_smoothing", dict(type=fraction, metavar="EPS"),
     "classifier label smoothing"),
    ("--dropout", "dropout", dict(type=dropout_rates, metavar="P[,P...]"),
     "drop rate of the hidden units while training, or one per hidden layer"),
    ("--gradient-clip", "gradient_clip", dict(type=positive_number, metavar="NORM"),
     "clip each minibatch gradient to this global norm"),
    ("--weight-decay", "weight_decay", dict(type=non_negative_number, metavar="WD"),
     "decoupled weight decay of --solver adamw"),
    ("--alpha", "alpha", dict(type=non_negative_number, metavar="ALPHA"),
     "L2 penalty"),
    ("--batch-size", "batch_size", dict(type=batch_size, metavar="N"),
     "minibatch size, or 'auto' for min(200, rows)"),
    ("--learning-rate", "learning_rate",
     dict(choices=["constant", "invscaling", "adaptive", "cosine", "exponential"]),
     "step size schedule"),
    ("--lr-decay", "lr_decay", dict(type=decay, metavar="RATE"),
     "per-epoch factor of --learning-rate exponential"),
    ("--warmup-fraction", "warmup_fraction", dict(type=fraction, metavar="FRACTION"),
     "fraction of --max-iter over which the step size ramps up linearly"),
    ("--weight-init", "weight_init",
     dict(choices=["glorot_uniform", "he_uniform", "he_normal", "lecun_normal"]),
     "initial weights"),
    ("--stop-loss", "stop_loss", dict(type=real_number, metavar="LOSS"),
     "stop as soon as the training loss falls under LOSS"),
    ("--n-jobs", "n_jobs", dict(type=n_jobs, metavar="N"),
     "threads for training and prediction; -1 for every core"),
    ("--learning-rate-init", "learning_rate_init",
     dict(type=positive_number, metavar="LR"), "initial step size"),
    ("--max-iter", "max_iter", dict(type=positive_integer, metavar="N"),
     "maximum number of epochs"),
    ("--tol", "tol", dict(type=non_negative_number, metavar="TOL"),
     "improvement below which an epoch does not count as progress"),
    ("--n-iter-no-change", "n_iter_no_change",
     dict(type=n_iter_no_change, metavar="N"),
     "epochs without progress before stopping; 'inf' never stops early"),
    ("--early-stopping", "early_stopping", dict(action=argparse.BooleanOptionalAction),
     "hold out --validation-fraction of the training rows and stop when their "
     "R² stops improving"),
    ("--validation-fraction", "validation_fraction",
     dict(type=fraction, metavar="FRACTION"), "rows held out by --early-stopping"),
    ("--random-state", "random_state", dict(type=seed, metavar="SEED"),
     "seed for the holdout split and the training"),
]


def _show_default(value):
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "none"
    return value


def add_commands(commands):
    """Add the ``fit`` and ``predict`` subcommands to an argparse subparsers."""
    from ._classifier import BPClassifier
    from ._regressor import BPRegressor

    defaults = {**BPClassifier().get_params(), **BPRegressor().get_params()}
    fit = commands.add_parser(
        "fit",
        help="train a BPRegressor or BPClassifier on a CSV or Parquet file and save it",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_FIT_DESCRIPTION,
    )
    fit.add_argument("data", metavar="DATA", help="CSV or Parquet file")
    fit.add_argument("--target", "-t", action="append", required=True,
                     type=column_names, metavar="COLS",
                     help="target column(s); several give several outputs")
    fit.add_argument("--features", action="append", type=column_names, metavar="COLS",
                     help="feature columns (default: all the others)")
    fit.add_argument("--drop", action="append", default=[], type=column_names,
                     metavar="COLS", help="columns to leave out (an id, say)")
    fit.add_argument("--out", "-o", default="model.npz", type=output_path,
                     metavar="PATH",
                     help="where to save the model (default: %(default)s)")
    fit.add_argument("--estimator", choices=["auto", "regressor", "classifier"],
                     default="auto",
                     help="'auto' trains a classifier when the one target column is "
                     "categorical (text, boolean or category) and a regressor "
                     "otherwise, and says which (default: %(default)s)")
    fit.add_argument("--holdout", type=fraction, default=0.2, metavar="FRACTION",
                     help="fraction of rows held out to report the validation R² "
                     "(or accuracy); 0 reports the training score (default: "
                     "%(default)s)")
    fit.add_argument("--log-target", action="store_true",
                     help="regressor: fit on log(target) (every target value must "
                     "be > 0) and predict exp of the network's output")
    fit.add_argument("--no-preprocess", action="store_true",
                     help="use the feature columns as they are (they must all be "
                     "numbers without missing values) and save the bare network")
    est = fit.add_argument_group("BPRegressor parameters (same names as MLPRegressor)")
    for flag, name, keywords, text in _ESTIMATOR_OPTIONS:
        est.add_argument(flag, dest=name, default=defaults[name],
                         help="%s: %s (default: %s)"
                         % (name, text, _show_default(defaults[name])), **keywords)
    est.add_argument("--verbose", "-v", action="count",
                     default=int(defaults["verbose"]),
                     help="-v: one line per epoch; -vv: a progress bar")
    fit.set_defaults(run=run_fit)

    predict = commands.add_parser(
        "predict",
        help="predict with a saved model",
        description="Load MODEL (saved by `fastbp fit`, fastbp.save or "
        "BPRegressor.save) and write its predictions for the rows of DATA as CSV, "
        "or Parquet when OUT ends in .parquet. A pipeline saved by `fastbp fit` "
        "imputes and encodes the columns itself, as in training. A model trained "
        "on named columns takes those columns by name, so DATA may hold others "
        "too (the target, an id).",
    )
    predict.add_argument("model", metavar="MODEL", help="model file")
    predict.add_argument("data", metavar="DATA", help="CSV or Parquet file")
    predict.add_argument("--out", "-o", default="-", type=output_path, metavar="PATH",
                         help="output file; '-' for standard output (default)")
    predict.add_argument("--proba", action="store_true",
                         help="for a classifier, also write the probability of each "
                         "class as columns proba_<class>")
    predict.set_defaults(run=run_predict)

    info = commands.add_parser(
        "info",
        help="show what a model file holds",
        description="Print what MODEL holds: its kind and steps, the columns it "
        "takes, the network's layers, the training summary written by `fastbp fit` "
        "and the versions that wrote it. Only the file's JSON is read: no "
        "estimator is built.",
    )
    info.add_argument("model", metavar="MODEL", help="model file")
    info.set_defaults(run=run_info)


# --------------------------------------------------------------------- data


def read_table(path):
    """Read a CSV or Parquet file into a pandas DataFrame."""
    import pandas as pd

    if not os.path.exists(path):
        raise CLIError("cannot read %s: no such file" % path)
    try:
        if path.lower().endswith(_PARQUET):
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise CLIError(
                    "reading Parquet needs pyarrow: pip install pyarrow"
                ) from None
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path)
    except CLIError:
        raise
    except pd.errors.EmptyDataError:
        raise CLIError("%s is empty" % path) from None
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise CLIError("cannot read %s: %s" % (path, _one_line(exc))) from None
    if frame.shape[0] == 0:
        raise CLIError("%s has no data rows" % path)
    return frame


def _check_columns(frame, columns, path, what):
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise CLIError(
            "no %s column %s in %s; its columns are: %s"
            % (what, ", ".join(map(repr, missing)), path,
               ", ".join(map(str, frame.columns)))
        )


def numeric_columns(frame, columns, path):
    """The columns as a float DataFrame, or a CLIError naming the first bad cell."""
    import pandas as pd

    out = {}
    for column in columns:
        values = frame[column]
        if values.dtype.kind not in "biuf":
            converted = pd.to_numeric(values, errors="coerce")
            bad = converted.isna() & values.notna()
            if bad.any():
                row = int(bad.to_numpy().argmax())
                raise CLIError(
                    "column %r of %s is not numeric: %r in data row %d; drop it "
                    "with --drop or encode it as numbers"
                    % (column, path, values.iloc[row], _data_row(frame, row))
                )
            values = converted
        values = values.astype("float64")
        missing = values.isna() | ~values.abs().lt(float("inf"))
        if missing.any():
            row = int(missing.to_numpy().argmax())
            raise CLIError(
                "column %r of %s has %d missing or infinite value(s), the first in "
                "data row %d; fill or drop them first"
                % (column, path, int(missing.sum()), _data_row(frame, row))
            )
        out[column] = values
    return pd.DataFrame(out, index=frame.index)


def _data_row(frame, position):
    """The file's data row (from 1) of a row of ``frame``: read_table numbers
    rows from 0, and a frame with rows left out keeps those numbers."""
    label = frame.index[position]
    return int(label) + 1 if isinstance(label, numbers.Integral) else position + 1


def write_table(frame, path):
    if path == "-":
        frame.to_csv(sys.stdout, index=False)
        # Inside the caller's error handling, so a closed pipe is seen here
        # rather than at the interpreter's final flush.
        sys.stdout.flush()
        return
    try:
        if path.lower().endswith(_PARQUET):
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise CLIError(
                    "writing Parquet needs pyarrow: pip install pyarrow"
                ) from None
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)
    except OSError as exc:
        raise CLIError("cannot write %s: %s" % (path, _os_reason(exc))) from None


def check_output(path, inputs, replaced):
    """Fail now, before any training, if ``path`` cannot be written.

    ``inputs`` are files that ``path`` must not overwrite. ``replaced`` says
    that the file is written beside ``path`` and then renamed over it (as
    models are), so ``path`` must be a regular file if it exists. Otherwise
    it is written in place and may be a device or a pipe (``/dev/stdout``).
    """
    if path == "-":
        return
    if os.path.exists(path):
        for source in inputs:
            if os.path.exists(source) and os.path.samefile(path, source):
                raise CLIError("cannot write %s: it is the input file %s; choose "
                               "another --out" % (path, source))
        if os.path.isdir(path):
            raise CLIError("cannot write %s: it is a directory" % path)
        if not os.path.isfile(path):
            if replaced:
                raise CLIError("cannot write %s: not a regular file" % path)
            if not os.access(path, os.W_OK):
                raise CLIError("cannot write %s: permission denied" % path)
            return
        if not replaced and not os.access(path, os.W_OK):
            raise CLIError("cannot write %s: permission denied" % path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CLIError("cannot write %s: no directory %s" % (path, directory))
    # Creating and removing a file there is the one test that also holds on
    # read-only file systems and for root.
    try:
        fd, probe = tempfile.mkstemp(prefix=".fastbp-", dir=directory)
    except OSError as exc:
        raise CLIError("cannot write %s: %s" % (path, _os_reason(exc))) from None
    os.close(fd)
    os.unlink(probe)


def _machine_memory():
    """Bytes of memory this process may use at most, or None if unknown."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        total = None
    # A container's limit, cgroup v2 then v1.
    for limit in ("/sys/fs/cgroup/memory.max",
                  "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(limit) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit():
            total = int(text) if total is None else min(total, int(text))
        break
    return total


def _gib(n_bytes):
    return "%.3g GiB" % (n_bytes / 2**30)


def check_network_size(est, n_rows, n_features, n_outputs):
    """Refuse a network that cannot fit in this machine's memory, before
    anything is allocated: an allocation that the kernel overcommits would
    otherwise end in the out-of-memory killer, with no message at all."""
    units = [n_features, *est.hidden_layer_sizes, n_outputs]
    n_params = sum((n_in + 1) * n_out for n_in, n_out in zip(units, units[1:]))
    if est.solver == "lbfgs" or est.batch_size == "auto":
        batch = n_rows if est.solver == "lbfgs" else min(200, n_rows)
    else:
        batch = min(est.batch_size, n_rows)
    # A lower bound for any solver: the weights and their gradients, and the
    # activations and deltas of one batch, in float64.
    needed = 8 * (2 * n_params + 2 * batch * sum(units[1:]))
    available = _machine_memory()
    if available is not None and needed > available:
        raise CLIError(
            "--hidden %s: a network of %d parameters on %d features needs at least "
            "%s of memory to train, and this machine has %s; use smaller layers"
            % (_show_default(est.hidden_layer_sizes), n_params, n_features,
               _gib(needed), _gib(available))
        )


# ----------------------------------------------------------------- commands


def _flatten(lists):
    return list(dict.fromkeys(name for names in lists or () for name in names))


def run_fit(args):
    if not os.path.exists(args.data):
        raise CLIError("cannot read %s: no such file" % args.data)
    if args.log_target and args.no_preprocess:
        raise CLIError("--log-target and --no-preprocess cannot be combined: the log "
                       "is taken inside the saved pipeline")
    check_output(args.out, [args.data], replaced=True)
    frame = read_table(args.data)
    targets = _flatten(args.target)
    drop = _flatten(args.drop)
    _check_columns(frame, targets, args.data, "target")
    _check_columns(frame, drop, args.data, "--drop")
    if args.features:
        features = _flatten(args.features)
        _check_columns(frame, features, args.data, "feature")
    else:
        features = [c for c in frame.columns if c not in targets and c not in drop]
    overlap = sorted(set(features) & set(targets))
    if overlap:
        raise CLIError("column(s) %s cannot be both feature and target" % overlap)
    if not features:
        raise CLIError("no feature columns left in %s" % args.data)
    kind = _estimator_kind(args, frame, targets)
    if args.log_target and kind == "classifier":
        raise CLIError("--log-target is for regressors; the target %r is read as "
                       "class labels" % targets[0])
    if args.no_preprocess:
        return _fit_plain(args, frame, features, targets, kind)
    return _fit_pipeline(args, frame, features, targets, kind)


def _target(frame, targets, kind, path):
    """The target: a Series for one column, a DataFrame for several."""
    if kind == "classifier":
        return frame[targets[0]] if len(targets) == 1 else frame[targets]
    Y = numeric_columns(frame, targets, path)
    return Y.iloc[:, 0] if len(targets) == 1 else Y


def _split(args, X, y, kind, n_targets):
    import numpy as np
    from sklearn.model_selection import train_test_split

    if args.holdout == 0:
        return X, X, y, y
    n_holdout = int(np.ceil(args.holdout * len(X)))
    if n_holdout < 2 or len(X) - n_holdout < 2:
        raise CLIError(
            "%s has %d rows: too few to hold out %g of them; use --holdout 0 "
            "or more data" % (args.data, len(X), args.holdout)
        )
    stratify = None
    if kind == "classifier" and n_targets == 1:
        counts = y.value_counts()
        if counts.min() >= 2 and n_holdout >= len(counts):
            stratify = y
    return train_test_split(X, y, test_size=args.holdout,
                            random_state=args.random_state, stratify=stratify)


def _network(args, kind):
    from ._regressor import BPRegressor

    params = {name: getattr(args, name) for _, name, _, _ in _ESTIMATOR_OPTIONS}
    if kind == "classifier":
        from ._classifier import BPClassifier

        if params.pop("loss") != BPRegressor().loss:
            raise CLIError("--loss is for regressors; a classifier's loss is the log-loss")
        regressor_only = BPRegressor().get_params()
        for name in ("out_activation", "huber_delta", "quantile"):
            if params.pop(name) != regressor_only[name]:
                raise CLIError("--%s is for regressors" % name.replace("_", "-"))
        return BPClassifier(**params, verbose=args.verbose)
    from ._classifier import BPClassifier

    if params.pop("label_smoothing") != BPClassifier().label_smoothing:
        raise CLIError("--label-smoothing is for classifiers")
    return BPRegressor(**params, verbose=args.verbose)


def _fit_plain(args, frame, features, targets, kind):
    """--no-preprocess: numeric features as they are, the bare network saved."""
    X = numeric_columns(frame, features, args.data)
    y = _target(frame, targets, kind, args.data)
    X_train, X_val, y_train, y_val = _split(args, X, y, kind, len(targets))
    est = _network(args, kind)
    check_network_size(est, len(X_train), len(features), len(targets))
    return _train_and_save(args, est, _linear(kind, len(targets)), X_train, X_val, y_train, y_val, kind,
                           {"preprocessing": "none",
                            "features": {"numeric": _capped(features)},
                            "rows": len(X)})


def _capped(names, n=1000):
    """Column names for the saved training summary, which stays small: at
    most ``n`` of them, each at most 200 characters."""
    names = [str(c)[:200] for c in names]
    if len(names) > n:
        names = names[:n] + ["... and %d more" % (len(names) - n)]
    return names


def _linear(kind, n_targets=1):
    if kind == "classifier":
        from sklearn.linear_model import LogisticRegression

        if n_targets > 1:
            # Several label columns: one logistic regression per column.
            from sklearn.multioutput import MultiOutputClassifier

            return MultiOutputClassifier(LogisticRegression(max_iter=1000))
        return LogisticRegression(max_iter=1000)
    from sklearn.linear_model import Ridge

    return Ridge()


def _fit_pipeline(args, frame, features, targets, kind):
    import numpy as np
    from sklearn.base import clone
    from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    numeric, categorical, left_out = _column_kinds(frame, features, args,
                                                   explicit=bool(args.features))
    if not numeric and not categorical:
        raise CLIError("no feature columns left in %s (left out: %s)"
                       % (args.data, ", ".join(left_out)))
    has_target = frame[targets].notna().all(axis=1)
    frame = frame[has_target]
    if len(frame) == 0:
        raise CLIError("no row of %s has a value for every target" % args.data)
    y = _target(frame, targets, kind, args.data)
    if args.log_target:
        values = np.asarray(y, dtype=float).reshape(len(y), -1)
        bad = ~(values > 0)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise CLIError(
                "--log-target needs target values > 0; column %r has %d value(s) "
                "<= 0, the first %r in data row %d"
                % (targets[col], int(bad[:, col].sum()), float(values[row, col]),
                   _data_row(frame, row))
            )
    X = frame[numeric + categorical]
    X_train, X_val, y_train, y_val = _split(args, X, y, kind, len(targets))

    steps = []
    if numeric:
        steps.append(("numeric", Pipeline([
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
        ]), numeric))
    if categorical:
        steps.append(("categorical", OneHotEncoder(handle_unknown="ignore"),
                      categorical))
    preprocess = ColumnTransformer(steps)
    net = _network(args, kind)
    if kind == "classifier":
        model, baseline = net, _linear(kind, len(targets))
        target_how = "class labels"
    else:
        target = StandardScaler()
        target_how = "standardised"
        if args.log_target:
            target = Pipeline([
                ("log", FunctionTransformer(np.log, inverse_func=np.exp)),
                ("scale", StandardScaler()),
            ])
            target_how = "log, then standardised"
        model = TransformedTargetRegressor(regressor=net, transformer=target)
        baseline = TransformedTargetRegressor(regressor=_linear(kind),
                                              transformer=clone(target))
    width = len(numeric) + sum(
        X_train[c].nunique(dropna=False) for c in categorical)
    check_network_size(net, len(X_train), width, len(targets))
    model = Pipeline([("preprocess", preprocess), ("model", model)])
    baseline = Pipeline([("preprocess", clone(preprocess)), ("model", baseline)])

    print("features: %s" % _describe_features(numeric, categorical))
    if left_out:
        print("left out: %s" % "; ".join("%s (%s)" % item for item in left_out.items()))
    missing = X.isna().sum()
    if missing.any():
        parts = []
        n_num, n_cat = int(missing[numeric].sum()), int(missing[categorical].sum())
        if n_num:
            parts.append("%d numeric cell(s) get their column's median" % n_num)
        if n_cat:
            parts.append("%d categorical cell(s) are a category of their own" % n_cat)
        print("missing values: %s" % "; ".join(parts))
    print("target: %s (%s)" % (", ".join(map(str, targets)), target_how))
    dropped = int((~has_target).sum())
    print("rows: %d used%s" % (len(X), "" if not dropped else
                                 ", %d without a target value left out" % dropped))
    summary = {
        "preprocessing": "pipeline",
        "features": {"numeric": _capped(numeric), "categorical": _capped(categorical)},
        "left_out": _capped(["%s (%s)" % item for item in left_out.items()]),
        "target_transform": target_how,
        "rows": len(X),
        "rows_without_target": dropped,
    }
    return _train_and_save(args, model, baseline, X_train, X_val, y_train, y_val, kind,
                           summary)


def _describe_features(numeric, categorical):
    parts = []
    if numeric:
        parts.append("%d numeric, standardised (%s)" % (len(numeric), _some(numeric)))
    if categorical:
        parts.append("%d categorical, one-hot encoded (%s)"
                     % (len(categorical), _some(categorical)))
    return "; ".join(parts)


def _some(names, n=8):
    names = [str(c) for c in names]
    if len(names) <= n:
        return ", ".join(names)
    return "%s and %d more" % (", ".join(names[:n]), len(names) - n)


def _train_and_save(args, model, baseline, X_train, X_val, y_train, y_val, kind,
                    summary):
    from ._pipeline_persist import save

    model.fit(X_train, y_train)
    score = model.score(X_val, y_val)
    with warnings.catch_warnings():
        # The baseline is a reference point, not the user's model: its own
        # convergence notes would only confuse the report.
        warnings.simplefilter("ignore")
        baseline.fit(X_train, y_train)
        baseline_score = baseline.score(X_val, y_val)
    network = _network_of(model)
    metric = "R2" if kind == "regressor" else "accuracy"
    which = "validation" if args.holdout > 0 else "training"
    name = type(_final(baseline)).__name__
    summary = dict({
        "data": os.path.basename(args.data),
        "estimator": type(network).__name__,
        "target": _capped(_flatten(args.target)),
    }, **summary)
    summary.update({
        "rows_trained": len(X_train),
        "rows_scored": len(X_val),
        "epochs": int(network.n_iter_),
        "metric": "%s %s" % (which, metric),
        "score": float(score),
        "baseline": name,
        "baseline_score": float(baseline_score),
    })
    try:
        save(model, args.out, training=summary)
    except OSError as exc:
        raise CLIError("cannot write %s: %s" % (args.out, _os_reason(exc))) from None
    print("%s %s %.4f on %d rows (trained on %d rows, %d epochs)"
          % (which, metric, score, len(X_val), len(X_train), network.n_iter_))
    print("linear baseline (%s): %s %s %.4f on the same rows"
          % (name, which, metric, baseline_score))
    print("saved model to %s" % args.out)
    return 0


def _final(model):
    from sklearn.pipeline import Pipeline

    while True:
        if isinstance(model, Pipeline):
            model = model.steps[-1][1]
        elif hasattr(model, "regressor_"):
            model = model.regressor_
        else:
            return model


def _network_of(model):
    return _final(model)


def _column_kinds(frame, features, args, explicit):
    """Numeric and categorical feature columns, and those left out, with why."""
    import pandas as pd

    numeric, categorical, left_out = [], [], {}
    n_rows = len(frame)
    for column in features:
        values = frame[column]
        why = None
        n_distinct = values.nunique(dropna=False)
        if values.isna().all():
            why = "no values"
        elif n_distinct <= 1:
            why = "constant"
        is_bool = pd.api.types.is_bool_dtype(values)
        is_number = pd.api.types.is_numeric_dtype(values) and not is_bool
        if why is None and n_rows >= 2 and n_distinct == n_rows:
            if is_number and pd.api.types.is_integer_dtype(values) and (
                values.max() - values.min() == n_rows - 1
            ):
                why = "id-like: a different whole number on every row"
            elif not is_number and not is_bool:
                why = "id-like: a different text on every row"
        if why is not None and (not explicit or why == "no values"):
            left_out[str(column)] = why
            continue
        if why is not None:
            print("note: feature %r is %s" % (column, why))
        if is_number:
            numeric.append(column)
        elif is_bool or pd.api.types.is_object_dtype(values) or isinstance(
            values.dtype, (pd.CategoricalDtype, pd.StringDtype)
        ):
            _warn_numbers_as_text(values, column, args.data)
            categorical.append(column)
        else:
            raise CLIError("column %r of %s holds %s values; drop it with --drop or "
                           "convert it to numbers or text"
                           % (column, args.data, values.dtype))
    return numeric, categorical, left_out


def _warn_numbers_as_text(values, column, path):
    """A column of numbers with a stray word in it is one typo away from
    numeric: say so rather than silently one-hot encode it."""
    import pandas as pd

    present = values.dropna()
    if len(present) == 0 or isinstance(values.dtype, pd.CategoricalDtype):
        return
    converted = pd.to_numeric(present.astype(str), errors="coerce")
    bad = converted.isna()
    if bad.any() and bad.mean() < 0.5:
        label = bad.idxmax()
        warnings.warn(
            "column %r of %s is read as text because of %r in data row %d, though "
            "most of its values are numbers; it is one-hot encoded (fix the cell, or "
            "drop the column with --drop)"
            % (column, path, present[label], values.index.get_loc(label) + 1)
        )


def _estimator_kind(args, frame, targets):
    """'regressor' or 'classifier', as --estimator says or the target suggests."""
    if args.estimator != "auto":
        return args.estimator
    if len(targets) == 1:
        import pandas as pd

        column = frame[targets[0]]
        if not (pd.api.types.is_numeric_dtype(column)
                and not pd.api.types.is_bool_dtype(column)):
            print("target %r is categorical: training a BPClassifier "
                  "(--estimator regressor to change)" % targets[0])
            return "classifier"
    return "regressor"


def run_predict(args):
    import pandas as pd

    from ._persist import load

    if not os.path.exists(args.model):
        raise CLIError("cannot read %s: no such file" % args.model)
    if not os.path.exists(args.data):
        raise CLIError("cannot read %s: no such file" % args.data)
    check_output(args.out, [args.data, args.model], replaced=False)
    est = load(args.model)
    frame = read_table(args.data)
    names = getattr(est, "feature_names_in_", None)
    is_pipeline = _final(est) is not est
    if names is not None:
        columns = [str(c) for c in names]
        _check_columns(frame, columns, args.data, "feature")
    else:
        columns = list(frame.columns)
        if len(columns) != est.n_features_in_:
            raise CLIError(
                "%s has %d columns but the model takes %d unnamed features"
                % (args.data, len(columns), est.n_features_in_)
            )
    if is_pipeline:
        # The pipeline encodes and imputes the columns itself.
        X = frame[columns]
    else:
        X = numeric_columns(frame, columns, args.data)
        if names is None:
            X = X.to_numpy()
    pred = est.predict(X)
    is_classifier = hasattr(_final(est), "classes_")
    if args.proba and not is_classifier:
        raise CLIError("--proba needs a classifier; %s holds a regressor" % args.model)
    if is_classifier and pred.ndim == 1:
        out = pd.DataFrame({"label": pred})
        if args.proba:
            proba = est.predict_proba(X)
            for i, label in enumerate(est.classes_):
                out["proba_%s" % label] = proba[:, i]
    elif is_classifier:
        out = pd.DataFrame(pred, columns=["label_%d" % i for i in range(pred.shape[1])])
        if args.proba:
            proba = est.predict_proba(X)
            if isinstance(proba, list):
                # Several columns of labels: one block of probabilities each.
                for i, (block, classes) in enumerate(zip(proba, est.classes_)):
                    for j, label in enumerate(classes):
                        out["proba_%d_%s" % (i, label)] = block[:, j]
            else:
                for i in range(pred.shape[1]):
                    out["proba_%d" % i] = proba[:, i]
    elif pred.ndim == 1:
        out = pd.DataFrame({"prediction": pred})
    else:
        columns = ["prediction_%d" % i for i in range(pred.shape[1])]
        out = pd.DataFrame(pred, columns=columns)
    write_table(out, args.out)
    return 0


def run_info(args):
    from ._persist import read_metadata

    if not os.path.exists(args.model):
        raise CLIError("cannot read %s: no such file" % args.model)
    metadata = read_metadata(args.model)
    for line in describe(metadata):
        print(line)
    return 0


def describe(metadata):
    """Lines that say what a model file's checked metadata holds.

    Only the JSON is read, and defensively: a field that is not what fastbp
    writes shows as '?', never as an error.
    """
    arrays = metadata["arrays"]
    lines = ["format: fastbp model, format version %s" % metadata["format_version"],
             "written by: fastbp %s, scikit-learn %s, NumPy %s"
             % tuple(_text(metadata.get(k)) for k in (
                 "fastbp_version", "sklearn_version", "numpy_version"))]
    if "model" in metadata:
        lines.append("model: %s" % _text(metadata["estimator"]))
        lines.extend(_describe_node(metadata["model"], arrays, "  "))
    else:
        lines.extend(_describe_network(metadata, arrays, ""))
    training = metadata.get("training")
    if isinstance(training, dict):
        lines.append("training:")
        for key, value in training.items():
            if isinstance(value, dict):
                for inner, v in value.items():
                    lines.append("  %s %s: %s" % (_text(key), _text(inner), _value(v)))
            else:
                lines.append("  %s: %s" % (_text(key), _value(value)))
    return lines


def _text(value, limit=200):
    text = value if isinstance(value, str) else "?" if value is None else repr(value)
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[:limit] + "..."


def _value(value):
    if isinstance(value, list):
        return _text(_some([_text(v, 60) for v in value], 20) or "none", 2000)
    if isinstance(value, float):
        return "%.6g" % value
    return _text(value)


def _get(node, key, kind):
    value = node.get(key) if isinstance(node, dict) else None
    return value if isinstance(value, kind) else None


def _describe_columns(node):
    names = _get(node, "feature_names_in", list)
    if names is None:
        names = (_get(_get(_get(node, "attributes", dict), "feature_names_in_", dict),
                      "$strings", list))
    if names:
        return "%d columns: %s" % (len(names), _value(names))
    n = _get(node, "n_features_in", int) or _get(
        _get(node, "attributes", dict), "n_features_in_", int)
    return "%s unnamed columns" % (n if n is not None else "?")


def _describe_node(node, arrays, indent):
    kind = _text(_get(node, "kind", str))
    if kind == "network":
        return _describe_network(node, arrays, indent)
    if kind == "Pipeline":
        lines = []
        for step in _get(node, "steps", list) or []:
            if isinstance(step, list) and len(step) == 2:
                lines.append("%sstep %s: %s" % (indent, _text(step[0]),
                                                _text(_get(step[1], "kind", str))))
                lines.extend(_describe_node(step[1], arrays, indent + "  "))
        return lines
    if kind == "ColumnTransformer":
        lines = ["%stakes %s" % (indent, _describe_columns(node))]
        for entry in _get(node, "transformers", list) or []:
            if isinstance(entry, list) and len(entry) == 3:
                columns = entry[2] if isinstance(entry[2], list) else []
                lines.append("%s%s: %s on %s" % (indent, _text(entry[0]),
                                                 _chain(entry[1]), _value(columns)))
        return lines
    if kind == "TransformedTargetRegressor":
        return (["%starget: %s" % (indent, _chain(_get(node, "transformer", dict)))]
                + _describe_node(_get(node, "regressor", dict), arrays, indent))
    return ["%s%s" % (indent, _chain(node))]


def _chain(node):
    """A transformer in a few words: 'SimpleImputer(median) -> StandardScaler'."""
    kind = _text(_get(node, "kind", str))
    if kind == "Pipeline":
        return " -> ".join(_chain(s[1]) for s in _get(node, "steps", list) or []
                           if isinstance(s, list) and len(s) == 2)
    detail = {
        "SimpleImputer": lambda: _text(_get(_get(node, "params", dict), "strategy",
                                            str)),
        "FunctionTransformer": lambda: _text(_get(node, "function", str)),
        "OneHotEncoder": lambda: "%s categories" % sum(
            len(_get(_get(c, "labels", dict), "values", list) or [])
            + len(_get(c, "missing", list) or [])
            for c in _get(node, "categories", list) or []),
    }.get(kind)
    return "%s(%s)" % (kind, detail()) if detail else kind


def _describe_network(node, arrays, indent):
    attributes = _get(node, "attributes", dict) or {}
    params = _get(node, "params", dict) or {}
    coefs = _get(attributes, "coefs_", list) or []
    shapes = []
    for coef in coefs:
        spec = arrays.get(_get(coef, "$array", str)) if isinstance(coef, dict) else None
        shapes.append(spec["shape"] if isinstance(spec, dict) else None)
    if shapes and all(isinstance(s, list) and len(s) == 2 for s in shapes):
        units = [shapes[0][0]] + [s[1] for s in shapes]
        dtype = arrays[coefs[0]["$array"]]["dtype"]
        layers = "%s (%s)" % (" -> ".join(map(str, units)),
                              {"<f4": "float32", "<f8": "float64"}.get(dtype, "?"))
    else:
        layers = "?"
    lines = ["%snetwork: %s" % (indent, _text(_get(node, "estimator", str))),
             "%s  layers: %s" % (indent, layers),
             "%s  activation: %s, output: %s, solver: %s"
             % (indent, _text(params.get("activation")),
                _text(attributes.get("out_activation_")), _text(params.get("solver"))),
             "%s  epochs: %s" % (indent, _text(attributes.get("n_iter_")))]
    labels = _get(_get(attributes, "classes_", dict), "$labels", dict)
    if labels is not None:
        lines.append("%s  classes: %s" % (indent, _value(_get(labels, "values", list))))
    if _get(attributes, "feature_names_in_", dict) is not None or not indent:
        lines.append("%s  takes %s" % (indent, _describe_columns(node)))
    return lines


# -------------------------------------------------------------------- errors


def _one_line(exc):
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _os_reason(exc):
    """An OSError's reason without the file name it carries, which may be a
    temporary file rather than the path the user gave."""
    return exc.strerror or _one_line(exc)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print("fastbp: warning: %s" % _one_line(message), file=sys.stderr)


def run(args):
    """Run a parsed subcommand; every error becomes one line on stderr.

    KeyboardInterrupt and BrokenPipeError pass through: the caller ends the
    process for them (see ``fastbp.__main__``).
    """
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return args.run(args)
        except CLIError as exc:
            message = str(exc)
        except BrokenPipeError:
            raise
        except (ValueError, OSError) as exc:
            # Bad data or a bad model file, as explained by the estimator or
            # the loader.
            message = _one_line(exc)
        except MemoryError as exc:
            message = "out of memory: %s" % _one_line(exc)
        except Exception as exc:
            # Anything else is a fastbp bug; still one line, naming the class.
            message = "%s: %s" % (type(exc).__name__, _one_line(exc))
    print("fastbp: error: %s" % message, file=sys.stderr)
    return 1
