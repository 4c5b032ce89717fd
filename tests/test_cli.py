# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""The ``fastbp`` command: the installed console script, run in a subprocess."""

import errno
import os
import shutil
import io
import subprocess
import sys
import sysconfig
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.compose import TransformedTargetRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import fastbp
from fastbp import BPRegressor
from fastbp import _cli
from fastbp import __main__ as cli_main
from fastbp.__main__ import main


def _console_script():
    name = "fastbp.exe" if os.name == "nt" else "fastbp"
    path = os.path.join(sysconfig.get_path("scripts"), name)
    return path if os.path.exists(path) else shutil.which("fastbp")


@pytest.fixture(scope="module")
def script():
    path = _console_script()
    if path is None:
        pytest.fail("the fastbp console script is not installed; pip install -e .")
    return [path]


def run(cmd, *args, cwd=None):
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 3))
    frame = pd.DataFrame(X, columns=["x1", "x2", "x3"])
    frame["y"] = X @ [1.0, -2.0, 0.5] + 0.1 * rng.standard_normal(300)
    frame["y2"] = np.tanh(X[:, 0])
    frame.insert(0, "id", np.arange(300))
    path = tmp_path_factory.mktemp("cli") / "data.csv"
    frame.to_csv(path, index=False)
    return path, frame


FIT_ARGS = ["--drop", "id", "--drop", "y2", "--hidden", "8,4", "--max-iter", "40",
            "--learning-rate-init", "0.01", "--random-state", "0"]


def network(model):
    """The fastbp network inside what `fastbp fit` saved."""
    if isinstance(model, Pipeline):
        model = model.steps[-1][1]
    return getattr(model, "regressor_", model)


def _line(out, start):
    return next(line for line in out.splitlines() if line.startswith(start))


def test_fit_then_predict(script, table, tmp_path):
    path, frame = table
    model = tmp_path / "model.npz"
    fit = run(script, "fit", path, "--target", "y", *FIT_ARGS, "--out", model)
    assert fit.returncode == 0, fit.stderr
    assert "Traceback" not in fit.stderr
    est = fastbp.load(model)
    assert isinstance(est, Pipeline)
    assert list(est.feature_names_in_) == ["x1", "x2", "x3"]
    net = network(est)
    assert net.hidden_layer_sizes == (8, 4) and net.learning_rate_init == 0.01
    assert fit.stdout.splitlines()[0] == "features: 3 numeric, standardised (x1, x2, x3)"
    assert "target: y (standardised)" in fit.stdout
    assert "rows: 300 used" in fit.stdout

    # The reported R² is the held-out R² of the saved model, and the
    # baseline's is a Ridge on the same preprocessing and split.
    features, y = frame[["x1", "x2", "x3"]], frame["y"]
    X_train, X_val, y_train, y_val = train_test_split(features, y, test_size=0.2,
                                                      random_state=0)
    r2 = r2_score(y_val, est.predict(X_val))
    assert _line(fit.stdout, "validation R2") == (
        "validation R2 %.4f on 60 rows (trained on 240 rows, %d epochs)"
        % (r2, net.n_iter_)
    )
    ridge = make_pipeline(StandardScaler(), TransformedTargetRegressor(
        Ridge(), transformer=StandardScaler())).fit(X_train, y_train)
    assert _line(fit.stdout, "linear baseline") == (
        "linear baseline (Ridge): validation R2 %.4f on the same rows"
        % r2_score(y_val, ridge.predict(X_val)))
    assert "saved model to %s" % model in fit.stdout

    # The data file still holds id and the targets: predict takes the
    # model's columns by name.
    preds = tmp_path / "preds.csv"
    predict = run(script, "predict", model, path, "--out", preds)
    assert predict.returncode == 0, predict.stderr
    assert predict.stdout == ""
    written = pd.read_csv(preds)
    assert list(written.columns) == ["prediction"]
    np.testing.assert_array_equal(written["prediction"], est.predict(features))

    to_stdout = run(script, "predict", model, path)
    assert to_stdout.stdout == preds.read_text()


