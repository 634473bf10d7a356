"""The GradCon quantities, defined once for training, scoring, maps and benchmarks.

For a sample ``x`` and an autoencoder ``AE``:

- the reconstruction error ``e(x) = mean_j (AE(x)_j - x_j) ** 2``;
- the gradient alignment ``c(x) = mean_l cos(de/dW_l, gbar_l)`` over the constrained
  tensors ``W_l``, with ``gbar_l`` the reference gradient learnt in training, each norm
  of the cosine clamped to ``EPS`` on its own, as in
  :func:`torch.nn.functional.cosine_similarity`;
- the anomaly score ``e(x) - beta * c(x)``.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

__all__ = [
    "EPS",
    "NON_FINITE_ADVICE",
    "alignment",
    "alignment_from_terms",
    "anomaly_score",
    "auto_beta",
    "check_finite",
    "cosines_from_terms",
    "functional_error",
    "reconstruct",
    "reconstruction_error",
]

EPS = 1e-8  # as in torch.nn.functional.cosine_similarity
# What the error advises when a network returns non-finite scores.
NON_FINITE_ADVICE = (
    "Check X for extreme values, scale the features (e.g. StandardScaler) or lower lr."
)


def reconstruct(call, x):
    """The reconstruction ``call`` returns for ``x``, leaving ``x`` as it was.

    The network gets a copy, so that one that modifies its input in place changes
    neither the caller's data nor the target its reconstruction is compared with. A
    network may return a tuple or list (``(reconstruction, code)``): the
    reconstruction is its first element.
    """
    output = call(x.clone())
    if isinstance(output, (tuple, list)) and output:
        output = output[0]
    return output


def reconstruction_error(recon, x):
    """Mean squared error of each sample: shape ``(n,)`` for a batch of ``n``."""
    return (recon - x).pow(2).flatten(1).mean(1)


def functional_error(autoencoder, fixed):
    """``(theta, sample) -> e(sample)`` for one sample (no batch axis), with the tensors
    of ``theta`` replacing those of the same names in ``fixed`` (all the autoencoder's
    parameters and buffers): the function that ``torch.func.grad`` differentiates for
    per-sample gradients."""

    def error(theta, sample):
        def call(h):
            return functional_call(autoencoder, {**fixed, **theta}, (h,))

        return reconstruction_error(reconstruct(call, sample[None]), sample[None])[0]

    return error


def alignment(gradients, references):
    """Mean over tensors of the cosine between one gradient and its reference.

    Differentiable twice: training minimises ``L_rec - alpha * alignment``.
    """
    cosines = [
        F.cosine_similarity(g.flatten(), r.flatten(), dim=0) for g, r in zip(gradients, references)
    ]
    return torch.stack(cosines).mean()


def cosines_from_terms(dots, norms, references):
    """Per-sample, per-tensor cosines ``(L, n)`` from the gradients' numerators
    ``<g_il, gbar_l>`` and norms ``||g_il||`` (both ``(L, n)``). Each norm is clamped
    on its own (clamping their product would shrink the cosines of a trained network,
    whose gradients and references are small)."""
    reference_norms = torch.stack([reference.norm() for reference in references])
    return dots / (norms.clamp_min(EPS) * reference_norms.clamp_min(EPS)[:, None])


def alignment_from_terms(terms, references):
    """Per-sample :func:`alignment` from each tensor's ``(dot, norm)`` pair of
    ``(n,)`` tensors (see :func:`cosines_from_terms`)."""
    dots = torch.stack([dot for dot, _ in terms])
    norms = torch.stack([norm for _, norm in terms])
    return cosines_from_terms(dots, norms, references).mean(0)


def anomaly_score(reconstruction_error, alignment, beta):
    """GradCon's anomaly score: higher is more abnormal."""
    return reconstruction_error - beta * alignment


def auto_beta(reconstruction_error, alignment):
    """The ``beta`` that weighs both terms equally on normal data: the ratio of their
    standard deviations (0 when the alignment does not vary, as it then carries no
    information)."""
    spread = np.std(alignment)
    return float(np.std(reconstruction_error) / spread) if spread > 0 else 0.0


def check_finite(values, what, advice, of=None):
    """Raise ``FloatingPointError`` if a sample's row of ``values`` (an array with one
    row per sample) holds a non-finite value, which the network returned.

    ``what`` names the values (``'scores'``, ``'features'``), ``of`` the samples (``'X'``,
    ``'the training data'``, or ``None``) and ``advice`` ends the message.
    """
    finite = np.isfinite(values)
    bad = ~finite.all(axis=tuple(range(1, finite.ndim)))
    if bad.any():
        samples = "samples" if of is None else f"samples of {of}"
        raise FloatingPointError(
            f"the network returned non-finite {what} for {bad.sum()} of {len(bad)} "
            f"{samples} (first: row {np.flatnonzero(bad)[0]}). {advice}"
        )
