"""Outlier rows a table model makes from its own held-out normal rows.

The combined score of a table model weighs each of its terms by how well it tells
held-out normal rows from these (:func:`~gradient_ad._combined.weighting.separation_weights`).
No family stands for the anomalies a user will meet; together they ask whether a term
reacts to a row that is no longer normal in several unrelated ways: the columns
permuted independently (the features' joint distribution broken, their marginals
kept), uniform draws in the rows' bounding box (the classic artificial second class of
one-class learning, Hempstalk et al., ECML 2008), Gaussian noise of half each
feature's spread, and rows pulled half-way towards the mean or pushed twice as far
from it.

Images get no synthetic outliers: corrupted copies of held-out images (noise, blur,
blends, shuffled quarters, pasted patches) were measured as a weighting for image
models and misled it, because they mostly change an image's detail, and on natural
images the reconstruction error and the pixel distance follow detail rather than
content (``experiments/combined_score.py``, ``docs/benchmarks.rst``).
"""

import numpy as np

__all__ = ["FAMILIES", "MAX_ROWS", "synthetic_rows"]

FAMILIES = ("permute", "uniform", "noise", "shrink", "expand")
# Most held-out rows each family is made from: enough for an AUROC to about 0.02.
MAX_ROWS = 500


def synthetic_rows(rows, random_state):
    """One array of synthetic outlier rows per family, made from ``rows``.

    Parameters
    ----------
    rows : ndarray of shape (n_samples, n_features)
        Normal rows (held out from training), as the network sees them; at most
        ``MAX_ROWS`` are used.
    random_state : numpy.random.RandomState

    Returns
    -------
    outliers : dict
        ``{family: ndarray}`` in the order of ``FAMILIES``, each of the shape and
        dtype of ``rows[:MAX_ROWS]``.

    Examples
    --------
    >>> import numpy as np
    >>> from gradient_ad._combined.synthetic import synthetic_rows
    >>> rows = np.random.RandomState(0).rand(10, 3)
    >>> made = synthetic_rows(rows, np.random.RandomState(0))
    >>> list(made), made["uniform"].shape
    (['permute', 'uniform', 'noise', 'shrink', 'expand'], (10, 3))
    """
    rows = np.asarray(rows)
    if rows.ndim != 2:
        raise ValueError(f"synthetic outliers are made from rows (n, d), got shape {rows.shape}")
    rows = rows[:MAX_ROWS]
    n, d = rows.shape
    mean, spread = rows.mean(0), rows.std(0)
    made = {
        "permute": np.stack([rows[random_state.permutation(n), j] for j in range(d)], 1),
        "uniform": random_state.uniform(rows.min(0), rows.max(0), size=rows.shape),
        "noise": rows + random_state.normal(0, 1, rows.shape) * 0.5 * spread,
        "shrink": mean + 0.5 * (rows - mean),
        "expand": mean + 2.0 * (rows - mean),
    }
    return {name: values.astype(rows.dtype, copy=False) for name, values in made.items()}
