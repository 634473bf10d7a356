"""How the combined score standardises and weighs its terms, from each fit's own
data (held-out normal samples, no labels).

- **Robust standardisation**: each term's median and interquartile range (over 1.349,
  the standard deviation of a normal distribution) on the held-out samples, so that a
  few far samples among them (unlabelled anomalies, a heavy tail) move neither much.
  Measured against means and standard deviations on the development sets: the sum
  rose on natural images (CIFAR-10 dev classes, 0.688 to 0.713 AUROC) and on
  Fashion-MNIST.
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
pretext task that normal data cannot solve either, or a table term that does not
react to rows that are plainly not normal.
"""

import numpy as np
from sklearn.metrics import roc_auc_score

__all__ = ["MIN_SCALE", "fit_standardisation", "separation_weights"]

# A spread below this is taken as no spread: the term is divided by 1.
MIN_SCALE = 1e-12
# IQR of a standard normal distribution.
_IQR_NORMAL = 1.349


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
    flat = scales <= MIN_SCALE
    scales[flat] = columns.std(0)[flat]
    scales[scales <= MIN_SCALE] = 1.0
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
