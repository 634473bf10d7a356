"""Per-sample GradCon score terms, batched.

For each sample ``x_i`` GradCon needs its reconstruction error ``e_i`` and the mean,
over the constrained tensors, of the cosine between ``de_i/dW_l`` and the reference
gradient ``gbar_l`` (:mod:`gradient_ad._gradcon` defines both). The package computes
them for a whole chunk of samples at once:

- :mod:`.layers`: one rule per layer type (forward, input gradient, per-sample
  weight-gradient factors, the fused step), looked up by exact type;
- :mod:`.norms`: the Gram and polyphase maths, plain tensor functions;
- :mod:`.usage`: which operations receive each constrained tensor, so that a tied
  weight or an overridden ``forward`` cannot fool the fast routes;
- :mod:`.routes`: the ``chain``, ``hooks`` and ``vmap`` routes, each with its
  eligibility test and chunk cap (the caps' numbers are in :mod:`gradient_ad._chunks`);
- :mod:`.batches`: chunking, padding and the choice of route for a scoring call.

``docs/performance.rst`` has the measurements behind the choices.
"""

from .batches import LayerTerms, ScoreTerms, layer_terms, per_sample_terms, score_terms
from .routes import MODULE_LOCK, ROUTES, RouteTerms, choose_route, refusals

__all__ = [
    "MODULE_LOCK",
    "ROUTES",
    "LayerTerms",
    "RouteTerms",
    "ScoreTerms",
    "choose_route",
    "layer_terms",
    "per_sample_terms",
    "refusals",
    "score_terms",
]
