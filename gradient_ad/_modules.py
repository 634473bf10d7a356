"""Autoencoders used by :class:`~gradient_ad.GradientAnomalyDetector`.

Both networks expose ``encoder`` and ``decoder`` submodules; by default GradCon
constrains the weight tensors of the decoder (see :func:`constrained_parameter_names`).
"""

import math

import torch
from torch import nn

from ._gradcon import reconstruct

__all__ = ["ConvAutoencoder", "MLPAutoencoder", "constrained_parameter_names"]

# The reference network of Kwon et al. (2020): kernel 4, stride 2 everywhere.
_KERNEL = 4
_STRIDE = 2
_ENCODER_PADDING = 2
_REFERENCE_DECODER_PADDINGS = (2, 1, 2, 1)


def _conv_out(size, padding=_ENCODER_PADDING):
    return (size + 2 * padding - _KERNEL) // _STRIDE + 1


def _transpose_out(size, padding, output_padding=0):
    return (size - 1) * _STRIDE - 2 * padding + _KERNEL + output_padding


def _decoder_geometry(latent, target, n_layers):
    """Paddings and output paddings that take ``latent`` back to ``target``.

    The reference paddings are used when they land exactly on ``target`` (they do for
    28 pixels, so the reference network is reproduced); otherwise every layer doubles
    towards ``ceil(target / 2**k)`` and the last one lands on ``target``.
    """
    if n_layers == len(_REFERENCE_DECODER_PADDINGS):
        size = latent
        for padding in _REFERENCE_DECODER_PADDINGS:
            size = _transpose_out(size, padding)
        if size == target:
            return [(p, 0) for p in _REFERENCE_DECODER_PADDINGS]
    geometry = []
    size = latent
    for k in range(n_layers - 1, -1, -1):
        goal = math.ceil(target / 2**k)
        output_padding = goal % 2
        padding = (2 * size + 2 + output_padding - goal) // 2
        geometry.append((padding, output_padding))
        size = _transpose_out(size, padding, output_padding)
    if size != target:  # pragma: no cover - guarded by the encoder depth rule
        raise ValueError(f"cannot build a decoder from {latent} back to {target} pixels")
    return geometry


class ConvAutoencoder(nn.Module):
    """Convolutional autoencoder of the GradCon reference code, for any image size.

    The encoder stacks up to four ``Conv2d(kernel 4, stride 2, padding 2)`` + ReLU
    layers (fewer for images smaller than 16 pixels, so that each layer still shrinks
    the image); the latent code is the last feature map, with no dense layer. The
    decoder mirrors it with ``ConvTranspose2d(kernel 4, stride 2)`` layers, ReLU in
    between. For 28 x 28 inputs and the default channels this is exactly the
    reference network (about 231k parameters for one channel).

    Parameters
    ----------
    input_shape : tuple of int
        ``(channels, height, width)`` of one sample.
    channels : tuple of int, default=(32, 32, 64, 64)
        Output channels of the encoder layers; the decoder uses them in reverse.
    sigmoid_output : bool, default=True
        Whether to end with a sigmoid, for inputs scaled to [0, 1].
    """

    def __init__(self, input_shape, channels=(32, 32, 64, 64), sigmoid_output=True):
        super().__init__()
        n_channels, height, width = (int(s) for s in input_shape)
        self.input_shape = (n_channels, height, width)
        sizes = [(height, width)]
        for _ in channels:
            h, w = (_conv_out(s) for s in sizes[-1])
            if (h, w) == sizes[-1] and len(sizes) > 1:
                break
            sizes.append((h, w))
        n_layers = len(sizes) - 1
        widths = [n_channels, *channels[:n_layers]]

        encoder = []
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            encoder += [nn.Conv2d(c_in, c_out, _KERNEL, _STRIDE, _ENCODER_PADDING), nn.ReLU()]
        self.encoder = nn.Sequential(*encoder)

        rows = _decoder_geometry(sizes[-1][0], height, n_layers)
        cols = _decoder_geometry(sizes[-1][1], width, n_layers)
        decoder = []
        reversed_widths = widths[::-1]
        for i, (c_in, c_out) in enumerate(zip(reversed_widths[:-1], reversed_widths[1:])):
            decoder.append(
                nn.ConvTranspose2d(
                    c_in,
                    c_out,
                    _KERNEL,
                    _STRIDE,
                    padding=(rows[i][0], cols[i][0]),
                    output_padding=(rows[i][1], cols[i][1]),
                )
            )
            decoder.append(nn.ReLU() if i < n_layers - 1 else _output_activation(sigmoid_output))
        self.decoder = nn.Sequential(*decoder)

    def forward(self, x):
        return self.decoder(self.encoder(x))


class MLPAutoencoder(nn.Module):
    """Fully connected autoencoder for tables (or flattened images).

    Parameters
    ----------
    input_shape : tuple of int
        Shape of one sample; it is flattened on the way in and restored on the way out.
    hidden_sizes : tuple of int
        Widths of the encoder layers, the last one being the code; the decoder mirrors
        them. ReLU between layers.
    sigmoid_output : bool, default=False
        Whether to end with a sigmoid, for inputs scaled to [0, 1].
    """

    def __init__(self, input_shape, hidden_sizes=(64, 32, 16), sigmoid_output=False):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        n_features = math.prod(self.input_shape)
        widths = [n_features, *(int(h) for h in hidden_sizes)]
        self.encoder = nn.Sequential(*_dense_stack(widths, last=nn.ReLU()))
        self.decoder = nn.Sequential(
            *_dense_stack(widths[::-1], last=_output_activation(sigmoid_output))
        )

    def forward(self, x):
        code = self.encoder(x.flatten(1))
        return self.decoder(code).view(x.shape)


