"""How the combined score standardises, corrects and weighs its terms, from each
fit's own data (held-out normal samples, no labels).

- **Standardisation**: each term's mean and standard deviation on the held-out
  samples. (Medians and interquartile ranges were measured too: better on the natural
  images, worse on Fashion-MNIST, where the rotation loss of sandals is near 0 for
  most normal images and a tiny interquartile range made its tail dominate the sum;
  ``experiments/combined_score.py``.)
- **Input complexity out of the pixel-space terms** (images). A reconstruction error
  or a distance in pixel space grows with an image's detail: a smooth image is
  reconstructed well and lies near many others, whatever it shows (Serrà et al.,
  "Input complexity and out-of-distribution detection with likelihood-based
  generative models", ICLR 2020). Where the anomalies are smoother than the normal
  images (CIFAR-10 trucks against airplanes, birds and deer) such a term ranks them as
  *more* normal (AUROC 0.30 for the reconstruction error on trucks). Each pixel-space
  term is replaced by its residual after a linear fit on the log high-frequency
  energy :func:`complexity` of the held-out images.
- **Weights** (:meth:`~gradient_ad._combined.CombinedScore.fit`): a pretext's terms
  weigh how well its task is solved on the held-out normal samples
  (:meth:`~gradient_ad._pretexts.base.Pretext.reliability`); a table model's terms
  weigh their separation of held-out rows from synthetic outlier rows
  (:func:`separation_weights`, :mod:`~gradient_ad._combined.synthetic`).

Why these and not another internal criterion: studies of unsupervised outlier-model
selection (Ma et al., "The need for unsupervised outlier model selection: a review
and evaluation of internal evaluation strategies", SIGKDD Explorations 2023) found
that most internal measures do not beat averaging, and selection by meta-learning
(MetaOD, Zhao et al., NeurIPS 2021) needs a corpus of labelled data sets. So the
weights stay an average unless the fit's own data gives evidence against a term: a
pretext task that normal data cannot solve either, a pixel-space term that follows
the images' detail, or a table term that does not react to rows that are plainly not
normal.
"""

import numpy as np
from sklearn.metrics import roc_auc_score

__all__ = [
    "MIN_SCALE",
    "complexity",
    "fit_complexity_correction",
    "fit_standardisation",
    "separation_weights",
]

# Smallest spread a term is divided by: a term constant on normal data weighs nothing
# rather than everything.
MIN_SCALE = 1e-12


def fit_standardisation(columns):
    """Mean and standard deviation (at least ``MIN_SCALE``) of each column.

    Parameters
    ----------
    columns : ndarray of shape (n_samples, n_terms)

    Returns
    -------
    centres, scales : ndarray of shape (n_terms,)
    """
    columns = np.asarray(columns, np.float64)
    return columns.mean(0), np.maximum(columns.std(0), MIN_SCALE)


def complexity(images):
    """Log mean squared difference between each image and its 3 x 3 box blur (edges
    repeated): how much fine detail it holds.

    Parameters
    ----------
    images : ndarray of shape (n_samples, C, H, W)

    Returns
    -------
    complexity : ndarray of shape (n_samples,), float64

    Examples
    --------
    >>> import numpy as np
    >>> from gradient_ad._combined.weighting import complexity
    >>> flat, noisy = np.zeros((1, 1, 8, 8)), np.random.RandomState(0).rand(1, 1, 8, 8)
    >>> bool(complexity(noisy)[0] > complexity(flat)[0])
    True
    """
    images = np.asarray(images, dtype=np.float64)
    padded = np.pad(images, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    h, w = images.shape[2:]
    blur = sum(padded[:, :, i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9.0
    return np.log(((images - blur) ** 2).reshape(len(images), -1).mean(1) + 1e-12)


def fit_complexity_correction(values, complexities):
    """Intercept and slope of ``values ~ complexities`` (least squares), so that
    ``values - (intercept + slope * complexity)`` is the residual.

    Parameters
    ----------
    values, complexities : ndarray of shape (n_samples,)

    Returns
    -------
    coefficients : ndarray of shape (2,)
    """
    design = np.c_[np.ones(len(complexities)), complexities]
    return np.linalg.lstsq(design, np.asarray(values, np.float64), rcond=None)[0]


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
    >>> from gradient_ad._combined.weighting import separation_weights
    >>> rng = np.random.RandomState(0)
    >>> normal = rng.normal(size=(200, 2))
    >>> outliers = [normal + [3.0, 0.0]]  # only the first term reacts
    >>> weights, _ = separation_weights(normal, outliers)
    >>> weights.round(2)
    array([1., 0.])
    """
    normal = np.asarray(normal, np.float64)
    labels = np.zeros(len(normal))
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
