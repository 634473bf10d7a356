"""Per-sample GradCon score terms, batched.

For each sample ``x_i`` GradCon needs its reconstruction error
``e_i = mean((AE(x_i) - x_i) ** 2)`` and the mean, over the constrained tensors, of the
cosine between ``de_i/dW_l`` and the reference gradient ``gbar_l``.

Three routes give the same numbers (to rounding), fastest first:

- Chain route, for the package's own networks (a chain of linear, convolution and
  activation layers): one forward pass without autograd keeps each layer's input; a
  hand-written backward pass from the output to the first constrained layer gives each
  constrained layer's output gradient ``delta_i``. The reference gradient rides along
  as extra output channels of the backward matrix product or convolution, which gives
  the cosine's numerator ``<de_i/dW_l, gbar_l>`` in the same call.
- Layer route, for other networks whose constrained tensors are weights of linear or
  convolution layers: forward hooks record each constrained layer's input and output,
  and one autograd backward pass of ``sum_i e_i`` (samples do not interact in eval mode)
  gives every ``delta_i``; only the part after the first constrained layer is
  differentiated.
- ``torch.func.vmap`` over ``torch.func.grad`` for anything else.

In the first two a layer's per-sample weight gradient is a product of the layer's
input and ``delta_i``: an outer product for a linear layer (its cosine needs no
materialised gradient), a batched matrix product with unfolded patches for a
convolution. Its norm comes from the gradient itself, from two small Gram matrices
(:func:`_factored_terms`) or, for a transposed convolution, from Gram matrices of the
phases of ``delta_i`` (:func:`_polyphase_norms`), whichever needs the fewest
multiply-adds. ``docs/performance.rst`` has the measurements behind these choices.
"""

import math
import threading

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.nn.grad import conv2d_input

from ._modules import ConvAutoencoder, MLPAutoencoder
from ._progress import progress_chunks

__all__ = ["score_terms", "per_sample_terms"]

_EPS = 1e-8  # as in torch.nn.functional.cosine_similarity

# Measured with benchmarks/bench_scoring.py on a 2-core CPU: the reference network on
# 28 x 28 images scores fastest per row in chunks of 256-512 rows, the MLP in 2048
# (benchmarks/bench_chunks.py).
CONV_CHUNK_ROWS = 256
MLP_CHUNK_ROWS = 2048
# Chunks of other networks (and on accelerators) with batch_size='auto'.
DEFAULT_CHUNK_ROWS = 1024
# The vmap route holds ``rows x constrained weights`` gradient values at once.
VMAP_CHUNK_ELEMENTS = 2**24


def score_terms(module, X, batch_size, device="cpu", verbose=0):
    """Reconstruction error and gradient alignment of every row of ``X``.

    Rows are processed in chunks of ``batch_size`` (on the CPU, at most
    ``CONV_CHUNK_ROWS`` for the package's convolutional network, whose activations
    outgrow the caches beyond that; on the vmap route, at most ``VMAP_CHUNK_ELEMENTS``
    gradient values); every chunk is padded to exactly that many rows so that a
    sample's score does not depend on how many other samples share its chunk (the
    same kernels run whatever the number of rows).

    Parameters
    ----------
    module : GradConModule
        Trained module, in eval mode.
    X : ndarray of shape (n_samples, *input_shape)
        Inputs, already in the module's dtype.
    batch_size : int or 'auto'
        Rows per chunk; ``'auto'``: ``MLP_CHUNK_ROWS`` for the package's MLP,
        ``DEFAULT_CHUNK_ROWS`` otherwise (capped as above).
    device : str or torch.device
        Where to compute.
    verbose : int, default=0
        Show a progress bar when there is more than one chunk.

    Returns
    -------
    reconstruction_error, alignment : ndarray of shape (n_samples,)
        ``e_i`` and ``mean_l cos(de_i/dW_l, gbar_l)``, as float64.
    """
    n_samples = len(X)
    errors = np.empty(n_samples)
    alignments = np.empty(n_samples)
    dtype = module.reference_gradients()[0].dtype  # buffers follow the parameters' dtype
    batch_size = chunk_rows(module, batch_size, device)
    route = _route(module)
    for rows in progress_chunks(n_samples, batch_size, verbose=verbose, desc="scoring"):
        chunk = torch.as_tensor(X[rows], dtype=dtype)
        n_rows = len(chunk)
        if n_rows < batch_size:
            chunk = torch.cat([chunk, chunk.new_zeros((batch_size - n_rows, *chunk.shape[1:]))])
        error, alignment = route(chunk.to(device))
        errors[rows] = error[:n_rows].double().cpu().numpy()
        alignments[rows] = alignment[:n_rows].double().cpu().numpy()
    return errors, alignments


