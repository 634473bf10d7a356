"""The combined score's room: which terms a model has, their table (name, direction,
transform), their calibration on held-out normal rows, the neighbour term (fitted and
measured here) and :class:`ScoreComponents`, the one type of ``score_components``.

- :mod:`.terms`: :class:`Term`, the table of terms, :class:`ScoreComponents`;
- :mod:`.neighbours`: the neighbour term;
- :mod:`.score`: :class:`CombinedScore`, the fitted object a combined model keeps;
- :mod:`.weighting`: its robust standardisation and weights;
- :mod:`.synthetic`: the outlier rows a table model weighs its terms with;
- :mod:`.components`: a model's components of a set of rows.
"""

from .components import model_components, term_names
from .neighbours import N_NEIGHBOURS, fit_neighbours, neighbour_distance, neighbour_shares
from .score import CombinedScore
from .synthetic import synthetic_rows
from .terms import (
    GRADCON_TERMS,
    INPUT_COMPLEXITY,
    LAYER_ALIGNMENTS,
    NEIGHBOUR_TERM,
    ScoreComponents,
    Term,
    register_terms,
    term,
)
from .weighting import MIN_SCALE

__all__ = [
    "GRADCON_TERMS",
    "INPUT_COMPLEXITY",
    "LAYER_ALIGNMENTS",
    "MIN_SCALE",
    "NEIGHBOUR_TERM",
    "N_NEIGHBOURS",
    "CombinedScore",
    "ScoreComponents",
    "Term",
    "combined_terms",
    "fit_neighbours",
    "model_components",
    "neighbour_distance",
    "neighbour_shares",
    "register_terms",
    "synthetic_rows",
    "term",
    "term_names",
]


def combined_terms(pretext_terms):
    """The terms of the combined score of a model whose pretext has ``pretext_terms``:
    GradCon's two, the pretext's, the neighbour term. Chosen on validation folds
    (experiments/pretext_design.py, docs/benchmarks.rst): with the rotation pretext the
    first four were the best pooled mean over Fashion-MNIST classes 0, 2, 5, 6, 8 and
    the ten digits of the candidates measured; the neighbour term then lifted all ten
    Fashion-MNIST classes' mean from 0.934 to 0.941 (seed 0, 10 epochs)."""
    return (*GRADCON_TERMS, *pretext_terms, NEIGHBOUR_TERM)