def test_no_preprocess_trains_on_the_columns_as_they_are(script, table, tmp_path):
    path, frame = table
    model = tmp_path / "model.npz"
    fit = run(script, "fit", path, "--target", "y", *FIT_ARGS, "--no-preprocess",
              "--out", model)
    assert fit.returncode == 0, fit.stderr
    est = fastbp.load(model)
    assert isinstance(est, BPRegressor)
    assert list(est.feature_names_in_) == ["x1", "x2", "x3"]
    assert est.hidden_layer_sizes == (8, 4) and est.learning_rate_init == 0.01

    features, y = frame[["x1", "x2", "x3"]], frame["y"]
    X_train, X_val, y_train, y_val = train_test_split(features, y, test_size=0.2,
                                                      random_state=0)
    r2 = r2_score(y_val, est.predict(X_val))
    assert fit.stdout.splitlines()[0] == (
        "validation R2 %.4f on 60 rows (trained on 240 rows, %d epochs)"
        % (r2, est.n_iter_)
    )
    assert fit.stdout.splitlines()[1] == (
        "linear baseline (Ridge): validation R2 %.4f on the same rows"
        % Ridge().fit(X_train, y_train).score(X_val, y_val))
    preds = run(script, "predict", model, path)
    assert preds.returncode == 0, preds.stderr
    np.testing.assert_array_equal(pd.read_csv(io.StringIO(preds.stdout))["prediction"],
                                  est.predict(features))


@pytest.mark.parametrize("how", ["console_script", "python_m"])
def test_help(script, how):
    cmd = script if how == "console_script" else [sys.executable, "-m", "fastbp"]
    top = run(cmd, "--help")
    assert top.returncode == 0, top.stderr
    assert top.stdout.startswith("usage: fastbp")
    for command in ("demo", "fit", "predict", "info"):
        assert command in top.stdout
    fit = run(cmd, "fit", "--help")
    assert fit.returncode == 0
    assert fit.stdout.startswith("usage: fastbp fit") and "--target" in fit.stdout


@pytest.mark.parametrize("command", ["demo", "fit", "predict", "info"])
def test_help_on_every_command(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("usage: fastbp %s" % command)


def test_data_error_is_one_line(script, table, tmp_path):
    path, frame = table
    bad = tmp_path / "bad.csv"
    frame.assign(x2=frame["x2"].astype(object).where(frame.index != 7, "n/a?")).to_csv(
        bad, index=False)
    result = run(script, "fit", bad, "--target", "y", *FIT_ARGS, "--no-preprocess")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "fastbp: error: column 'x2' of %s is not numeric: 'n/a?' in data row 8; "
        "drop it with --drop or encode it as numbers" % bad
    ]


# In-process from here: the same main() behind the script, without paying a
# Python start-up per case.


def _main(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(capsys, *args):
    code, out, err = _main(capsys, *args)
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastbp: error: "), err
    assert "Traceback" not in err
    return lines[0][len("fastbp: error: "):]


def test_data_errors(table, tmp_path, capsys):
    path, frame = table
    assert _one_error_line(capsys, "fit", path, "--target", "price") == (
        "no target column 'price' in %s; its columns are: id, x1, x2, x3, y, y2" % path
    )
    assert _one_error_line(capsys, "fit", tmp_path / "nope.csv", "--target", "y") == (
        "cannot read %s: no such file" % (tmp_path / "nope.csv")
    )
    holes = tmp_path / "holes.csv"
    frame.assign(x3=frame["x3"].where(frame.index % 50 != 3)).to_csv(holes, index=False)
    assert _one_error_line(capsys, "fit", holes, "--target", "y", "--drop", "id",
                           "--no-preprocess") == (
        "column 'x3' of %s has 6 missing or infinite value(s), the first in data "
        "row 4; fill or drop them first" % holes
    )
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    message = _one_error_line(capsys, "fit", empty, "--target", "y")
    assert message == "%s is empty" % empty
    tiny = tmp_path / "tiny.csv"
    frame.head(3).to_csv(tiny, index=False)
    message = _one_error_line(capsys, "fit", tiny, "--target", "y")
    assert "too few to hold out" in message
    assert "not a fastbp model file" in _one_error_line(capsys, "predict", path, path)
    assert "validation set is too small" in _one_error_line(
        capsys, "fit", path, "--target", "y", "--drop", "id", "--early-stopping",
        "--validation-fraction", "0.001", "--max-iter", "2")


def test_predict_needs_the_model_columns(table, tmp_path, capsys):
    path, frame = table
    model = tmp_path / "model.npz"
    code = _main(capsys, "fit", path, "--target", "y", *FIT_ARGS, "--out", model)[0]
    assert code == 0
    other = tmp_path / "other.csv"
    frame.drop(columns=["x2"]).to_csv(other, index=False)
    assert _one_error_line(capsys, "predict", model, other) == (
        "no feature column 'x2' in %s; its columns are: id, x1, x3, y, y2" % other
    )


def test_usage_errors_exit_2(table, capsys):
    path, _ = table
    for args in (["fit", path], ["fit", path, "--target", "y", "--hidden", "8,x"]):
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in args])
        assert exc.value.code == 2
    assert "argument --hidden: expected positive layer sizes like 64,64" in (
        capsys.readouterr().err)