def chunk_rows(module, batch_size, device):
    """Rows per chunk: ``batch_size`` (``'auto'`` chosen by network), capped where larger
    chunks cost more than they save."""
    if batch_size == "auto":
        mlp = type(module.autoencoder) is MLPAutoencoder
        batch_size = MLP_CHUNK_ROWS if mlp else DEFAULT_CHUNK_ROWS
    if type(module.autoencoder) is ConvAutoencoder and torch.device(device).type == "cpu":
        return min(batch_size, CONV_CHUNK_ROWS)
    if not _supports_layer_route(module):
        # vmap materialises every sample's gradient of the constrained tensors.
        n_weights = sum(r.numel() for r in module.reference_gradients())
        return min(batch_size, max(1, VMAP_CHUNK_ELEMENTS // n_weights))
    return batch_size


_MODULE_LOCK = threading.Lock()


def per_sample_terms(module, x):
    """``(e_i, mean_l cos_il)`` for one batch tensor, by the fastest applicable route."""
    return _route(module)(x)


def _route(module):
    """The fastest route that can score ``module``, as a function of one batch.

    Chosen once per scoring call rather than once per chunk.
    """
    owners = _owner_layers(module)
    chain = _chain(module, owners)
    if chain is not None:
        return _ChainRoute(module, chain, owners)
    route = _layer_route if _supports_layer_route(module) else _vmap_route

    def locked(x):
        # These routes change the module while they run (forward hooks,
        # functional_call's parameter swap): threads scoring one model take turns.
        with _MODULE_LOCK:
            return route(module, x)

    return locked


def _per_sample_error(recon, x):
    return (recon - x).pow(2).flatten(1).mean(1)


def _mean_cosine(terms, references):
    """Mean over layers of ``dot / (norm * ||reference||)``, from ``(dot, norm)`` pairs
    of per-sample numerators and gradient norms; each norm is clamped to ``_EPS`` on
    its own, as in :func:`torch.nn.functional.cosine_similarity` (clamping their
    product would shrink the cosines of a trained network, whose gradients and
    references are small)."""
    dots = torch.stack([dot for dot, _ in terms])
    norms = torch.stack([norm for _, norm in terms])
    reference_norms = torch.stack([reference.norm() for reference in references])
    denominators = norms.clamp_min(_EPS) * reference_norms.clamp_min(_EPS)[:, None]
    return (dots / denominators).mean(0)


# -- chain route: the package's networks, differentiated by hand ----------------------

_ACTIVATIONS = (nn.ReLU, nn.Sigmoid, nn.Identity)


def _chain(module, owners):
    """The package network's layers in order, when the chain route can score it."""
    autoencoder = module.autoencoder
    # Exact types: a subclass may override forward.
    if type(autoencoder) not in (ConvAutoencoder, MLPAutoencoder):
        return None
    layers = [*autoencoder.encoder, *autoencoder.decoder]
    supported = all(
        isinstance(layer, (nn.Linear, *_ACTIVATIONS)) or _plain_conv(layer) for layer in layers
    )
    in_chain = all(any(owner is layer for layer in layers) for owner in owners)
    if not (supported and in_chain and len({id(m) for m in owners}) == len(owners)):
        return None
    return layers


class _ChainRoute:
    """Scores batches with a package network, differentiated by hand; what does not
    depend on the batch is prepared once."""

    def __init__(self, module, layers, owners):
        self.flatten = isinstance(module.autoencoder, MLPAutoencoder)
        self.references = module.reference_gradients()
        by_layer = {id(owner): r for owner, r in zip(owners, self.references)}
        self.first = min(i for i, layer in enumerate(layers) if id(layer) in by_layer)
        self.layers = layers
        self.owners = owners
        with torch.no_grad():
            # Linear layers: the reference rides along the input gradient's product.
            self.steps = [
                (
                    layer,
                    by_layer.get(id(layer)),
                    torch.cat([layer.weight, by_layer[id(layer)]], 1)
                    if isinstance(layer, nn.Linear) and id(layer) in by_layer
                    else None,
                )
                for layer in layers[self.first :]
            ]

    def __call__(self, x):
        with torch.no_grad():
            h = x.flatten(1) if self.flatten else x
            target = h
            if not self.flatten and h.device.type == "cpu":
                # oneDNN's CPU convolutions work in channels-last layout: fed NCHW, they
                # reorder inputs and outputs at every layer. A copy: for one channel,
                # .contiguous() would keep NCHW strides, which convolutions then follow.
                h = h.clone(memory_format=torch.channels_last)
            # Activations overwrite their input (an intermediate result, never x).
            for layer in self.layers[: self.first]:
                h = _forward(layer, h, in_place=h is not target)
            inputs = []
            for layer, _, _ in self.steps:
                inputs.append(h)
                h = _forward(layer, h, in_place=h is not target)
            difference = h - target
            error = difference.flatten(1).pow(2).mean(1)
            # d e_i / d recon_i. Cosines do not depend on the factor, but without it the
            # squared norms of large inputs' gradients would overflow float32 sooner.
            delta = difference * (2.0 / difference[0].numel())
            outputs = [*inputs[1:], h]
            terms = {}
            for i in range(len(inputs) - 1, -1, -1):
                (layer, reference, stacked), a = self.steps[i], inputs[i]
                if reference is None:
                    delta = _backward(layer, a, outputs[i], delta)
                else:
                    terms[id(layer)], delta = _constrained_step(
                        layer, a, delta, reference, i > 0, stacked
                    )
            terms = [terms[id(owner)] for owner in self.owners]
            return error, _mean_cosine(terms, self.references)


def _forward(layer, h, in_place=False):
    """``layer(h)``; with ``in_place``, ``h`` may be overwritten."""
    if in_place and isinstance(layer, nn.ReLU):
        # In place: saves allocating and faulting in a new tensor of activations; the
        # backward pass needs only the output.
        return h.relu_()
    if in_place and isinstance(layer, nn.Sigmoid):
        return h.sigmoid_()
    if not (isinstance(layer, nn.ConvTranspose2d) and layer.out_channels == 1):
        return layer(h)
    # PyTorch's CPU kernel is slow for a transposed convolution with one output channel
    # (the reference network's last layer on grey images: 12.8 ms for 256 rows, against
    # 2.8 ms this way, on the benchmark machine): a matrix product and fold instead.
    size = [
        (n - 1) * s - 2 * p + d * (k - 1) + o + 1
        for n, s, p, d, k, o in zip(
            h.shape[2:],
            layer.stride,
            layer.padding,
            layer.dilation,
            layer.kernel_size,
            layer.output_padding,
        )
    ]
    # bmm with the weight broadcast over the batch: a plain matmul would fold the batch
    # into one matrix product and copy ``h`` transposed to do so.
    weight = layer.weight.reshape(layer.in_channels, -1).T
    columns = torch.bmm(weight.expand(len(h), *weight.shape), h.flatten(2))
    unfold = (layer.kernel_size, layer.dilation, layer.padding, layer.stride)
    out = F.fold(columns, size, *unfold)
    return out if layer.bias is None else out + layer.bias[:, None, None]


def _backward(layer, a, y, delta):
    """Gradient with respect to ``layer``'s input ``a``, given its output ``y``."""
    if isinstance(layer, nn.ReLU):
        return torch.ops.aten.threshold_backward(delta, y, 0)
    if isinstance(layer, nn.Sigmoid):
        return torch.ops.aten.sigmoid_backward(delta, y)
    if isinstance(layer, nn.Identity):
        return delta
    if isinstance(layer, nn.Linear):
        return delta @ layer.weight
    if isinstance(layer, nn.ConvTranspose2d):
        return _transposed_conv_backward(layer, delta, layer.weight)
    return conv2d_input(a.shape, layer.weight, delta, layer.stride, layer.padding, layer.dilation)


def _constrained_step(layer, a, delta, reference, need_input_gradient, stacked=None):
    """Cosine terms of a constrained layer and, if needed, its input gradient, sharing work
    between the two: the reference rides along the input gradient's matrix product or
    convolution as extra output channels, giving the cosine's numerator; or, where the
    weight gradient is materialised anyway, the unfolded ``delta`` it needs also gives
    a transposed convolution's input gradient (a convolution of ``delta``). ``stacked``:
    a linear layer's weight and reference side by side, if prepared."""
    if not need_input_gradient:
        return _layer_terms(layer, a, delta, reference), None
    if isinstance(layer, nn.Linear):
        if stacked is None:
            stacked = torch.cat([layer.weight, reference], 1)
        both = delta @ stacked
        back, along_reference = both.split(layer.in_features, 1)
        return _layer_terms(layer, a, delta, reference, (along_reference * a).sum(1)), back
    if not isinstance(layer, nn.ConvTranspose2d):
        return _layer_terms(layer, a, delta, reference), _backward(layer, a, None, delta)
    left, patches_of, dot_of = _gradient_factors(layer, a, delta)
    polyphase = _polyphase_is_cheapest(layer, a, delta)
    if polyphase or _gram_is_cheaper(left.shape[1:], reference):
        both = _transposed_conv_backward(layer, delta, torch.cat([layer.weight, reference]))
        back, along_reference = both.split(len(reference), 1)
        dot = (along_reference * a).flatten(1).sum(1)
        if polyphase:
            return (dot, _polyphase_norms(layer, a, delta)), back
        return _factored_terms(left, patches_of, lambda r: dot, reference)[:2], back
    weight = layer.weight.reshape(len(reference), -1)
    dot, norm, back = _factored_terms(left, patches_of, dot_of, reference, weight)
    return (dot, norm), back.reshape(a.shape)


def _transposed_conv_backward(layer, delta, weight):
    return F.conv2d(delta, weight, None, layer.stride, layer.padding, layer.dilation)


# -- fast route: layer inputs and output gradients ------------------------------------


def _owner_layers(module):
    owners = []
    for name in module.constrained_names:
        owner, _, leaf = name.rpartition(".")
        owners.append(module.autoencoder.get_submodule(owner) if leaf == "weight" else None)
    return owners


def _supports_layer_route(module):
    owners = _owner_layers(module)
    if len({id(m) for m in owners}) != len(owners):
        return False
    return all(isinstance(layer, nn.Linear) or _plain_conv(layer) for layer in owners)


def _plain_conv(layer):
    return (
        isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d))
        and layer.groups == 1
        and layer.padding_mode == "zeros"
        and not isinstance(layer.padding, str)
    )


