"""Reading image files (PNG, JPEG, ...) into the uint8 arrays the detector takes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "load_images"]

# What a folder is searched for (case-insensitive); an explicit list of paths may name
# any file Pillow can read.
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")

# Pillow modes read as one grey channel; every other mode is read as RGB (alpha dropped).
_GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def _pillow():
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError(
            'load_images needs Pillow (the "images" extra): pip install pillow, or '
            'pip install ".[images]" in a clone of gradient-ad'
        ) from error
    return Image


def load_images(
    folder_or_paths: str | os.PathLike | Sequence[str | os.PathLike],
    size: int | tuple[int, int] | None = None,
    mode: str | None = None,
) -> np.ndarray:
    """Read image files into one uint8 array for :class:`~gradient_ad.GradientAnomalyDetector`.

    Needs Pillow (the ``images`` extra: ``pip install ".[images]"`` in a clone of
    gradient-ad, or ``pip install pillow``).

    Parameters
    ----------
    folder_or_paths : str, path-like or sequence of them
        A folder, whose files ending in ``.bmp``, ``.gif``, ``.jpeg``, ``.jpg``,
        ``.png``, ``.tif``, ``.tiff`` or ``.webp`` (in any case) are read in sorted
        order of their names (sub-folders are not searched), or a sequence of files,
        read in the order given (any format Pillow reads).
    size : int or (height, width), default=None
        Resize every image to this size (bilinear). ``None``: keep the files' size,
        which must then be the same for all.
    mode : str, default=None
        The Pillow mode to convert every image to, e.g. ``'L'`` (grey) or ``'RGB'``.
        ``None``: grey files (Pillow modes ``'1'``, ``'L'``, ``'LA'``, ``'I'``,
        ``'F'``, ...) are read as grey and the others as RGB, and they must not be
        mixed. Transparency is dropped; deeper than 8-bit pixels are converted by
        Pillow.

    Returns
    -------
    images : ndarray of uint8
        ``(n, height, width)`` for grey images, ``(n, channels, height, width)``
        otherwise (channels first, as the detector reads 4-D input).

    Raises
    ------
    ValueError
        Naming the file, if a file cannot be read as an image, or if its size (with
        ``size=None``) or its kind (grey or colour, with ``mode=None``) differs from
        the first file's; if the folder holds no image files.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("b.png", "a.png"):
    ...     Image.new("L", (6, 4), color=200).save(folder / name)
    >>> images = load_images(folder)
    >>> images.shape, images.dtype.name
    ((2, 4, 6), 'uint8')
    >>> load_images(folder, size=(8, 8), mode="RGB").shape
    (2, 3, 8, 8)
    """
    if mode is not None and not isinstance(mode, str):
        raise TypeError(f"mode must be a Pillow mode such as 'L' or 'RGB', got {mode!r}")
    Image = _pillow()
    paths = _paths(folder_or_paths)
    resize = _size(size)
    first = None
    images = None
    for i, path in enumerate(paths):
        pixels = _read(Image, path, resize, mode)
        if first is None:
            first, images = (path, pixels.shape), np.empty((len(paths), *pixels.shape), np.uint8)
        elif pixels.shape != images.shape[1:]:
            raise ValueError(_mismatch(path, pixels.shape, *first, size, mode))
        images[i] = pixels
    if images.ndim == 4:
        images = np.moveaxis(images, -1, 1)  # Pillow gives (H, W, C)
    return np.ascontiguousarray(images)


def _paths(folder_or_paths):
    if isinstance(folder_or_paths, (str, os.PathLike)):
        folder = Path(folder_or_paths)
        if not folder.is_dir():
            raise ValueError(f"{folder}: no such folder (pass a folder, or a list of image files)")
        paths = sorted(
            p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        )
        if not paths:
            raise ValueError(
                f"{folder}: holds no image files (looked for {', '.join(IMAGE_EXTENSIONS)})"
            )
        return paths
    if isinstance(folder_or_paths, bytes) or not isinstance(folder_or_paths, Sequence):
        raise TypeError(
            "folder_or_paths must be a folder or a sequence of image files, got "
            f"{type(folder_or_paths).__name__}"
        )
    bad = [p for p in folder_or_paths if not isinstance(p, (str, os.PathLike))]
    if bad:
        raise TypeError(f"folder_or_paths must hold paths, got {type(bad[0]).__name__}")
    if not folder_or_paths:
        raise ValueError("folder_or_paths is empty: no images to read")
    return [Path(p) for p in folder_or_paths]


def _size(size):
    """Pillow's ``(width, height)`` from ``size``, or ``None``."""
    if size is None:
        return None
    pair = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(pair) != 2 or not all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in pair
    ):
        raise ValueError(f"size must be a positive int or (height, width), got {size!r}")
    return int(pair[1]), int(pair[0])


def _read(Image, path, resize, mode):
    try:
        with Image.open(path) as image:
            wanted = mode or ("L" if image.mode in _GREY_MODES else "RGB")
            image = image.convert(wanted)
            if resize is not None and image.size != resize:
                image = image.resize(resize, Image.Resampling.BILINEAR)
            return np.asarray(image, dtype=np.uint8)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, ValueError, SyntaxError) as exc:  # Pillow's errors on bad files
        raise ValueError(f"{path}: cannot be read as an image ({exc})") from None


def _kind(shape):
    if len(shape) == 2:
        return f"grey, {shape[0]} x {shape[1]}"
    return f"{shape[2]} channels, {shape[0]} x {shape[1]}"


def _mismatch(path, shape, first_path, first_shape, size, mode):
    if size is None and shape[:2] != first_shape[:2]:
        fix = "pass size=(height, width) to resize them all"
    else:
        fix = "pass mode='L' (grey) or mode='RGB' to read them all alike"
    return (
        f"{path}: {_kind(shape)} pixels, but the first image ({first_path}) is "
        f"{_kind(first_shape)}: {fix}"
    )
