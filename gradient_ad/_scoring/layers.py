"""One scoring rule per layer type, looked up by exact type.

A rule says how the scoring routes (:mod:`~gradient_ad._scoring.routes`) treat a
layer: its forward pass and input gradient (for the hand-written backward pass of
the ``chain`` route) and, for a layer with a weight, the per-sample factors of its
weight gradient, the cosine terms built from them, and the fused step that shares
work between those terms and the input gradient. Rules are looked up by the layer's
exact type: a subclass may override ``forward``, so it gets no rule and its network
goes to a route that needs none. Adding a layer type is one :func:`register_rule`
call plus one entry in the agreement test ``tests/test_scoring_zoo.py``.
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.grad import conv2d_input

from .norms import (
    NORM_METHODS,
    factored_terms,
    gram_is_cheaper,
    polyphase_applies,
    polyphase_is_cheapest,
    polyphase_norms,
)

__all__ = ["LayerRule", "WeightRule", "register_rule", "rule_for", "unsupported"]

_RULES = {}


def register_rule(layer_type, rule):
    """Use ``rule`` (a :class:`LayerRule`) for layers of exactly ``layer_type``."""
    if not isinstance(rule, LayerRule):
        raise TypeError(f"rule must be a LayerRule, got {type(rule).__name__}")
    _RULES[layer_type] = rule
    return rule


def rule_for(layer):
    """The rule for ``layer``'s exact type, or ``None``."""
    return _RULES.get(type(layer))


def unsupported(layer, need_weight=False):
    """Why no rule handles ``layer`` (``None`` when one does)."""
    rule = rule_for(layer)
    if rule is None:
        return f"{type(layer).__name__} has no scoring rule (rules match exact types)"
    if need_weight and not isinstance(rule, WeightRule):
        return f"{type(layer).__name__} has no weight gradient rule"
    return rule.unsupported(layer)


class LayerRule:
    """Forward pass and input gradient of one layer type."""

    def unsupported(self, layer):
        """Why this rule cannot handle this layer's settings (``None`` if it can)."""
        return None

    def forward(self, layer, h, in_place=False):
        """``layer(h)``; with ``in_place``, ``h`` may be overwritten."""
        return layer(h)

    def input_gradient(self, layer, a, y, delta):
        """Gradient with respect to the input ``a``, given the output ``y`` and the
        gradient ``delta`` with respect to it."""
        raise NotImplementedError


class _ReLU(LayerRule):
    def forward(self, layer, h, in_place=False):
        # In place: saves allocating and faulting in a new tensor of activations; the
        # backward pass needs only the output. Never in place otherwise, whatever
        # layer.inplace says: h may be the caller's input.
        return h.relu_() if in_place else torch.relu(h)

    def input_gradient(self, layer, a, y, delta):
        return torch.ops.aten.threshold_backward(delta, y, 0)


class _Sigmoid(LayerRule):
    def forward(self, layer, h, in_place=False):
        return h.sigmoid_() if in_place else torch.sigmoid(h)

    def input_gradient(self, layer, a, y, delta):
        return torch.ops.aten.sigmoid_backward(delta, y)


class _Identity(LayerRule):
    def forward(self, layer, h, in_place=False):
        return h

    def input_gradient(self, layer, a, y, delta):
        return delta


