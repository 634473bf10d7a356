"""Benchmark data: readers for the standard files and the one-class protocols.

Readers return plain NumPy arrays and fail with a :class:`ValueError` naming the file
and what was expected when a file is missing, of another format, or truncated:

- :func:`load_idx` reads MNIST / Fashion-MNIST directories (the four standard IDX
  files, gzipped or not);
- :func:`load_cifar10` reads CIFAR-10's python batches;
- :func:`load_table` reads an ODDS ``.mat`` or an ADBench ``.npz`` file (``X``, ``y``);
- :func:`load_images` reads a folder or a list of image files (PNG, JPEG, ...; needs
  Pillow) into a uint8 array, for your own images;
- :func:`load_digits_images` is scikit-learn's digits, for runs without any download;
  :func:`make_canvas_digits` puts them on a black 28 x 28 canvas, sparse images like
  MNIST's.

The splitters implement the evaluation protocols of Kwon et al. (ECCV 2020) and return
a :class:`OneClassSplit` (labels: 1 = anomaly, 0 = normal):

- :func:`split_official` (MNIST, CIFAR-10): train on 90% of the training images of the
  normal class, test on all its test images plus as many drawn from the other classes;
- :func:`split_pooled_folds` (Fashion-MNIST): pool train and test, five folds per class,
  three to train, one to validate, one to test;
- :func:`split_table`: train on a share of a table's inliers (one-class setting) or on
  all rows (unsupervised setting).

Every random choice is seeded.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._images import load_images

__all__ = [
    "OneClassSplit",
    "load_cifar10",
    "load_digits_images",
    "load_idx",
    "load_idx_file",
    "load_images",
    "load_table",
    "make_canvas_digits",
    "split_official",
    "split_pooled_folds",
    "split_table",
]

# IDX type codes (third byte of the magic number) and their big-endian dtypes.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_CIFAR10_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
_CIFAR10_SHAPE = (3, 32, 32)


@dataclass
class OneClassSplit:
    """Training, validation and test data of one one-class task.

    Attributes
    ----------
    X_train : ndarray
        Training data (normal only, except in the unsupervised table setting).
    X_valid : ndarray or None
        Validation data, normal samples first; ``None`` where the protocol has none.
    y_valid : ndarray of int or None
        1 for the anomalies in ``X_valid`` (drawn from data outside the test split),
        0 for normal samples.
    X_test : ndarray
        Test data.
    y_test : ndarray of int
        1 for anomalies, 0 for normal samples.
    """

    X_train: np.ndarray
    X_valid: np.ndarray | None
    y_valid: np.ndarray | None
    X_test: np.ndarray
    y_test: np.ndarray


# -- readers ------------------------------------------------------------------------


def load_idx_file(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (``.gz`` or plain) into an array of its stored shape.

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    array : ndarray
        In native byte order, of the shape and type the header declares.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "labels-idx1-ubyte"
    >>> _ = path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
    >>> load_idx_file(path).tolist()
    [7, 8, 9]
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file (expected an IDX file)") from None
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: cannot be read as a gzipped IDX file ({exc})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(
            f"{path}: not an IDX file (expected the header bytes 0x00 0x00 <type> <ndim>)"
        )
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(data)} bytes)")
    shape = tuple(int(s) for s in np.frombuffer(data, ">u4", count=ndim, offset=4))
    # math.prod: exact, where np.prod of large declared sizes wraps around in int64.
    expected = header + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(
            f"{path}: the header declares shape {shape} of {dtype.name} ({expected} bytes "
            f"in all), but the file holds {len(data)} bytes (truncated or corrupt)"
        )
    array = np.frombuffer(data, dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def load_idx(directory: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read an MNIST-style directory: the four standard IDX files, gzipped or not.

    Parameters
    ----------
    directory : str or path-like
        Holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each possibly
        with a ``.gz`` suffix (MNIST and Fashion-MNIST both use these names).

    Returns
    -------
    X_train, y_train, X_test, y_test : ndarray
        Images of shape ``(n, H, W)`` and their integer labels; the images are uint8
        in the standard files, and of the type the header declares otherwise.
    """
    directory = Path(directory)
    arrays = {key: load_idx_file(_find(directory, name)) for key, name in _IDX_FILES.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"{directory}: expected {part} images (n, H, W) and n labels, got shapes "
                f"{images.shape} and {labels.shape}"
            )
    return (
        arrays["train_images"],
        arrays["train_labels"].astype(np.int64),
        arrays["test_images"],
        arrays["test_labels"].astype(np.int64),
    )


def _find(directory, name):
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise ValueError(f"{directory}: missing {name} (or {name}.gz), an IDX file")


