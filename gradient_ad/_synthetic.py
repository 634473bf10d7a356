"""Outliers a detector makes from its own held-out normal samples.

The combined score weighs each of its terms by how well it tells held-out normal
samples from these (see :mod:`gradient_ad._weighting`). No family stands for the
anomalies a user will meet; together they ask whether a term reacts to a sample that
is no longer normal in several unrelated ways (a term that reacts to none of them, or
only to one, is unlikely to carry information on this data). Each family keeps the
samples' range, so that a term cannot pass by reacting to values out of range.

Images: additive noise, a blur, the average of two images, the four quarters of an
image shuffled, and a patch of another image pasted in (CutPaste, Li et al., CVPR
2021). Tables: columns permuted independently (the features' joint distribution
broken, their marginals kept), uniform draws in the samples' bounding box (the
classic artificial second class of one-class learning, Hempstalk et al. 2008), noise,
and samples pulled towards or pushed away from the mean.
"""

import numpy as np

__all__ = ["IMAGE_FAMILIES", "TABLE_FAMILIES", "synthetic_outliers"]

IMAGE_FAMILIES = ("noise", "blur", "mix", "shuffle", "cutpaste")
TABLE_FAMILIES = ("permute", "uniform", "noise", "shrink", "expand")
# Most held-out samples each family is made from: enough for an AUROC to 0.02.
MAX_SAMPLES = 500
_NOISE = 0.1  # of the samples' value range (images) or of each feature's spread (tables: x5)


def synthetic_outliers(samples, random_state):
    """One array of synthetic outliers per family, made from ``samples``.

    Parameters
    ----------
    samples : ndarray of shape (n_samples, C, H, W) or (n_samples, n_features)
        Normal samples (held out from training), as the network sees them; at most
        ``MAX_SAMPLES`` are used.
    random_state : numpy.random.RandomState

    Returns
    -------
    outliers : dict
        ``{family: ndarray}``, each of the shape and dtype of ``samples[:MAX_SAMPLES]``.

    Examples
    --------
    >>> import numpy as np
    >>> from gradient_ad._synthetic import synthetic_outliers
    >>> X = np.random.RandomState(0).rand(10, 1, 4, 4).astype(np.float32)
    >>> sorted(synthetic_outliers(X, np.random.RandomState(0)))
    ['blur', 'cutpaste', 'mix', 'noise', 'shuffle']
    """
    samples = np.asarray(samples)[:MAX_SAMPLES]
    if samples.ndim == 4:
        made = _image_outliers(samples, random_state)
    elif samples.ndim == 2:
        made = _table_outliers(samples, random_state)
    else:
        raise ValueError(f"samples must be images (n, C, H, W) or rows (n, d), got {samples.shape}")
    return {name: values.astype(samples.dtype, copy=False) for name, values in made.items()}


def _image_outliers(images, rng):
    n, _, h, w = images.shape
    low, high = float(images.min()), float(images.max())
    noise = images + rng.normal(0, _NOISE * (high - low), images.shape)
    partner = rng.permutation(n)
    return {
        "noise": np.clip(noise, low, high),
        "blur": _box_blur(images),
        "mix": 0.5 * (images + images[partner]),
        "shuffle": _shuffled_quarters(images, rng),
        "cutpaste": _cut_paste(images, images[partner], rng),
    }


def _box_blur(images):
    """3 x 3 mean of each pixel, edges repeated."""
    padded = np.pad(images, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    h, w = images.shape[2:]
    total = sum(padded[:, :, i : i + h, j : j + w] for i in range(3) for j in range(3))
    return total / 9.0


def _shuffled_quarters(images, rng):
    """The four quarters of each image in another order (never the same one)."""
    h, w = images.shape[2] // 2, images.shape[3] // 2
    out = images.copy()
    corners = [(0, 0), (0, w), (h, 0), (h, w)]
    for i in range(len(images)):
        order = rng.permutation(4)
        while (order == np.arange(4)).all():
            order = rng.permutation(4)
        for (a, b), k in zip(corners, order):
            c, d = corners[k]
            out[i, :, a : a + h, b : b + w] = images[i, :, c : c + h, d : d + w]
    return out


def _cut_paste(images, donors, rng):
    """A rectangle of a donor image (a quarter to a half of each side) pasted at a
    random place."""
    n, _, h, w = images.shape
    out = images.copy()
    for i in range(n):
        ph, pw = rng.randint(max(1, h // 4), h // 2 + 1), rng.randint(max(1, w // 4), w // 2 + 1)
        y0, x0 = rng.randint(0, h - ph + 1), rng.randint(0, w - pw + 1)
        y1, x1 = rng.randint(0, h - ph + 1), rng.randint(0, w - pw + 1)
        out[i, :, y1 : y1 + ph, x1 : x1 + pw] = donors[i, :, y0 : y0 + ph, x0 : x0 + pw]
    return out


def _table_outliers(rows, rng):
    n, d = rows.shape
    mean, spread = rows.mean(0), rows.std(0)
    return {
        "permute": np.stack([rows[rng.permutation(n), j] for j in range(d)], 1),
        "uniform": rng.uniform(rows.min(0), rows.max(0), size=rows.shape),
        "noise": rows + rng.normal(0, 1, rows.shape) * 5 * _NOISE * spread,
        "shrink": mean + 0.5 * (rows - mean),
        "expand": mean + 2.0 * (rows - mean),
    }