class WeightRule(LayerRule):
    """A layer with a weight whose per-sample gradients can be scored.

    ``weight_function`` is the torch function the weight is passed to by the layer's
    ``forward``: a constrained weight received by that function once, and by nothing
    else, is scored by the fast routes.
    """

    weight_function = None

    def factors(self, layer, a, delta):
        """``left`` ``(n, m, L)``, a function giving ``patches`` ``(rows, k, L)`` for a
        slice of rows, and one giving ``<g_i, r>`` for a tensor ``r`` shaped like the
        weight, where ``g_i = left_i @ patches_i.T``, reshaped as the weight, is sample
        ``i``'s weight gradient and ``L`` counts the positions the weight is applied
        at. ``<g_i, r>`` is the layer applied once more with ``r`` as its weight, paired
        with the sample's other factor."""
        raise NotImplementedError

    def use_polyphase(self, layer, a, delta, norms):
        return False

    def terms(self, layer, a, delta, reference, norms="auto", dot=None):
        """``<g_i, reference>`` and ``||g_i||`` of each sample's weight gradient ``g_i``,
        from the layer's input ``a`` and the gradient ``delta`` of ``e_i`` with respect
        to its output. ``dot`` may give the numerator, computed along the way."""
        left, patches_of, dot_of = self.factors(layer, a, delta)
        if self.use_polyphase(layer, a, delta, norms):
            return dot_of(reference), polyphase_norms(
                a, delta, layer.stride, layer.padding, layer.kernel_size
            )
        use_gram = _use_gram(left.shape[1], left.shape[2], reference.numel(), norms)
        return factored_terms(left, patches_of, dot_of, reference, use_gram)[:2]

    def dots(self, layer, a, delta, directions):
        """``<g_i, d_j>`` ``(n, P)`` for the ``P`` tensors ``d_j`` shaped like the
        weight, stacked as ``directions``: the layer applied once more with each as
        its weight, paired with the sample's other factor."""
        _, _, dot_of = self.factors(layer, a, delta)
        return torch.stack([dot_of(d) for d in directions], 1)

    def prepare(self, layer, reference):
        """What :meth:`step` can reuse for every batch (``None``: nothing)."""
        return None

    def step(self, layer, a, delta, reference, need_input_gradient, prepared=None, norms="auto"):
        """:meth:`terms` and, if needed, the input gradient (else ``None``)."""
        terms = self.terms(layer, a, delta, reference, norms)
        return terms, self.input_gradient(layer, a, None, delta) if need_input_gradient else None


def _use_gram(m, n_positions, n_weights, norms):
    if norms not in NORM_METHODS:
        raise ValueError(f"norms must be one of {NORM_METHODS}, got {norms!r}")
    if norms == "auto":
        return gram_is_cheaper(m, n_positions, n_weights)
    return norms == "gram"


class _Linear(WeightRule):
    weight_function = F.linear

    def factors(self, layer, a, delta):
        # Applied along extra (sequence) dimensions: a sum of outer products.
        n = len(a)
        a = a.reshape(n, -1, layer.in_features)
        delta = delta.reshape(n, -1, layer.out_features)
        return (
            delta.transpose(1, 2),
            lambda rows: a[rows].transpose(1, 2),
            lambda r: ((delta @ r) * a).sum((1, 2)),
        )

    def terms(self, layer, a, delta, reference, norms="auto", dot=None):
        n = len(a)
        if a[0].numel() != layer.in_features:
            return super().terms(layer, a, delta, reference, norms)
        # One position: the gradient is an outer product and needs no materialising.
        a, delta = a.reshape(n, -1), delta.reshape(n, -1)
        if dot is None:
            dot = ((delta @ reference) * a).sum(1)
        return dot, delta.norm(dim=1) * a.norm(dim=1)

    def input_gradient(self, layer, a, y, delta):
        return delta @ layer.weight

    def prepare(self, layer, reference):
        # The reference rides along the input gradient's product as extra columns.
        return torch.cat([layer.weight, reference], 1)

    def step(self, layer, a, delta, reference, need_input_gradient, prepared=None, norms="auto"):
        if not need_input_gradient or a.ndim != 2:
            return super().step(layer, a, delta, reference, need_input_gradient, prepared, norms)
        stacked = self.prepare(layer, reference) if prepared is None else prepared
        back, along_reference = (delta @ stacked).split(layer.in_features, 1)
        return self.terms(layer, a, delta, reference, norms, (along_reference * a).sum(1)), back


def _plain_conv_settings(layer):
    if layer.groups != 1:
        return f"{type(layer).__name__} with groups={layer.groups}"
    if layer.padding_mode != "zeros":
        return f"{type(layer).__name__} with padding_mode={layer.padding_mode!r}"
    if isinstance(layer.padding, str):
        return f"{type(layer).__name__} with padding={layer.padding!r}"
    return None


def _unfold_args(layer):
    return layer.kernel_size, layer.dilation, layer.padding, layer.stride


