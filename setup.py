# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Build the Cython core. Everything declarative lives in pyproject.toml."""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("FASTBP_CYTHON_DEBUG", "0") == "1"

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
}

extensions = [
    Extension(
        "fastbp._core",
        ["src/fastbp/_core.pyx"],
        # -fno-math-errno only stops libm from setting errno, which lets sqrt
        # vectorize; results are unchanged (unlike -ffast-math).
        extra_compile_args=(["-O3", "-fno-math-errno"] if not DEBUG else ["-O0", "-g"])
        + ["-fopenmp"],
        extra_link_args=["-fopenmp"],
    )
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives))
