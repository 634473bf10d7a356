"""Per-sample weight-gradient norms and numerators without materialising gradients.

Plain tensor functions. A layer's per-sample weight gradient is ``g_i = left_i @
patches_i.T`` (see :meth:`~gradient_ad._scoring.layers.WeightRule.factors`): an outer
product for a linear layer applied once, a batched matrix product with unfolded
patches for a convolution. Its norm comes from ``g_i`` itself (*materialised*), from
two small Gram matrices (*gram*) or, for a transposed convolution, from Gram matrices
of the phases of the output gradient (*polyphase*), whichever needs the fewest
multiply-adds (``'auto'``). ``docs/performance.rst`` has the measurements.
"""

import math

import torch
import torch.nn.functional as F

# Per-sample temporaries are built WORKSPACE_ELEMENTS at a time (a rule of _chunks).
from .._chunks import WORKSPACE_ELEMENTS

__all__ = [
    "NORM_METHODS",
    "factored_terms",
    "gram_is_cheaper",
    "polyphase_applies",
    "polyphase_is_cheapest",
    "polyphase_norms",
]

NORM_METHODS = ("auto", "materialised", "gram", "polyphase")


def gram_is_cheaper(m, n_positions, n_weights):
    """Whether Gram matrices give the norm of an ``m x k`` gradient applied at
    ``n_positions`` positions in fewer multiply-adds than the gradient itself:
    ``L^2 (m + k)`` against ``m k L`` (few positions, many weights)."""
    k = n_weights // m
    return n_positions * (m + k) < m * k


def polyphase_applies(stride, dilation, kernel_size):
    """Whether :func:`polyphase_norms` applies to a transposed convolution: no dilation
    and a stride that divides the kernel."""
    return tuple(dilation) == (1, 1) and not any(k % s for k, s in zip(kernel_size, stride))


def polyphase_is_cheapest(stride, kernel_size, a, delta):
    """Whether :func:`polyphase_norms` needs fewer multiply-adds than both the
    materialised gradient and the plain Gram matrices, for a transposed convolution
    with input ``a`` and output gradient ``delta`` (it must apply)."""
    m, out_channels = a.shape[1], delta.shape[1]
    n_positions = a[0, 0].numel()
    n_phases = stride[0] * stride[1]
    n_shifts = math.prod(k // s for k, s in zip(kernel_size, stride))
    n_phase_positions = math.prod(
        size + k // s - 1 for size, k, s in zip(a.shape[2:], kernel_size, stride)
    )
    k = out_channels * math.prod(kernel_size)
    polyphase = n_positions**2 * (m + n_shifts) + n_phase_positions**2 * n_phases * out_channels
    return polyphase < min(m * k * n_positions, n_positions**2 * (m + k))


def polyphase_norms(a, delta, stride, padding, kernel_size):
    """Per-sample norms of a transposed convolution's weight gradient, by phases.

    ``a`` is the layer's input, ``delta`` the gradient of the loss with respect to its
    output. With kernel ``k = s t`` (stride ``s``), kernel offset ``s u + r`` (shift
    ``u < t``, phase ``r < s``) reads the padded ``delta`` at ``s (p + u) + r`` for input
    position ``p``: phase ``r`` of ``delta``, an image ``E_r`` on a grid of ``(h + t - 1)
    x (w + t - 1)`` positions ``q``, at ``q = p + u``. So ``||g||^2 = sum_u sum_{p, p'}
    Ga[p, p'] Ge[p + u, p' + u]`` with the Gram matrices ``Ga`` of the input over
    positions and ``Ge = sum_r E_r^T E_r``: no unfolded copy of ``delta``, ``s^2`` times
    fewer products than the plain Gram route.
    """
    n, _, height, width = a.shape
    (sy, sx), (ty, tx) = stride, (k // s for k, s in zip(kernel_size, stride))
    qy, qx = height + ty - 1, width + tx - 1
    py, px = padding
    channels = delta.shape[1] * sy * sx
    per_row = (height * width) ** 2 + (qy * qx) ** 2 + 2 * channels * qy * qx
    rows = max(1, WORKSPACE_ELEMENTS // per_row)
    squared_norms = []
    for start in range(0, n, rows):
        part = slice(start, start + rows)
        inputs = a[part].flatten(2)
        gram_a = (inputs.transpose(1, 2) @ inputs).reshape(-1, height, width, height, width)
        # Padded a few rows at a time, so that the padded copy is still in cache when
        # the phases are gathered from it.
        padded = F.pad(delta[part], (px, px, py, py))[:, :, : sy * qy, : sx * qx]
        phases = padded.reshape(-1, delta.shape[1], qy, sy, qx, sx)
        phases = phases.permute(0, 1, 3, 5, 2, 4).reshape(-1, channels, qy * qx)
        gram_e = (phases.transpose(1, 2) @ phases).reshape(-1, qy, qx, qy, qx)
        total = 0
        for uy in range(ty):
            for ux in range(tx):
                shifted = gram_e[:, uy : uy + height, ux : ux + width, uy : uy + height]
                total = total + (gram_a * shifted[..., ux : ux + width]).sum((1, 2, 3, 4))
        squared_norms.append(total)
    return torch.cat(squared_norms).sqrt()


def factored_terms(left, patches_of, dot_of, reference, use_gram, input_weight=None):
    """``<g_i, reference>`` and ``||g_i||`` for the gradients ``g_i = left_i @ patches_i.T``.

    ``left`` is ``(n, m, L)``, ``patches_of(rows)`` gives ``(rows, k, L)`` and
    ``dot_of(r)`` each ``<g_i, r>``. The squared norm of ``g_i`` comes from ``g_i``
    itself, which also gives the numerator, or, with ``use_gram``, from two ``L x L``
    Gram matrices: ``||A B^T||^2 = sum((A^T A) * (B^T B))``, the numerator then coming
    from ``dot_of``. Per-sample temporaries are built a few rows at a time. With
    ``input_weight`` (an ``(m', k)`` matrix), ``input_weight @ patches_i`` is returned
    too: a transposed convolution's input gradient (else ``None``).
    """
    n, m, n_positions = left.shape
    flat_reference = reference.reshape(m, -1)
    k = flat_reference.shape[1]
    extra = 0 if input_weight is None else len(input_weight)
    per_row = n_positions * (max(k, n_positions if use_gram else m) + extra)
    rows = max(1, WORKSPACE_ELEMENTS // per_row)
    dots, squared_norms = [], []
    products = None
    if input_weight is not None:
        products = left.new_empty((n, len(input_weight), n_positions))
        input_weight = input_weight.expand(rows, *input_weight.shape)
    for start in range(0, n, rows):
        part = slice(start, start + rows)
        patches = patches_of(part)
        if input_weight is not None:
            # bmm into the result: a broadcast matmul would fold the rows into one
            # product and copy its output transposed.
            torch.bmm(input_weight[: len(patches)], patches, out=products[part])
        if use_gram:
            gram = left[part].transpose(1, 2) @ left[part]
            squared_norms.append((gram * (patches.transpose(1, 2) @ patches)).sum((1, 2)))
        else:
            gradient = left[part] @ patches.transpose(1, 2)  # (rows, m, k)
            dots.append((gradient * flat_reference).sum((1, 2)))
            squared_norms.append(gradient.pow(2).sum((1, 2)))
    dot = dot_of(reference) if use_gram else torch.cat(dots)
    return dot, torch.cat(squared_norms).sqrt(), products