class _Conv2d(WeightRule):
    weight_function = torch.conv2d

    def unsupported(self, layer):
        return _plain_conv_settings(layer)

    def factors(self, layer, a, delta):
        geometry = (layer.stride, layer.padding, layer.dilation)
        return (
            delta.flatten(2),
            lambda rows: F.unfold(a[rows], *_unfold_args(layer)),
            lambda r: (F.conv2d(a, r, None, *geometry) * delta).flatten(1).sum(1),
        )

    def input_gradient(self, layer, a, y, delta):
        return conv2d_input(
            a.shape, layer.weight, delta, layer.stride, layer.padding, layer.dilation
        )


class _ConvTranspose2d(WeightRule):
    weight_function = torch.conv_transpose2d

    def unsupported(self, layer):
        return _plain_conv_settings(layer)

    def forward(self, layer, h, in_place=False):
        if layer.out_channels != 1:
            return layer(h)
        # PyTorch's CPU kernel is slow for a transposed convolution with one output
        # channel (the reference network's last layer on grey images: 12.8 ms for 256
        # rows, against 2.8 ms this way, on the benchmark machine): a matrix product
        # and fold instead.
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
        # bmm with the weight broadcast over the batch: a plain matmul would fold the
        # batch into one matrix product and copy ``h`` transposed to do so.
        weight = layer.weight.reshape(layer.in_channels, -1).T
        columns = torch.bmm(weight.expand(len(h), *weight.shape), h.flatten(2))
        out = F.fold(columns, size, *_unfold_args(layer))
        return out if layer.bias is None else out + layer.bias[:, None, None]

    def factors(self, layer, a, delta):
        # The adjoint of a convolution over its output: the roles of input and output
        # gradient swap.
        return (
            a.flatten(2),
            lambda rows: F.unfold(delta[rows], *_unfold_args(layer)),
            lambda r: (_adjoint(layer, delta, r) * a).flatten(1).sum(1),
        )

    def use_polyphase(self, layer, a, delta, norms):
        if not polyphase_applies(layer.stride, layer.dilation, layer.kernel_size):
            return False
        if norms == "auto":
            return polyphase_is_cheapest(layer.stride, layer.kernel_size, a, delta)
        return norms == "polyphase"

    def input_gradient(self, layer, a, y, delta):
        return _adjoint(layer, delta, layer.weight)

    def step(self, layer, a, delta, reference, need_input_gradient, prepared=None, norms="auto"):
        # Where the weight gradient is materialised anyway, the unfolded ``delta`` it
        # needs also gives the input gradient; otherwise the reference rides along the
        # input gradient's convolution as extra output channels, giving the numerator.
        if not need_input_gradient:
            return self.terms(layer, a, delta, reference, norms), None
        left, patches_of, dot_of = self.factors(layer, a, delta)
        polyphase = self.use_polyphase(layer, a, delta, norms)
        use_gram = _use_gram(left.shape[1], left.shape[2], reference.numel(), norms)
        if polyphase or use_gram:
            both = _adjoint(layer, delta, torch.cat([layer.weight, reference]))
            back, along_reference = both.split(len(reference), 1)
            dot = (along_reference * a).flatten(1).sum(1)
            if polyphase:
                norm = polyphase_norms(a, delta, layer.stride, layer.padding, layer.kernel_size)
                return (dot, norm), back
            terms = factored_terms(left, patches_of, lambda r: dot, reference, True)
            return terms[:2], back
        weight = layer.weight.reshape(len(reference), -1)
        dot, norm, back = factored_terms(left, patches_of, dot_of, reference, False, weight)
        return (dot, norm), back.reshape(a.shape)


def _adjoint(layer, delta, weight):
    """A transposed convolution's input gradient (a convolution of ``delta``)."""
    return F.conv2d(delta, weight, None, layer.stride, layer.padding, layer.dilation)


register_rule(nn.ReLU, _ReLU())
register_rule(nn.Sigmoid, _Sigmoid())
register_rule(nn.Identity, _Identity())
register_rule(nn.Linear, _Linear())
register_rule(nn.Conv2d, _Conv2d())
register_rule(nn.ConvTranspose2d, _ConvTranspose2d())
