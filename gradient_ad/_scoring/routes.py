"""The routes to per-sample GradCon terms, behind one interface.

Every route maps a batch ``x`` to ``(e_i, mean_l cos(de_i/dW_l, gbar_l))`` and gives
the same numbers (to rounding); each owns its eligibility test (:meth:`Route.refusal`,
which says why it cannot score a network) and its chunk cap. Fastest first:

- ``chain``: the package's own networks (exact types), a chain of layers that all
  have a rule (:mod:`~gradient_ad._scoring.layers`). One forward pass without autograd
  keeps each layer's input; a hand-written backward pass from the output to the first
  constrained layer gives each constrained layer's output gradient ``delta_i``, the
  reference riding along the backward products as extra output channels.
- ``hooks``: other networks whose constrained tensors are weights of layers with a
  rule. Forward hooks record each constrained layer's input and output, and one
  autograd backward pass of ``sum_i e_i`` (samples do not interact in eval mode)
  gives every ``delta_i``; only the part after the first constrained layer is
  differentiated.
- ``vmap``: ``torch.func.vmap`` over ``torch.func.grad``, for any network.

The first two, the fast routes, need each constrained weight to be used once, by its
own layer's call; :func:`~gradient_ad._scoring.usage.weight_uses` checks that on every
scoring call.
"""

import threading
from typing import NamedTuple

import torch
from torch.func import functional_call, grad, vmap

from .._chunks import conv_chunk_cap, vmap_chunk_rows
from .._gradcon import alignment_from_terms, functional_error, reconstruct, reconstruction_error
from .._modules import ConvAutoencoder, MLPAutoencoder
from .layers import rule_for, unsupported
from .norms import NORM_METHODS
from .usage import describe, weight_uses

__all__ = [
    "MODULE_LOCK",
    "ROUTES",
    "RouteTerms",
    "choose_route",
    "refusals",
]

# The hooks and vmap routes change the module while they run (forward hooks,
# functional_call's parameter swap): threads scoring one model take turns.
MODULE_LOCK = threading.Lock()


def owner_layers(module):
    """The layer owning each constrained tensor, when it is a layer's ``weight``."""
    owners = []
    for name in module.constrained_names:
        owner, _, leaf = name.rpartition(".")
        owners.append(module.autoencoder.get_submodule(owner) if leaf == "weight" else None)
    return owners


def _used_once_by_its_layer(module, uses):
    """Why the fast routes cannot score the constrained tensors (``None``: they can)."""
    for name, owner, use in zip(module.constrained_names, owner_layers(module), uses):
        if owner is None:
            return f"{name} is not the weight of a layer"
        reason = unsupported(owner, need_weight=True)
        if reason is not None:
            return f"{name} belongs to a layer without a fast rule: {reason}"
        if use != [rule_for(owner).weight_function]:
            return (
                f"{name} is used by {describe(use)} in the forward pass, not once by its "
                f"layer's {rule_for(owner).weight_function.__name__}"
            )
    return None


class RouteTerms(NamedTuple):
    """What a route computes for a batch of ``n`` rows and ``L`` constrained tensors."""

    error: torch.Tensor  # e_i, (n,)
    dots: torch.Tensor  # <de_i/dW_l, gbar_l>, (L, n)
    norms: torch.Tensor  # ||de_i/dW_l||, (L, n)
    projections: torch.Tensor | None  # with directions (L, n, P), else None


