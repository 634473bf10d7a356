"""Scoring many rows: chunks of a fixed size, each padded, by one route."""

from typing import NamedTuple

import numpy as np
import torch

from .._chunks import default_chunk_rows
from .._gradcon import cosines_from_terms
from .._progress import progress_chunks
from .routes import choose_route

__all__ = [
    "LayerTerms",
    "ScoreTerms",
    "layer_terms",
    "per_sample_terms",
    "score_terms",
]


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

    Rows are processed in chunks of ``batch_size``, capped by the route (see
    :mod:`~gradient_ad._scoring.routes`); every chunk is padded to exactly that many
    rows so that a sample's score does not depend on how many other samples share its
    chunk (the same kernels run whatever the number of rows).

    Parameters
    ----------
    module : GradConModule
        Trained module, in eval mode.
    X : ndarray of shape (n_samples, *input_shape), or an object sliced like one
        Inputs; chunks are converted to the module's dtype. Never modified.
    batch_size : int or 'auto'
        Rows per chunk; ``'auto'``: :func:`gradient_ad._chunks.default_chunk_rows`.
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
    route, batch_size = _route(module, X, batch_size, device, prefer, norms)
    return ScoreTerms(*_chunked(X, batch_size, route, [(), ()], module, device, verbose))


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
    references = module.reference_gradients()
    shapes = [(), (), (len(references),), (len(references),)]
    if directions is not None:
        shapes.append((len(references), len(directions[0])))

    def named(parts):
        return LayerTerms(*parts, None) if directions is None else LayerTerms(*parts)

    if not len(X):
        return named(np.empty((0, *shape)) for shape in shapes)
    route, batch_size = _route(module, X, batch_size, device, prefer, norms, directions)

    def terms(chunk):
        result = route.layer_terms(chunk)
        cosines = cosines_from_terms(result.dots, result.norms, references)
        parts = (result.error, cosines.mean(0), cosines.T, result.norms.T)
        if result.projections is None:
            return parts
        return (*parts, result.projections.transpose(0, 1))

    return named(_chunked(X, batch_size, terms, shapes, module, device, verbose))


def _route(module, X, batch_size, device, prefer, norms, directions=None):
    probe = torch.as_tensor(X[:1], dtype=module.dtype).to(device)
    route = choose_route(module, probe, prefer, norms, directions)
    return route, route.chunk_rows(default_chunk_rows(module, batch_size), device)


def _chunked(X, batch_size, terms, shapes, module, device, verbose):
    """``terms`` of every row of ``X`` (tensors of ``shapes`` per row), computed in
    chunks padded to ``batch_size`` rows, as float64 arrays."""
    n_samples = len(X)
    dtype = module.dtype
    results = tuple(np.empty((n_samples, *shape)) for shape in shapes)
    for rows in progress_chunks(n_samples, batch_size, verbose=verbose, desc="scoring"):
        chunk = torch.as_tensor(X[rows], dtype=dtype)
        n_rows = len(chunk)
        if n_rows < batch_size:
            chunk = torch.cat([chunk, chunk.new_zeros((batch_size - n_rows, *chunk.shape[1:]))])
        for result, part in zip(results, terms(chunk.to(device))):
            result[rows] = part[:n_rows].double().cpu().numpy()
    return results


def per_sample_terms(module, x, prefer=None, norms="auto"):
    """``(e_i, mean_l cos_il)`` for one batch tensor, by the fastest applicable route
    (or the one named by ``prefer``)."""
    return choose_route(module, x[:1], prefer, norms)(x)
