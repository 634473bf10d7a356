"""The neighbour term of the combined score: how far a sample lies from the normal
training samples, as the mean distance to its nearest ones; fitted, measured and
mapped here.

kNN on raw inputs is the strongest classic detector measured here (docs/benchmarks.rst)
and strong exactly where the rotation task is weak (shoes, dresses); as a fifth
standardised term of the pretext score it raised the Fashion-MNIST validation mean from
0.934 to 0.941 (all ten classes, seed 0; ``experiments/pretext_design.py --knn``). The
model keeps the training samples it measures against, as a kNN detector does.
"""

import numpy as np
from sklearn.neighbors import NearestNeighbors

from .._chunks import NEIGHBOUR_CHUNK_ROWS

__all__ = ["N_NEIGHBOURS", "fit_neighbours", "neighbour_distance", "neighbour_shares"]

# As the benchmark's kNN detector and ADBench's default.
N_NEIGHBOURS = 5


def fit_neighbours(samples):
    """A :class:`~sklearn.neighbors.NearestNeighbors` on the flattened ``samples``.

    Parameters
    ----------
    samples : ndarray of shape (n_samples, *sample_shape)
        The training samples to measure against, as the network sees them.
    """
    flat = np.asarray(samples).reshape(len(samples), -1)
    return NearestNeighbors(n_neighbors=min(N_NEIGHBOURS, len(flat))).fit(flat)


def neighbour_distance(neighbours, X=None):
    """Mean Euclidean distance of each sample to its nearest training samples.

    Parameters
    ----------
    neighbours : NearestNeighbors
        From :func:`fit_neighbours`.
    X : ndarray of shape (n_samples, *sample_shape), an object sliced like one, or None
        Samples to measure. ``None``: the training samples themselves, each leaving
        itself out (so that a training sample is not its own nearest neighbour).

    Returns
    -------
    distance : ndarray of shape (n_samples,), float64

    Examples
    --------
    >>> import numpy as np
    >>> from gradient_ad._combined import fit_neighbours, neighbour_distance
    >>> train = np.arange(6.0).reshape(6, 1)
    >>> neighbours = fit_neighbours(train)
    >>> neighbour_distance(neighbours, np.array([[2.5]])).round(2)
    array([1.3])
    """
    if X is None:
        k = min(N_NEIGHBOURS, neighbours.n_samples_fit_ - 1)
        if k < 1:
            raise ValueError("the neighbour term needs at least 2 training samples")
        return neighbours.kneighbors(n_neighbors=k)[0].mean(1).astype(np.float64)
    parts = []
    for start in range(0, len(X), NEIGHBOUR_CHUNK_ROWS):
        chunk = np.asarray(X[start : start + NEIGHBOUR_CHUNK_ROWS])
        parts.append(neighbours.kneighbors(chunk.reshape(len(chunk), -1))[0].mean(1))
    return np.concatenate(parts).astype(np.float64) if parts else np.empty(0)


def neighbour_shares(neighbours, X):
    """Each element's share of a sample's neighbour distance, summing to 1 per sample.

    The distance to one neighbour ``n`` splits exactly over the elements:
    ``||x - n|| = sum_j (x_j - n_j) ** 2 / ||x - n||``; the mean over the nearest
    neighbours, divided by the distance, is the share of element ``j``.

    Parameters
    ----------
    neighbours : NearestNeighbors
    X : ndarray of shape (n_samples, *sample_shape)

    Returns
    -------
    shares : ndarray of the shape of ``X``, float64
        Zero for a sample at distance zero.
    """
    X = np.asarray(X)
    flat = X.reshape(len(X), -1).astype(np.float64)
    shares = np.zeros_like(flat)
    training = np.asarray(neighbours._fit_X, dtype=np.float64)
    for start in range(0, len(X), NEIGHBOUR_CHUNK_ROWS):
        rows = slice(start, start + NEIGHBOUR_CHUNK_ROWS)
        distances, indices = neighbours.kneighbors(flat[rows])
        squared = (flat[rows, None, :] - training[indices]) ** 2
        per_element = (squared / np.maximum(distances, 1e-300)[..., None]).mean(1)
        total = per_element.sum(1, keepdims=True)
        shares[rows] = np.divide(
            per_element, total, out=np.zeros_like(per_element), where=total > 0
        )
    return shares.reshape(X.shape)
