"""Which operations receive each constrained tensor during a forward pass.

The fast routes differentiate a constrained weight through its layer only, so they
are exact only when the layer's own call is the weight's one use. Module structure
cannot tell: a tied decoder (``F.linear(h, encoder.weight.t())``), a subclass whose
``forward`` rescales its weight, or a layer called twice all look like plain layers.
A :class:`~torch.overrides.TorchFunctionMode` sees every torch function a tensor is
passed to, whichever module or function does it.

That forward pass costs about a forward pass of one row, a third of what scoring one
row costs otherwise. For the package's own networks, left as built, the structure does
tell: :func:`plain_package_uses` gives the census's answer without running it, and
anything it cannot vouch for (a hook, a replaced ``forward``, a tied weight, a layer in
two places, a layer of another type) runs the census.
"""

import torch
from torch import nn
from torch.nn.modules import module as _torch_module
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from .._gradcon import reconstruct
from .._modules import ConvAutoencoder, MLPAutoencoder
from .layers import WeightRule, rule_for

__all__ = ["census", "describe", "plain_package_uses", "weight_uses"]

# The layers the package's networks are built from: their forward passes each weight
# once to its layer's function, and nothing else touches it.
_PLAIN_LAYERS = frozenset(
    {nn.Sequential, nn.Linear, nn.Conv2d, nn.ConvTranspose2d, nn.ReLU, nn.Sigmoid, nn.Identity}
)

# Reading a tensor's metadata is not a use of its values.
_METADATA = frozenset(
    {
        "dim",
        "device",
        "dtype",
        "element_size",
        "grad",
        "grad_fn",
        "is_contiguous",
        "is_cuda",
        "is_floating_point",
        "is_leaf",
        "layout",
        "ndim",
        "ndimension",
        "nelement",
        "numel",
        "requires_grad",
        "shape",
        "size",
        "stride",
        "__len__",
        "_version",
    }
)


def _name(func):
    """``shape`` for ``Tensor.shape.__get__``, ``size`` for ``Tensor.size``."""
    owner = getattr(func, "__self__", None)
    if getattr(func, "__name__", None) == "__get__" and owner is not None:
        return getattr(owner, "__name__", "")
    return getattr(func, "__name__", "")


class _UseRecorder(TorchFunctionMode):
    def __init__(self, tensors):
        super().__init__()
        self.index = {id(t): i for i, t in enumerate(tensors)}
        self.uses = [[] for _ in tensors]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _name(func) not in _METADATA:
            for leaf in _tensors(args, kwargs):
                i = self.index.get(id(leaf))
                if i is not None:
                    self.uses[i].append(func)
        return func(*args, **kwargs)


def _tensors(args, kwargs):
    """The tensors among the arguments, however deeply nested (a flat scan first: it
    is most of them, and pytree's walk is slow enough to show in small scoring calls)."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, (list, tuple)) and all(
            isinstance(item, torch.Tensor) or not isinstance(item, (list, tuple, dict))
            for item in value
        ):
            yield from (item for item in value if isinstance(item, torch.Tensor))
        elif isinstance(value, (list, tuple, dict)):
            yield from (leaf for leaf in tree_leaves(value) if isinstance(leaf, torch.Tensor))


def weight_uses(module, x):
    """For each constrained tensor of ``module`` (a GradConModule), the list of torch
    functions it was passed to while the autoencoder reconstructed ``x``, in order."""
    uses = plain_package_uses(module)
    return census(module, x) if uses is None else uses


def census(module, x):
    """:func:`weight_uses` found by running the forward pass under the recorder."""
    tensors = module.constrained_parameters()
    recorder = _UseRecorder(tensors)
    with torch.no_grad(), recorder:
        reconstruct(module.autoencoder, x)
    return recorder.uses


def describe(uses):
    """``'linear, t'``: the functions in a use list, for messages."""
    return ", ".join(_name(func) or repr(func) for func in uses) or "nothing"


def plain_package_uses(module):
    """What :func:`weight_uses` would find for a package network left as built, read
    from its structure; ``None`` when the structure cannot vouch for it.

    The autoencoder must be exactly a :class:`~gradient_ad.ConvAutoencoder` or
    :class:`~gradient_ad.MLPAutoencoder` whose modules all have exact types of the
    layers they are built from, each in one place, with no ``forward`` replaced on an
    instance, no forward hooks (on a module or global), no parameter in two places, and
    every constrained tensor the ``weight`` of its layer. Their forward passes then pass
    each such weight once, to its layer's function.
    """
    autoencoder = module.autoencoder
    if type(autoencoder) not in (ConvAutoencoder, MLPAutoencoder):
        return None
    if _torch_module._global_forward_hooks or _torch_module._global_forward_pre_hooks:
        return None
    modules = [m for _, m in autoencoder.named_modules(remove_duplicate=False)]
    if len({id(m) for m in modules}) != len(modules):
        return None
    for m in modules:
        if m is not autoencoder and type(m) not in _PLAIN_LAYERS:
            return None
        if "forward" in m.__dict__ or m._forward_hooks or m._forward_pre_hooks:
            return None
    params = [p for _, p in autoencoder.named_parameters(remove_duplicate=False)]
    if len({id(p) for p in params}) != len(params):
        return None
    uses = []
    for name in module.constrained_names:
        owner, _, leaf = name.rpartition(".")
        rule = rule_for(autoencoder.get_submodule(owner)) if leaf == "weight" else None
        if not isinstance(rule, WeightRule):
            return None
        uses.append([rule.weight_function])
    return uses
