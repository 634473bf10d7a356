"""Scoring many rows: chunks of a fixed size, each padded, by one route."""

import numpy as np
import torch

from .._gradcon import cosines_from_terms
from .._modules import MLPAutoencoder
from .._progress import progress_chunks
from .routes import choose_route

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "layer_terms",
    "MLP_CHUNK_ROWS",
    "default_chunk_rows",
    "per_sample_terms",
    "score_terms",
]

# Measured with benchmarks/bench_chunks.py on a 2-core CPU: the MLP scores fastest per
# row in chunks of 2048.
MLP_CHUNK_ROWS = 2048
# Chunks of other networks (and on accelerators) with batch_size='auto'.
DEFAULT_CHUNK_ROWS = 1024


def default_chunk_rows(module, batch_size):
    """``batch_size``, or for ``'auto'`` the rows per chunk measured fastest."""
    if batch_size != "auto":
        return batch_size
    return MLP_CHUNK_ROWS if type(module.autoencoder) is MLPAutoencoder else DEFAULT_CHUNK_ROWS


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
        Rows per chunk; ``'auto'``: ``MLP_CHUNK_ROWS`` for the package's MLP,
        ``DEFAULT_CHUNK_ROWS`` otherwise.
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
    reconstruction_error, alignment : ndarray of shape (n_samples,)
        ``e_i`` and ``mean_l cos(de_i/dW_l, gbar_l)``, as float64.
    """
    if not len(X):
        return np.empty(0), np.empty(0)
    route, batch_size = _route(module, X, batch_size, device, prefer, norms)
    return _chunked(X, batch_size, route, [(), ()], module, device, verbose)


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
    reconstruction_error, alignment : ndarray of shape (n_samples,)
        As :func:`score_terms` returns them.
    cosines, gradient_norms : ndarray of shape (n_samples, n_tensors)
        Each sample's cosine with each reference gradient, and its gradient's norm.
    projections : ndarray of shape (n_samples, n_tensors, P), or None
        Each sample's gradient paired with each direction.
    """
    references = module.reference_gradients()
    shapes = [(), (), (len(references),), (len(references),)]
    if directions is not None:
        shapes.append((len(references), len(directions[0])))
    if not len(X):
        parts = tuple(np.empty((0, *shape)) for shape in shapes)
        return (*parts, None) if directions is None else parts
    route, batch_size = _route(module, X, batch_size, device, prefer, norms, directions)

    def terms(chunk):
        error, dots, norms, projections = route.layer_terms(chunk)
        cosines = cosines_from_terms(dots, norms, references)
        parts = (error, cosines.mean(0), cosines.T, norms.T)
        return parts if projections is None else (*parts, projections.transpose(0, 1))

    parts = _chunked(X, batch_size, terms, shapes, module, device, verbose)
    return (*parts, None) if directions is None else parts


def _route(module, X, batch_size, device, prefer, norms, directions=None):
    dtype = module.reference_gradients()[0].dtype  # buffers follow the parameters' dtype
    probe = torch.as_tensor(X[:1], dtype=dtype).to(device)
    route = choose_route(module, probe, prefer, norms, directions)
    return route, route.chunk_rows(default_chunk_rows(module, batch_size), device)


def _chunked(X, batch_size, terms, shapes, module, device, verbose):
    """``terms`` of every row of ``X`` (tensors of ``shapes`` per row), computed in
    chunks padded to ``batch_size`` rows, as float64 arrays."""
    n_samples = len(X)
    dtype = module.reference_gradients()[0].dtype
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
    """``(e_i, mean_l cos_il)`` for one batch tensor, by the fastest applicable route."""
    return choose_route(module, x[:1], prefer, norms)(x)