def test_several_targets_and_training_r2(table, tmp_path, capsys):
    path, frame = table
    model = tmp_path / "model.npz"
    code, out, _ = _main(capsys, "fit", path, "--target", "y", "--target", "y2",
                         "--features", "x1,x2,x3", "--holdout", "0", "--hidden", "8",
                         "--max-iter", "20", "--random-state", "0", "--out", model)
    assert code == 0 and _line(out, "training R2 ")
    assert "target: y, y2 (standardised)" in out
    assert network(fastbp.load(model)).n_outputs_ == 2
    code, out, _ = _main(capsys, "predict", model, path)
    lines = out.splitlines()
    assert lines[0] == "prediction_0,prediction_1" and len(lines) == 301


def test_parquet_in_and_out(table, tmp_path, capsys):
    pytest.importorskip("pyarrow")
    _, frame = table
    data = tmp_path / "data.parquet"
    frame.to_parquet(data)
    model = tmp_path / "model.npz"
    code = _main(capsys, "fit", data, "--target", "y", *FIT_ARGS, "--out", model)[0]
    assert code == 0
    preds = tmp_path / "preds.parquet"
    assert _main(capsys, "predict", model, data, "--out", preds)[0] == 0
    est = fastbp.load(model)
    np.testing.assert_array_equal(pd.read_parquet(preds)["prediction"],
                                  est.predict(frame[["x1", "x2", "x3"]]))


def test_verbose_flags_reach_the_estimator(table, tmp_path, capsys):
    path, _ = table
    code, out, _ = _main(capsys, "fit", path, "--target", "y", *FIT_ARGS,
                         "--max-iter", "3", "-v", "--out", tmp_path / "m.npz")
    assert code == 0
    assert sum(line.startswith("Iteration ") for line in out.splitlines()) == 3
    assert network(fastbp.load(tmp_path / "m.npz")).verbose == 1


# Hardening: every failure is one line and a non-zero exit, never a
# traceback, and nothing is lost. The regression tests run the installed
# command.


@pytest.fixture(scope="module")
def saved_model(table, tmp_path_factory):
    """A model of y on x1, x2, x3, saved as `fastbp fit` saves it."""
    _, frame = table
    est = BPRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(frame[["x1", "x2", "x3"]], frame["y"])
    path = tmp_path_factory.mktemp("model") / "model.npz"
    est.save(path)
    return path


def _only_error(result):
    """The message of a run that failed with exactly one line on stderr."""
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastbp: error: "), result.stderr
    return lines[0][len("fastbp: error: "):]


def test_absurd_network_is_refused_before_allocation(script, table):
    path, _ = table
    result = run(script, "fit", path, "--target", "y", "--drop", "id,y2",
                 "--hidden", "10000000000")
    message = _only_error(result)
    assert message.startswith("--hidden 10000000000: a network of 50000000001 "
                              "parameters on 3 features needs at least ")
    assert message.endswith("use smaller layers")


def test_out_is_checked_before_training(script, table, saved_model, tmp_path):
    path, _ = table
    out = tmp_path / "missing" / "m.npz"
    result = run(script, "fit", path, "--target", "y", *FIT_ARGS, "--out", out)
    # One line: no convergence warning, so training never started; and the
    # path given, not a temporary file beside it.
    assert _only_error(result) == "cannot write %s: no directory %s" % (
        out, out.parent)

    result = run(script, "predict", saved_model, path, "--out", out)
    assert _only_error(result) == "cannot write %s: no directory %s" % (
        out, out.parent)


