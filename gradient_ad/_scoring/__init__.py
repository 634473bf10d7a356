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
- :mod:`.batches`: chunking, padding and the choice of route for a scoring call
  (small calls unpadded in float64, larger ones in padded chunks);
- :mod:`.precision`: the float64 copy of a network that small calls are scored with.

``docs/performance.rst`` has the measurements behind the choices.
"""

from .batches import (
    ChunkPlan,
    LayerTerms,
    ScoreTerms,
    chunk_plan,
    layer_terms,
    padded_calls,
    per_sample_terms,
    planned_terms,
    route_chunk_rows,
    score_terms,
)
from .routes import MODULE_LOCK, ROUTES, RouteTerms, choose_route, refusals

__all__ = [
    "MODULE_LOCK",
    "ROUTES",
    "ChunkPlan",
    "LayerTerms",
    "RouteTerms",
    "ScoreTerms",
    "choose_route",
    "chunk_plan",
    "layer_terms",
    "padded_calls",
    "per_sample_terms",
    "planned_terms",
    "refusals",
    "route_chunk_rows",
    "score_terms",
]
