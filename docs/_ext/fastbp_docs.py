# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Sphinx additions of fastbp's own documentation.

- ``.. fastbp-help:: [COMMAND]`` shows what ``fastbp [COMMAND] --help``
  prints, run at build time with the installed command, so the command-line
  page never falls behind the parser.
- Methods that the estimators inherit from scikit-learn (``get_params``,
  ``score``, the metadata-routing ``set_*_request`` methods, ...) keep
  scikit-learn's docstrings, whose ``:ref:`` and ``:term:`` roles point into
  scikit-learn's own documentation. Without intersphinx (the build needs no
  network) they are shown as plain text instead of broken links.
"""

import os
import re
import subprocess
import sys

from docutils import nodes
from docutils.parsers.rst import Directive

WIDTH = "88"
# :ref:`text <label>`, :ref:`label`, :term:`text <entry>`, :term:`entry`
_FOREIGN_ROLE = re.compile(r":(?:ref|term):`(?:([^`<]*?)\s*<[^`>]*>|([^`]*))`")


class FastbpHelp(Directive):
    """A literal block with the output of ``python -m fastbp [COMMAND] --help``."""

    optional_arguments = 1
    has_content = False

    def run(self):
        command = [sys.executable, "-m", "fastbp", *self.arguments, "--help"]
        env = dict(os.environ, COLUMNS=WIDTH, NO_COLOR="1")
        result = subprocess.run(command, capture_output=True, text=True, env=env,
                                timeout=120)
        if result.returncode != 0:
            raise self.error("%s failed (exit %d): %s" % (
                " ".join(command[2:]), result.returncode, result.stderr.strip()))
        text = result.stdout.rstrip()
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


def _plain_roles(line):
    return _FOREIGN_ROLE.sub(lambda m: "*%s*" % (m.group(1) or m.group(2)), line)


def unlink_sklearn_docstrings(app, what, name, obj, options, lines):
    """Show the cross-references of scikit-learn's docstrings as plain text."""
    module = getattr(obj, "__module__", None) or ""
    if module == "sklearn" or module.startswith("sklearn."):
        lines[:] = [_plain_roles(line) for line in lines]


def setup(app):
    app.add_directive("fastbp-help", FastbpHelp)
    app.connect("autodoc-process-docstring", unlink_sklearn_docstrings)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
