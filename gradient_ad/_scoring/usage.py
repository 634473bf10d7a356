"""Which operations receive each constrained tensor during a forward pass.

The fast routes differentiate a constrained weight through its layer only, so they
are exact only when the layer's own call is the weight's one use. Module structure
cannot tell: a tied decoder (``F.linear(h, encoder.weight.t())``), a subclass whose
``forward`` rescales its weight, or a layer called twice all look like plain layers.
A :class:`~torch.overrides.TorchFunctionMode` sees every torch function a tensor is
passed to, whichever module or function does it.
"""

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from .._gradcon import reconstruct

__all__ = ["describe", "weight_uses"]

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
    tensors = module.constrained_parameters()
    recorder = _UseRecorder(tensors)
    with torch.no_grad(), recorder:
        reconstruct(module.autoencoder, x)
    return recorder.uses


def describe(uses):
    """``'linear, t'``: the functions in a use list, for messages."""
    return ", ".join(_name(func) or repr(func) for func in uses) or "nothing"
