# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""verbose progress output and scikit-learn's sklearn.callback API."""

import re
import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from fastbp import BPClassifier, BPRegressor

ignore_convergence = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning"
)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 3))
    return X, X @ [1.0, -1.0, 0.5]


# Each estimator with its target, its score's scorer name, and how the
# progress output names the validation score.
CASES = {
    "regressor": (BPRegressor, "r2", "val_r2", "validation R2"),
    "classifier": (BPClassifier, "accuracy", "val_accuracy", "validation accuracy"),
}


@pytest.fixture(params=list(CASES))
def case(request, data):
    cls, scoring, bar_key, line_label = CASES[request.param]
    X, target = data
    if cls is BPClassifier:
        target = np.array(["low", "mid", "high"])[np.digitize(target, [-0.7, 0.7])]
    return SimpleNamespace(cls=cls, X=X, y=target, scoring=scoring, bar_key=bar_key,
                           line_label=line_label)


def _est(case, **params):
    return case.cls(**{"hidden_layer_sizes": (5,), "max_iter": 6, "random_state": 0,
                       **params})


def _partial_fit(est, case, **kwargs):
    if case.cls is BPClassifier:
        kwargs["classes"] = np.unique(case.y)
    return est.partial_fit(case.X, case.y, **kwargs)


# --------------------------------------------------------------- verbose >= 2


@ignore_convergence
@pytest.mark.parametrize("early_stopping", [False, True])
def test_verbose_2_shows_a_tqdm_bar(case, capsys, early_stopping):
    pytest.importorskip("tqdm")
    est = _est(case, verbose=2, early_stopping=early_stopping).fit(case.X, case.y)
    err = capsys.readouterr().err
    final = err.replace("\r", "\n").strip().splitlines()[-1]
    assert final.startswith(case.cls.__name__)
    assert "%d/%d" % (est.n_iter_, est.max_iter) in final
    assert re.search(r"loss=%.4g" % est.loss_, final)
    assert ("val_" in final) == early_stopping
    if early_stopping:
        assert "%s=%.4f" % (case.bar_key, est.validation_scores_[-1]) in final
    assert "samples/s" in final


@ignore_convergence
def test_verbose_2_replaces_the_per_epoch_lines(case, capsys):
    # The bar (or its plain-line fallback) reports each epoch; scikit-learn's
    # "Iteration k, loss = ..." lines are verbose=1's.
    _est(case, verbose=2, early_stopping=True).fit(case.X, case.y)
    out = capsys.readouterr().out
    assert "Iteration " not in out and "Validation score:" not in out


@ignore_convergence
def test_verbose_2_without_tqdm_prints_plain_lines(case, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import now fails
    est = _est(case, verbose=2, early_stopping=True).fit(case.X, case.y)
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.startswith("epoch ")]
    assert len(lines) == est.n_iter_ == 6
    assert lines[0].startswith("epoch 1  loss %.6g" % est.loss_curve_[0])
    assert "%s %.4f" % (case.line_label, est.validation_scores_[-1]) in lines[-1]
    assert lines[-1].endswith("samples/s")
    assert case.cls.__name__ not in captured.err


def test_partial_fit_at_verbose_2_prints_one_line(case, capsys):
    est = _est(case, verbose=2)
    _partial_fit(est, case)
    _partial_fit(est, case)
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.startswith("epoch ")]
    assert [line.split("  ")[0] for line in lines] == ["epoch 1", "epoch 2"]
    assert "%" not in captured.err  # no bar for a single epoch


@ignore_convergence
def test_no_output_by_default(case, capsys):
    _est(case).fit(case.X, case.y)
    assert capsys.readouterr() == ("", "")


# ------------------------------------------------------------ sklearn.callback


try:  # scikit-learn >= 1.9
    from sklearn import callback as callback_api
except ImportError:  # pragma: no cover
    callback_api = None

needs_callbacks = pytest.mark.skipif(
    callback_api is None, reason="this scikit-learn has no sklearn.callback"
)


class Recorder:
    """Records every hook call; stops training after ``stop_at`` epochs."""

    def __init__(self, stop_at=None):
        self.stop_at = stop_at
        self.calls = []

    def setup(self, estimator, context):
        self.calls.append(("setup", context.task_name))

    def teardown(self, estimator, context):
        self.calls.append(("teardown", context.task_name))

    def on_fit_task_begin(self, estimator, context, *, X=None, y=None, metadata=None,
                          fitted_estimator=None):
        self.calls.append(("begin", context.task_name, context.task_id))

    def on_fit_task_end(self, estimator, context, *, X=None, y=None, metadata=None,
                        fitted_estimator=None):
        self.calls.append(("end", context.task_name, context.task_id, fitted_estimator))
        self.max_subtasks = (context.parent or context).max_subtasks
        return (context.task_name == "epoch" and self.stop_at is not None
                and context.task_id + 1 >= self.stop_at)

    def epochs(self, hook):
        return [c for c in self.calls if c[0] == hook and c[1] == "epoch"]


