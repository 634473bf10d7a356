"""A zoo of networks: every route that accepts one scores it exactly, the others say why.

Each entry builds a network, says which tensors are constrained and which routes
should accept it. The routes are compared with the plain one-sample-at-a-time loop
of ``_reference.py`` in float64, where they differ by rounding only. Adding a layer
type to the scoring engine is one registered rule plus one entry here.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _reference import randomise_reference, reference_layer_terms, reference_terms
from torch import nn

from gradient_ad import ConvAutoencoder, MLPAutoencoder
from gradient_ad._modules import GradConModule
from gradient_ad._scoring import ROUTES, layer_terms, per_sample_terms, refusals, score_terms
from gradient_ad._scoring.usage import census, plain_package_uses

RTOL = 1e-9  # float64: rounding only
ATOL = 1e-12


class Tied(nn.Module):
    """The decoder reuses the encoder's weight, transposed."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(6, 3)
        self.bias = nn.Parameter(torch.zeros(6))

    def forward(self, x):
        return F.linear(torch.tanh(self.encoder(x)), self.encoder.weight.t(), self.bias)


class MaskedLinear(nn.Linear):
    """A subclass with its own forward: the weight is masked before use."""

    def __init__(self, *args):
        super().__init__(*args)
        self.register_buffer("mask", (torch.arange(self.weight.numel()) % 3 != 0).float())

    def forward(self, x):
        return F.linear(x, self.weight * self.mask.view_as(self.weight), self.bias)


class Masked(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(6, 4), nn.Tanh())
        self.decoder = nn.Sequential(MaskedLinear(4, 5), nn.Tanh(), nn.Linear(5, 6))

    def forward(self, x):
        return self.decoder(self.encoder(x))


class Sequential(nn.Module):
    """``encoder`` then ``decoder``, for networks written as two Sequentials."""

    def __init__(self, encoder, decoder, returns_code=False, scales_input=False):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.returns_code, self.scales_input = returns_code, scales_input

    def forward(self, x):
        if self.scales_input:
            x.mul_(0.5)  # modifies its input in place
        code = self.encoder(x)
        recon = self.decoder(code)
        return (recon, code) if self.returns_code else recon


