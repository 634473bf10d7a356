"""Scoring many rows by one route: in padded float32 chunks, or small calls in float64."""

import contextlib
import contextvars
from typing import NamedTuple

import numpy as np
import torch

from .._chunks import default_chunk_rows, small_call_rows
from .._gradcon import cosines_from_terms
from .._progress import progress_chunks
from .precision import float64_copy
from .routes import ChainRoute, choose_route

__all__ = [
    "ChunkPlan",
    "LayerTerms",
    "ScoreTerms",
    "chunk_plan",
    "layer_terms",
    "padded_calls",
    "per_sample_terms",
    "planned_terms",
    "route_chunk_rows",
    "score_terms",
]

# Inside padded_calls(): every call is scored in padded chunks (a context variable, so
# per thread and per task).
_PADDED_ONLY = contextvars.ContextVar("gradient_ad_padded_only", default=False)


class ScoreTerms(NamedTuple):
    """The two terms of the GradCon score of each row, float64 arrays of shape ``(n,)``."""

    reconstruction_error: np.ndarray
    alignment: np.ndarray


class LayerTerms(NamedTuple):
    """The terms of each row tensor by tensor, float64 arrays (see :func:`layer_terms`)."""

    reconstruction_error: np.ndarray  # (n,)
    alignment: np.ndarray  # (n,)
    cosines: np.ndarray  # (n, n_tensors)
    gradient_norms: np.ndarray  # (n, n_tensors)
    projections: np.ndarray | None  # (n, n_tensors, P), or None without directions


def score_terms(module, X, batch_size, device="cpu", verbose=0, prefer=None, norms="auto"):
    """Reconstruction error and gradient alignment of every row of ``X``.

    How the rows are split (:func:`chunk_plan`): with ``batch_size='auto'``, a call of
    at most :func:`gradient_ad._chunks.small_call_rows` rows is one unpadded chunk
    computed in float64, so that one row costs about one row; larger calls, and every
    call with an int ``batch_size``, are processed in chunks of ``batch_size`` rows,
    capped by the route (see :mod:`~gradient_ad._scoring.routes`), every chunk padded
    to exactly that many rows so that a sample's score does not depend on how many
    other samples share its chunk (the same kernels run whatever the number of rows).

    Parameters
    ----------
    module : GradConModule
        Trained module, in eval mode.
    X : ndarray of shape (n_samples, *input_shape), or an object sliced like one
        Inputs; chunks are converted to the module's dtype. Never modified.
    batch_size : int or 'auto'
        Rows per chunk; ``'auto'``: :func:`gradient_ad._chunks.default_chunk_rows`, and
        small calls in float64.
    device : str or torch.device
        Where to compute.
    verbose : int, default=0
        Show a progress bar when there is more than one chunk.
    prefer : {'chain', 'hooks', 'vmap'} or None, default=None
        Use this route (a ``ValueError`` says why when it cannot score the module);
        ``None``: the fastest that can.
    norms : {'auto', 'materialised', 'gram', 'polyphase'}, default='auto'
        How weight-gradient norms are computed; ``'auto'``: the cheapest per layer.

    Returns
    -------
    terms : ScoreTerms
        ``reconstruction_error`` ``e_i`` and ``alignment`` ``mean_l cos(de_i/dW_l,
        gbar_l)``, arrays of shape (n_samples,), as float64.
    """
    if not len(X):
        return ScoreTerms(np.empty(0), np.empty(0))
    parts = planned_terms(module, X, batch_size, device, [(), ()], None, verbose, prefer, norms)
    return ScoreTerms(*parts)


def layer_terms(
    module, X, batch_size, device="cpu", verbose=0, directions=None, prefer=None, norms="auto"
):
    """The terms of every row of ``X`` tensor by tensor, as :func:`score_terms` does.

    Parameters
    ----------
    module, X, batch_size, device, verbose, prefer, norms
        As in :func:`score_terms`.
    directions : list of Tensor, default=None
        For each constrained tensor, ``P`` directions stacked as ``(P, *shape)``.

    Returns
    -------
    terms : LayerTerms
        ``reconstruction_error`` and ``alignment`` as :func:`score_terms` returns them;
        ``cosines`` and ``gradient_norms`` of shape (n_samples, n_tensors), each
        sample's cosine with each reference gradient and its gradient's norm;
        ``projections`` of shape (n_samples, n_tensors, P), each sample's gradient
        paired with each direction (``None`` without ``directions``).
    """
    n_tensors = len(module.constrained_names)
    shapes = [(), (), (n_tensors,), (n_tensors,)]
    if directions is not None:
        shapes.append((n_tensors, len(directions[0])))

    def named(parts):
        return LayerTerms(*parts, None) if directions is None else LayerTerms(*parts)

    if not len(X):
        return named(np.empty((0, *shape)) for shape in shapes)

    def terms(route):
        def of(chunk):
            result = route.layer_terms(chunk)
            cosines = cosines_from_terms(result.dots, result.norms, route.references)
            parts = (result.error, cosines.mean(0), cosines.T, result.norms.T)
            if result.projections is None:
                return parts
            return (*parts, result.projections.transpose(0, 1))

        return of

    parts = planned_terms(
        module, X, batch_size, device, shapes, terms, verbose, prefer, norms, directions
    )
    return named(parts)


class ChunkPlan(NamedTuple):
    """How one scoring call splits its rows."""

    rows: int  # rows per chunk
    pad: bool  # whether a short chunk is padded to ``rows`` rows
    float64: bool  # computed in float64 (on a float64 copy of a float32 network)


