"""CombinedScore: how a model's terms become one anomaly score."""

import hashlib

import numpy as np
from sklearn.utils import check_random_state

from .._chunks import NEIGHBOUR_CHUNK_ROWS
from .coreset import k_centre_coreset
from .neighbours import fit_neighbours, neighbour_distance
from .terms import INPUT_COMPLEXITY, NEIGHBOUR_TERM
from .weighting import (
    complexity,
    fit_complexity_correction,
    fit_standardisation,
    separation_weights,
)

__all__ = ["CombinedScore"]

# Term sources that are not a pretext's (the reliability leaves them alone).
_NOT_PRETEXT = ("gradcon", "neighbours")


class CombinedScore:
    """The anomaly score (higher = more anomalous) as the weighted sum of a model's
    terms, each transformed, turned to grow with abnormality and standardised on
    held-out normal samples: ``sum_t w_t (s_t f_t(x) - m_t) / sigma_t``, with ``f_t``
    the term after its transform (log or none), ``s_t`` its sign, ``m_t`` and
    ``sigma_t`` its mean and standard deviation, and ``w_t`` its weight, all fitted on
    held-out normal samples (:mod:`gradient_ad._combined.weighting`); an image model's
    pixel-space terms lose their linear dependence on the input complexity first.

    Everything it holds is data: the terms' table, the weights, the centres and
    spreads, the neighbour term's training samples and the pretext's own calibration
    (e.g. the rotation targets), so that a saved model scores the same.

    Parameters
    ----------
    terms : sequence of Term
        The terms it sums, in order (:mod:`gradient_ad._combined.terms`).
    pretext_calibration : dict of str to ndarray, default=None
        What the model's pretext fitted on held-out normal rows, passed back to it when
        it scores.

    Attributes
    ----------
    neighbours_ : NearestNeighbors or None
        The training samples the neighbour term measures against (``None`` without
        that term); set by :meth:`fit_neighbours`.
    kept_ : ndarray of int or None
        Which of the training samples ``neighbours_`` keeps, when a coreset bounds
        them; ``None`` when it keeps all.
    means_, scales_ : ndarray of shape (n_terms,)
        Mean and standard deviation (at least ``MIN_SCALE``) of each transformed,
        signed and corrected term on the held-out normal rows; set by :meth:`fit`.
    complexity_coefficients_ : ndarray of shape (n_terms, 2)
        Intercept and slope of each pixel-space term on the input complexity, fitted
        on the held-out images and subtracted (zeros for other terms and for tables).
    weights_ : ndarray of shape (n_terms,)
        Each standardised term's weight, summing to the number of terms (all ones
        for an equal-weight sum); set by :meth:`fit`.
    reliability_ : float
        The pretext's :meth:`~gradient_ad._pretexts.base.Pretext.reliability` that
        its terms' weights were multiplied by (1 without a pretext).
    separations_ : ndarray of shape (n_families, n_terms) or None
        With synthetic outliers (table models): each term's AUROC against each family
        (:data:`gradient_ad._combined.synthetic.FAMILIES`), whose mean above 0.5
        set the weights; ``None`` otherwise.
    """

    def __init__(self, terms, pretext_calibration=None, images=False):
        self.terms = tuple(terms)
        self.pretext_calibration = dict(pretext_calibration or {})
        # Images: the input complexity is measured with the terms, to correct them.
        self.covariates = (INPUT_COMPLEXITY.name,) if images else ()
        self.neighbours_ = None
        self.kept_ = None

    @property
    def names(self):
        """The terms' names, in order."""
        return tuple(t.name for t in self.terms)

    @property
    def weights(self):
        """``{name: weight}`` of the fitted terms, in order."""
        return dict(zip(self.names, self.weights_.tolist()))

    @property
    def component_names(self):
        """What the model's :class:`ScoreComponents` hold: the terms, then the
        covariates (the input complexity of an image model)."""
        return (*self.names, *self.covariates)

    @property
    def own_names(self):
        """What it computes itself (:meth:`own_terms`), in order."""
        own = (NEIGHBOUR_TERM.name,) if self.neighbours_ is not None else ()
        return (*own, *self.covariates)

    def fit_neighbours(self, samples, max_samples=None, random_state=None):
        """Keep the training ``samples`` that the neighbour term measures against
        (nothing without that term): all of them, or a greedy k-centre coreset of
        ``max_samples`` when there are more (:mod:`gradient_ad._combined.coreset`),
        whose positions in ``samples`` are ``kept_`` (``None`` when all are kept).
        Returns self."""
        if NEIGHBOUR_TERM not in self.terms:
            return self
        self.kept_ = None
        if max_samples is not None and len(samples) > max_samples:
            rng = check_random_state(random_state)
            self.kept_ = np.sort(k_centre_coreset(samples, max_samples, rng))
            samples = np.asarray(samples)[self.kept_]
        self.neighbours_ = fit_neighbours(samples)
        return self

    def own_terms(self, X, reference=False):
        """The terms the combined score computes itself (the neighbour term) of ``X``,
        by name. ``reference``: ``X`` are the samples the neighbours were chosen from,
        in order; those kept measure themselves leaving themselves out."""
        own = {}
        if self.covariates:
            own[INPUT_COMPLEXITY.name] = _in_chunks(complexity, X)
        if self.neighbours_ is None:
            return own
        if not reference:
            distance = neighbour_distance(self.neighbours_, X)
        elif self.kept_ is None:
            distance = neighbour_distance(self.neighbours_)
        else:
            distance = np.empty(len(X))
            others = np.setdiff1d(np.arange(len(X)), self.kept_)
            distance[self.kept_] = neighbour_distance(self.neighbours_)
            distance[others] = neighbour_distance(self.neighbours_, np.asarray(X)[others])
        return {NEIGHBOUR_TERM.name: distance, **own}

    def fit(self, components, reliability=1.0, synthetic=None):
        """Standardise and weigh each term from held-out normal rows.

        Parameters
        ----------
        components : ScoreComponents
            Of the held-out normal rows (anything whose attributes are the terms).
        reliability : float, default=1.0
            The pretext's reliability on those rows, in [0, 1]: its terms' weights are
            multiplied by it.
        synthetic : list of ScoreComponents, default=None
            Of synthetic outliers made from those rows: each term is weighted by its
            mean AUROC against them above chance (equal weights where none
            separates). ``None``: equal weights.

        Returns
        -------
        self : CombinedScore
        """
        self.complexity_coefficients_ = np.zeros((len(self.terms), 2))
        if self.covariates:
            raw = self._signed(components)
            values = np.asarray(getattr(components, INPUT_COMPLEXITY.name), np.float64)
            for j, spec in enumerate(self.terms):
                if spec.pixel_space:
                    self.complexity_coefficients_[j] = fit_complexity_correction(raw[:, j], values)
        columns = self.columns(components)
        self.means_, self.scales_ = fit_standardisation(columns)
        weights = np.ones(len(self.terms))
        self.separations_ = None
        if synthetic:
            outliers = [self.columns(made) for made in synthetic]
            fraction, self.separations_ = separation_weights(columns, outliers)
            weights = fraction * len(self.terms)
        of_pretext = np.array([spec.source not in _NOT_PRETEXT for spec in self.terms])
        weights[of_pretext] *= reliability
        self.reliability_ = float(reliability)
        self.weights_ = weights
        return self

    def _signed(self, components):
        """The terms transformed and signed to grow with abnormality, ``(n, n_terms)``."""
        columns = []
        for spec in self.terms:
            values = np.asarray(getattr(components, spec.name), dtype=np.float64)
            if spec.transform == "log":
                values = np.log(np.maximum(values, 1e-300))
            columns.append(values if spec.higher_is_anomalous else -values)
        return np.stack(columns, 1)

    def columns(self, components):
        """The terms transformed, signed to grow with abnormality and (images) with
        the input complexity's linear part taken out of the pixel-space ones,
        ``(n, n_terms)``."""
        columns = self._signed(components)
        if self.covariates:
            values = np.asarray(getattr(components, INPUT_COMPLEXITY.name), np.float64)
            intercept, slope = self.complexity_coefficients_.T
            columns = columns - (intercept + values[:, None] * slope)
        return columns

    def contributions(self, components):
        """Each term's weighted, standardised part of the score, ``(n, n_terms)``."""
        return (self.columns(components) - self.means_) / self.scales_ * self.weights_

    def score(self, components):
        """The anomaly score of each sample (higher = more anomalous), ``(n,)``."""
        return self.contributions(components).sum(1)

    def digest_numbers(self):
        """The numbers it scores with, for the saved model's checksum: the pretext's
        calibration, the means, spreads and weights, and 48 bits of the SHA-256 of the
        neighbour term's samples (a float holds them exactly)."""
        numbers = []
        for values in self.pretext_calibration.values():
            numbers += np.ravel(values).tolist()
        for values in (self.means_, self.scales_, self.weights_, self.complexity_coefficients_):
            numbers += np.ravel(values).tolist()
        if self.neighbours_ is not None:
            samples = np.ascontiguousarray(self.neighbours_._fit_X)
            numbers.append(int(hashlib.sha256(samples.tobytes()).hexdigest()[:12], 16))
        return numbers

    def __repr__(self):
        return f"{type(self).__name__}(terms={self.names})"


def _in_chunks(function, X):
    """``function`` of the rows of ``X`` (an array or an object sliced like one),
    ``NEIGHBOUR_CHUNK_ROWS`` at a time."""
    parts = [
        function(np.asarray(X[start : start + NEIGHBOUR_CHUNK_ROWS]))
        for start in range(0, len(X), NEIGHBOUR_CHUNK_ROWS)
    ]
    return np.concatenate(parts) if parts else np.empty(0)