def test_out_never_overwrites_an_input(table, saved_model, tmp_path, capsys):
    path, _ = table
    data, model = tmp_path / "data.csv", tmp_path / "model.npz"
    shutil.copy(path, data)
    shutil.copy(saved_model, model)
    before = data.read_bytes(), model.read_bytes()
    assert _one_error_line(capsys, "fit", data, "--target", "y", "--out", data) == (
        "cannot write %s: it is the input file %s; choose another --out" % (data, data))
    for out in (data, model):
        assert _one_error_line(capsys, "predict", model, data, "--out", out) == (
            "cannot write %s: it is the input file %s; choose another --out"
            % (out, out))
    assert (data.read_bytes(), model.read_bytes()) == before
    assert _one_error_line(capsys, "fit", data, "--target", "y",
                           "--out", tmp_path) == (
        "cannot write %s: it is a directory" % tmp_path)
    if os.path.exists(os.devnull):
        # The model is written beside --out and renamed over it.
        assert _one_error_line(capsys, "fit", data, "--target", "y",
                               "--out", os.devnull) == (
            "cannot write %s: not a regular file" % os.devnull)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_write_error_names_the_path(script, table, saved_model):
    path, _ = table
    model = saved_model
    result = run(script, "predict", model, path, "--out", "/dev/full")
    assert _only_error(result) == "cannot write /dev/full: %s" % os.strerror(
        errno.ENOSPC)


@pytest.mark.parametrize("preprocess", [[], ["--no-preprocess"]])
def test_save_error_names_the_path(table, tmp_path, capsys, monkeypatch, preprocess):
    path, _ = table

    def write_model(where, *args):
        # As the atomic save reports it: the temporary file, not `where`.
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC),
                      os.path.join(os.path.dirname(where), ".fastbp-tmp"))

    monkeypatch.setattr(fastbp._persist, "write_model", write_model)
    out = tmp_path / "m.npz"
    code, _, err = _main(capsys, "fit", path, "--target", "y", *FIT_ARGS,
                         "--max-iter", "2", "--out", out, *preprocess)
    assert code == 1 and "Traceback" not in err
    assert err.splitlines()[-1] == "fastbp: error: cannot write %s: %s" % (
        out, os.strerror(errno.ENOSPC))


def test_option_errors_say_what_they_wanted(script, table):
    path, _ = table
    result = run(script, "fit", path, "--target", "y", "--batch-size", "abc")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "fastbp fit: error: argument --batch-size: expected a positive integer or "
        "'auto', got 'abc'")


@pytest.mark.parametrize("option, value, wanted", [
    ("--holdout", "1", "a fraction in [0, 1)"),
    ("--hidden", "0", "positive layer sizes like 64,64, or 'none'"),
    ("--alpha", "nan", "a number >= 0"),
    ("--batch-size", "0", "a positive integer or 'auto'"),
    ("--learning-rate-init", "0", "a number > 0"),
    ("--max-iter", "2.5", "a positive integer"),
    ("--tol", "-1", "a number >= 0"),
    ("--n-iter-no-change", "never", "a positive integer or 'inf'"),
    ("--validation-fraction", "inf", "a fraction in [0, 1)"),
    ("--random-state", "-5", "an integer in [0, 2**32 - 1]"),
    ("--drop", "id,", "comma-separated column names"),
    ("--features", "", "comma-separated column names"),
])
def test_every_typed_option_says_what_it_wanted(table, tmp_path, capsys, option, value,
                                                wanted):
    path, _ = table
    with pytest.raises(SystemExit) as exc:
        main(["fit", str(path), "--target", "y", "--out", str(tmp_path / "m.npz"),
              option, value])
    assert exc.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "fastbp fit: error: argument %s: expected %s, got %r" % (option, wanted, value))


def test_empty_out_is_a_usage_error(table, capsys):
    path, _ = table
    with pytest.raises(SystemExit) as exc:
        main(["predict", str(path), str(path), "--out", ""])
    assert exc.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "fastbp predict: error: argument --out/-o: expected a path, got ''")


@pytest.mark.parametrize("error", [
    TypeError("unsupported operand"), OverflowError("int too large"),
    fastbp._persist.ModelFileError("m.npz is corrupted."),
    MemoryError("Unable to allocate 2 GiB"), RuntimeError("boom"),
])
def test_any_library_error_is_one_line(table, tmp_path, capsys, monkeypatch, error):
    path, _ = table

    def fit(self, X, y):
        raise error

    monkeypatch.setattr(BPRegressor, "fit", fit)
    message = _one_error_line(capsys, "fit", path, "--target", "y", *FIT_ARGS,
                              "--out", tmp_path / "m.npz")
    assert str(error) in message
    if isinstance(error, MemoryError):
        assert message.startswith("out of memory: ")
    assert not (tmp_path / "m.npz").exists()


