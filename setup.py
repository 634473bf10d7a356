"""Packaging for gradient-ad; tool settings live in pyproject.toml."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "gradient_ad" / "_version.py").read_text())[
    1
]

PLOT = ["matplotlib>=3.6"]
DASK = ["dask[array,distributed]>=2024.1"]
IMAGES = ["pillow>=9.1"]

setup(
    name="gradient-ad",
    version=VERSION,
    description=(
        "GradCon anomaly detection from backpropagated gradients, as a scikit-learn estimator"
    ),
    long_description=(HERE / "README.rst").read_text(),
    long_description_content_type="text/x-rst",
    author="the gradient-ad developers",
    license="BSD-3-Clause",
    # No project URLs: the repository has no public address yet.
    packages=find_packages(include=["gradient_ad", "gradient_ad.*"]),
    # PEP 561: the package's own annotations are for type checkers to read.
    package_data={"gradient_ad": ["py.typed"]},
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.23",
        "scipy>=1.9",
        "scikit-learn>=1.6",
        "torch>=2.2",
        "skorch>=1.0",
        "joblib>=1.2",
        "tqdm>=4.60",
    ],
    extras_require={
        # gradient_ad.plotting.plot_anomaly_maps.
        "plot": PLOT,
        # python -m gradient_ad.benchmark: tables and plots.
        "benchmark": ["pandas>=1.5", *PLOT],
        # Scaling out: gradient_ad.dask, and joblib's "dask" backend for searches.
        "dask": DASK,
        # gradient_ad.datasets.load_images: image files (PNG, JPEG, ...).
        "images": IMAGES,
        # Everything the tests exercise, Dask included, so that no test skips for a
        # missing extra (only the benchmark data in ../shared/data may be absent).
        "test": [
            "pytest>=7",
            "pytest-timeout>=2",
            "hypothesis>=6",
            "pandas>=1.5",
            *PLOT,
            *DASK,
            *IMAGES,
            "ruff",
        ],
        # The API reference documents gradient_ad.dask, so autosummary imports it.
        "docs": [
            *DASK,
            *IMAGES,
            "sphinx>=7",
            "numpydoc>=1.6",
            "sphinx-gallery>=0.15",
            *PLOT,
            "pydata-sphinx-theme>=0.15",
            "sphinx-mathjax-offline>=0.0.2",
        ],
    },
    entry_points={
        "console_scripts": ["gradient-ad-benchmark = gradient_ad.benchmark.cli:console"],
    },
    classifiers=[
        "Intended Audience :: Science/Research",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Typing :: Typed",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
