"""Turning user input into float32 samples of the shape the network expects."""

import math
import numbers
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import validate_data

from ._input_checks import check_not_file_names, warn_if_standardised_per_pixel
from ._warnings import caller_stacklevel

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
    if _looks_channels_last(per_sample):
        raise ValueError(
            _channels_last_message(X_shape)
            + " If the shape is right as it is, pass input_shape=(channels, height, width)."
        )
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

# uint8 images are divided by 255. A model fitted on them sees values in [0, 1]; other
# input it is given must be on that scale already. Pixels of 0-255 stored as floats
# or wider integers have a value of at least 2 somewhere (unless they are all 0 or 1),
# so a maximum above 1.5 means "not divided by 255", while [0, 1] data slightly
# overshooting 1 (noise, interpolation) is still accepted.
UINT8_SCALE = 255.0
MAX_SCALED_VALUE = 1.5

_SHOWN_ROWS = 5

# Scoring warns when at least this share of the rows lies beyond the training range by
# more than the range's width (on the network's scale): a batch prepared on another
# scale (0-16 or 0-255 pixels for a model fitted on [0, 1]), not a few anomalies.
FAR_OUTSIDE_SHARE = 0.5


def _row_list(bad_rows, n_rows):
    """``'2 of 40 rows (rows 3, 17)'``: which rows are meant, the first few by index."""
    rows = np.flatnonzero(bad_rows)
    shown = ", ".join(str(i) for i in rows[:_SHOWN_ROWS])
    more = f" and {len(rows) - _SHOWN_ROWS} more" if len(rows) > _SHOWN_ROWS else ""
    word = "row" if len(rows) == 1 else "rows"
    return f"{len(rows)} of {n_rows} rows ({word} {shown}{more})"


def _check_values(X):
    """Refuse NaN, infinity and magnitudes above ``MAX_ABS_VALUE``, naming the rows.

    The minimum and maximum decide (NaN propagates through both); only a batch that
    fails pays for the per-row search.
    """
    if X.size == 0 or (X.dtype.itemsize == 1 and X.dtype.kind in "biu"):
        return  # bool and 8-bit integers cannot hold such values
    low, high = float(X.min()), float(X.max())
    if math.isfinite(low) and math.isfinite(high) and max(high, -low) <= MAX_ABS_VALUE:
        return
    flat = X.reshape(len(X), -1)
    where = "Drop or impute those rows, e.g. with sklearn.impute.SimpleImputer."
    nan = np.isnan(flat).any(axis=1) if X.dtype.kind == "f" else np.zeros(len(X), bool)
    if nan.any():
        raise ValueError(f"Input X contains NaN in {_row_list(nan, len(X))}. {where}")
    infinite = np.isinf(flat).any(axis=1) if X.dtype.kind == "f" else nan
    if infinite.any():
        raise ValueError(f"Input X contains infinity in {_row_list(infinite, len(X))}. {where}")
    huge = (np.abs(flat) > MAX_ABS_VALUE).any(axis=1)
    raise ValueError(
        f"X contains values of magnitude {max(high, -low):.3g} in {_row_list(huge, len(X))}; "
        f"gradient-ad accepts magnitudes up to {MAX_ABS_VALUE:.0e}, beyond which its "
        "float32 gradient products overflow. Standardise the features, e.g. with "
        "sklearn.preprocessing.StandardScaler, or drop those rows."
    )


def _check_columns(X):
    """Name the DataFrame columns that are not numbers (scikit-learn would fail with a
    comparison or promotion error that names none)."""
    dtypes = getattr(X, "dtypes", None)
    if not (hasattr(X, "iloc") and hasattr(dtypes, "items")):
        return  # not a pandas DataFrame (a Series is 1-D: scikit-learn refuses it)
    from pandas.api.types import infer_dtype, is_bool_dtype, is_numeric_dtype, is_object_dtype

    numeric_objects = {"integer", "floating", "mixed-integer-float", "boolean", "decimal", "empty"}
    bad = [
        f"{name!r} ({dtype})"
        for i, (name, dtype) in enumerate(dtypes.items())
        if not (is_numeric_dtype(dtype) or is_bool_dtype(dtype))
        and not (
            is_object_dtype(dtype) and infer_dtype(X.iloc[:, i], skipna=True) in numeric_objects
        )
    ]
    if bad:
        raise ValueError(
            f"X has non-numeric columns: {', '.join(bad)}. gradient-ad needs numbers: encode "
            "categories and strings (e.g. sklearn.preprocessing.OneHotEncoder or "
            "OrdinalEncoder in a sklearn.compose.ColumnTransformer), turn datetimes and "
            "durations into numbers (e.g. seconds), or drop those columns."
        )


def _looks_channels_last(per_sample):
    """``(H, W, C)`` with a few channels, passed where ``(C, H, W)`` is expected."""
    return len(per_sample) == 3 and per_sample[2] in (1, 3, 4) and per_sample[0] > per_sample[2]