def chunk_plan(n_rows, batch_size, chunk_rows, device):
    """How a call of ``n_rows`` rows is split, given ``score_batch_size`` and the rows
    per chunk of its route (:meth:`Route.chunk_rows`).

    With ``batch_size='auto'``, a call of at most
    :func:`~gradient_ad._chunks.small_call_rows` rows is one unpadded chunk in float64:
    it costs about what its rows cost, and float64 rounding (about 1e-16 of a value) is
    all that depends on the other rows in the call. Otherwise (and inside
    :func:`padded_calls`) chunks of ``chunk_rows`` rows, each padded.
    """
    small = small_call_rows(chunk_rows, device)
    if batch_size == "auto" and n_rows <= small and not _PADDED_ONLY.get():
        return ChunkPlan(n_rows, pad=False, float64=True)
    return ChunkPlan(chunk_rows, pad=True, float64=False)


@contextlib.contextmanager
def padded_calls():
    """Score every call in the block in padded chunks, as large calls are.

    For scoring one array in pieces (:func:`gradient_ad.dask.score_dask`): each piece
    then gives bitwise the scores of one call on the whole array, when that call is
    larger than :func:`~gradient_ad._chunks.small_call_rows`.
    """
    token = _PADDED_ONLY.set(True)
    try:
        yield
    finally:
        _PADDED_ONLY.reset(token)


def route_chunk_rows(module, probe, batch_size="auto", device="cpu", prefer=None):
    """Rows per padded chunk of the route that scores ``module``, given one row
    ``probe`` (a tensor); :func:`~gradient_ad._chunks.small_call_rows` of it says which
    calls run in float64. For tests and benchmarks."""
    route = choose_route(module, probe, prefer)
    return route.chunk_rows(default_chunk_rows(module, batch_size), device)


def planned_terms(
    module,
    X,
    batch_size,
    device,
    shapes,
    terms=None,
    verbose=0,
    prefer=None,
    norms="auto",
    directions=None,
):
    """Per-row terms of every row of ``X``, chunked, padded and in the precision that
    :func:`chunk_plan` decides: the one place of that policy, for every caller
    (:func:`score_terms`, :func:`layer_terms`, and terms computed beside them, such as
    a pretext head's).

    Parameters
    ----------
    module : GradConModule
        Trained module, in eval mode.
    X, batch_size, device, verbose, prefer, norms, directions
        As in :func:`layer_terms`.
    shapes : list of tuple
        The shape of each term for one row.
    terms : callable, default=None
        ``terms(route)`` returns the function that maps a chunk (a tensor of rows) to
        one tensor per shape, with the rows first. ``route`` is the route scoring the
        call; use ``route.module`` and ``route.references`` (a small call's are a
        float64 copy of ``module``'s), never ``module``'s own. ``None``: the route's
        ``(e_i, alignment_i)``.

    Returns
    -------
    parts : tuple of ndarray
        One float64 array of shape ``(n_samples, *shape)`` per shape.
    """
    dtype = module.dtype
    probe = torch.as_tensor(X[:1], dtype=dtype).to(device)
    route = choose_route(module, probe, prefer, norms, directions)
    chunk_rows = route.chunk_rows(default_chunk_rows(module, batch_size), device)
    plan = chunk_plan(len(X), batch_size, chunk_rows, device)
    terms = terms or _own
    if plan.float64:
        try:
            small = _float64_route(route, module, norms, directions)
            return _chunked(X, plan, terms(small), shapes, dtype, device, verbose)
        except (RuntimeError, TypeError):
            if type(route) is ChainRoute:
                raise
            # A network that cannot run in float64 (a float32 tensor kept in a plain
            # attribute, say) is scored as larger calls are, in padded float32 chunks.
            plan = ChunkPlan(chunk_rows, pad=True, float64=False)
    return _chunked(X, plan, terms(route), shapes, dtype, device, verbose)


def _own(route):
    return route


def _float64_route(route, module, norms, directions):
    """The same route on a float64 copy of ``module`` (``route`` itself for a float64
    network)."""
    if module.dtype == torch.float64:
        return route
    if directions is not None:
        directions = [d.to(torch.float64) for d in directions]
    return type(route)(float64_copy(module), norms, directions)


def _chunked(X, plan, terms, shapes, dtype, device, verbose):
    """``terms`` of every row of ``X`` (tensors of ``shapes`` per row), computed in the
    chunks of ``plan`` from rows converted to ``dtype`` (the network's), as float64
    arrays."""
    n_samples = len(X)
    results = tuple(np.empty((n_samples, *shape)) for shape in shapes)
    for rows in progress_chunks(n_samples, plan.rows, verbose=verbose, desc="scoring"):
        # The network's dtype first: a float32 network is computed on float32 inputs
        # in float64 too, so that only the arithmetic differs between the two.
        chunk = torch.as_tensor(X[rows], dtype=dtype)
        n_rows = len(chunk)
        if plan.float64:
            chunk = chunk.to(torch.float64)
        elif plan.pad and n_rows < plan.rows:
            chunk = torch.cat([chunk, chunk.new_zeros((plan.rows - n_rows, *chunk.shape[1:]))])
        for result, part in zip(results, terms(chunk.to(device))):
            result[rows] = part[:n_rows].double().cpu().numpy()
    return results


def per_sample_terms(module, x, prefer=None, norms="auto"):
    """``(e_i, mean_l cos_il)`` for one batch tensor, by the fastest applicable route
    (or the one named by ``prefer``)."""
    return choose_route(module, x[:1], prefer, norms)(x)