def test_memory_error_in_predict_is_one_line(table, saved_model, capsys, monkeypatch):
    path, _ = table
    model = saved_model

    def predict(self, X):
        raise MemoryError("Unable to allocate 2 GiB")

    monkeypatch.setattr(BPRegressor, "predict", predict)
    assert _one_error_line(capsys, "predict", model, path) == (
        "out of memory: Unable to allocate 2 GiB")


def _no_escape(argv):
    # An escaping KeyboardInterrupt would end the whole pytest session.
    try:
        return main(argv)
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped main()")


def test_interrupt_anywhere_exits_130(monkeypatch, capsys):
    def parser():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_main, "_parser", parser)
    assert _no_escape(["--version"]) == 130
    assert capsys.readouterr().err == "fastbp: interrupted\n"


def test_interrupt_in_a_command_exits_130(table, tmp_path, monkeypatch, capsys):
    path, _ = table

    def read_table(where):
        raise KeyboardInterrupt

    monkeypatch.setattr(_cli, "read_table", read_table)
    assert _no_escape(["fit", str(path), "--target", "y",
                       "--out", str(tmp_path / "m.npz")]) == 130
    assert capsys.readouterr().err == "fastbp: interrupted\n"


def test_closed_pipe_exits_quietly(script, table, saved_model):
    path, _ = table
    model = saved_model
    # As `fastbp predict ... | head -0`: the reader is gone before any output.
    proc = subprocess.Popen([*script, "predict", str(model), str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    stderr = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=300) == 141
    assert stderr == b""


# The fit options that set a BPRegressor parameter, and those of them that
# take a typed value.
_OPTIONS = {
    "--hidden": "hidden_layer_sizes", "--activation": "activation",
    "--solver": "solver", "--loss": "loss", "--alpha": "alpha",
    "--batch-size": "batch_size", "--learning-rate": "learning_rate",
    "--learning-rate-init": "learning_rate_init", "--max-iter": "max_iter",
    "--tol": "tol", "--n-iter-no-change": "n_iter_no_change",
    "--early-stopping": "early_stopping",
    "--validation-fraction": "validation_fraction", "--random-state": "random_state",
}
_PARAMETER = {flag: name for flag, name in _OPTIONS.items() if name not in (
    "activation", "solver", "loss", "learning_rate", "early_stopping")}


def test_defaults_come_from_the_estimator(script):
    help_text = " ".join(run(script, "fit", "--help").stdout.split())
    for flag, name in _OPTIONS.items():
        default = BPRegressor().get_params()[name]
        if name == "hidden_layer_sizes":
            default = ",".join(map(str, default))
        assert "%s: " % name in help_text and "(default: %s)" % default in help_text


def test_defaults_follow_the_estimator(table, monkeypatch):
    # One home for the facts: a new default in BPRegressor reaches the CLI.
    kwdefaults = dict(BPRegressor.__init__.__kwdefaults__, alpha=0.5, max_iter=7)
    monkeypatch.setattr(BPRegressor.__init__, "__kwdefaults__", kwdefaults)
    args = cli_main._parser().parse_args(["fit", "data.csv", "--target", "y"])
    assert args.alpha == 0.5 and args.max_iter == 7
    for name in _OPTIONS.values():
        assert getattr(args, name) == BPRegressor().get_params()[name]


def test_choices_are_the_estimators():
    parser = cli_main._parser()
    fit = parser._subparsers._group_actions[0].choices["fit"]
    for action in fit._actions:
        if action.choices and action.dest in BPRegressor._parameter_constraints:
            constraint = next(c for c in BPRegressor._parameter_constraints[action.dest]
                              if hasattr(c, "options"))
            assert set(action.choices) == constraint.options


def test_column_options_take_lists(script, table, tmp_path):
    path, _ = table
    model = tmp_path / "model.npz"
    result = run(script, "fit", path, "--target", "y", "--drop", "id,y2",
                 *FIT_ARGS[4:], "--out", model)
    assert result.returncode == 0, result.stderr
    assert list(fastbp.load(model).feature_names_in_) == ["x1", "x2", "x3"]
    result = run(script, "fit", path, "--target", "y,y2", "--features", "x1,x2",
                 "--features", "x3", *FIT_ARGS[4:], "--out", model)
    assert result.returncode == 0, result.stderr
    est = fastbp.load(model)
    assert list(est.feature_names_in_) == ["x1", "x2", "x3"]
    assert network(est).n_outputs_ == 2


# The parser against garbage: each typed option either rejects a value with a
# message naming the option (exit 2), or accepts one that the estimator
# accepts too, and the run goes on to fail on the missing data file (exit 1).

_TYPED = ["--holdout", "--target", "--features", "--drop", "--out", *_PARAMETER]

_garbage = st.one_of(
    st.text(max_size=12),
    st.from_regex(r"[-+]?[0-9]{0,12}([.,][0-9]{0,3})?(e[-+]?[0-9]{1,3})?",
                  fullmatch=True),
    st.sampled_from(["auto", "inf", "-inf", "nan", "none", "()", "1,2", ",", "0x10",
                     "1_000", " 7 ", "4294967296", "9" * 5000, "--", "-h"]),
    st.integers().map(str),
    st.floats().map(repr),
)


@pytest.fixture(scope="module")
def nowhere(tmp_path_factory):
    folder = tmp_path_factory.mktemp("garbage")
    return folder / "missing.csv", folder / "m.npz"


@pytest.mark.parametrize("option", _TYPED)
@settings(derandomize=True, max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=_garbage)
def test_garbage_options(option, value, nowhere, capsys):
    data, out = nowhere
    argv = ["fit", str(data), "--target", "y", "--out", str(out), option, value]
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if code == 2:
        assert "argument %s" % option in err.splitlines()[-1]
        return
    assert code == 1
    assert err == "fastbp: error: cannot read %s: no such file\n" % data
    if option in _PARAMETER:
        accepted = cli_main._parser().parse_args(argv)
        name = _PARAMETER[option]
        BPRegressor(**{name: getattr(accepted, name)})._validate_params()


# ------------------------------------------------------------ classifiers


@pytest.fixture(scope="module")
def iris_table(tmp_path_factory):
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True)
    frame = data.frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    frame["species"] = np.asarray(data.target_names)[data.target]
    frame = frame.drop(columns="target")
    path = tmp_path_factory.mktemp("cli_iris") / "iris.csv"
    frame.to_csv(path, index=False)
    return path, frame