def _channels_last_message(shape):
    return (
        f"X has shape {tuple(shape)}, which looks like images with the channels last "
        f"({shape[-1]} channel(s) of {shape[1]} x {shape[2]}); gradient-ad reads 4-D input "
        "as (n, channels, height, width). Pass the channels first: np.moveaxis(X, -1, 1)."
    )


def _check_channels_last(X, fitted_shape):
    """At scoring, before scikit-learn counts axis 1 as features: the fitted images
    with their channels moved last."""
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) != 4 or tuple(shape[1:]) == tuple(fitted_shape):
        return
    if (shape[3], shape[1], shape[2]) == tuple(fitted_shape):
        raise ValueError(
            _channels_last_message(shape)
            + f" The model was fitted on images of shape {tuple(fitted_shape)}."
        )


def _image_text(shape):
    """``'images of 16 x 16 pixels'`` or ``'images of 3 channels of 8 x 8 pixels'``."""
    channels, height, width = shape
    of = f"{channels} channels of " if channels != 1 else ""
    return f"images of {of}{height} x {width} pixels"


def _fitted_layout(estimator, X):
    """At scoring, ``X`` in the layout the model was fitted on, or a ``ValueError``
    worded in the fitted images' terms, before scikit-learn counts ``X.shape[1]``.

    An image model of shape ``(C, H, W)`` accepts ``(n, C, H, W)``, ``(n, H, W)`` when
    ``C == 1`` (both train the same network) and flat rows of ``C * H * W`` values when
    it was fitted on flat rows or with ``input_shape``, which declares how a row reads
    as an image. Without ``input_shape`` a model fitted on images refuses flat rows: a
    pixel order was never agreed (rows flattened from channels-last images would be
    scored silently wrong). ``X`` is reshaped (a view for contiguous arrays) to the
    layout seen in ``fit``, whose second axis is ``n_features_in_``.
    """
    shape = getattr(X, "shape", None)
    fitted = tuple(estimator.input_shape_)
    n_features = getattr(estimator, "n_features_in_", None)
    if shape is None or n_features is None or not 2 <= len(shape) <= 4:
        return X  # scikit-learn (or to_samples) converts and checks other input
    per_sample = tuple(shape[1:])
    name = type(estimator).__name__
    if len(fitted) == 1:
        if len(per_sample) > 1:
            raise ValueError(
                f"X has shape {tuple(shape)}, but this {name} was fitted on a table of "
                f"{fitted[0]} features: pass X as (n_samples, {fitted[0]})."
            )
        return X  # scikit-learn checks the number of features
    size = math.prod(fitted)
    equivalent = [fitted, fitted[1:], (size,)] if fitted[0] == 1 else [fitted, (size,)]
    seen = next((layout for layout in equivalent if layout[0] == n_features), fitted)
    accepted = [layout for layout in equivalent if len(layout) > 1]
    if estimator.input_shape is not None or seen == (size,):
        accepted.append((size,))
    if per_sample in accepted:
        if per_sample == seen or sp.issparse(X):
            return X  # scikit-learn refuses sparse input with its own message
        return np.reshape(np.asarray(X), (shape[0], *seen))
    images = _image_text(fitted)
    simplest = ", ".join(map(str, fitted[1:] if fitted[0] == 1 else fitted))
    forms = " or ".join(f"(n, {', '.join(map(str, layout))})" for layout in accepted)
    if per_sample == (size,):
        fix = (
            f"If each row holds an image's pixels in row-major order, pass "
            f"X.reshape(-1, {simplest}); to score flat rows, fit on them with "
            f"input_shape=({simplest})."
        )
    elif len(per_sample) == 1:
        fix = f"Pass the images as {forms}."
    elif math.prod(per_sample) == size:
        fix = f"If they hold the same pixels in that order, pass X.reshape(-1, {simplest})."
    else:
        channels = per_sample[0] if len(per_sample) == 3 else 1
        if per_sample[-2:] == fitted[1:]:
            fix = f"X has {channels} channel(s); the model was fitted on {fitted[0]}."
        else:
            fix = (
                "The network's input size is fixed: resize or crop the images to "
                f"{fitted[1]} x {fitted[2]}, or fit a model on images of this size."
            )
    raise ValueError(
        f"X has shape {tuple(shape)}, but this {name} was fitted on {images}: it scores X "
        f"of shape {forms}. {fix}"
    )


