"""Per-sample GradCon score terms, batched.

For each sample ``x_i`` GradCon needs its reconstruction error
``e_i = mean((AE(x_i) - x_i) ** 2)`` and the mean, over the constrained tensors, of the
cosine between ``de_i/dW_l`` and the reference gradient ``gbar_l``.

Fast path: one forward pass records each constrained layer's input ``a_i`` and output
``y_i``; one backward pass of ``sum_i e_i`` to those outputs gives every ``de_i/dy_i`` at
once (samples do not interact in eval mode). A layer's per-sample weight gradient is then
a product of the two: an outer product for a linear layer (whose cosine needs no
materialised gradient) and a batched matrix product with unfolded tensors for
convolutions. Only the part of the network after the first constrained layer is
differentiated. Any other constrained tensor falls back to ``torch.func.vmap`` over
``torch.func.grad``, which gives the same numbers more slowly.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

__all__ = ["score_terms", "per_sample_terms"]

_EPS = 1e-8  # as in torch.nn.functional.cosine_similarity


def score_terms(module, X, batch_size, device="cpu"):
    """Reconstruction error and gradient alignment of every row of ``X``.

    Rows are processed in chunks of ``batch_size``; every chunk is padded to exactly
    ``batch_size`` rows so that a sample's score does not depend on how many other
    samples share its chunk (the same kernels run whatever the number of rows).

    Parameters
    ----------
    module : GradConModule
        Trained module, in eval mode.
    X : ndarray of shape (n_samples, *input_shape)
        Inputs, already in the module's dtype.
    batch_size : int
        Rows per chunk.
    device : str or torch.device
        Where to compute.

    Returns
    -------
    reconstruction_error, alignment : ndarray of shape (n_samples,)
        ``e_i`` and ``mean_l cos(de_i/dW_l, gbar_l)``, as float64.
    """
    n_samples = len(X)
    errors = np.empty(n_samples)
    alignments = np.empty(n_samples)
    dtype = next(iter(module.parameters())).dtype
    for start in range(0, n_samples, batch_size):
        chunk = torch.as_tensor(X[start : start + batch_size], dtype=dtype)
        n_rows = len(chunk)
        if n_rows < batch_size:
            chunk = torch.cat([chunk, chunk.new_zeros((batch_size - n_rows, *chunk.shape[1:]))])
        error, alignment = per_sample_terms(module, chunk.to(device))
        errors[start : start + n_rows] = error[:n_rows].double().cpu().numpy()
        alignments[start : start + n_rows] = alignment[:n_rows].double().cpu().numpy()
    return errors, alignments


def per_sample_terms(module, x):
    """``(e_i, mean_l cos_il)`` for one batch tensor, by the fastest applicable route."""
    if _supports_layer_route(module):
        return _layer_route(module, x)
    return _vmap_route(module, x)


def _per_sample_error(recon, x):
    return (recon - x).pow(2).flatten(1).mean(1)


def _cosine(dot, norm, reference):
    return dot / (norm * reference.norm()).clamp_min(_EPS)


# -- fast route: layer inputs and output gradients ------------------------------------


def _owner_layers(module):
    layers = dict(module.autoencoder.named_modules())
    owners = []
    for name in module.constrained_names:
        owner, _, leaf = name.rpartition(".")
        owners.append(layers.get(owner) if leaf == "weight" else None)
    return owners


def _supports_layer_route(module):
    owners = _owner_layers(module)
    if len({id(m) for m in owners}) != len(owners):
        return False
    for layer in owners:
        if isinstance(layer, nn.Linear):
            continue
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            if (
                layer.groups == 1
                and layer.padding_mode == "zeros"
                and not isinstance(layer.padding, str)
            ):
                continue
        return False
    return True


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
    cosines = [
        _layer_cosine(layer, a, delta, reference)
        for layer, a, delta, reference in zip(
            layers, recorder.inputs, deltas, module.reference_gradients()
        )
    ]
    return error.detach(), torch.stack(cosines).mean(0)


def _layer_cosine(layer, a, delta, reference):
    n = len(a)
    if isinstance(layer, nn.Linear):
        a = a.reshape(n, -1, layer.in_features)
        delta = delta.reshape(n, -1, layer.out_features)
        if a.shape[1] == 1:  # outer product: cosine without the gradient itself
            a, delta = a[:, 0], delta[:, 0]
            dot = ((delta @ reference) * a).sum(1)
            norm = delta.norm(dim=1) * a.norm(dim=1)
            return _cosine(dot, norm, reference)
        gradient = delta.transpose(1, 2) @ a
    elif isinstance(layer, nn.Conv2d):
        unfolded = F.unfold(a, layer.kernel_size, layer.dilation, layer.padding, layer.stride)
        gradient = delta.flatten(2) @ unfolded.transpose(1, 2)
    else:  # ConvTranspose2d: the adjoint of a convolution over the output
        unfolded = F.unfold(delta, layer.kernel_size, layer.dilation, layer.padding, layer.stride)
        gradient = a.flatten(2) @ unfolded.transpose(1, 2)
    gradient = gradient.reshape(n, -1)
    return _cosine(gradient @ reference.flatten(), gradient.norm(dim=1), reference)


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
    cosines = [
        _cosine(
            gradients[name].flatten(1) @ reference.flatten(),
            gradients[name].flatten(1).norm(dim=1),
            reference,
        )
        for name, reference in zip(names, module.reference_gradients())
    ]
    return error.detach(), torch.stack(cosines).mean(0)