def test_categorical_target_trains_a_classifier(script, iris_table, tmp_path):
    """A text target is categorical: the command says it trains a classifier,
    reports held-out accuracy, and predict writes labels and probabilities."""
    path, frame = iris_table
    model = tmp_path / "iris.npz"
    proc = run(script, "fit", path, "--target", "species", "--solver", "lbfgs",
               "--max-iter", "300", "--random-state", "0", "--out", model)
    assert proc.returncode == 0, proc.stderr
    assert "training a BPClassifier" in proc.stdout
    line = next(s for s in proc.stdout.splitlines() if "validation accuracy" in s)
    assert float(line.split()[2]) > 0.85
    proc = run(script, "predict", model, path, "--proba")
    assert proc.returncode == 0, proc.stderr
    out = pd.read_csv(io.StringIO(proc.stdout))
    classes = sorted(frame["species"].unique())
    assert list(out.columns) == ["label"] + ["proba_%s" % c for c in classes]
    assert set(out["label"]) <= set(classes)
    np.testing.assert_allclose(out.iloc[:, 1:].sum(axis=1), 1.0, rtol=1e-6)
    assert (out["label"] == frame["species"]).mean() > 0.9


def test_estimator_option_and_its_errors(script, iris_table, table, tmp_path):
    path, _ = iris_table
    # --estimator classifier on a numeric target of class codes
    codes = pd.read_csv(path)
    codes["species"] = codes["species"].astype("category").cat.codes
    coded = tmp_path / "codes.csv"
    codes.to_csv(coded, index=False)
    proc = run(script, "fit", coded, "--target", "species", "--estimator",
               "classifier", "--max-iter", "5", "--out", tmp_path / "m.npz")
    assert proc.returncode == 0, proc.stderr
    assert "validation accuracy" in proc.stdout
    proc = run(script, "fit", path, "--target", "species", "--loss", "poisson",
               "--out", tmp_path / "m2.npz")
    assert proc.returncode == 1 and "--loss is for regressors" in proc.stderr
    assert "Traceback" not in proc.stderr
    # --proba with a regressor's model is one clear line
    data, _ = table
    reg = tmp_path / "reg.npz"
    assert run(script, "fit", data, "--target", "y", "--max-iter", "3",
               "--out", reg).returncode == 0
    proc = run(script, "predict", reg, data, "--proba")
    assert proc.returncode == 1 and "--proba needs a classifier" in proc.stderr


