#!/usr/bin/env bash
# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
#
# Run the kernel tests (and a few estimator tests) under valgrind memcheck and
# report the invalid reads and writes, in total and in fastbp's own code.
#
# Usage: tools/memcheck.sh [pytest arguments]     (default: the selection below)
#   PYTHON=/path/to/python tools/memcheck.sh      (default: python on PATH)
#
# It exits 1 if the tests fail or if any invalid read or write has a frame in
# fastbp's extension in its stack. CPython runs with PYTHONMALLOC=malloc so that
# memcheck sees every allocation (pymalloc's arenas would hide overruns and
# raise false alarms); tools/valgrind-python.supp silences what remains of the
# interpreter's and the BLAS library's known noise. The extension under test is
# the one the interpreter imports: build it with FASTBP_CYTHON_DEBUG=1 for line
# numbers in the stacks.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python}"
if ! command -v valgrind >/dev/null; then
    echo "valgrind is not installed (apt-get install valgrind)" >&2
    exit 2
fi
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=(
        tests/test_core.py
        tests/test_core_hardening.py
        tests/test_gradients.py
        tests/test_sparse.py
        tests/test_sample_weight.py
        "tests/test_regressor.py::test_input_layouts_give_same_model"
        "tests/test_regressor.py::test_multi_output"
        "tests/test_regressor.py::test_partial_fit_matches_mlpregressor"
        "tests/test_regressor.py::test_divergence_after_some_epochs_restores_last_finite_weights"
        "tests/test_regressor.py::test_first_epoch_divergence_in_partial_fit_leaves_model_as_before"
        "tests/test_regressor.py::test_float32_close_to_float64"
        tests/test_classifier.py
        "tests/test_classifier_parity.py::test_parity_lbfgs"
        "tests/test_classifier_parity.py::test_parity_defaults_on_digits"
    )
fi
present=()
for t in "${targets[@]}"; do
    if [[ "$t" == -* ]] || [ -e "${t%%::*}" ]; then
        present+=("$t")
    else
        echo "skipping missing test file ${t%%::*}" >&2
    fi
done

logs="$(mktemp -d)"
core="$("$PYTHON" -c 'import fastbp._core as c; print(c.__file__)')"
echo "extension under test: $core"
echo "valgrind logs: $logs"

export PYTHONMALLOC=malloc
# One BLAS thread: fewer false alarms from the thread pool, and faster.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
status=0
valgrind --tool=memcheck --error-limit=no --num-callers=40 \
    --suppressions=tools/valgrind-python.supp \
    --log-file="$logs/memcheck.%p.log" \
    "$PYTHON" -X faulthandler -m pytest -q -p no:cacheprovider \
    -W ignore::sklearn.exceptions.ConvergenceWarning "${present[@]}" \
    || status=$?

"$PYTHON" - "$logs" "$status" <<'PY'
import glob
import os
import re
import sys

logs, status = sys.argv[1], int(sys.argv[2])
# A frame of fastbp's extension: a Cython-generated function, or the shared
# object itself when it was built without debug information.
OURS = re.compile(r"^\s*(at|by) 0x[0-9A-Fa-f]+: .*(__pyx_\w*6fastbp|fastbp/_core"
                  r"|\(_core\.(c|pyx):\d+\))", re.M)
KINDS = ("Invalid read", "Invalid write", "Invalid free", "Mismatched free",
         "Conditional jump", "Use of uninitialised", "Syscall param")
total = dict.fromkeys(KINDS, 0)
ours = dict.fromkeys(KINDS, 0)
summaries = []
for path in sorted(glob.glob(os.path.join(logs, "memcheck.*.log"))):
    with open(path) as f:
        text = f.read()
    summaries += re.findall(r"ERROR SUMMARY: .*", text)
    # One error is a block of "==pid== " lines that starts with its kind and
    # ends at the next empty "==pid== " line.
    for block in re.split(r"\n==\d+== \n", text):
        body = re.sub(r"^==\d+== ", "", block, flags=re.M).strip()
        for kind in KINDS:
            if body.startswith(kind):
                total[kind] += 1
                if OURS.search(body):
                    ours[kind] += 1
                    print(body, end="\n\n")
print("memcheck ERROR SUMMARY (after tools/valgrind-python.supp):")
for line in summaries:
    print("  " + line)
print("errors by kind, all code:    " + ", ".join("%s: %d" % kv for kv in total.items()))
print("errors by kind, fastbp code: " + ", ".join("%s: %d" % kv for kv in ours.items()))
print("pytest exit status under valgrind: %d" % status)
bad = sum(ours[k] for k in ("Invalid read", "Invalid write", "Invalid free",
                            "Mismatched free"))
print("RESULT: %s" % ("FAIL" if status or bad else
                      "OK, no invalid read or write in fastbp code"))
sys.exit(1 if status or bad else 0)
PY