def _dense_stack(widths, last):
    layers = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers += [nn.Linear(n_in, n_out), nn.ReLU() if i < len(widths) - 2 else last]
    return layers


def _output_activation(sigmoid):
    return nn.Sigmoid() if sigmoid else nn.Identity()


def constrained_parameter_names(module, constrained="decoder"):
    """Names of the parameters whose gradients GradCon aligns.

    Parameters
    ----------
    module : torch.nn.Module
        The autoencoder.
    constrained : {'decoder', 'all'} or list of str, default='decoder'
        ``'decoder'``: the weight tensors (parameters named ``weight`` with at least two
        dimensions, so no biases or normalisation scales) of ``module.decoder`` that are
        trained (``requires_grad``), as in the paper. ``'all'``: those weight tensors in
        the whole network. A list: exactly these parameter names of ``module``, none of
        them frozen. A parameter shared by two modules is named after the first.

    Returns
    -------
    names : list of str
        Parameter names of ``module``, in registration order.
    """
    params = dict(module.named_parameters())
    if isinstance(constrained, str):
        if constrained == "decoder":
            if not isinstance(getattr(module, "decoder", None), nn.Module):
                raise ValueError(
                    "constrained='decoder' needs the network to have a `decoder` "
                    f"submodule; {type(module).__name__} has none. Give the parameter "
                    "names to constrain as a list instead."
                )
            prefix = "decoder."
        elif constrained == "all":
            prefix = ""
        else:
            raise ValueError(
                f"constrained must be 'decoder', 'all' or a list of parameter names, "
                f"got {constrained!r}"
            )
        # Frozen weights are left out: GradCon constrains the gradients it trains with.
        names = [
            name
            for name, p in params.items()
            if name.startswith(prefix)
            and name.rsplit(".", 1)[-1] == "weight"
            and p.ndim >= 2
            and p.requires_grad
        ]
    else:
        names = list(constrained)
        unknown = [name for name in names if name not in params]
        if unknown:
            raise ValueError(
                f"constrained names {unknown} are not parameters of {type(module).__name__}; "
                f"it has {list(params)}"
            )
        frozen = [name for name in names if not params[name].requires_grad]
        if frozen:
            raise ValueError(
                f"constrained parameters {frozen} are frozen (requires_grad=False): GradCon "
                "constrains the gradients it trains with. Unfreeze them or leave them out."
            )
    if not names:
        raise ValueError(
            f"no parameters to constrain were found with constrained={constrained!r} (frozen "
            "weights, and weights shared with a module registered earlier, are not counted); "
            "give the parameter names to constrain as a list"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"constrained names repeat: {names}")
    return names


class GradConModule(nn.Module):
    """An autoencoder together with GradCon's reference gradients.

    The reference gradients (the running mean over all training iterations of the
    constrained tensors' training gradients, see
    :class:`~gradient_ad._net.GradConNet`) and the number of iterations averaged are
    buffers, so ``state_dict``, pickling and skorch's
    save/load carry them and device moves follow the parameters.

    Parameters
    ----------
    autoencoder : torch.nn.Module
        Maps a batch to a reconstruction of the same shape.
    constrained : {'decoder', 'all'} or list of str, default='decoder'
        Which parameters are constrained; see :func:`constrained_parameter_names`.
    pretext : {None, 'rotation'}, default=None
        The pretext task (:mod:`gradient_ad._pretexts`) whose modules sit beside the
        autoencoder.
    **pretext_modules : torch.nn.Module
        The task's modules, by attribute name (its ``modules`` builds them; for
        ``'rotation'``, ``pretext_encoder`` and ``pretext_head``). They are part of
        the module (saved, loaded, moved with it) but not of the autoencoder:
        ``constrained`` never names them.
    """

    def __init__(
        self,
        autoencoder,
        constrained="decoder",
        pretext=None,
        **pretext_modules,
    ):
        super().__init__()
        self.autoencoder = autoencoder
        self.constrained_names = constrained_parameter_names(autoencoder, constrained)
        self.pretext = pretext
        for name, part in pretext_modules.items():
            setattr(self, name, part)
        params = dict(autoencoder.named_parameters())
        for i, name in enumerate(self.constrained_names):
            self.register_buffer(f"reference_{i}", torch.zeros_like(params[name]))
        self.register_buffer("n_reference_updates", torch.zeros((), dtype=torch.long))

    def forward(self, x):
        return reconstruct(self.autoencoder, x)

    def constrained_parameters(self):
        params = dict(self.autoencoder.named_parameters())
        return [params[name] for name in self.constrained_names]

    def reference_gradients(self):
        return [getattr(self, f"reference_{i}") for i in range(len(self.constrained_names))]

    @property
    def dtype(self):
        """The dtype the network computes in, which scoring converts inputs to: its
        reference gradients' (fit checked that all its parameters share it)."""
        return self.reference_gradients()[0].dtype

    @torch.no_grad()
    def update_reference(self, gradients):
        """Fold one iteration's gradients into the cumulative mean."""
        self.n_reference_updates += 1
        weight = 1.0 / self.n_reference_updates.item()
        for reference, gradient in zip(self.reference_gradients(), gradients):
            reference.add_(gradient.detach() - reference, alpha=weight)
