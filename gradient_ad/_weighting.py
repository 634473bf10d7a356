"""Weights of the combined score's terms, from each fit's own data.

Three steps, each fitted on the held-out normal samples (no labels):

1. **Input complexity out of the pixel-space terms** (images only). A reconstruction
   error or a distance in pixel space grows with an image's detail: a smooth image is
   reconstructed well and lies near many others, whatever it shows (Serrà et al.,
   "Input complexity and out-of-distribution detection with likelihood-based
   generative models", ICLR 2020). Where the anomalies are smoother than the normal
   images (CIFAR-10 trucks against airplanes, birds and deer) such a term ranks them
   as *more* normal. Each pixel-space term is replaced by its residual after a linear
   fit on the log high-frequency energy ``log mean (x - blur(x))^2`` of the held-out
   normal images.
2. **Robust standardisation**: median and interquartile range (over 1.349, the
   standard deviation of a normal distribution) on the held-out samples, so that a few
   unlabelled anomalies in them move neither much.
3. **Weights**: each term's AUROC in telling the held-out samples from the synthetic
   outliers the model makes of them (:mod:`gradient_ad._synthetic`), averaged over the
   families; the weight is the margin above chance, ``max(AUROC - 0.5, 0)``,
   normalised to sum to 1. A term that cannot tell a normal sample from a corrupted
   copy weighs nothing; if no term can, all weigh the same.

Why not another internal criterion: studies of unsupervised outlier-model selection
(Ma et al., "The need for unsupervised outlier model selection", SIGKDD Explorations
2023) found that most internal measures fail to beat averaging, and model-selection
by meta-learning (MetaOD) needs a corpus of labelled data sets. Averaging the
standardised terms (PyOD's ``average``) is the floor; weighing by separation from
synthetic outliers keeps averaging's gains where every term helps and drops a term
that reacts to nothing. Measured on the development data in ``docs/benchmarks.rst``.
"""

import numpy as np
from sklearn.metrics import roc_auc_score

__all__ = [
    "complexity",
    "fit_complexity_correction",
    "fit_standardisation",
    "separation_weights",
]

# A spread below this is taken as no spread: the term is divided by 1.
_MIN_SCALE = 1e-12
# IQR of a standard normal distribution.
_IQR_NORMAL = 1.349


def complexity(images):
    """Log mean squared difference between each image and its 3 x 3 box blur.

    Parameters
    ----------
    images : ndarray of shape (n_samples, C, H, W)

    Returns
    -------
    complexity : ndarray of shape (n_samples,), float64
    """
    images = np.asarray(images, dtype=np.float64)
    padded = np.pad(images, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    h, w = images.shape[2:]
    blur = sum(padded[:, :, i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9.0
    energy = ((images - blur) ** 2).reshape(len(images), -1).mean(1)
    return np.log(energy + 1e-12)


def fit_complexity_correction(values, complexities):
    """Intercept and slope of ``values ~ complexities`` (least squares).

    Parameters
    ----------
    values, complexities : ndarray of shape (n_samples,)

    Returns
    -------
    coefficients : ndarray of shape (2,)
        ``values - (coefficients[0] + coefficients[1] * complexity)`` is the residual.
    """
    design = np.c_[np.ones(len(complexities)), complexities]
    return np.linalg.lstsq(design, np.asarray(values, np.float64), rcond=None)[0]


def fit_standardisation(columns):
    """Median and robust spread of each column.

    Parameters
    ----------
    columns : ndarray of shape (n_samples, n_terms)

    Returns
    -------
    centres, scales : ndarray of shape (n_terms,)
        The spread is the interquartile range over 1.349; where it is 0 (a term with
        few distinct values), the standard deviation; where that is 0 too, 1.
    """
    columns = np.asarray(columns, np.float64)
    q1, centres, q3 = np.percentile(columns, [25, 50, 75], axis=0)
    scales = (q3 - q1) / _IQR_NORMAL
    flat = scales <= _MIN_SCALE
    scales[flat] = columns.std(0)[flat]
    scales[scales <= _MIN_SCALE] = 1.0
    return centres, scales


def separation_weights(normal, outliers):
    """Each term's weight: its mean AUROC against the synthetic outliers, above chance.

    Parameters
    ----------
    normal : ndarray of shape (n_samples, n_terms)
        Standardised terms of held-out normal samples (higher = more anomalous).
    outliers : list of ndarray of shape (n_outliers, n_terms)
        The same terms of each family of synthetic outliers.

    Returns
    -------
    weights : ndarray of shape (n_terms,)
        Non-negative, summing to 1.
    separations : ndarray of shape (n_families, n_terms)
        The AUROC of every term against every family.

    Examples
    --------
    >>> import numpy as np
    >>> from gradient_ad._weighting import separation_weights
    >>> rng = np.random.RandomState(0)
    >>> normal = rng.normal(size=(200, 2))
    >>> outliers = [normal + [3.0, 0.0]]  # only the first term reacts
    >>> weights, _ = separation_weights(normal, outliers)
    >>> weights.round(2)
    array([1., 0.])
    """
    normal = np.asarray(normal, np.float64)
    labels = np.r_[np.zeros(len(normal))]
    separations = []
    for family in outliers:
        y = np.r_[labels, np.ones(len(family))]
        both = np.concatenate([normal, np.asarray(family, np.float64)])
        separations.append([roc_auc_score(y, both[:, j]) for j in range(normal.shape[1])])
    separations = np.array(separations).reshape(len(outliers), normal.shape[1])
    margin = np.maximum(separations.mean(0) - 0.5, 0.0) if len(outliers) else np.zeros(0)
    if not len(outliers) or margin.sum() <= 0:
        return np.full(normal.shape[1], 1.0 / normal.shape[1]), separations
    return margin / margin.sum(), separations
