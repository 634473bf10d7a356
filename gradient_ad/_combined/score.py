"""CombinedScore: how a model's terms become one anomaly score."""

import copy
import hashlib

import numpy as np

from .neighbours import fit_neighbours, neighbour_distance
from .terms import NEIGHBOUR_TERM

__all__ = ["MIN_SCALE", "CombinedScore"]

# Smallest spread a term is divided by: a term constant on normal data weighs nothing
# rather than everything.
MIN_SCALE = 1e-12


class CombinedScore:
    """The anomaly score (higher = more anomalous) as the weighted sum of a model's
    terms, each transformed, turned to grow with abnormality and standardised on
    held-out normal samples: ``sum_t w_t (s_t f_t(x) - m_t) / sigma_t``, with ``f_t``
    the term after its transform (log or none) and ``s_t`` its sign.

    Everything it holds is data: the terms' table, the weights (all ones today), the
    means and spreads, the neighbour term's training samples and the pretext's own
    calibration (e.g. the rotation targets), so that a saved model scores the same.

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
    means_, scales_ : ndarray of shape (n_terms,)
        Mean and standard deviation (at least ``MIN_SCALE``) of each transformed,
        signed term on the held-out normal rows; set by :meth:`fit`.
    weights_ : ndarray of shape (n_terms,)
        Each standardised term's weight: all ones.
    """

    def __init__(self, terms, pretext_calibration=None):
        self.terms = tuple(terms)
        self.pretext_calibration = dict(pretext_calibration or {})
        self.neighbours_ = None

    @property
    def names(self):
        """The terms' names, in order."""
        return tuple(t.name for t in self.terms)

    @property
    def own_names(self):
        """The terms it computes itself (:meth:`own_terms`), in order."""
        return (NEIGHBOUR_TERM.name,) if self.neighbours_ is not None else ()

    def fit_neighbours(self, samples):
        """Keep the training ``samples`` that the neighbour term measures against
        (nothing without that term). Returns self."""
        if NEIGHBOUR_TERM in self.terms:
            self.neighbours_ = fit_neighbours(samples)
        return self

    def with_neighbours(self, samples):
        """A copy measuring the neighbour term against ``samples`` instead."""
        return copy.copy(self).fit_neighbours(samples)

    def own_terms(self, X, reference=False):
        """The terms the combined score computes itself (the neighbour term) of ``X``,
        by name; ``reference``: ``X`` are the neighbours' own samples, each measured
        leaving itself out."""
        if self.neighbours_ is None:
            return {}
        return {NEIGHBOUR_TERM.name: neighbour_distance(self.neighbours_, None if reference else X)}

    def fit(self, components):
        """Standardise each term on held-out normal rows' ``components`` (anything
        whose attributes are the terms, such as :class:`ScoreComponents`). Returns
        self."""
        columns = self.columns(components)
        self.means_ = columns.mean(0)
        self.scales_ = np.maximum(columns.std(0), MIN_SCALE)
        self.weights_ = np.ones(len(self.terms))
        return self

    def columns(self, components):
        """The terms transformed and signed to grow with abnormality, ``(n, n_terms)``."""
        columns = []
        for spec in self.terms:
            values = np.asarray(getattr(components, spec.name), dtype=np.float64)
            if spec.transform == "log":
                values = np.log(np.maximum(values, 1e-300))
            columns.append(values if spec.higher_is_anomalous else -values)
        return np.stack(columns, 1)

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
        for values in (self.means_, self.scales_, self.weights_):
            numbers += np.ravel(values).tolist()
        if self.neighbours_ is not None:
            samples = np.ascontiguousarray(self.neighbours_._fit_X)
            numbers.append(int(hashlib.sha256(samples.tobytes()).hexdigest()[:12], 16))
        return numbers

    def __repr__(self):
        return f"{type(self).__name__}(terms={self.names})"
