# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""TrainingCurveDisplay, drawn with the real matplotlib on the Agg backend."""

import io
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fastbp import BPClassifier, BPRegressor, TrainingCurveDisplay

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 4))
    y = np.tanh(X @ [1.0, -1.0, 0.5, 0.0]) + 0.2 * rng.standard_normal(300)
    return X, y


def _fit(X, y, estimator=BPRegressor, **params):
    params = {"hidden_layer_sizes": (16,), "max_iter": 60, "random_state": 0, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator(**params).fit(X, y)


def _target(y, estimator):
    """y itself for a regressor; three classes of it for a classifier."""
    if estimator is BPRegressor:
        return y
    return np.array(["low", "mid", "high"])[np.digitize(y, [-0.3, 0.3])]


both = pytest.mark.parametrize(
    "estimator, score_name", [(BPRegressor, "R²"), (BPClassifier, "accuracy")],
    ids=["regressor", "classifier"],
)


def _pixels(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=60)
    png = buffer.getvalue()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    return matplotlib.image.imread(io.BytesIO(png), format="png")[..., :3]


def _has_colour(pixels, colour):
    return bool((np.abs(pixels - np.array(to_rgb(colour))).max(axis=-1) < 0.05).any())


@both
def test_from_estimator_with_validation_curve(data, estimator, score_name):
    X, y = data
    est = _fit(X, _target(y, estimator), estimator, early_stopping=True,
               n_iter_no_change=5, learning_rate_init=0.05)
    display = TrainingCurveDisplay.from_estimator(est)
    n = len(est.loss_curve_)
    best = 1 + int(np.argmax(est.validation_scores_))
    assert 1 <= best < n  # stopped after the best epoch: a real marker

    np.testing.assert_array_equal(display.loss_line_.get_xdata(), np.arange(1, n + 1))
    np.testing.assert_array_equal(display.loss_line_.get_ydata(), est.loss_curve_)
    np.testing.assert_array_equal(display.validation_line_.get_ydata(),
                                  est.validation_scores_)
    assert display.validation_line_.axes is display.validation_ax_
    assert display.validation_ax_ is not display.ax_
    assert display.best_epoch == best
    assert list(display.best_epoch_line_.get_xdata()) == [best, best]
    assert display.ax_.get_xlabel() == "epoch"
    assert display.ax_.get_ylabel() == "training loss"
    assert display.validation_ax_.get_ylabel() == "validation " + score_name
    assert display.ax_.get_title() == estimator.__name__
    legend = [t.get_text() for t in display.validation_ax_.get_legend().get_texts()]
    assert legend == ["training loss", "validation " + score_name,
                      "best epoch (%d)" % best]

    pixels = _pixels(display.figure_)
    assert pixels.std() > 0.05  # not a blank image
    assert _has_colour(pixels, "C0") and _has_colour(pixels, "C1")


def test_loss_only_marks_the_lowest_loss(data):
    est = _fit(*data, hidden_layer_sizes=(4,), max_iter=8)
    display = TrainingCurveDisplay.from_estimator(est, name="small net")
    assert display.validation_ax_ is None and display.validation_line_ is None
    assert display.best_epoch == 1 + int(np.argmin(est.loss_curve_))
    assert display.ax_.get_title() == "small net"
    pixels = _pixels(display.figure_)
    assert _has_colour(pixels, "C0") and not _has_colour(pixels, "C1")


@both
def test_plot_into_given_axes_and_pipeline(data, estimator, score_name):
    X, y = data
    model = make_pipeline(StandardScaler(), estimator(hidden_layer_sizes=(4,),
                                                      max_iter=5, early_stopping=True,
                                                      random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, _target(y, estimator))
    fig, (left, right) = plt.subplots(1, 2)
    display = TrainingCurveDisplay.from_estimator(model, ax=right)
    assert display.ax_ is right and display.figure_ is fig
    assert not left.lines and len(right.lines) == 2  # curve + best-epoch line
    np.testing.assert_array_equal(display.loss_line_.get_ydata(), model[-1].loss_curve_)
    # The score is named by the pipeline's last step.
    assert display.validation_ax_.get_ylabel() == "validation " + score_name
    assert display.ax_.get_title() == estimator.__name__


def test_display_from_curves_and_lbfgs_label(data):
    display = TrainingCurveDisplay(loss_curve=[3.0, 2.0, np.nan, 1.5],
                                   validation_scores=[0.1, 0.5, np.nan, 0.4]).plot()
    assert display.best_epoch == 2  # NaN epochs are never the best
    assert display.validation_ax_.get_ylabel() == "validation score"
    display = TrainingCurveDisplay(loss_curve=[3.0, 2.0], validation_scores=[0.1, 0.5],
                                   score_name="balanced accuracy").plot()
    assert display.validation_ax_.get_ylabel() == "validation balanced accuracy"
    est = _fit(*data, solver="lbfgs", max_iter=10)
    display = TrainingCurveDisplay.from_estimator(est)
    assert display.ax_.get_xlabel() == "iteration"


def test_errors(data):
    with pytest.raises(NotFittedError):
        TrainingCurveDisplay.from_estimator(BPRegressor())
    with pytest.raises(ValueError, match="validation_scores has 1 values"):
        TrainingCurveDisplay(loss_curve=[1.0, 2.0], validation_scores=[0.5]).plot()
    with pytest.raises(ValueError, match="non-empty"):
        TrainingCurveDisplay(loss_curve=[]).plot()