class Route:
    """Per-sample GradCon terms of batches, for one module.

    Parameters
    ----------
    module : GradConModule
        In eval mode.
    norms : {'auto', 'materialised', 'gram', 'polyphase'}, default='auto'
        How weight-gradient norms are computed (see
        :mod:`~gradient_ad._scoring.norms`); ``'auto'`` picks the cheapest per layer.
    directions : list of Tensor, default=None
        For each constrained tensor, ``P`` fixed directions stacked as ``(P, *shape)``:
        :meth:`layer_terms` then also gives each sample's gradient paired with each
        (a random projection of the gradient, with no gradient materialised by the
        fast routes).
    """

    name = None

    def __init__(self, module, norms="auto", directions=None):
        if norms not in NORM_METHODS:
            raise ValueError(f"norms must be one of {NORM_METHODS}, got {norms!r}")
        self.module = module
        self.norms = norms
        self.references = module.reference_gradients()
        self.directions = directions

    @staticmethod
    def refusal(module, uses):
        """Why this route cannot score ``module`` (``None`` if it can), given the
        :func:`weight_uses` of its constrained tensors."""
        return None

    def chunk_rows(self, batch_size, device):
        """Rows per chunk: ``batch_size``, capped where larger chunks cost more."""
        return batch_size

    def __call__(self, x):
        """``(e_i, mean_l cos(de_i/dW_l, gbar_l))`` of each sample of ``x``."""
        terms = self.layer_terms(x)
        pairs = list(zip(terms.dots, terms.norms))
        return terms.error, alignment_from_terms(pairs, self.references)

    def layer_terms(self, x):
        """The :class:`RouteTerms` of the batch ``x``: ``e_i`` ``(n,)``;
        ``<de_i/dW_l, gbar_l>`` and ``||de_i/dW_l||``, ``(L, n)`` for the ``L``
        constrained tensors; and the gradients paired with the ``directions``
        ``(L, n, P)`` (``None`` without directions)."""
        raise NotImplementedError

    def _projections(self, pairs):
        """Stack per-tensor ``(n, P)`` projections, or ``None``."""
        return None if self.directions is None else torch.stack(pairs)


class ChainRoute(Route):
    """The package's networks, differentiated by hand; what does not depend on the
    batch is prepared once."""

    name = "chain"

    @staticmethod
    def refusal(module, uses):
        # Exact types: a subclass may override forward.
        if type(module.autoencoder) not in (ConvAutoencoder, MLPAutoencoder):
            return "it differentiates only the package's own networks (exact types)"
        layers = _chain_layers(module)
        for layer in layers:
            reason = unsupported(layer)
            if reason is not None:
                return reason
        if not all(any(owner is layer for layer in layers) for owner in owner_layers(module)):
            return "a constrained tensor is not the weight of a layer of the chain"
        return _used_once_by_its_layer(module, uses)

    def __init__(self, module, norms="auto", directions=None):
        super().__init__(module, norms, directions)
        layers = _chain_layers(module)
        self.owners = owner_layers(module)
        self.conv = type(module.autoencoder) is ConvAutoencoder
        by_layer = {id(owner): r for owner, r in zip(self.owners, self.references)}
        self.directions_of = dict(zip(map(id, self.owners), directions or [None] * len(by_layer)))
        self.first = min(i for i, layer in enumerate(layers) if id(layer) in by_layer)
        self.head = [(layer, rule_for(layer)) for layer in layers[: self.first]]
        with torch.no_grad():
            self.steps = []
            for layer in layers[self.first :]:
                rule, reference = rule_for(layer), by_layer.get(id(layer))
                prepared = None if reference is None else rule.prepare(layer, reference)
                self.steps.append((layer, rule, reference, prepared))

    def chunk_rows(self, batch_size, device):
        return conv_chunk_cap(batch_size, device) if self.conv else batch_size

    def layer_terms(self, x):
        with torch.no_grad():
            h = x if self.conv else x.flatten(1)
            target = h
            if self.conv and h.device.type == "cpu":
                # oneDNN's CPU convolutions work in channels-last layout: fed NCHW, they
                # reorder inputs and outputs at every layer. A copy: for one channel,
                # .contiguous() would keep NCHW strides, which convolutions then follow.
                h = h.clone(memory_format=torch.channels_last)
            # Activations overwrite their input (an intermediate result, never x).
            for layer, rule in self.head:
                h = rule.forward(layer, h, in_place=h is not target)
            inputs = []
            for layer, rule, _, _ in self.steps:
                inputs.append(h)
                h = rule.forward(layer, h, in_place=h is not target)
            error = reconstruction_error(h, target)
            difference = h - target
            # d e_i / d recon_i. Cosines do not depend on the factor, but without it the
            # squared norms of large inputs' gradients would overflow float32 sooner.
            delta = difference * (2.0 / difference[0].numel())
            outputs = [*inputs[1:], h]
            terms, projections = {}, {}
            for i in range(len(inputs) - 1, -1, -1):
                layer, rule, reference, prepared = self.steps[i]
                if reference is None:
                    delta = rule.input_gradient(layer, inputs[i], outputs[i], delta)
                    continue
                if self.directions is not None:
                    projections[id(layer)] = rule.dots(
                        layer, inputs[i], delta, self.directions_of[id(layer)]
                    )
                terms[id(layer)], delta = rule.step(
                    layer, inputs[i], delta, reference, i > 0, prepared, self.norms
                )
            dots, norms = (torch.stack(t) for t in zip(*(terms[id(o)] for o in self.owners)))
            return RouteTerms(
                error,
                dots,
                norms,
                self._projections([projections.get(id(o)) for o in self.owners]),
            )


