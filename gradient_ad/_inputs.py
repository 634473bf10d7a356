"""Turning user input into float32 samples of the shape the network expects."""

import math
import numbers

import numpy as np
from sklearn.utils.validation import validate_data

__all__ = ["sample_shape", "to_samples"]


def sample_shape(X_shape, input_shape):
    """Shape of one sample as the network sees it, from the shape of a validated X.

    Tables keep ``(n_features,)``; images become ``(channels, height, width)``:
    ``(n, H, W)`` arrays are single-channel, ``(n, C, H, W)`` arrays are taken as they
    are, and flat rows are reshaped to ``input_shape`` (``(H, W)`` or ``(C, H, W)``).
    """
    per_sample = tuple(X_shape[1:])
    if input_shape is not None:
        wanted = _as_image_shape(input_shape)
        if len(per_sample) == 1:
            if math.prod(wanted) != per_sample[0]:
                raise ValueError(
                    f"input_shape={tuple(input_shape)} holds {math.prod(wanted)} values, "
                    f"but X has {per_sample[0]} features"
                )
            return wanted
        if _as_image_shape(per_sample) != wanted:
            raise ValueError(
                f"input_shape={tuple(input_shape)} does not match X of shape {X_shape}"
            )
        return wanted
    if len(per_sample) in (1, 3):
        return per_sample
    if len(per_sample) == 2:
        return (1, *per_sample)
    raise ValueError(
        f"X must be a table (n_samples, n_features) or images (n, H, W) or (n, C, H, W); "
        f"got an array of shape {X_shape}"
    )


def _as_image_shape(shape):
    if isinstance(shape, numbers.Integral) or not all(
        isinstance(s, numbers.Integral) and s > 0 for s in shape
    ):
        raise ValueError(f"input_shape must be a tuple of positive integers, got {shape!r}")
    shape = tuple(int(s) for s in shape)
    if len(shape) == 2:
        return (1, *shape)
    if len(shape) == 3:
        return shape
    raise ValueError(
        f"input_shape must be (height, width) or (channels, height, width), got {shape}"
    )


# GradCon's per-sample gradients grow as x**2, and the squared norms and dot products in
# its cosines as x**4, which overflow float32 (3.4e38) near |x| = 4e9 and give NaN
# scores (seen from 1e10 on small images). Rejecting above 1e9 fails before any work.
MAX_ABS_VALUE = 1e9


def _check_magnitude(X):
    peak = max(float(X.max()), -float(X.min()))  # no temporary copy, unlike np.abs(X)
    if peak > MAX_ABS_VALUE:
        raise ValueError(
            f"X contains values of magnitude {peak:.3g}; gradient-ad accepts magnitudes up "
            f"to {MAX_ABS_VALUE:.0e}, beyond which its float32 gradient products overflow. "
            "Standardise the features, e.g. with sklearn.preprocessing.StandardScaler."
        )


def to_samples(estimator, X, *, reset, stream=False):
    """Validate ``X`` and return float32 samples of shape ``(n, *input_shape_)``.

    ``uint8`` input (8-bit images) is divided by 255; every other numeric type is
    cast to float32 unchanged. Values of magnitude above ``MAX_ABS_VALUE`` are
    rejected. With ``reset=True`` (in ``fit``) this sets
    ``n_features_in_`` (and ``feature_names_in_``) and returns the sample shape too.
    With ``stream=True`` (scoring) no converted copy of X is made: the result is a
    :class:`SampleChunks`, which converts rows when a slice of them is taken.
    """
    X = validate_data(
        estimator,
        X,
        reset=reset,
        allow_nd=True,
        dtype="numeric",
        ensure_min_samples=2 if reset else 1,
    )
    if X.ndim > 4:
        raise ValueError(f"X must have 2, 3 or 4 dimensions, got an array of shape {X.shape}")
    _check_magnitude(X)
    scale = 255.0 if X.dtype == np.uint8 else None
    if not stream:
        X = _as_float32(X, scale)
    shape = sample_shape(X.shape, estimator.input_shape) if reset else estimator.input_shape_
    if not reset and X.shape[1:] != shape:
        if math.prod(X.shape[1:]) != math.prod(shape) or X.ndim == 2 and len(shape) == 1:
            raise ValueError(
                f"X has samples of shape {X.shape[1:]}, but {type(estimator).__name__} was "
                f"fitted on samples of shape {shape}"
            )
        if X.ndim == 4 or X.ndim == 3 and shape[0] != 1:
            raise ValueError(
                f"X has images of shape {X.shape[1:]}, but {type(estimator).__name__} was "
                f"fitted on images of shape {shape}"
            )
    if stream:
        return SampleChunks(X, shape, scale)
    X = X.reshape(len(X), *shape)
    return (X, shape) if reset else X


def _as_float32(X, scale):
    X = np.array(X, dtype=np.float32, order="C")  # a writable copy torch can share
    if scale is not None:
        X /= scale
    return X


class SampleChunks:
    """Validated rows, converted to float32 samples one slice at a time.

    Scoring walks its input in chunks; converting each chunk when it is taken keeps
    memory at the input plus one chunk instead of a full float32 copy.
    """

    def __init__(self, X, shape, scale):
        self._X = X
        self._shape = tuple(shape)
        self._scale = scale

    def __len__(self):
        return len(self._X)

    @property
    def shape(self):
        return (len(self._X), *self._shape)

    def __getitem__(self, rows):
        if not isinstance(rows, slice):
            raise TypeError("SampleChunks are taken by slices of rows")
        chunk = self._X[rows]
        if self._scale is None:  # a view when X is float32 already: nothing to convert
            chunk = np.require(chunk, np.float32, ["C_CONTIGUOUS", "WRITEABLE"])
        else:
            chunk = _as_float32(chunk, self._scale)
        return chunk.reshape(len(chunk), *self._shape)
