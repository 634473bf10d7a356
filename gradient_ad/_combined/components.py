"""A model's components: its terms of a set of rows, each computed once."""

import numpy as np

from .._gradcon import NON_FINITE_ADVICE, check_finite
from .terms import GRADCON_TERMS, ScoreComponents

__all__ = ["model_components", "term_names"]


def term_names(combined):
    """The terms of a model's score: its combined score's, else GradCon's two."""
    if combined is None:
        return tuple(t.name for t in GRADCON_TERMS)
    return combined.component_names


def model_components(
    net, X, pretext, combined, batch_size, verbose, per_layer=False, of="X", reference=False
):
    """The :class:`ScoreComponents` of ``X``, each term checked finite.

    Parameters
    ----------
    net : GradConNet
        The fitted net; its module in eval mode.
    X : ndarray of shape (n_samples, *sample_shape), or an object sliced like one
    pretext : Pretext
        The model's pretext member (it computes GradCon's terms with its own).
    combined : CombinedScore or None
        The model's combined score (it computes the neighbour term), or ``None`` for
        GradCon's score.
    batch_size : int or 'auto'
    verbose : int
    per_layer : bool, default=False
        Add ``layer_alignments``, last.
    of : str, default='X'
        Names the samples in the error on non-finite terms.
    reference : bool, default=False
        ``X`` are the samples the neighbour term was fitted on, each measured leaving
        itself out.
    """
    calibration = None if combined is None else combined.pretext_calibration
    parts = pretext.score_terms(
        net.module_, X, batch_size, net.device, calibration, per_layer, verbose
    )
    if combined is not None:
        parts.update(combined.own_terms(X, reference))
    names = term_names(combined)
    check_finite(np.stack([parts[name] for name in names], 1), "scores", NON_FINITE_ADVICE, of=of)
    if per_layer:
        names = (*names, "layer_alignments")
    return ScoreComponents({name: parts[name] for name in names})