def _chain_layers(module):
    return [*module.autoencoder.encoder, *module.autoencoder.decoder]


class HookRoute(Route):
    """Layer inputs from forward hooks, output gradients from one autograd pass."""

    name = "hooks"
    refusal = staticmethod(_used_once_by_its_layer)

    def __init__(self, module, norms="auto", directions=None):
        super().__init__(module, norms, directions)
        self.layers = owner_layers(module)
        self.rules = [rule_for(layer) for layer in self.layers]

    def layer_terms(self, x):
        with MODULE_LOCK:
            return self._layer_terms(x)

    def _layer_terms(self, x):
        autoencoder = self.module.autoencoder
        params = {name: p.detach() for name, p in autoencoder.named_parameters()}
        recorder = _Recorder(self.layers)
        try:
            with torch.enable_grad():
                recon = reconstruct(lambda h: functional_call(autoencoder, params, (h,)), x)
        except _NotOnce:
            recon = None
        finally:
            recorder.remove()
        if recon is None or not recorder.complete():
            # A data-dependent forward pass used a layer other than once for this batch.
            return VmapRoute(self.module, self.norms, self.directions)._layer_terms(x)
        with torch.enable_grad():
            error = reconstruction_error(recon, x)
            deltas = torch.autograd.grad(
                error.sum(), recorder.outputs, allow_unused=True, materialize_grads=True
            )
        parts = list(zip(self.layers, self.rules, recorder.inputs, deltas))
        terms = [
            rule.terms(layer, a, delta, reference, self.norms)
            for (layer, rule, a, delta), reference in zip(parts, self.references)
        ]
        projections = None
        if self.directions is not None:
            projections = self._projections(
                [
                    rule.dots(layer, a, delta, directions)
                    for (layer, rule, a, delta), directions in zip(parts, self.directions)
                ]
            )
        dots, norms = (torch.stack(t) for t in zip(*terms))
        return RouteTerms(error.detach(), dots, norms, projections)


class _NotOnce(Exception):
    pass