class _Recorder:
    """Forward hooks keeping each constrained layer's input and output."""

    def __init__(self, layers):
        self.layers = layers
        self.inputs = [None] * len(layers)
        self.outputs = [None] * len(layers)
        self.handles = [
            layer.register_forward_hook(self._hook(i)) for i, layer in enumerate(layers)
        ]

    def _hook(self, i):
        def hook(layer, args, output):
            if self.outputs[i] is not None:
                raise _LayerReused
            if not output.requires_grad:
                # Gradients are needed from here on only: start the graph at this output.
                output = output.detach().requires_grad_()
            self.inputs[i] = args[0].detach()
            self.outputs[i] = output
            return output

        return hook

    def remove(self):
        for handle in self.handles:
            handle.remove()


class _LayerReused(Exception):
    pass


def _layer_route(module, x):
    layers = _owner_layers(module)
    params = {name: p.detach() for name, p in module.autoencoder.named_parameters()}
    recorder = _Recorder(layers)
    try:
        with torch.enable_grad():
            recon = functional_call(module.autoencoder, params, (x,))
    except _LayerReused:
        recon = None
    finally:
        recorder.remove()
    if recon is None:
        return _vmap_route(module, x)
    with torch.enable_grad():
        error = _per_sample_error(recon, x)
        deltas = torch.autograd.grad(
            error.sum(), recorder.outputs, allow_unused=True, materialize_grads=True
        )
    references = module.reference_gradients()
    terms = [
        _layer_terms(layer, a, delta, reference)
        for layer, a, delta, reference in zip(layers, recorder.inputs, deltas, references)
    ]
    return error.detach(), _mean_cosine(terms, references)


