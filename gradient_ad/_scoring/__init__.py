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
  eligibility test and chunk cap;
- :mod:`.batches`: chunking, padding and the choice of route for a scoring call;
- :mod:`.precision`: the float64 copy of a network that small calls are scored with.

``docs/performance.rst`` has the measurements behind the choices.
"""

from .batches import (
    DEFAULT_CHUNK_ROWS,
    MLP_CHUNK_ROWS,
    SMALL_CALL_SHARE,
    ChunkPlan,
    chunk_plan,
    default_chunk_rows,
    layer_terms,
    padded_calls,
    per_sample_terms,
    route_chunk_rows,
    score_terms,
    small_call_rows,
)
from .routes import (
    CONV_CHUNK_ROWS,
    MODULE_LOCK,
    ROUTES,
    VMAP_CHUNK_ELEMENTS,
    choose_route,
    refusals,
)

__all__ = [
    "CONV_CHUNK_ROWS",
    "ChunkPlan",
    "DEFAULT_CHUNK_ROWS",
    "MLP_CHUNK_ROWS",
    "MODULE_LOCK",
    "ROUTES",
    "SMALL_CALL_SHARE",
    "VMAP_CHUNK_ELEMENTS",
    "choose_route",
    "chunk_plan",
    "default_chunk_rows",
    "layer_terms",
    "padded_calls",
    "per_sample_terms",
    "refusals",
    "route_chunk_rows",
    "score_terms",
    "small_call_rows",
]
