"""Sphinx configuration of the gradient-ad documentation.

Build offline, with warnings as errors: ``sphinx-build -W -b html docs docs/_build/html``.
Nothing here needs the network (no intersphinx); the gallery runs the scripts in
``examples/`` on scikit-learn's bundled digits.
"""

import warnings

import torch

import gradient_ad

project = "gradient-ad"
author = "the gradient-ad developers"
copyright = "2026, the gradient-ad developers"  # noqa: A001 - Sphinx's name
release = gradient_ad.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # ships MathJax, so equations render without the network
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py"]
default_role = "literal"

# API reference: one page per public object, from the numpydoc docstrings.
autosummary_generate = True
autodoc_default_options = {"members": True}
# The docstrings give every type in words; the type hints (for type checkers) would
# print NumPy's ArrayLike as a union of a dozen private protocols in each signature.
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# Gallery: every plot_*.py script in examples/ is run and its figures are kept.
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "show_memory": False,
    # "Examples using ..." lists on the API pages.
    "doc_module": ("gradient_ad",),
    "backreferences_dir": "generated/backreferences",
}
# Matplotlib warns when a script calls plt.show() under the Agg backend.
warnings.filterwarnings("ignore", message="FigureCanvasAgg is non-interactive")

# The gallery's networks are tiny: one torch thread fits them as fast as two, and many
# times faster when other processes share the cores (threads then wait on each other).
torch.set_num_threads(1)

# The page contents list methods as "fit()", not "GradientAnomalyDetector.fit()",
# which the narrow column would break mid-word.
toc_object_entries_show_parents = "hide"
html_theme = "pydata_sphinx_theme"
html_title = f"gradient-ad {release}"
html_static_path = ["_static"]
# Compact result tables (the "numbers" class), see _static/custom.css.
html_css_files = ["custom.css"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_prev_next": False,
    # A table of contents on the right, except on the example pages, which give that
    # room to their code lines.
    "secondary_sidebar_items": {
        page: ["page-toc"]
        for page in ("index", "getting_started", "user_guide", "api", "generated/*", "changelog")
        + ("benchmarks", "performance", "robustness", "scaling")
    },
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
# Single pages need no section navigation on the left.
html_sidebars = {
    page: []
    for page in (
        "index",
        "getting_started",
        "user_guide",
        "benchmarks",
        "performance",
        "robustness",
        "scaling",
        "changelog",
    )
}