# ------------------------------------------------------- the default pipeline


@pytest.fixture(scope="module")
def mixed_table(tmp_path_factory):
    """Every kind of column `fastbp fit` sorts: numbers with holes, text with
    holes, booleans, a constant, a row number, a text id, and numbers with a
    typo in one cell."""
    rng = np.random.default_rng(1)
    n = 120
    frame = pd.DataFrame({
        "row": np.arange(1, n + 1),
        "name": ["item%03d" % i for i in range(n)],
        "size": rng.standard_normal(n) * 5 + 20,
        "colour": rng.choice(["red", "green", "blue"], n),
        "fresh": rng.random(n) < 0.5,
        "site": "north",
        "weight": np.round(rng.random(n) * 10, 2).astype(object),
    })
    frame.loc[[3, 50, 77], "size"] = np.nan
    frame.loc[[5, 9], "colour"] = np.nan
    frame.loc[10, "weight"] = "heavy"
    frame["y"] = np.exp(0.05 * frame["size"].fillna(20) + frame["fresh"] * 0.5
                        + frame["colour"].map({"red": 0.3}).fillna(0))
    frame.loc[[20, 21], "y"] = np.nan
    path = tmp_path_factory.mktemp("mixed") / "mixed.csv"
    frame.to_csv(path, index=False)
    return path, pd.read_csv(path)


SMALL = ["--hidden", "4", "--solver", "lbfgs", "--max-iter", "50",
         "--random-state", "0"]


def test_columns_are_sorted_by_kind_and_reported(mixed_table, tmp_path, capsys):
    path, frame = mixed_table
    model = tmp_path / "m.npz"
    code, out, err = _main(capsys, "fit", path, "--target", "y", "--log-target",
                           *SMALL, "--out", model)
    assert code == 0, err
    assert out.splitlines()[:5] == [
        "features: 1 numeric, standardised (size); 3 categorical, one-hot encoded "
        "(colour, fresh, weight)",
        "left out: row (id-like: a different whole number on every row); name "
        "(id-like: a different text on every row); site (constant)",
        "missing values: 3 numeric cell(s) get their column's median; 2 categorical "
        "cell(s) are a category of their own",
        "target: y (log, then standardised)",
        "rows: 118 used, 2 without a target value left out",
    ]
    assert err.splitlines()[0] == (
        "fastbp: warning: column 'weight' of %s is read as text because of 'heavy' "
        "in data row 11, though most of its values are numbers; it is one-hot "
        "encoded (fix the cell, or drop the column with --drop)" % path)
    loaded = fastbp.load(model)
    columns = loaded[0].named_transformers_
    assert list(loaded[0].feature_names_in_) == ["size", "colour", "fresh", "weight"]
    assert isinstance(columns["numeric"][0], fastbp_imputer())
    assert columns["numeric"][0].strategy == "median"
    assert columns["categorical"].handle_unknown == "ignore"
    # Trained on the rows with a target, split as the report says.
    used = frame[frame["y"].notna()]
    X = used[["size", "colour", "fresh", "weight"]]
    _, X_val, _, y_val = train_test_split(X, used["y"], test_size=0.2, random_state=0)
    assert _line(out, "validation R2") == (
        "validation R2 %.4f on 24 rows (trained on 94 rows, %d epochs)"
        % (r2_score(y_val, loaded.predict(X_val)), network(loaded).n_iter_))


def fastbp_imputer():
    from sklearn.impute import SimpleImputer

    return SimpleImputer


def test_features_named_are_kept_with_a_note(mixed_table, tmp_path, capsys):
    path, _ = mixed_table
    code, out, err = _main(capsys, "fit", path, "--target", "y", "--features",
                           "row,size,site", *SMALL, "--out", tmp_path / "m.npz")
    assert code == 0, err
    assert out.splitlines()[:3] == [
        "note: feature 'row' is id-like: a different whole number on every row",
        "note: feature 'site' is constant",
        "features: 2 numeric, standardised (row, size); 1 categorical, one-hot "
        "encoded (site)",
    ]