@needs_callbacks
@ignore_convergence
def test_one_task_per_epoch(case):
    recorder = Recorder()
    est = _est(case).set_callbacks(recorder).fit(case.X, case.y)
    assert recorder.calls[0] == ("setup", "fit")
    assert recorder.calls[1] == ("begin", "fit", 0)
    assert recorder.calls[-2][:3] == ("end", "fit", 0)
    assert recorder.calls[-1] == ("teardown", "fit")
    begins, ends = recorder.epochs("begin"), recorder.epochs("end")
    assert [c[2] for c in begins] == [c[2] for c in ends] == list(range(est.n_iter_))
    assert recorder.max_subtasks == est.max_iter
    # The model handed to the last epoch's hook is the final model.
    last = ends[-1][3]
    assert last is not est
    np.testing.assert_array_equal(last.predict(case.X), est.predict(case.X))
    first = ends[0][3]
    assert first.n_iter_ == 1
    assert not np.array_equal(first.coefs_[0], est.coefs_[0])


@needs_callbacks
def test_callback_stops_training(case):
    est = _est(case, max_iter=50).set_callbacks(Recorder(stop_at=3)).fit(case.X, case.y)
    assert est.n_iter_ == 3
    assert len(est.loss_curve_) == 3


@needs_callbacks
def test_partial_fit_is_one_epoch_task(case):
    recorder = Recorder()
    est = _est(case).set_callbacks(recorder)
    _partial_fit(est, case)
    _partial_fit(est, case)
    assert len(recorder.epochs("end")) == 2
    assert [c[0] for c in recorder.calls].count("setup") == 2


@needs_callbacks
@ignore_convergence
def test_lbfgs_iterations_are_tasks(case):
    recorder = Recorder()
    est = _est(case, solver="lbfgs", max_iter=5).set_callbacks(recorder).fit(case.X, case.y)
    ends = recorder.epochs("end")
    # One task per iteration, and never more tasks than announced.
    assert len([c for c in ends if c[3] is not None]) == est.n_iter_
    assert len(ends) <= recorder.max_subtasks == 5


@needs_callbacks
@ignore_convergence
def test_scoring_monitor_scores_every_epoch(case):
    X, y = case.X, case.y
    monitor = callback_api.ScoringMonitor(scoring=case.scoring)
    est = _est(case).set_callbacks(monitor).fit(X, y)
    log = monitor.get_logs().data_as_pandas
    epochs = log[log["task_name"] == "epoch"]
    assert len(epochs) == est.n_iter_
    assert epochs[case.scoring].iloc[-1] == pytest.approx(est.score(X, y))


@needs_callbacks
@ignore_convergence
def test_scoring_monitor_uses_sample_weight(case):
    X, y = case.X, case.y
    weights = np.linspace(0.0, 2.0, len(y))
    monitor = callback_api.ScoringMonitor(scoring=case.scoring)
    est = _est(case).set_callbacks(monitor).fit(X, y, sample_weight=weights)
    log = monitor.get_logs().data_as_pandas
    last = log[log["task_name"] == "epoch"][case.scoring].iloc[-1]
    assert last == pytest.approx(est.score(X, y, sample_weight=weights))
    assert last != pytest.approx(est.score(X, y))


@needs_callbacks
@ignore_convergence
def test_scoring_monitor_keeps_feature_names(case):
    pd = pytest.importorskip("pandas")
    X, y = case.X, case.y
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    monitor = callback_api.ScoringMonitor(scoring=case.scoring)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*valid feature names")
        est = _est(case).set_callbacks(monitor).fit(frame, y)
    log = monitor.get_logs().data_as_pandas
    assert log[log["task_name"] == "epoch"][case.scoring].iloc[-1] == pytest.approx(
        est.score(frame, y))


@needs_callbacks
@ignore_convergence
def test_progress_bar(case, capsys):
    pytest.importorskip("rich")
    est = _est(case).set_callbacks(callback_api.ProgressBar())
    est.fit(case.X, case.y)
    out = capsys.readouterr().out
    assert "%s - fit" % case.cls.__name__ in out
    assert "100%" in out
