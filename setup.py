# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Build the Cython core. Everything declarative lives in pyproject.toml.

Environment:
  FASTBP_CYTHON_DEBUG=1  bounds and initialisation checks, -O0 -g (for CI/memcheck)
  FASTBP_OPENMP=0        a serial build; by default OpenMP is used when the
                         compiler supports it, and the build falls back to serial
                         when it does not (Apple clang without libomp, say)
"""

import os
import sys
import tempfile

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("FASTBP_CYTHON_DEBUG", "0") == "1"
OPENMP = os.environ.get("FASTBP_OPENMP", "1") != "0"

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    # Never wrap, in any build: a negative index is always a bug, and with the
    # debug build's bounds checks it then raises IndexError instead of silently
    # reading from the end of the array.
    "wraparound": False,
    "initializedcheck": DEBUG,
    # C division in every build: the kernels count on IEEE results (x / 0 is inf
    # and flows into the divergence check), their integer divisions never see a
    # negative operand, and inside noexcept nogil code Python's ZeroDivisionError
    # could only be printed and ignored, so a debug build would compute something
    # else than the release build it is meant to check.
    "cdivision": True,
}

_OPENMP_PROBE = """
#include <omp.h>
int main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }
"""


def _openmp_candidates(compiler):
    """(compile flags, link flags) to try, best first, for this compiler."""
    if compiler.compiler_type == "msvc":
        return [(["/openmp"], [])]
    if sys.platform == "darwin":
        # Apple clang has no -fopenmp driver flag; with Homebrew's libomp the
        # preprocessor flag and -lomp work. Other clangs and GCC take -fopenmp.
        return [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
    return [(["-fopenmp"], ["-fopenmp"])]


def _openmp_flags(compiler):
    """The first candidate that compiles and links a small OpenMP program, or
    ([], []) for a serial build."""
    if not OPENMP:
        return [], []
    for cflags, ldflags in _openmp_candidates(compiler):
        with tempfile.TemporaryDirectory() as tmp:
            source = os.path.join(tmp, "probe.c")
            with open(source, "w") as f:
                f.write(_OPENMP_PROBE)
            try:
                objects = compiler.compile([source], output_dir=tmp,
                                           extra_postargs=cflags)
                compiler.link_executable(objects, "probe", output_dir=tmp,
                                         extra_postargs=ldflags)
            except Exception:  # CompileError, LinkError: try the next candidate
                continue
        return cflags, ldflags
    print("fastbp: the compiler has no usable OpenMP; building serial", file=sys.stderr)
    return [], []


class BuildExt(build_ext):
    """Choose optimisation and OpenMP flags for the compiler actually used."""

    def build_extensions(self):
        msvc = self.compiler.compiler_type == "msvc"
        if msvc:
            opt = ["/Od", "/Zi"] if DEBUG else ["/O2"]
        else:
            # -fno-math-errno only stops libm from setting errno, which lets sqrt
            # vectorize; results are unchanged (unlike -ffast-math). No
            # -march=native: wheels must run on any machine of the platform.
            opt = ["-O0", "-g"] if DEBUG else ["-O3", "-fno-math-errno"]
            # Floating-point operations raise no trap that anything observes:
            # this lets GCC compute both sides of a select (if-conversion), so
            # the element-wise loops of _simd_kernels.h vectorize. Values are
            # unchanged (it is not -ffast-math: IEEE rounding, NaN and inf hold).
            opt.append("-fno-trapping-math")
            # No implicit fused multiply-add: the per-instruction-set copies of
            # the loops (_simd.h) must give bitwise the results of the baseline.
            # (The small products fuse theirs explicitly, alike in every copy.)
            opt.append("-ffp-contract=off")
        cflags, ldflags = _openmp_flags(self.compiler)
        for ext in self.extensions:
            ext.extra_compile_args = opt + cflags
            ext.extra_link_args = ldflags
        super().build_extensions()


# The C headers and the included .pxi are compiled into _core: a change to any
# of them must rebuild it (an editable install would keep the old build).
extensions = [Extension("fastbp._core", ["src/fastbp/_core.pyx"],
                        depends=["src/fastbp/_simd.h", "src/fastbp/_simd_kernels.h",
                                 "src/fastbp/_epochs.pxi"])]

setup(
    ext_modules=cythonize(extensions, compiler_directives=directives),
    cmdclass={"build_ext": BuildExt},
)