def test_predict_takes_new_categories_and_holes(mixed_table, tmp_path, capsys):
    path, frame = mixed_table
    model = tmp_path / "m.npz"
    assert _main(capsys, "fit", path, "--target", "y", *SMALL, "--out", model)[0] == 0
    new = frame.head(12).drop(columns="y")
    new.loc[0, "colour"] = "ultraviolet"
    new.loc[1, "size"] = np.nan
    new["fresh"] = new["fresh"].astype(object)
    new.loc[2, "fresh"] = np.nan
    new_path = tmp_path / "new.csv"
    new.to_csv(new_path, index=False)
    code, out, err = _main(capsys, "predict", model, new_path)
    assert code == 0, err
    loaded = fastbp.load(model)
    written = pd.read_csv(io.StringIO(out))["prediction"]
    np.testing.assert_array_equal(written, loaded.predict(pd.read_csv(new_path)[
        list(loaded.feature_names_in_)]))
    assert np.isfinite(written).all()


def test_log_target_errors(mixed_table, table, iris_table, tmp_path, capsys):
    path, _ = table
    out = tmp_path / "m.npz"
    # y of the numeric table is negative in places.
    frame = pd.read_csv(path)
    first = int(np.flatnonzero(frame["y"] <= 0)[0])
    assert _one_error_line(capsys, "fit", path, "--target", "y", "--log-target",
                           "--out", out) == (
        "--log-target needs target values > 0; column 'y' has %d value(s) <= 0, the "
        "first %r in data row %d" % ((frame["y"] <= 0).sum(), float(frame["y"][first]),
                                     first + 1))
    assert _one_error_line(capsys, "fit", path, "--target", "y", "--log-target",
                           "--no-preprocess", "--out", out) == (
        "--log-target and --no-preprocess cannot be combined: the log is taken "
        "inside the saved pipeline")
    iris, _ = iris_table
    assert _one_error_line(capsys, "fit", iris, "--target", "species",
                           "--log-target", "--out", out).startswith(
        "--log-target is for regressors")
    assert not out.exists()


def test_info_shows_a_pipeline_and_a_bare_network(mixed_table, table, tmp_path,
                                                  capsys):
    path, _ = mixed_table
    model = tmp_path / "m.npz"
    assert _main(capsys, "fit", path, "--target", "y", *SMALL, "--out", model)[0] == 0
    code, out, err = _main(capsys, "info", model)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "format: fastbp model, format version 3"
    assert lines[1] == "written by: fastbp %s, scikit-learn %s, NumPy %s" % (
        fastbp.__version__, sklearn_version(), np.__version__)
    loaded = fastbp.load(model)
    width = loaded[0].output_indices_["categorical"].stop
    for line in (
        "model: Pipeline",
        "  step preprocess: ColumnTransformer",
        "    takes 4 columns: size, colour, fresh, weight",
        "    numeric: SimpleImputer(median) -> StandardScaler on size",
        "    categorical: OneHotEncoder(%d categories) on colour, fresh, weight"
        % (width - 1),
        "  step model: TransformedTargetRegressor",
        "    target: StandardScaler",
        "    network: BPRegressor",
        "      layers: %d -> 4 -> 1 (float64)" % width,
        "      activation: relu, output: identity, solver: lbfgs",
        "      epochs: %d" % network(loaded).n_iter_,
        "  left_out: row (id-like: a different whole number on every row), name "
        "(id-like: a different text on every row), site (constant)",
        "  rows_without_target: 2",
        "  baseline: Ridge",
    ):
        assert line in lines, line

    data, _ = table
    bare = tmp_path / "bare.npz"
    assert _main(capsys, "fit", data, "--target", "y", *FIT_ARGS, "--no-preprocess",
                 "--out", bare)[0] == 0
    code, out, _ = _main(capsys, "info", bare)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "format: fastbp model, format version 1"
    for line in ("network: BPRegressor", "  layers: 3 -> 8 -> 4 -> 1 (float64)",
                 "  takes 3 columns: x1, x2, x3", "  preprocessing: none"):
        assert line in lines, line

    assert _one_error_line(capsys, "info", data).startswith(
        "%s: not a fastbp model file" % data)
    assert _one_error_line(capsys, "info", tmp_path / "nope.npz") == (
        "cannot read %s: no such file" % (tmp_path / "nope.npz"))


def sklearn_version():
    import sklearn

    return sklearn.__version__


def test_fit_help_says_how_columns_are_prepared(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("replaced by the column's median over the training rows",
                   "one-hot encoded; a missing value is a category of its own",
                   "constant columns and id-like ones",
                   "--log-target", "--no-preprocess", "Ridge"):
        assert phrase in text, phrase