# Per-sample temporaries (unfolded patches, gradients) are built a few rows at a time:
# kept small they stay in cache and are not page-faulted in afresh for every chunk.
_WORKSPACE_ELEMENTS = 2**20


def _layer_terms(layer, a, delta, reference, dot=None):
    """``<g_i, reference>`` and ``||g_i||`` for each sample's weight gradient ``g_i``.

    ``a`` is the layer's input and ``delta`` the gradient of ``e_i`` with respect to
    its output. For a linear layer applied once per sample, ``dot`` may give the
    numerator, computed along the way by the caller.
    """
    n = len(a)
    if isinstance(layer, nn.Linear) and a[0].numel() == layer.in_features:
        # One position: the gradient is an outer product and needs no materialising.
        a, delta = a.reshape(n, -1), delta.reshape(n, -1)
        if dot is None:
            dot = ((delta @ reference) * a).sum(1)
        return dot, delta.norm(dim=1) * a.norm(dim=1)
    left, patches_of, dot_of = _gradient_factors(layer, a, delta)
    if _polyphase_is_cheapest(layer, a, delta):
        return dot_of(reference), _polyphase_norms(layer, a, delta)
    return _factored_terms(left, patches_of, dot_of, reference)[:2]


def _gram_is_cheaper(left_shape, reference):
    """Whether Gram matrices give the gradient's norm in fewer multiply-adds than the
    gradient itself: ``L^2 (m + k)`` against ``m k L`` for ``m x k`` weights applied at
    ``L`` positions (few positions, many weights)."""
    m, n_positions = left_shape
    k = reference.numel() // m
    return n_positions * (m + k) < m * k


