# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""fastbp's type information as users receive it.

The package ships ``py.typed`` and ``_core.pyi``; a small typed program that
uses the public API passes ``mypy --strict`` (and runs), and the stub of the
compiled core matches the module that was built (``mypy.stubtest``).
"""

import importlib.resources
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
USAGE = os.path.join(HERE, "typing", "usage.py")
ALLOWLIST = os.path.join(HERE, "stubtest_allowlist.txt")


def _run(args, cwd):
    result = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory):
    """One mypy cache for the module: NumPy's stubs are read once."""
    pytest.importorskip("mypy")
    return str(tmp_path_factory.mktemp("mypy_cache"))


def test_installed_package_has_its_type_information():
    package = importlib.resources.files("fastbp")
    assert package.joinpath("py.typed").is_file()
    assert package.joinpath("_core.pyi").is_file()


@pytest.mark.slow
def test_public_api_passes_mypy_strict(tmp_path, mypy_cache):
    # Run from an empty directory, so mypy finds the installed fastbp.
    result = _run(["-m", "mypy", "--strict", "--cache-dir", mypy_cache, USAGE],
                  cwd=tmp_path)
    assert "Success" in result.stdout
    _run([USAGE], cwd=tmp_path)


@pytest.mark.slow
def test_mypy_strict_sees_the_annotations(tmp_path, mypy_cache):
    # The check above must be able to fail: a wrong use is caught.
    wrong = tmp_path / "wrong.py"
    wrong.write_text("from fastbp import BPRegressor\n"
                     "def f() -> str:\n"
                     "    return BPRegressor().predict([[1.0]])\n")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", mypy_cache,
         str(wrong)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1
    assert "Incompatible return value type" in result.stdout


@pytest.mark.slow
def test_core_stub_matches_the_compiled_module(tmp_path, mypy_cache):
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\ncache_dir = %s\n" % mypy_cache)
    _run(["-m", "mypy.stubtest", "fastbp._core", "--allowlist", ALLOWLIST,
          "--mypy-config-file", str(config)], cwd=tmp_path)
