# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""``fastbp fit`` and ``fastbp predict``: train and predict from the shell.

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


# The estimator's options: (flag, parameter, argparse keywords, help). Their
# defaults are read from BPRegressor itself, so they have one home.
_ESTIMATOR_OPTIONS = [
    ("--hidden", "hidden_layer_sizes", dict(type=layer_sizes, metavar="SIZES"),
     "hidden layer sizes, like 64,64; 'none' for no hidden layer"),
    ("--activation", "activation",
     dict(choices=["identity", "logistic", "tanh", "relu"]), "hidden activation"),
    ("--solver", "solver", dict(choices=["lbfgs", "sgd", "adam"]), "optimizer"),
    ("--loss", "loss", dict(choices=["squared_error", "poisson"]), "loss"),
    ("--alpha", "alpha", dict(type=non_negative_number, metavar="ALPHA"),
     "L2 penalty"),
    ("--batch-size", "batch_size", dict(type=batch_size, metavar="N"),
     "minibatch size, or 'auto' for min(200, rows)"),
    ("--learning-rate", "learning_rate",
     dict(choices=["constant", "invscaling", "adaptive"]), "step size schedule"),
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
    from ._regressor import BPRegressor

    defaults = BPRegressor().get_params()
    fit = commands.add_parser(
        "fit",
        help="train a BPRegressor or BPClassifier on a CSV or Parquet file and save it",
        description="Train a BPRegressor (or, for a categorical target, a "
        "BPClassifier) on the columns of DATA, report the R² (or accuracy) on a "
        "held-out part of it and save the model in fastbp's pickle-free format "
        "(load it with fastbp.load or `fastbp predict`). Every column other than "
        "the targets is a feature unless --features or --drop say otherwise. "
        "Features are used as they are: scale them beforehand for best results. "
        "Column options take comma-separated names and may be repeated.",
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
                     help="fraction of rows held out to report the validation R²; "
                     "0 reports the training R² (default: %(default)s)")
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
        description="Load MODEL (saved by `fastbp fit` or BPRegressor.save) and "
        "write its predictions for the rows of DATA as CSV, or Parquet when OUT "
        "ends in .parquet. A model trained on named columns takes those columns "
        "by name, so DATA may hold others too (the target, an id).",
    )
    predict.add_argument("model", metavar="MODEL", help="model file")
    predict.add_argument("data", metavar="DATA", help="CSV or Parquet file")
    predict.add_argument("--out", "-o", default="-", type=output_path, metavar="PATH",
                         help="output file; '-' for standard output (default)")
    predict.add_argument("--proba", action="store_true",
                         help="for a classifier, also write the probability of each "
                         "class as columns proba_<class>")
    predict.set_defaults(run=run_predict)


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
                    % (column, path, values.iloc[row], row + 1)
                )
            values = converted
        values = values.astype("float64")
        missing = values.isna() | ~values.abs().lt(float("inf"))
        if missing.any():
            row = int(missing.to_numpy().argmax())
            raise CLIError(
                "column %r of %s has %d missing or infinite value(s), the first in "
                "data row %d; fill or drop them first"
                % (column, path, int(missing.sum()), row + 1)
            )
        out[column] = values
    return pd.DataFrame(out, index=frame.index)


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
    import numpy as np
    from sklearn.model_selection import train_test_split

    from ._regressor import BPRegressor

    if not os.path.exists(args.data):
        raise CLIError("cannot read %s: no such file" % args.data)
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
    X = numeric_columns(frame, features, args.data)
    kind = _estimator_kind(args, frame, targets)
    if kind == "classifier":
        y = frame[targets[0]] if len(targets) == 1 else frame[targets]
    else:
        Y = numeric_columns(frame, targets, args.data)
        y = Y.iloc[:, 0] if len(targets) == 1 else Y

    if args.holdout > 0:
        n_holdout = int(np.ceil(args.holdout * len(X)))
        if n_holdout < 2 or len(X) - n_holdout < 2:
            raise CLIError(
                "%s has %d rows: too few to hold out %g of them; use --holdout 0 "
                "or more data" % (args.data, len(X), args.holdout)
            )
        stratify = None
        if kind == "classifier" and len(targets) == 1:
            counts = y.value_counts()
            if counts.min() >= 2 and n_holdout >= len(counts):
                stratify = y
        X_train, X_val, y_train, y_val = train_test_split(
            X, y, test_size=args.holdout, random_state=args.random_state,
            stratify=stratify,
        )
    else:
        X_train = X_val = X
        y_train = y_val = y

    params = {name: getattr(args, name) for _, name, _, _ in _ESTIMATOR_OPTIONS}
    if kind == "classifier":
        from ._classifier import BPClassifier

        if params.pop("loss") != BPRegressor().loss:
            raise CLIError("--loss is for regressors; a classifier's loss is the log-loss")
        est = BPClassifier(**params, verbose=args.verbose)
    else:
        est = BPRegressor(**params, verbose=args.verbose)
    check_network_size(est, len(X_train), len(features), len(targets))
    est.fit(X_train, y_train)
    score = est.score(X_val, y_val)
    try:
        est.save(args.out)
    except OSError as exc:
        raise CLIError("cannot write %s: %s" % (args.out, _os_reason(exc))) from None
    which = "validation" if args.holdout > 0 else "training"
    print("%s %s %.4f on %d rows (trained on %d rows, %d epochs)"
          % (which, "R2" if kind == "regressor" else "accuracy", score, len(X_val),
             len(X_train), est.n_iter_))
    print("saved model to %s" % args.out)
    return 0


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
    X = numeric_columns(frame, columns, args.data)
    if names is None:
        X = X.to_numpy()
    pred = est.predict(X)
    is_classifier = hasattr(est, "classes_")
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
            for i in range(pred.shape[1]):
                out["proba_%d" % i] = proba[:, i]
    elif pred.ndim == 1:
        out = pd.DataFrame({"prediction": pred})
    else:
        columns = ["prediction_%d" % i for i in range(pred.shape[1])]
        out = pd.DataFrame(pred, columns=columns)
    write_table(out, args.out)
    return 0


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