def _polyphase_applies(layer):
    return (
        isinstance(layer, nn.ConvTranspose2d)
        and tuple(layer.dilation) == (1, 1)
        and not any(k % s for k, s in zip(layer.kernel_size, layer.stride))
    )


def _polyphase_is_cheapest(layer, a, delta):
    """Whether :func:`_polyphase_norms` applies to ``layer`` and needs fewer
    multiply-adds than both the materialised gradient and the plain Gram matrices."""
    if not _polyphase_applies(layer):
        return False
    kernel, stride = layer.kernel_size, layer.stride
    m, out_channels = a.shape[1], delta.shape[1]
    n_positions = a[0, 0].numel()
    n_phases = stride[0] * stride[1]
    n_shifts = math.prod(k // s for k, s in zip(kernel, stride))
    n_phase_positions = math.prod(
        size + k // s - 1 for size, k, s in zip(a.shape[2:], kernel, stride)
    )
    k = out_channels * math.prod(kernel)
    polyphase = n_positions**2 * (m + n_shifts) + n_phase_positions**2 * n_phases * out_channels
    return polyphase < min(m * k * n_positions, n_positions**2 * (m + k))


def _polyphase_norms(layer, a, delta):
    """Per-sample norms of a transposed convolution's weight gradient, by phases.

    With kernel ``k = s t`` (stride ``s``), kernel offset ``s u + r`` (shift ``u < t``,
    phase ``r < s``) reads the padded ``delta`` at ``s (p + u) + r`` for input position
    ``p``: phase ``r`` of ``delta``, an image ``E_r`` on a grid of
    ``(h + t - 1) x (w + t - 1)`` positions ``q``, at ``q = p + u``. So
    ``||g||^2 = sum_u sum_{p, p'} Ga[p, p'] Ge[p + u, p' + u]`` with the Gram matrices
    ``Ga`` of the input over positions and ``Ge = sum_r E_r^T E_r``: no unfolded copy
    of ``delta``, ``s^2`` times fewer products than the plain Gram route.
    """
    n, _, height, width = a.shape
    (sy, sx), (ty, tx) = layer.stride, (k // s for k, s in zip(layer.kernel_size, layer.stride))
    qy, qx = height + ty - 1, width + tx - 1
    py, px = layer.padding
    channels = delta.shape[1] * sy * sx
    per_row = (height * width) ** 2 + (qy * qx) ** 2 + 2 * channels * qy * qx
    rows = max(1, _WORKSPACE_ELEMENTS // per_row)
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


def _factored_terms(left, patches_of, dot_of, reference, input_weight=None):
    """``<g_i, reference>`` and ``||g_i||`` for the gradients ``g_i = left_i @ patches_i.T``.

    ``left`` is ``(n, m, L)``, ``patches_of(rows)`` gives ``(rows, k, L)`` and
    ``dot_of(r)`` each ``<g_i, r>`` (see :func:`_gradient_factors`). The squared norm
    of ``g_i`` comes from ``g_i`` itself, which also gives the numerator, or, when
    cheaper, from two ``L x L`` Gram matrices: ``||A B^T||^2 = sum((A^T A) * (B^T B))``,
    the numerator then coming from ``dot_of``. Per-sample temporaries are built a few
    rows at a time. With ``input_weight`` (an ``(m', k)`` matrix), ``input_weight @
    patches_i`` is returned too: a transposed convolution's input gradient.
    """
    n, m, n_positions = left.shape
    flat_reference = reference.reshape(m, -1)
    k = flat_reference.shape[1]
    use_gram = _gram_is_cheaper((m, n_positions), reference)
    extra = 0 if input_weight is None else len(input_weight)
    per_row = n_positions * (max(k, n_positions if use_gram else m) + extra)
    rows = max(1, _WORKSPACE_ELEMENTS // per_row)
    dots, squared_norms = [], []
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
    return dot, torch.cat(squared_norms).sqrt(), products if input_weight is not None else None


def _gradient_factors(layer, a, delta):
    """``left`` ``(n, m, L)``, a function giving ``patches`` ``(rows, k, L)`` for a
    slice of rows, and one giving ``<g_i, r>`` for a tensor ``r`` shaped like the
    weight, where ``g_i = left_i @ patches_i.T``, reshaped as the weight, is sample
    ``i``'s weight gradient and ``L`` counts the positions the weight is applied at.
    ``<g_i, r>`` is the layer applied once more with ``r`` as its weight, paired with
    the sample's other factor."""
    if isinstance(layer, nn.Linear):  # applied along extra (sequence) dimensions
        n = len(a)
        a = a.reshape(n, -1, layer.in_features)
        delta = delta.reshape(n, -1, layer.out_features)
        return (
            delta.transpose(1, 2),
            lambda rows: a[rows].transpose(1, 2),
            lambda r: ((delta @ r) * a).sum((1, 2)),
        )
    unfold = (layer.kernel_size, layer.dilation, layer.padding, layer.stride)
    if isinstance(layer, nn.Conv2d):
        geometry = (layer.stride, layer.padding, layer.dilation)
        return (
            delta.flatten(2),
            lambda rows: F.unfold(a[rows], *unfold),
            lambda r: (F.conv2d(a, r, None, *geometry) * delta).flatten(1).sum(1),
        )
    # ConvTranspose2d is the adjoint of a convolution over its output: the roles of
    # input and output gradient swap.
    return (
        a.flatten(2),
        lambda rows: F.unfold(delta[rows], *unfold),
        lambda r: (_transposed_conv_backward(layer, delta, r) * a).flatten(1).sum(1),
    )


# -- general route: vmap over grad -----------------------------------------------------


def _vmap_route(module, x):
    autoencoder = module.autoencoder
    names = module.constrained_names
    frozen = {name: p.detach() for name, p in autoencoder.named_parameters() if name not in names}
    frozen.update(dict(autoencoder.named_buffers()))
    constrained = {name: p.detach() for name, p in autoencoder.named_parameters() if name in names}

    def error_of_one(theta, sample):
        recon = functional_call(autoencoder, {**frozen, **theta}, (sample[None],))
        error = _per_sample_error(recon, sample[None])[0]
        return error, error

    per_sample = vmap(grad(error_of_one, has_aux=True), in_dims=(None, 0))
    with torch.enable_grad():
        gradients, error = per_sample(constrained, x)
    references = module.reference_gradients()
    terms = [
        (gradients[name].flatten(1) @ r.flatten(), gradients[name].flatten(1).norm(dim=1))
        for name, r in zip(names, references)
    ]
    return error.detach(), _mean_cosine(terms, references)
