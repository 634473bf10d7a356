"""Detecting an autoencoder that has collapsed to one output, and a restart that avoids it.

On sparse inputs (dark images, most pixels 0) the reference network with PyTorch's
default initialisation often falls into a dead start: the decoder returns the same
image whatever the input, the loss sits on a plateau and early stopping keeps it. A
detector built on such a network ranks samples by their brightness. The reconstructions
of a collapsed network barely vary across samples, so the share of the inputs' variance
that they keep (:func:`reconstruction_spread`) is close to 0, where a trained
autoencoder keeps most of it.
"""

import math

import numpy as np
import torch
from torch import nn

__all__ = ["COLLAPSED_SPREAD", "SPREAD_ROWS", "kaiming_init", "reconstruction_spread"]

# Measured on the digits-on-a-canvas reproducer and the benchmark data (docs/benchmarks.rst):
# collapsed networks keep 0.0003 to 0.005 of the inputs' variance, trained ones 0.3 or more.
COLLAPSED_SPREAD = 0.05
# Rows of the training data the spread is measured on: enough for a stable variance,
# few enough to cost one forward pass.
SPREAD_ROWS = 512


def reconstruction_spread(module, X):
    """Share of the inputs' variance across samples that the reconstructions keep.

    ``sum_j var_i(f(x_i)_j) / sum_j var_i(x_ij)`` over the rows ``x_i`` of ``X``: about 0
    for a network that returns one output whatever the input, about 1 for the
    identity. ``nan`` when the inputs do not vary at all.

    Parameters
    ----------
    module : torch.nn.Module
        The autoencoder, evaluated as it is (call ``eval()`` first).
    X : torch.Tensor of shape (n_samples, ...)
        Inputs, at least two rows, on the module's device and in its dtype.

    Returns
    -------
    spread : float
    """
    with torch.no_grad():
        recon = module(X)
    # float64 sums: variances of near-constant outputs are tiny next to the inputs'.
    kept = recon.double().flatten(1).var(dim=0).sum().item()
    total = X.double().flatten(1).var(dim=0).sum().item()
    return kept / total if total > 0 else math.nan


def spread_rows(X, seed):
    """A seeded choice of at most :data:`SPREAD_ROWS` rows of ``X`` (an ndarray)."""
    if len(X) <= SPREAD_ROWS:
        return X
    rows = np.random.default_rng(seed).choice(len(X), SPREAD_ROWS, replace=False)
    return X[np.sort(rows)]


def is_collapsed(spread):
    """Whether a spread says the network returns one output whatever the input."""
    return not math.isnan(spread) and spread < COLLAPSED_SPREAD


@torch.no_grad()
def kaiming_init(module):
    """Kaiming-normal weights (fan-in, ReLU gain) and zero biases for every layer.

    Applies to the :class:`~torch.nn.Linear`, :class:`~torch.nn.Conv2d` and
    :class:`~torch.nn.ConvTranspose2d` layers of ``module``; other layers keep their
    initialisation. It keeps the signal's scale through a ReLU stack, where PyTorch's
    default initialisation shrinks it by about 6 times per layer, which is what leaves
    the dead start within reach on sparse inputs (measured in docs/benchmarks.rst).
    """
    for layer in module.modules():
        if type(layer) in (nn.Linear, nn.Conv2d, nn.ConvTranspose2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            if layer.bias is not None:
                layer.bias.zero_()
    return module