def _input_scale(estimator, X, reset):
    """The divisor of X (``None``: as it is), after checking X against the fitted rule.

    In ``fit``, ``uint8`` input is divided by 255 and anything else is taken as it is;
    the model records which (``input_scale_``) and its training range
    (``input_range_``, on the network's scale). Scoring applies the same rule, and
    refuses input whose dtype and range say it was prepared another way, since that
    would score silently wrong.
    """
    scale = UINT8_SCALE if X.dtype == np.uint8 else None
    if reset:
        estimator.input_scale_ = UINT8_SCALE if scale else 1.0
        estimator.input_range_ = (
            float(X.min()) / estimator.input_scale_,
            float(X.max()) / estimator.input_scale_,
        )
        return scale
    fitted = getattr(estimator, "input_scale_", None)
    if fitted is None:  # saved before the rule was recorded: the rule of that version
        return scale
    name = type(estimator).__name__
    if fitted == UINT8_SCALE and scale is None and X.size and float(X.max()) > MAX_SCALED_VALUE:
        raise ValueError(
            f"X is {X.dtype.name} with values up to {float(X.max()):.4g}, but this {name} was "
            "fitted on uint8 images, which it divides by 255 to [0, 1]: X looks like pixels "
            "of 0-255 that were not divided. Pass them as uint8 (X.astype(np.uint8)) or "
            "divide them by 255 (other dtypes are taken as they are)."
        )
    if fitted != UINT8_SCALE and scale is not None:
        low, high = estimator.input_range_
        advice = (
            "If the training images were uint8 pixels divided by 255, pass X / 255"
            if 0 <= low and high <= 1
            else "Convert X as you converted the training data, e.g. X.astype(np.float32)"
        )
        raise ValueError(
            f"X is uint8, but this {name} was fitted on input that it took as it was "
            f"(not uint8; values in [{low:.4g}, {high:.4g}]): dividing X by 255, as it "
            f"does for uint8 training images, might not match. {advice}, or fit on uint8."
        )
    _check_range(estimator, X, scale)
    return scale


def _check_range(estimator, X, scale):
    """Warn when most rows of ``X`` lie far outside the training range.

    Far: beyond ``input_range_`` by more than its width. Anomalies may well lie there,
    so a few such rows pass in silence; when at least ``FAR_OUTSIDE_SHARE`` of the
    rows do, the batch was most likely prepared on another scale than the training
    data (the model would flag it all). The minimum and maximum decide first; only a
    batch beyond them pays for the per-row pass.
    """
    fitted = getattr(estimator, "input_range_", None)
    if fitted is None or X.size == 0:
        return
    low, high = fitted
    width = (high - low) or max(abs(low), abs(high)) or 1.0
    divisor = scale or 1.0
    below, above = (low - width) * divisor, (high + width) * divisor
    if below <= float(X.min()) and float(X.max()) <= above:
        return
    flat = X.reshape(len(X), -1)
    far = (flat.min(axis=1) < below) | (flat.max(axis=1) > above)
    if far.mean() < FAR_OUTSIDE_SHARE:
        return
    warnings.warn(
        f"X has values in [{float(X.min()) / divisor:.4g}, {float(X.max()) / divisor:.4g}], "
        f"but this {type(estimator).__name__} was fitted on values in [{low:.4g}, "
        f"{high:.4g}]: {_row_list(far, len(X))} lie beyond that range by more than its "
        "width, and would all be flagged. If X was prepared differently from the training "
        "data (e.g. pixels of 0-16 or 0-255 where the training data was in [0, 1]), "
        "prepare it the same way; if these rows are meant to be that far out, ignore "
        "this warning.",
        UserWarning,
        stacklevel=caller_stacklevel(),
    )


def to_samples(estimator, X, *, reset, stream=False):
    """Validate ``X`` and return float32 samples of shape ``(n, *input_shape_)``.

    In ``fit`` (``reset=True``), ``uint8`` input (8-bit images) is divided by 255 and
    every other numeric type is cast to float32 unchanged; the rule is recorded
    (``input_scale_``, ``input_range_``) and scoring applies it, refusing input
    prepared another way (see ``_input_scale``). NaN, infinity, magnitudes above
    ``MAX_ABS_VALUE``, non-numeric DataFrame columns and images with their channels
    last are refused, naming the rows, columns or shape. With ``reset=True`` this sets
    ``n_features_in_`` (and ``feature_names_in_``) and returns the sample shape too.
    With ``stream=True`` (scoring) no converted copy of X is made: the result is a
    :class:`SampleChunks`, which converts rows when a slice of them is taken.
    """
    check_not_file_names(X)
    _check_columns(X)
    if not reset:
        _check_channels_last(X, estimator.input_shape_)
        X = _fitted_layout(estimator, X)
    X = validate_data(
        estimator,
        X,
        reset=reset,
        allow_nd=True,
        dtype="numeric",
        ensure_min_samples=2 if reset else 1,
        ensure_all_finite=False,  # _check_values says which rows are not finite
    )
    if X.ndim > 4:
        raise ValueError(f"X must have 2, 3 or 4 dimensions, got an array of shape {X.shape}")
    _check_values(X)
    shape = sample_shape(X.shape, estimator.input_shape) if reset else estimator.input_shape_
    scale = _input_scale(estimator, X, reset)
    if reset:
        warn_if_standardised_per_pixel(X, shape)
    if not stream:
        X = _as_float32(X, scale)
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
