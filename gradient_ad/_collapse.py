"""Detecting an autoencoder that has collapsed to one output, and a restart that avoids it.

On sparse inputs (dark images, most pixels 0) the reference network with PyTorch's
default initialisation often falls into a dead start: the decoder returns the same
image whatever the input, the loss sits on a plateau and early stopping keeps it. A
detector built on such a network ranks samples by their brightness. The reconstructions
of a collapsed network barely vary across samples, so the share of the inputs' variance
that they keep is close to 0 (:func:`collapse_statistics`), where a trained autoencoder
keeps most of it.
"""

import math

import numpy as np
import torch
from torch import nn

__all__ = ["collapse_statistics", "is_collapsed", "kaiming_init", "spread_rows"]

# A dead start returns nearly one output whatever the input, and that output is far from
# the data's mean (near-black on dark images). The spread alone cannot tell it from a
# network that is nearly constant but close to the mean, which still ranks by the
# distance to a template of the normal data and detects: on scikit-learn's digits the
# MLP keeps a median 0.005 of the variance and reaches 0.97 AUROC (docs/benchmarks.rst,
# experiments/results/development/digits.json). Hence the second condition, on the error.
COLLAPSED_SPREAD = 0.01
COLLAPSED_ERROR_RATIO = 1.25
# Rows of the training data the test runs on: enough for a stable variance, few enough
# to cost one forward pass.
SPREAD_ROWS = 512
_FORWARD_ROWS = 64


def collapse_statistics(module, X):
    """How much a network's reconstructions depend on the input.

    Parameters
    ----------
    module : torch.nn.Module
        The autoencoder, evaluated as it is (call ``eval()`` first).
    X : torch.Tensor of shape (n_samples, ...)
        Inputs, at least two rows, on the module's device and in its dtype.

    Returns
    -------
    spread : float
        ``sum_j var_i(f(x_i)_j) / sum_j var_i(x_ij)``: the share of the inputs' variance
        across samples that the reconstructions keep; about 0 for a network that
        returns one output whatever the input, about 1 for the identity.
    error_ratio : float
        Mean squared reconstruction error divided by that of the data's mean returned
        for every sample: above 1 when the network does worse than that constant.
        Both are ``nan`` when the inputs do not vary at all (or are one row).
    """
    if len(X) < 2:  # one row does not vary (and torch warns on its variance)
        return math.nan, math.nan
    with torch.no_grad():
        # A few rows at a time: large images need memory for every layer's activations.
        recon = torch.cat([module(chunk) for chunk in torch.split(X, _FORWARD_ROWS)])
    # float64 sums: variances of near-constant outputs are tiny next to the inputs'.
    x, recon = X.double().flatten(1), recon.double().flatten(1)
    total = x.var(dim=0).sum().item()
    if not total > 0:
        return math.nan, math.nan
    spread = recon.var(dim=0).sum().item() / total
    error = ((recon - x) ** 2).mean().item()
    return spread, error / ((x - x.mean(dim=0)) ** 2).mean().item()


def is_collapsed(spread, error_ratio):
    """A nearly constant output, and one worse than the data's mean."""
    return spread < COLLAPSED_SPREAD and error_ratio >= COLLAPSED_ERROR_RATIO


def spread_rows(X, seed):
    """A seeded choice of at most :data:`SPREAD_ROWS` rows of ``X`` (an ndarray)."""
    if len(X) <= SPREAD_ROWS:
        return X
    rows = np.random.default_rng(seed).choice(len(X), SPREAD_ROWS, replace=False)
    return X[np.sort(rows)]


@torch.no_grad()
def kaiming_init(module):
    """Kaiming-normal weights (ReLU gain, PyTorch's fan-in of the weight's shape) and
    zero biases for every layer.

    Applies to the :class:`~torch.nn.Linear`, :class:`~torch.nn.Conv2d` and
    :class:`~torch.nn.ConvTranspose2d` layers of ``module``; other layers keep their
    initialisation. It keeps the signal's scale through a ReLU stack, where PyTorch's
    default initialisation of a linear layer (weight variance ``1 / (3 fan_in)``) and
    the ReLU after it shrink the signal's second moment about 6 times per layer. On
    the canvas digits reproducer it ended every dead start that it restarted
    (docs/benchmarks.rst).
    """
    for layer in module.modules():
        if type(layer) in (nn.Linear, nn.Conv2d, nn.ConvTranspose2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            if layer.bias is not None:
                layer.bias.zero_()
    return module
