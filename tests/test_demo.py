# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""The installed ``fastbp demo`` command, run as a user runs it.

No timing is checked: the fit times and the speed ratio are printed for people
to read. What must hold is that each pair trains the same model.
"""

import os
import shutil
import subprocess
import sys

import pytest


def _demo_command():
    """The ``fastbp`` script installed beside this interpreter, else ``-m fastbp``."""
    script = shutil.which("fastbp", path=os.path.dirname(sys.executable))
    if script is not None:
        return [script, "demo"]
    return [sys.executable, "-m", "fastbp", "demo"]


@pytest.fixture(scope="module")
def demo_output():
    result = subprocess.run(_demo_command(), capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _row(output, name):
    """(fit seconds, epochs, score) of the demo's table row for ``name``."""
    lines = [line.split() for line in output.splitlines()
             if line.split()[:2] == name.split()]
    assert len(lines) == 1, output
    seconds, epochs, score = lines[0][2:]
    return float(seconds), int(epochs), float(score)


@pytest.mark.slow
def test_demo_regression_part(demo_output):
    fast = _row(demo_output, "fastbp BPRegressor")
    slow = _row(demo_output, "sklearn MLPRegressor")
    assert fast[1:] == slow[1:]  # same epochs and test R2: the same model


@pytest.mark.slow
def test_demo_classification_part(demo_output):
    assert "3. Digits" in demo_output
    fast = _row(demo_output, "fastbp BPClassifier")
    slow = _row(demo_output, "sklearn MLPClassifier")
    assert fast[1] == slow[1]  # same number of epochs
    assert fast[2] == slow[2]  # same test accuracy: the same model
    assert fast[2] > 0.9
    assert fast[0] > 0 and slow[0] > 0
    ratios = [line for line in demo_output.splitlines() if "speed ratio" in line]
    assert len(ratios) == 2