class _Recorder:
    """Forward hooks keeping each constrained layer's input and output, for the
    thread that made them (another thread may call the module meanwhile)."""

    def __init__(self, layers):
        self.thread = threading.get_ident()
        self.inputs = [None] * len(layers)
        self.versions = [None] * len(layers)
        self.outputs = [None] * len(layers)
        self.handles = [
            layer.register_forward_hook(self._hook(i)) for i, layer in enumerate(layers)
        ]

    def _hook(self, i):
        def hook(layer, args, output):
            if threading.get_ident() != self.thread:
                return None
            if self.outputs[i] is not None:
                raise _NotOnce
            if not output.requires_grad:
                # Gradients are needed from here on only: start the graph at this output.
                output = output.detach().requires_grad_()
            self.inputs[i] = args[0].detach()
            self.versions[i] = args[0]._version
            self.outputs[i] = output
            # The network continues with a copy: an in-place operation after the layer
            # (ReLU(inplace=True)) must not change the output differentiated against.
            return output.clone()

        return hook

    def complete(self):
        """Every layer ran once, and no input it recorded was overwritten afterwards."""
        return all(
            output is not None and a._version == version
            for a, version, output in zip(self.inputs, self.versions, self.outputs)
        )

    def remove(self):
        for handle in self.handles:
            handle.remove()


class VmapRoute(Route):
    """``vmap`` over ``grad``: every sample's gradient of the constrained tensors,
    materialised a capped number of rows at a time."""

    name = "vmap"

    def __init__(self, module, norms="auto", directions=None):
        super().__init__(module, norms, directions)
        n_weights = sum(r.numel() for r in self.references)
        self.rows = vmap_chunk_rows(n_weights)

    def chunk_rows(self, batch_size, device):
        return min(batch_size, self.rows)

    def layer_terms(self, x):
        with MODULE_LOCK:
            return self._layer_terms(x)

    def _layer_terms(self, x):
        parts = [self._terms(x[start : start + self.rows]) for start in range(0, len(x), self.rows)]
        projections = None
        if self.directions is not None:
            projections = torch.cat([part.projections for part in parts], 1)
        return RouteTerms(
            torch.cat([part.error for part in parts]),
            torch.cat([part.dots for part in parts], 1),
            torch.cat([part.norms for part in parts], 1),
            projections,
        )

    def _terms(self, x):
        autoencoder = self.module.autoencoder
        names = self.module.constrained_names
        params = dict(autoencoder.named_parameters())
        frozen = {name: p.detach() for name, p in params.items() if name not in names}
        frozen.update(dict(autoencoder.named_buffers()))
        constrained = {name: params[name].detach() for name in names}
        error_of = functional_error(autoencoder, frozen)

        def error_of_one(theta, sample):
            error = error_of(theta, sample)
            return error, error

        per_sample = vmap(grad(error_of_one, has_aux=True), in_dims=(None, 0))
        with torch.enable_grad():
            gradients, error = per_sample(constrained, x)
        flat = [gradients[name].flatten(1) for name in names]
        dots = torch.stack([g @ r.flatten() for g, r in zip(flat, self.references)])
        norms = torch.stack([g.norm(dim=1) for g in flat])
        projections = None
        if self.directions is not None:
            projections = torch.stack([g @ d.flatten(1).T for g, d in zip(flat, self.directions)])
        return RouteTerms(error.detach(), dots, norms, projections)


ROUTES = {route.name: route for route in (ChainRoute, HookRoute, VmapRoute)}


def refusals(module, probe):
    """For each route, why it cannot score ``module`` (``None``: it can), from one
    forward pass of ``probe`` (a batch of one or a few rows)."""
    with MODULE_LOCK:
        uses = weight_uses(module, probe)
    return {name: route.refusal(module, uses) for name, route in ROUTES.items()}


def choose_route(module, probe, prefer=None, norms="auto", directions=None):
    """The fastest route that can score ``module`` (or the route named by ``prefer``)."""
    if prefer is not None and prefer not in ROUTES:
        raise ValueError(f"prefer must be one of {tuple(ROUTES)} or None, got {prefer!r}")
    reasons = refusals(module, probe)
    if prefer is not None:
        if reasons[prefer] is not None:
            raise ValueError(f"the {prefer} route cannot score this network: {reasons[prefer]}")
        return ROUTES[prefer](module, norms, directions)
    name = next(name for name, reason in reasons.items() if reason is None)
    return ROUTES[name](module, norms, directions)
