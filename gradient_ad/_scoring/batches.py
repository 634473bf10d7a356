"""Scoring many rows: chunks of a fixed size, each padded, by one route."""

import numpy as np
import torch

from .._modules import MLPAutoencoder
from .._progress import progress_chunks
from .routes import choose_route

__all__ = [
    "DEFAULT_CHUNK_ROWS",
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
    n_samples = len(X)
    errors = np.empty(n_samples)
    alignments = np.empty(n_samples)
    if not n_samples:
        return errors, alignments
    dtype = module.reference_gradients()[0].dtype  # buffers follow the parameters' dtype
    probe = torch.as_tensor(X[:1], dtype=dtype).to(device)
    route = choose_route(module, probe, prefer, norms)
    batch_size = route.chunk_rows(default_chunk_rows(module, batch_size), device)
    for rows in progress_chunks(n_samples, batch_size, verbose=verbose, desc="scoring"):
        chunk = torch.as_tensor(X[rows], dtype=dtype)
        n_rows = len(chunk)
        if n_rows < batch_size:
            chunk = torch.cat([chunk, chunk.new_zeros((batch_size - n_rows, *chunk.shape[1:]))])
        error, alignment = route(chunk.to(device))
        errors[rows] = error[:n_rows].double().cpu().numpy()
        alignments[rows] = alignment[:n_rows].double().cpu().numpy()
    return errors, alignments


def per_sample_terms(module, x, prefer=None, norms="auto"):
    """``(e_i, mean_l cos_il)`` for one batch tensor, by the fastest applicable route."""
    return choose_route(module, x[:1], prefer, norms)(x)