def load_cifar10(
    directory: str | os.PathLike,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read CIFAR-10's python batches (``data_batch_1`` to ``data_batch_5``, ``test_batch``).

    The batches are Python pickles, as distributed: load only files you trust.

    Parameters
    ----------
    directory : str or path-like
        The extracted ``cifar-10-batches-py`` directory (or its parent).

    Returns
    -------
    X_train, y_train, X_test, y_test : ndarray
        uint8 images of shape ``(n, 3, 32, 32)`` and integer labels 0-9.
    """
    directory = Path(directory)
    if not (directory / "test_batch").is_file() and (directory / "cifar-10-batches-py").is_dir():
        directory = directory / "cifar-10-batches-py"
    parts = [_read_cifar10_batch(directory / name) for name in _CIFAR10_FILES]
    X_train = np.concatenate([p[0] for p in parts[:-1]])
    y_train = np.concatenate([p[1] for p in parts[:-1]])
    return X_train, y_train, parts[-1][0], parts[-1][1]


def _read_cifar10_batch(path):
    if not path.is_file():
        raise ValueError(f"{path}: no such file (expected a CIFAR-10 python batch)")
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
    except OSError:
        raise
    except Exception as exc:  # unpickling arbitrary bytes fails in many ways
        raise ValueError(
            f"{path}: not a CIFAR-10 python batch (expected a pickled dict with b'data' "
            f"and b'labels'; {type(exc).__name__}: {exc})"
        ) from None
    data = _as_integers(path, "b'data'", data, 0, 255).astype(np.uint8)
    labels = _as_integers(path, "b'labels'", labels, 0, 9)
    if data.ndim != 2 or data.shape[1] != np.prod(_CIFAR10_SHAPE) or len(labels) != len(data):
        raise ValueError(
            f"{path}: expected b'data' of shape (n, 3072) and n labels, got {data.shape} "
            f"and {labels.shape}"
        )
    return data.reshape(-1, *_CIFAR10_SHAPE), labels


def _as_integers(path, name, values, low, high):
    """``values`` as int64 if they are whole numbers in ``[low, high]``, else an error
    naming the file: a cast would turn floats in [0, 1] into zeros and wrap values above
    255."""
    if values.dtype.kind not in "biuf":
        raise ValueError(f"{path}: {name} holds {values.dtype} values, expected integers")
    if values.size:
        whole = values.dtype.kind != "f" or bool(np.all(values == np.round(values)))
        lowest, highest = values.min(), values.max()
        if not whole or lowest < low or highest > high:
            kind = "whole numbers" if whole else f"{values.dtype} values"
            raise ValueError(
                f"{path}: {name} holds {kind} in [{lowest:.4g}, {highest:.4g}], expected "
                f"integers {low}-{high} as in CIFAR-10's batches (for pixels divided by "
                "255, multiply them back and round first)"
            )
    return values.astype(np.int64)


def load_table(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read an outlier-detection table: ODDS ``.mat`` or ADBench ``.npz`` (``X``, ``y``).

    Parameters
    ----------
    path : str or path-like
        A ``.mat`` file (MATLAB up to v7.2, read with :func:`scipy.io.loadmat`) or a
        ``.npz`` file, holding ``X`` of shape ``(n_samples, n_features)`` and ``y`` of
        ``n_samples`` labels, 1 = outlier.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64
    y : ndarray of shape (n_samples,), int
        1 for outliers, 0 for inliers.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file (expected an ODDS .mat or ADBench .npz table)")
    if path.suffix == ".mat":
        contents = _read_mat(path)
    elif path.suffix == ".npz":
        try:
            # The file is opened here: np.load leaks its own handle when the zip
            # cannot be read (a ResourceWarning on truncated files).
            with open(path, "rb") as file, np.load(file, allow_pickle=False) as npz:
                contents = {key: npz[key] for key in npz.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{path}: not a readable .npz file ({exc})") from None
    else:
        raise ValueError(f"{path}: expected a .mat (ODDS) or .npz (ADBench) file")
    missing = [key for key in ("X", "y") if key not in contents]
    if missing:
        raise ValueError(f"{path}: missing {missing}; expected arrays 'X' and 'y'")
    X = _as_float_table(path, contents["X"])
    y = _dense(contents["y"]).ravel()
    if X.ndim != 2 or len(y) != len(X):
        raise ValueError(
            f"{path}: expected X of shape (n_samples, n_features) and n_samples labels, "
            f"got {X.shape} and {y.shape}"
        )
    if y.dtype.kind not in "biuf" or not np.isin(y, (0, 1)).all():
        raise ValueError(f"{path}: labels y must be 0 (inlier) or 1 (outlier)")
    return X, y.astype(np.int64)


def _dense(values):
    """A sparse matrix (ODDS stores some tables so) as a dense array."""
    return np.asarray(values.toarray() if hasattr(values, "toarray") else values)


def _as_float_table(path, X):
    X = _dense(X)
    if X.dtype.kind not in "biuf" and X.dtype != object:
        raise ValueError(f"{path}: X holds {X.dtype} values, expected numbers")
    try:
        return X.astype(np.float64)
    except (TypeError, ValueError) as exc:  # e.g. a MATLAB cell array of text
        raise ValueError(f"{path}: X holds values that are not numbers ({exc})") from None


def _read_mat(path):
    from scipy.io import loadmat

    with open(path, "rb") as f:
        head = f.read(128)
    if b"MATLAB 7.3" in head or head.startswith(b"\x89HDF"):
        raise ValueError(
            f"{path}: a MATLAB v7.3 (HDF5) file, which scipy.io.loadmat cannot read; "
            "save it as v7 or earlier, or convert it to .npz with X and y"
        )
    try:
        return loadmat(path)
    except Exception as exc:  # scipy's MatReadError and others: name the file
        raise ValueError(f"{path}: not a readable MATLAB .mat file ({exc})") from None


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as 8 x 8 images in [0, 1] (no download needed).

    Returns
    -------
    X : ndarray of shape (1797, 8, 8), float64
    y : ndarray of shape (1797,), int
    """
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X / 16.0).reshape(-1, 8, 8), y


