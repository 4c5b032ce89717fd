# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""The examples of the README and the documentation run, so none can rot.

- Every ```` ```python ```` block of README.md and every
  ``.. code-block:: python`` of the documentation's pages runs, in an empty
  directory (the blocks write files such as ``model.npz``): one interpreter
  per file, running its blocks in order, each in a namespace of its own.
- Every gallery example under ``docs/examples`` runs as a script.
- The API reference names every public name of the package.
- The documentation builds with Sphinx, warnings as errors (needs the ``docs``
  extra; CI builds it in a job of its own as well).
"""

import ast
import os
import re
import subprocess
import sys

import pytest

import fastbp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
README = os.path.join(ROOT, "README.md")
GENERATED = ("_build", "generated", "auto_examples", "_templates")
# Blocks that start a cluster or train for long are worth a few seconds more.
SLOW_MARKERS = ("LocalCluster", "set_callbacks", "GridSearchCV", "verbose=2")

pytestmark = pytest.mark.skipif(
    not os.path.isfile(README) or not os.path.isdir(DOCS),
    reason="needs the source tree (README.md and docs/)")


def readme_blocks():
    """The Python code blocks of README.md, in order."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.M | re.S)


def rst_blocks(path):
    """The ``.. code-block:: python`` blocks of one page, dedented."""
    blocks, lines = [], open(path, encoding="utf-8").read().splitlines()
    i = 0
    while i < len(lines):
        match = re.match(r"^(\s*)\.\. code-block:: python\s*$", lines[i])
        i += 1
        if not match:
            continue
        indent = len(match.group(1))
        while i < len(lines) and re.match(r"^\s+:\w", lines[i]):
            i += 1  # the directive's options
        body = []
        while i < len(lines) and (not lines[i].strip()
                                  or len(lines[i]) - len(lines[i].lstrip()) > indent):
            body.append(lines[i])
            i += 1
        text = "\n".join(body).strip("\n")
        width = min(len(line) - len(line.lstrip()) for line in text.splitlines()
                    if line.strip())
        blocks.append("\n".join(line[width:] for line in text.splitlines()) + "\n")
    return blocks


def doc_pages():
    for folder, dirs, files in os.walk(DOCS):
        dirs[:] = sorted(d for d in dirs if d not in GENERATED)
        for name in sorted(files):
            if name.endswith(".rst"):
                yield os.path.join(folder, name)


def _cases(pairs):
    cases = []
    for label, blocks in pairs:
        if not blocks:
            continue
        slow = any(m in code for code in blocks for m in SLOW_MARKERS)
        cases.append(pytest.param(blocks, id=label,
                                  marks=[pytest.mark.slow] if slow else []))
    return cases


README_CASES = _cases([("README", readme_blocks())])
DOC_CASES = _cases((os.path.relpath(page, DOCS), rst_blocks(page))
                   for page in doc_pages())
N_DOC_BLOCKS = sum(len(case.values[0]) for case in DOC_CASES)
# Runs the blocks given as files, in order, each in a fresh namespace that
# looks like a script's (so ``if __name__ == "__main__":`` blocks run).
# The guard keeps processes that re-import the main module (Dask's workers,
# multiprocessing's spawn) from running the blocks again.
RUNNER = """
import sys
if __name__ == "__main__":
    for path in sys.argv[1:]:
        with open(path, encoding="utf-8") as f:
            code = compile(f.read(), path, "exec")
        print("--- running", path, flush=True)
        exec(code, {"__name__": "__main__", "__file__": path})
"""
GALLERY = sorted(
    os.path.join(DOCS, "examples", name)
    for name in os.listdir(os.path.join(DOCS, "examples"))
    if name.startswith("plot_") and name.endswith(".py")) if os.path.isdir(DOCS) else []


def run_python(args, cwd, timeout=600):
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONWARNINGS="ignore::UserWarning")
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        "exit %d\n--- stdout\n%s\n--- stderr\n%s"
        % (result.returncode, result.stdout[-3000:], result.stderr[-3000:]))
    return result


def test_the_docs_have_examples():
    # An empty list would make every parametrized test below vanish.
    assert len(README_CASES[0].values[0]) >= 1
    assert N_DOC_BLOCKS >= 10
    assert len(GALLERY) >= 6


def test_rst_blocks_are_read_whole(tmp_path):
    page = tmp_path / "page.rst"
    page.write_text("Title\n=====\n\n.. code-block:: python\n\n   a = 1\n\n"
                    "   if a:\n       b = 2\n\nText after.\n\n"
                    "- item\n\n  .. code-block:: python\n     :caption: x\n\n"
                    "     c = 3\n")
    assert rst_blocks(str(page)) == ["a = 1\n\nif a:\n    b = 2\n", "c = 3\n"]


def run_blocks(blocks, tmp_path):
    names = []
    for i, code in enumerate(blocks):
        ast.parse(code)
        names.append("block%d.py" % i)
        (tmp_path / names[-1]).write_text(code)
    (tmp_path / "run_blocks.py").write_text(RUNNER)
    run_python(["run_blocks.py", *names], cwd=tmp_path)


@pytest.mark.parametrize("blocks", README_CASES)
def test_readme_python_blocks_run(blocks, tmp_path):
    run_blocks(blocks, tmp_path)


@pytest.mark.parametrize("blocks", DOC_CASES)
def test_docs_python_blocks_run(blocks, tmp_path):
    run_blocks(blocks, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("script", GALLERY, ids=os.path.basename)
def test_gallery_example_runs(script, tmp_path):
    pytest.importorskip("matplotlib")
    run_python([script], cwd=tmp_path)


def test_api_reference_names_every_public_name():
    with open(os.path.join(DOCS, "api.rst"), encoding="utf-8") as f:
        text = f.read()
    listed = set(re.findall(r"^   ([A-Za-z_]\w*)$", text, flags=re.M))
    listed |= set(re.findall(r"^\.\. autodata:: (\w+)$", text, flags=re.M))
    public = {name for name in fastbp.__all__ if name != "__version__"}
    public |= set(pytest.importorskip("fastbp.dask").__all__)
    public |= set(pytest.importorskip("fastbp.onnx").__all__)
    assert public - listed == set(), "not in docs/api.rst"


@pytest.mark.slow
def test_sphinx_build_has_no_warning(tmp_path):
    for module in ("sphinx", "numpydoc", "sphinx_gallery", "pydata_sphinx_theme"):
        pytest.importorskip(module)
    result = run_python(["-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                         "-d", str(tmp_path / "doctrees"), DOCS,
                         str(tmp_path / "html")], cwd=ROOT, timeout=900)
    assert "warning" not in result.stderr.lower()
    for page in ("index.html", "api.html", "user_guide/algorithm.html",
                 "user_guide/cli.html", "auto_examples/plot_single_neuron.html",
                 "generated/fastbp.BPRegressor.html"):
        assert os.path.isfile(tmp_path / "html" / page), page