class Reused(nn.Module):
    """A decoder layer applied twice."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(6, 4)
        self.decoder = nn.ModuleDict({"square": nn.Linear(4, 4), "out": nn.Linear(4, 6)})

    def forward(self, x):
        h = torch.tanh(self.encoder(x))
        square = self.decoder["square"]
        return self.decoder["out"](torch.tanh(square(torch.tanh(square(h)))))


def _tied_package_mlp():
    network = MLPAutoencoder((6,), (6, 6), sigmoid_output=False)
    network.decoder[0].weight = network.encoder[0].weight  # one Parameter, two layers
    return network


def _mlp_stack(*decoder, encoder=None):
    encoder = encoder or nn.Sequential(nn.Linear(6, 4), nn.Tanh())
    return Sequential(encoder, nn.Sequential(*decoder))


def _conv_stack(*decoder, encoder=None, **kwargs):
    encoder = encoder or nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.ReLU())
    return Sequential(encoder, nn.Sequential(*decoder), **kwargs)


ALL, FAST, VMAP = ("chain", "hooks", "vmap"), ("hooks", "vmap"), ("vmap",)

# name: (network builder, sample shape, constrained, routes that must accept it)
ZOO = {
    "package mlp": (lambda: MLPAutoencoder((7,), (5, 3)), (7,), "decoder", ALL),
    "package mlp, all": (lambda: MLPAutoencoder((7,), (5, 3)), (7,), "all", ALL),
    "package conv": (lambda: ConvAutoencoder((1, 16, 16), (3, 4, 5)), (1, 16, 16), "all", ALL),
    "package conv, odd size": (
        lambda: ConvAutoencoder((2, 11, 13), (3, 4)),
        (2, 11, 13),
        "decoder",
        ALL,
    ),
    "package mlp, tied weight": (_tied_package_mlp, (6,), "all", VMAP),
    "package conv, constrained bias": (
        lambda: ConvAutoencoder((1, 16, 16), (3, 4, 5)),
        (1, 16, 16),
        ["decoder.0.bias", "decoder.4.weight"],
        VMAP,
    ),
    "tied weights": (Tied, (6,), ["encoder.weight"], VMAP),
    "subclassed linear": (Masked, (6,), "decoder", VMAP),
    "reused layer": (Reused, (6,), "decoder", VMAP),
    "inplace relu": (
        lambda: _mlp_stack(
            nn.Linear(4, 5), nn.ReLU(inplace=True), nn.Linear(5, 6), nn.ReLU(inplace=True)
        ),
        (6,),
        "decoder",
        FAST,
    ),
    "tuple output": (
        lambda: Sequential(
            nn.Sequential(nn.Linear(6, 3), nn.Tanh()), nn.Linear(3, 6), returns_code=True
        ),
        (6,),
        "decoder",
        FAST,
    ),
    "modifies its input": (
        lambda: Sequential(
            nn.Sequential(nn.Linear(6, 3), nn.Tanh()), nn.Linear(3, 6), scales_input=True
        ),
        (6,),
        "decoder",
        FAST,
    ),
    "no bias, sequence": (
        lambda: _mlp_stack(nn.Linear(4, 5, bias=False), nn.GELU(), nn.Linear(5, 6)),
        (3, 6),
        "decoder",
        FAST,
    ),
    "layer norm": (
        lambda: _mlp_stack(nn.Linear(4, 5), nn.LayerNorm(5), nn.Tanh(), nn.Linear(5, 6)),
        (6,),
        "decoder",
        FAST,
    ),
    "conv: padding, dilation, output_padding, no bias": (
        lambda: _conv_stack(
            nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1, bias=False),
            nn.ReLU(),
            nn.Conv2d(4, 2, 3, padding=2, dilation=2),
        ),
        (2, 8, 8),
        "decoder",
        FAST,
    ),
    "conv: batch norm, pooling, upsampling": (
        lambda: _conv_stack(
            nn.Upsample(scale_factor=4),
            nn.Conv2d(3, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Conv2d(4, 2, 3, padding=1),
            encoder=nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.MaxPool2d(4)),
        ),
        (2, 8, 8),
        "decoder",
        FAST,
    ),
    "conv: groups": (
        lambda: _conv_stack(
            nn.ConvTranspose2d(3, 4, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(4, 2, 3, padding=1, groups=2),
        ),
        (2, 8, 8),
        "decoder",
        VMAP,
    ),
    "conv: padding='same', reflect": (
        lambda: _conv_stack(
            nn.ConvTranspose2d(3, 4, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(4, 2, 3, padding="same", padding_mode="reflect"),
        ),
        (2, 8, 8),
        "decoder",
        VMAP,
    ),
}


def _zoo_member(name):
    build, shape, constrained, accepted = ZOO[name]
    torch.manual_seed(0)
    module = GradConModule(build(), constrained).double()
    module.eval()
    X = torch.rand(7, *shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return randomise_reference(module), X, accepted


@pytest.mark.parametrize("name", ZOO)
def test_every_accepting_route_matches_the_plain_loop(name):
    module, X, accepted = _zoo_member(name)
    expected = reference_terms(module, X)
    reasons = refusals(module, X[:1])

    assert [route for route, reason in reasons.items() if reason is None] == list(accepted)
    for route in ROUTES:
        if reasons[route] is None:
            got = per_sample_terms(module, X, prefer=route)
            for a, b in zip(got, expected):
                np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=RTOL, atol=ATOL)
        else:
            assert isinstance(reasons[route], str) and reasons[route]
            with pytest.raises(ValueError, match=f"the {route} route cannot score"):
                per_sample_terms(module, X, prefer=route)
    # The default (the fastest accepting route), through chunks, from a NumPy array.
    original = X.numpy().copy()
    got = score_terms(module, original, batch_size=4)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(original, X.numpy())  # the caller's rows are untouched
    assert np.ptp(expected[1].numpy()) > 1e-3  # the cosines differ between samples


def test_refusals_name_the_cause():
    module, X, _ = _zoo_member("tied weights")
    assert "encoder.weight is used by linear, t" in refusals(module, X[:1])["hooks"]
    module, X, _ = _zoo_member("subclassed linear")
    assert "MaskedLinear has no scoring rule" in refusals(module, X[:1])["hooks"]
    module, X, _ = _zoo_member("conv: groups")
    assert "groups=2" in refusals(module, X[:1])["hooks"]
    module, X, _ = _zoo_member("package mlp, tied weight")
    assert "used by linear, linear" in refusals(module, X[:1])["chain"]


@pytest.mark.parametrize("name", ZOO)
def test_per_tensor_terms_and_projections_match_the_plain_loop(name):
    module, X, accepted = _zoo_member(name)
    generator = torch.Generator().manual_seed(2)
    directions = [
        torch.randn(3, *r.shape, generator=generator, dtype=torch.float64)
        for r in module.reference_gradients()
    ]
    expected = reference_layer_terms(module, X, directions)
    for route in accepted:
        got = layer_terms(module, X.numpy(), 4, directions=directions, prefer=route)
        for a, b in zip(got[:2], score_terms(module, X.numpy(), 4, prefer=route)):
            np.testing.assert_array_equal(a, b)  # the same numbers as the scores'
        for a, b in zip(got[2:], expected):
            np.testing.assert_allclose(a, b.numpy(), rtol=RTOL, atol=ATOL)
    assert layer_terms(module, X.numpy(), 4)[4] is None


def _package_members():
    return [name for name in ZOO if name.startswith("package")]


@pytest.mark.parametrize("name", _package_members())
def test_the_census_shortcut_for_package_networks_agrees_with_the_census(name):
    module, X, _ = _zoo_member(name)
    shortcut = plain_package_uses(module)
    if shortcut is not None:
        assert shortcut == census(module, X[:1])
    # The shortcut vouches only for networks left as built.
    expected_none = name in ("package mlp, tied weight", "package conv, constrained bias")
    assert (shortcut is None) == expected_none


def test_the_census_shortcut_defers_to_the_census_for_changed_networks():
    def fresh():
        module, _, _ = _zoo_member("package mlp")
        return module

    module = fresh()
    assert plain_package_uses(module) is not None
    module.autoencoder.decoder[0].register_forward_hook(lambda *args: None)
    assert plain_package_uses(module) is None
    module = fresh()
    layer = module.autoencoder.decoder[0]
    layer.forward = lambda x: F.linear(x, 2 * layer.weight, layer.bias)
    assert plain_package_uses(module) is None
    assert (
        "is used by mul in the forward pass"
        in refusals(module, torch.rand(1, 7, dtype=torch.float64))["chain"]
    )
    module = fresh()
    module.autoencoder.decoder.append(module.autoencoder.decoder[-2])  # a layer twice
    assert plain_package_uses(module) is None
    module = fresh()
    module.autoencoder.decoder[1] = nn.Tanh()  # a layer of another type
    assert plain_package_uses(module) is None
    module = fresh()
    handle = nn.modules.module.register_module_forward_hook(lambda *args: None)
    try:
        assert plain_package_uses(module) is None
    finally:
        handle.remove()
    assert plain_package_uses(module) is not None
