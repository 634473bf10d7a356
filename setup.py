"""Packaging for gradient-ad; tool settings live in pyproject.toml."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "gradient_ad" / "_version.py").read_text())[
    1
]

setup(
    name="gradient-ad",
    version=VERSION,
    description=(
        "GradCon anomaly detection from backpropagated gradients, as a scikit-learn estimator"
    ),
    long_description=(HERE / "README.rst").read_text(),
    long_description_content_type="text/x-rst",
    license="BSD-3-Clause",
    packages=find_packages(include=["gradient_ad", "gradient_ad.*"]),
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
        # python -m gradient_ad.benchmark: tables and plots.
        "benchmark": ["pandas>=1.5", "matplotlib>=3.6"],
        "test": [
            "pytest>=7",
            "pytest-timeout>=2",
            "hypothesis>=6",
            "pandas>=1.5",
            "matplotlib>=3.6",
            "ruff",
        ],
        # Scaling out: gradient_ad.dask, and joblib's "dask" backend for searches.
        "dask": ["dask[array,distributed]>=2024.1"],
        "docs": [
            "sphinx>=7",
            "numpydoc>=1.6",
            "sphinx-gallery>=0.15",
            "matplotlib>=3.6",
            "pydata-sphinx-theme>=0.15",
            "sphinx-mathjax-offline>=0.0.2",
        ],
    },
    classifiers=[
        "Intended Audience :: Science/Research",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
