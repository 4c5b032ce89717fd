# Authors: The fastbp developers
# SPDX-License-Identifier: BSD-3-Clause
"""Sphinx configuration for fastbp's documentation.

Build it from the repository root, with the ``docs`` extra installed::

    python -m sphinx -W -b html docs docs/_build/html

The docs document the installed fastbp (``pip install -e ".[docs]"``): nothing
here puts ``src/`` on the path, so the compiled core is the one that was built.
No extension reaches the network (intersphinx is not used).
"""

import os
import sys
import warnings

import fastbp

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "_ext"))

project = "fastbp"
author = "The fastbp developers"
copyright = "The fastbp developers, BSD-3-Clause"
release = fastbp.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "fastbp_docs",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "examples", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.md5",
                    "auto_examples/*.json"]
default_role = "literal"
nitpicky = False

# API reference: every public name, from its docstring.
autosummary_generate = True
autodoc_default_options = {"members": True}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()

# The gallery runs every example at build time, in the order given, each in a
# fresh namespace; matplotlib draws off screen.
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "plot_gallery": "True",
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "reference_url": {},
    "backreferences_dir": None,
    "image_scrapers": ("matplotlib",),
    "show_memory": False,
    "capture_repr": ("_repr_html_", "__repr__"),
    "min_reported_time": 1,
}

os.environ.setdefault("MPLBACKEND", "Agg")
# A short example fit that stops before tol is reached says so; the example
# output need not repeat it.
warnings.filterwarnings("ignore", category=UserWarning,
                        message="Matplotlib is currently using agg")

html_theme = "pydata_sphinx_theme"
html_title = "fastbp %s" % release
html_static_path = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_prev_next": True,
    "footer_start": ["copyright"],
    "footer_end": [],
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars = {"index": [], "install": []}
html_show_sourcelink = False
