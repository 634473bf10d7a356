"""Checks of ``fit``'s input that say what the user probably meant: file names where
pixels were expected, and images a per-pixel scaler has standardised."""

import os
import warnings

import numpy as np

from ._warnings import caller_stacklevel

__all__ = ["check_not_file_names", "warn_if_standardised_per_pixel"]


def check_not_file_names(X):
    """Refuse file names (a path, or a list or array of them) with a pointer to
    ``load_images``, before scikit-learn fails with "Expected 2D array" and prints
    every name."""
    path = (str, bytes, os.PathLike)
    if isinstance(X, path):
        first, n = X, 1
    elif isinstance(X, (list, tuple)) and len(X):
        first, n = X[0], len(X)
    elif isinstance(X, np.ndarray) and X.ndim == 1 and X.dtype.kind in "OUS" and len(X):
        first, n = X[0], len(X)
    else:
        return
    if not isinstance(first, path):
        return
    first = os.fsdecode(first)
    more = f" and {n - 1} more" if n > 1 else ""
    raise TypeError(
        f"X holds file names ({first!r}{more}), not data: gradient-ad needs the pixels. "
        "Read image files with gradient_ad.datasets.load_images(folder_or_paths), which "
        'needs Pillow (the "images" extra: pip install ".[images]" in a clone of '
        "gradient-ad, or pip install pillow)."
    )


# Images scaled pixel by pixel (a StandardScaler in front of an image detector): every
# pixel's mean within MEAN_TOLERANCE of 0 and, where it varies, its standard deviation
# within STD_TOLERANCE of 1, in at least STANDARDISED_SHARE of the pixels. It harms
# only where it blows up near-constant pixels (an image's border): so the warning also
# needs a value beyond STANDARDISED_MAX_ABS standard deviations, which pixels standardised
# with one mean and deviation for all (Fashion-MNIST: -0.9 to 1.9) do not reach.
MEAN_TOLERANCE = 0.05
STD_TOLERANCE = 0.05
STANDARDISED_SHARE = 0.95
STANDARDISED_MAX_ABS = 5.0


def warn_if_standardised_per_pixel(X, shape):
    """Warn in ``fit`` when images look standardised pixel by pixel (see above)."""
    if len(shape) != 3 or X.dtype == np.uint8 or len(X) < 2:
        return
    flat = X.reshape(len(X), -1)
    if max(-float(flat.min()), float(flat.max())) <= STANDARDISED_MAX_ABS:
        return
    mean, std = flat.mean(axis=0, dtype=np.float64), flat.std(axis=0, dtype=np.float64)
    looks = (np.abs(mean) <= MEAN_TOLERANCE) & ((std == 0) | (np.abs(std - 1) <= STD_TOLERANCE))
    if looks.mean() < STANDARDISED_SHARE:
        return
    warnings.warn(
        f"X looks like images standardised pixel by pixel (each pixel's mean about 0 and "
        f"standard deviation about 1, values in [{float(flat.min()):.3g}, "
        f"{float(flat.max()):.3g}]), e.g. by a StandardScaler in front of the detector. "
        "That scales nearly constant pixels, such as an image's border, up to tens of "
        "standard deviations and drops the pixels' relative brightness: on Fashion-MNIST "
        "T-shirts it cut the rotation pretext's test AUROC from 0.955 to 0.777. Pass the "
        "pixels as they are (uint8, or divided by 255), or standardise them all with one "
        "mean and one standard deviation.",
        UserWarning,
        stacklevel=caller_stacklevel(),
    )
