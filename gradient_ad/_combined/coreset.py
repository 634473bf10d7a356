"""A bounded memory for the neighbour term: a greedy k-centre coreset.

The neighbour term measures a sample against the training samples the model keeps.
Kept whole, they make the model's file and the cost of every query grow with the
training set (a model of 100,000 RGB images of 64 x 64 would hold about 5 GB). As
anomalib's PatchCore bounds its memory bank (Roth et al., CVPR 2022), the model keeps
at most ``max_neighbours`` of them, chosen by greedy k-centre selection: each next
sample is the one farthest from those already chosen, so the chosen ones cover the
training set with the smallest largest gap. Distances for the selection are taken
after a seeded Gaussian random projection to 128 dimensions (Johnson-Lindenstrauss),
as PatchCore does, which keeps the selection's cost at
``O(n_samples * max_neighbours * 128)``.
"""

import numpy as np

__all__ = ["k_centre_coreset"]

_PROJECTED = 128


def k_centre_coreset(samples, size, random_state):
    """Indices of ``size`` samples that cover ``samples``, in the order chosen.

    Parameters
    ----------
    samples : ndarray of shape (n_samples, n_features)
    size : int
        How many to choose; all of them (``arange``) when ``size >= n_samples``.
    random_state : numpy.random.RandomState
        Seeds the projection and the first sample.

    Returns
    -------
    indices : ndarray of shape (min(size, n_samples),), int

    Examples
    --------
    >>> import numpy as np
    >>> from gradient_ad._combined.coreset import k_centre_coreset
    >>> points = np.array([[0.0], [0.1], [5.0], [5.1], [10.0]])
    >>> sorted(k_centre_coreset(points, 3, np.random.RandomState(0)).tolist())
    [0, 2, 4]
    """
    n = len(samples)
    if size >= n:
        return np.arange(n)
    flat = np.asarray(samples).reshape(n, -1)
    if flat.shape[1] > _PROJECTED:
        projection = random_state.normal(size=(flat.shape[1], _PROJECTED)) / np.sqrt(_PROJECTED)
        flat = flat.astype(np.float32) @ projection.astype(np.float32)
    flat = flat.astype(np.float64)
    chosen = np.empty(size, dtype=np.intp)
    chosen[0] = random_state.randint(n)
    nearest = ((flat - flat[chosen[0]]) ** 2).sum(1)
    for k in range(1, size):
        chosen[k] = int(np.argmax(nearest))
        np.minimum(nearest, ((flat - flat[chosen[k]]) ** 2).sum(1), out=nearest)
    return chosen
