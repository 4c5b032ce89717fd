# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""``fastbp fit`` and ``fastbp predict``: train and predict from the shell.

Data come as CSV, or as Parquet (``.parquet``, ``.pq``) when pyarrow is
installed. Problems with the data or the model file are reported as one line,
``fastbp: error: ...``, with exit status 1; usage errors exit with status 2.
"""

import argparse
import os
import sys
import warnings

_PARQUET = (".parquet", ".pq")


class CLIError(Exception):
    """A problem the user can fix; reported as one line, exit status 1."""


# ---------------------------------------------------------------- arguments


def _hidden(text):
    text = text.strip()
    if text in ("", "none", "()"):
        return ()
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            "expected layer sizes like 64,64, got %r" % text
        ) from None
    if any(size <= 0 for size in sizes):
        raise argparse.ArgumentTypeError("layer sizes must be positive, got %r" % text)
    return sizes


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number, got %r" % text) from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError("expected a fraction in [0, 1), got %r" % text)
    return value


def _n_iter_no_change(text):
    return float("inf") if text.lower() in ("inf", "infinity") else int(text)


def add_commands(commands):
    """Add the ``fit`` and ``predict`` subcommands to an argparse subparsers."""
    fit = commands.add_parser(
        "fit",
        help="train a BPRegressor on a CSV or Parquet file and save it",
        description="Train a BPRegressor on the columns of DATA, report the R² on a "
        "held-out part of it and save the model in fastbp's pickle-free format "
        "(load it with fastbp.load or `fastbp predict`). Every column other than "
        "the targets is a feature unless --features or --drop say otherwise. "
        "Features are used as they are: scale them beforehand for best results.",
    )
    fit.add_argument("data", metavar="DATA", help="CSV or Parquet file")
    fit.add_argument("--target", "-t", action="append", required=True, metavar="COL",
                     help="target column; repeat for several outputs")
    fit.add_argument("--features", metavar="COLS",
                     help="comma-separated feature columns (default: all the others)")
    fit.add_argument("--drop", action="append", default=[], metavar="COL",
                     help="a column to leave out (an id, say); repeatable")
    fit.add_argument("--out", "-o", default="model.npz", metavar="PATH",
                     help="where to save the model (default: %(default)s)")
    fit.add_argument("--holdout", type=_fraction, default=0.2, metavar="FRACTION",
                     help="fraction of rows held out to report the validation R²; "
                     "0 reports the training R² (default: %(default)s)")
    est = fit.add_argument_group("BPRegressor parameters (same names as MLPRegressor)")
    est.add_argument("--hidden", type=_hidden, default=(100,), metavar="SIZES",
                     help="hidden_layer_sizes, like 64,64; 'none' for no hidden "
                     "layer (default: 100)")
    est.add_argument("--activation", choices=["identity", "logistic", "tanh", "relu"],
                     default="relu")
    est.add_argument("--solver", choices=["lbfgs", "sgd", "adam"], default="adam")
    est.add_argument("--loss", choices=["squared_error", "poisson"],
                     default="squared_error")
    est.add_argument("--alpha", type=float, default=1e-4)
    est.add_argument("--batch-size", default="auto", metavar="N",
                     type=lambda s: s if s == "auto" else int(s))
    est.add_argument("--learning-rate", choices=["constant", "invscaling", "adaptive"],
                     default="constant")
    est.add_argument("--learning-rate-init", type=float, default=1e-3, metavar="LR")
    est.add_argument("--max-iter", type=int, default=200, metavar="N")
    est.add_argument("--tol", type=float, default=1e-4)
    est.add_argument("--n-iter-no-change", type=_n_iter_no_change, default=10,
                     metavar="N")
    est.add_argument("--early-stopping", action="store_true",
                     help="hold out --validation-fraction of the training rows and "
                     "stop when their R² stops improving")
    est.add_argument("--validation-fraction", type=_fraction, default=0.1,
                     metavar="FRACTION")
    est.add_argument("--random-state", type=int, default=None, metavar="SEED",
                     help="seed for the holdout split and the training")
    est.add_argument("--verbose", "-v", action="count", default=0,
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
    predict.add_argument("--out", "-o", default="-", metavar="PATH",
                         help="output file; '-' for standard output (default)")
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
        raise CLIError("cannot write %s: %s" % (path, _one_line(exc))) from None


# ----------------------------------------------------------------- commands


def run_fit(args):
    import numpy as np
    from sklearn.model_selection import train_test_split

    from ._regressor import BPRegressor

    frame = read_table(args.data)
    targets = list(dict.fromkeys(args.target))
    _check_columns(frame, targets, args.data, "target")
    _check_columns(frame, args.drop, args.data, "--drop")
    if args.features:
        features = [c.strip() for c in args.features.split(",") if c.strip()]
        _check_columns(frame, features, args.data, "feature")
    else:
        features = [c for c in frame.columns if c not in targets and c not in args.drop]
    overlap = sorted(set(features) & set(targets))
    if overlap:
        raise CLIError("column(s) %s cannot be both feature and target" % overlap)
    if not features:
        raise CLIError("no feature columns left in %s" % args.data)
    X = numeric_columns(frame, features, args.data)
    Y = numeric_columns(frame, targets, args.data)
    y = Y.iloc[:, 0] if len(targets) == 1 else Y

    if args.holdout > 0:
        n_holdout = int(np.ceil(args.holdout * len(X)))
        if n_holdout < 2 or len(X) - n_holdout < 2:
            raise CLIError(
                "%s has %d rows: too few to hold out %g of them; use --holdout 0 "
                "or more data" % (args.data, len(X), args.holdout)
            )
        X_train, X_val, y_train, y_val = train_test_split(
            X, y, test_size=args.holdout, random_state=args.random_state
        )
    else:
        X_train = X_val = X
        y_train = y_val = y

    est = BPRegressor(
        loss=args.loss,
        hidden_layer_sizes=args.hidden,
        activation=args.activation,
        solver=args.solver,
        alpha=args.alpha,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        learning_rate_init=args.learning_rate_init,
        max_iter=args.max_iter,
        tol=args.tol,
        n_iter_no_change=args.n_iter_no_change,
        early_stopping=args.early_stopping,
        validation_fraction=args.validation_fraction,
        random_state=args.random_state,
        verbose=args.verbose,
    )
    est.fit(X_train, y_train)
    r2 = est.score(X_val, y_val)
    est.save(args.out)
    which = "validation" if args.holdout > 0 else "training"
    print("%s R2 %.4f on %d rows (trained on %d rows, %d epochs)"
          % (which, r2, len(X_val), len(X_train), est.n_iter_))
    print("saved model to %s" % args.out)
    return 0


def run_predict(args):
    import pandas as pd

    from ._persist import load

    if not os.path.exists(args.model):
        raise CLIError("cannot read %s: no such file" % args.model)
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
    if pred.ndim == 1:
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


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print("fastbp: warning: %s" % _one_line(message), file=sys.stderr)


def run(args):
    """Run a parsed subcommand; user errors become one line on stderr."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return args.run(args)
        except CLIError as exc:
            message = str(exc)
        except (ValueError, OSError) as exc:
            # Bad data or a bad model file, as explained by the estimator or
            # the loader: one line, no traceback.
            message = _one_line(exc)
        except KeyboardInterrupt:
            print("fastbp: interrupted", file=sys.stderr)
            return 130
    print("fastbp: error: %s" % message, file=sys.stderr)
    return 1