def make_canvas_digits(
    n_samples: int = 3000,
    digits: Sequence[int] | None = None,
    size: int = 28,
    zoom: float = 2.5,
    random_state: int | np.random.RandomState | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits enlarged onto the centre of a black canvas (no download).

    Sparse images (most pixels 0), like MNIST's: the data on which an autoencoder with
    PyTorch's default initialisation often falls into a dead start (one output image
    whatever the input). Each digit is enlarged by linear interpolation
    (:func:`scipy.ndimage.zoom`, ``order=1``); rows are drawn with replacement.

    Parameters
    ----------
    n_samples : int, default=3000
        Rows drawn.
    digits : sequence of int, default=None
        Classes to draw from; ``None`` takes all ten.
    size : int, default=28
        Side of the square canvas.
    zoom : float, default=2.5
        Enlargement of the 8 x 8 digits (2.5 gives 20 x 20).
    random_state : int, default=0
        Seeds which rows are drawn.

    Returns
    -------
    X : ndarray of shape (n_samples, size, size), uint8
    y : ndarray of shape (n_samples,), int

    Examples
    --------
    >>> from gradient_ad.datasets import make_canvas_digits
    >>> X, y = make_canvas_digits(100, digits=[0])
    >>> X.shape, X.dtype.name, set(y.tolist()), float((X == 0).mean()) > 0.5
    ((100, 28, 28), 'uint8', {0}, True)
    """
    from scipy.ndimage import zoom as _zoom

    images, labels = load_digits_images()
    if digits is not None:
        keep = np.isin(labels, list(digits))
        if not keep.any():
            raise ValueError(f"digits={digits!r} holds no class of 0-9")
        images, labels = images[keep], labels[keep]
    small = np.clip(_zoom(images, (1, zoom, zoom), order=1), 0, 1)
    side = small.shape[1]
    if side > size:
        raise ValueError(f"zoom={zoom} makes {side}-pixel digits, larger than size={size}")
    canvas = np.zeros((len(small), size, size))
    top = (size - side) // 2
    canvas[:, top : top + side, top : top + side] = small
    rows = np.random.default_rng(random_state).choice(len(canvas), n_samples)
    return (255 * canvas[rows]).round().astype(np.uint8), labels[rows]


# -- one-class splits ----------------------------------------------------------------


def split_official(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    normal: object,
    seed: int,
    valid_fraction: float = 0.1,
) -> OneClassSplit:
    """MNIST / CIFAR-10 protocol for normal class ``normal``.

    Train on ``1 - valid_fraction`` of the class's official training images; validate
    on the rest, plus as many training images of other classes (labelled anomalies, for
    development only); test on all the class's test images plus as many test images
    drawn at random from the other classes.

    Parameters
    ----------
    X_train, y_train, X_test, y_test : ndarray
        The official training and test sets, e.g. from :func:`load_idx`.
    normal : int
        The normal class.
    seed : int
        Seeds every random choice.
    valid_fraction : float, default=0.1
        Share of the class's training images held out for validation.

    Returns
    -------
    split : OneClassSplit

    Examples
    --------
    >>> import numpy as np
    >>> y = np.repeat(np.arange(10), 20)
    >>> X = np.arange(200)[:, None]
    >>> split = split_official(X, y, X, y, normal=3, seed=0)
    >>> len(split.X_train), len(split.X_valid), len(split.X_test), int(split.y_test.sum())
    (18, 4, 40, 20)
    """
    rng = np.random.RandomState(seed)
    own = rng.permutation(np.flatnonzero(y_train == normal))
    n_valid = max(1, int(round(valid_fraction * len(own))))
    X_valid, y_valid = _with_anomalies(
        X_train, own[:n_valid], np.flatnonzero(y_train != normal), rng
    )
    X_test_, y_test_ = _with_anomalies(
        X_test, np.flatnonzero(y_test == normal), np.flatnonzero(y_test != normal), rng
    )
    return OneClassSplit(X_train[own[n_valid:]], X_valid, y_valid, X_test_, y_test_)


def split_pooled_folds(
    X: np.ndarray, y: np.ndarray, normal: object, seed: int, n_folds: int = 5
) -> OneClassSplit:
    """Fashion-MNIST protocol: pooled data, five folds per class (3 train, 1 valid, 1 test).

    Each class's samples are shuffled and cut into ``n_folds`` equal folds (1400 images
    per fold for Fashion-MNIST's 7000 per class). The normal class trains on all but the
    last two folds, validates on the second last and is tested on the last; the test set
    adds as many samples drawn from the other classes' last folds, the validation set as
    many from their second-last folds.

    Parameters
    ----------
    X, y : ndarray
        The pooled data (e.g. training and test sets concatenated) and labels.
    normal : int
        The normal class.
    seed : int
        Seeds the folds and the draws.
    n_folds : int, default=5

    Returns
    -------
    split : OneClassSplit

    Examples
    --------
    >>> import numpy as np
    >>> y = np.repeat(np.arange(10), 50)
    >>> split = split_pooled_folds(np.arange(500)[:, None], y, normal=0, seed=0)
    >>> len(split.X_train), len(split.X_valid), len(split.X_test)
    (30, 20, 20)
    """
    rng = np.random.RandomState(seed)
    folds = {}
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        size = len(members) // n_folds
        folds[label] = [members[i * size : (i + 1) * size] for i in range(n_folds)]
    others = [label for label in folds if label != normal]
    own = folds[normal]
    train = np.concatenate(own[: n_folds - 2])
    X_valid, y_valid = _with_anomalies(
        X, own[-2], np.concatenate([folds[o][-2] for o in others]), rng
    )
    X_test, y_test = _with_anomalies(
        X, own[-1], np.concatenate([folds[o][-1] for o in others]), rng
    )
    return OneClassSplit(X[train], X_valid, y_valid, X_test, y_test)


def split_table(
    X: np.ndarray,
    y: np.ndarray,
    seed: int,
    setting: str = "one-class",
    train_fraction: float = 0.6,
) -> OneClassSplit:
    """Split a table with outlier labels for one of two settings.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
        1 for outliers, 0 for inliers.
    seed : int
        Seeds the draw of training inliers.
    setting : {'one-class', 'unsupervised'}, default='one-class'
        ``'one-class'``: train on a random ``train_fraction`` of the inliers, test on
        the other inliers plus all outliers. ``'unsupervised'``: train and test on all
        rows, outliers included.
    train_fraction : float, default=0.6

    Returns
    -------
    split : OneClassSplit
        Without a validation set.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.r_[np.zeros(10, int), np.ones(2, int)]
    >>> split = split_table(np.arange(12.0)[:, None], y, seed=0)
    >>> len(split.X_train), len(split.X_test), split.y_test.tolist().count(1)
    (6, 6, 2)
    """
    if setting == "unsupervised":
        return OneClassSplit(X, None, None, X, np.asarray(y))
    if setting != "one-class":
        raise ValueError(f"setting must be 'one-class' or 'unsupervised', got {setting!r}")
    rng = np.random.RandomState(seed)
    inliers = rng.permutation(np.flatnonzero(y == 0))
    n_train = int(round(train_fraction * len(inliers)))
    test = np.r_[inliers[n_train:], np.flatnonzero(y == 1)]
    return OneClassSplit(X[inliers[:n_train]], None, None, X[test], np.asarray(y)[test])


def _with_anomalies(X, normal_idx, other_idx, rng):
    """Normal samples followed by as many drawn (without replacement) from ``other_idx``."""
    drawn = rng.choice(other_idx, len(normal_idx), replace=False)
    labels = np.r_[np.zeros(len(normal_idx), np.int64), np.ones(len(drawn), np.int64)]
    return X[np.r_[normal_idx, drawn]], labels
