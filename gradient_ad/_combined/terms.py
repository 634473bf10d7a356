"""The score terms: what each is called, which way it points, how the combined score
transforms it, and :class:`ScoreComponents`, the one type ``score_components``
returns whatever the model."""

from typing import NamedTuple

import numpy as np

__all__ = [
    "GRADCON_TERMS",
    "INPUT_COMPLEXITY",
    "LAYER_ALIGNMENTS",
    "NEIGHBOUR_TERM",
    "ScoreComponents",
    "Term",
    "register_terms",
    "term",
]


class Term(NamedTuple):
    """One per-sample score term.

    Attributes
    ----------
    name : str
        Its field in :class:`ScoreComponents`.
    higher_is_anomalous : bool
        Its direction; the combined score negates the terms where it is ``False``.
    transform : {'identity', 'log'}
        Applied before the combined score standardises it (``'log'`` for a skewed,
        positive term).
    source : str
        What computes it: ``'gradcon'`` (the autoencoder's route), ``'neighbours'``
        (the combined score's neighbour term), ``'input'`` (a statistic of the input
        itself) or a pretext's name.
    pixel_space : bool
        A magnitude in the images' pixel space, which grows with their detail: an
        image model's combined score takes the input complexity out of it.
    """

    name: str
    higher_is_anomalous: bool | None
    transform: str = "identity"
    source: str = "gradcon"
    pixel_space: bool = False


# GradCon's two terms. The reconstruction error is skewed: the combined score takes
# its log (chosen on validation folds, experiments/pretext_design.py).
GRADCON_TERMS = (
    Term("reconstruction_error", True, "log", pixel_space=True),
    Term("alignment", False),
)
NEIGHBOUR_TERM = Term("neighbour_distance", True, source="neighbours", pixel_space=True)
# Not a term of any score: an image model's combined score corrects its pixel-space
# terms for it (direction None: neither more normal nor more anomalous).
INPUT_COMPLEXITY = Term("input_complexity", None, source="input")
# With per_layer: each constrained tensor's cosine, after the terms (no score uses it).
LAYER_ALIGNMENTS = Term("layer_alignments", False)

# name -> Term, for every term a model can have; pretexts add theirs when registered.
_TERMS = {t.name: t for t in (*GRADCON_TERMS, NEIGHBOUR_TERM, LAYER_ALIGNMENTS, INPUT_COMPLEXITY)}


def register_terms(terms):
    """Add ``terms`` (a pretext's) to the table; a name may not change its meaning."""
    for new in terms:
        if _TERMS.setdefault(new.name, new) != new:
            raise ValueError(f"a score term named {new.name!r} exists already")


def term(name):
    """The :class:`Term` called ``name``."""
    return _TERMS[name]


class ScoreComponents(tuple):
    """The per-sample terms of a detector's score, by name and by position.

    A tuple of arrays (so ``error, alignment = detector.score_components(X)`` unpacks a
    GradCon model's two terms) whose fields are the terms the model has, in order:

    - ``reconstruction_error``: mean squared reconstruction error; higher is more
      anomalous;
    - ``alignment``: mean cosine between the sample's reconstruction gradient and the
      reference gradient learnt in training, in [-1, 1]; higher is more normal;
    - with ``pretext='rotation'``: ``rotation_loss`` and ``log_rotation_gradient_norm``
      (the rotation classifier's loss against its calibrated targets and the log norm
      of its gradient with respect to the head's weight), and ``neighbour_distance``
      (the mean distance to the nearest training samples); higher is more anomalous;
    - with the combined score of an image model: ``input_complexity``, the log
      high-frequency energy of the image, not a term of the score but what its
      pixel-space terms are corrected for (no direction: ``None``);
    - with ``per_layer=True``, last: ``layer_alignments`` of shape
      ``(n_samples, n_constrained)``, each constrained tensor's cosine; higher is more
      normal.

    Attributes
    ----------
    names : tuple of str
        The fields, in order.
    higher_is_anomalous : dict of str to bool
        Each field's direction.

    Examples
    --------
    >>> import numpy as np
    >>> from gradient_ad import ScoreComponents
    >>> parts = ScoreComponents({"reconstruction_error": np.ones(2), "alignment": np.zeros(2)})
    >>> error, alignment = parts
    >>> parts.names
    ('reconstruction_error', 'alignment')
    >>> parts.higher_is_anomalous
    {'reconstruction_error': True, 'alignment': False}
    >>> parts.alignment.tolist()
    [0.0, 0.0]
    """

    def __new__(cls, terms):
        terms = dict(terms)
        self = super().__new__(cls, terms.values())
        self.__dict__["names"] = tuple(terms)
        return self

    def __getnewargs__(self):
        return (self.as_dict(),)

    def __getattr__(self, name):
        names = self.__dict__.get("names", ())
        if name in names:
            return self[names.index(name)]
        raise AttributeError(f"{type(self).__name__} has no term {name!r}; it has {names}")

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is read-only")

    @property
    def higher_is_anomalous(self):
        return {name: term(name).higher_is_anomalous for name in self.names}

    def items(self):
        """``(name, array)`` pairs, in order."""
        return zip(self.names, self)

    def as_dict(self):
        """The terms as a ``dict`` of name to array."""
        return dict(self.items())

    def __repr__(self):
        shapes = ", ".join(f"{name}={np.shape(value)}" for name, value in self.items())
        return f"{type(self).__name__}({shapes})"
