"""Small scoring calls: unpadded, in float64, consistent with large calls, every route.

With ``score_batch_size='auto'`` a call of at most ``small_call_rows`` rows is scored
in one unpadded chunk in float64 (on a per-call float64 copy of a float32 network);
larger calls in padded float32 chunks. Within each regime a sample's score does not
depend on the other rows (bitwise in padded chunks, to float64 rounding in small
calls); between the two, within the bound docs/performance.rst states.
"""

import copy
import warnings

import numpy as np
import pytest
import torch
from _reference import randomise_reference, reference_terms
from sklearn.utils.estimator_checks import (
    check_methods_sample_order_invariance,
    check_methods_subset_invariance,
)
from torch import nn

from gradient_ad import ConvAutoencoder, GradientAnomalyDetector, MLPAutoencoder
from gradient_ad._chunks import small_call_rows
from gradient_ad._modules import GradConModule
from gradient_ad._scoring import (
    ROUTES,
    chunk_plan,
    padded_calls,
    planned_terms,
    refusals,
    route_chunk_rows,
    score_terms,
)
from gradient_ad._scoring.precision import float64_copy

# Within small calls: float64 rounding. Between small and large calls of a float32
# network (docs/performance.rst): the error to 1e-5 relative, the alignment to 1e-5.
SMALL_CALLS = dict(rtol=1e-12, atol=1e-15)
ERROR_BOUND = dict(rtol=1e-5, atol=0)
ALIGNMENT_BOUND = dict(rtol=0, atol=1e-5)


class UserNet(nn.Module):
    """Not a package network: the hooks route (plain layers) or, with a subclassed
    layer, the vmap route."""

    def __init__(self, n_features, subclassed=False):
        super().__init__()
        last = _Scaled if subclassed else nn.Linear
        self.encoder = nn.Sequential(nn.Linear(n_features, 4), nn.Tanh())
        self.decoder = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), last(5, n_features))

    def forward(self, x):
        return self.decoder(self.encoder(x))


class _Scaled(nn.Linear):
    def forward(self, x):
        return nn.functional.linear(x, 0.5 * self.weight, self.bias)


class KeepsFloat32(UserNet):
    """Holds a float32 tensor in a plain attribute: it cannot run in float64."""

    def __init__(self, n_features):
        super().__init__(n_features)
        self.mix = torch.eye(n_features)

    def forward(self, x):
        return super().forward(x) @ self.mix  # float64 @ float32 fails


NETWORKS = {
    # name: (builder of a network for a sample shape, the route that scores it)
    "package mlp": (lambda shape: MLPAutoencoder(shape, (6, 3)), "chain"),
    "package conv": (lambda shape: ConvAutoencoder((1, 8, 8), (3, 4)), "chain"),
    "user net": (lambda shape: UserNet(shape[0]), "hooks"),
    "subclassed layer": (lambda shape: UserNet(shape[0], subclassed=True), "vmap"),
}


def _module(name, dtype):
    build, route = NETWORKS[name]
    shape = (1, 8, 8) if "conv" in name else (7,)
    torch.manual_seed(0)
    module = GradConModule(build(shape), "decoder").to(dtype).eval()
    return randomise_reference(module), shape, route


def _rows(shape, n, seed=1):
    return np.random.default_rng(seed).random((n, *shape)).astype(np.float32)


@pytest.mark.parametrize("name", NETWORKS)
def test_small_calls_are_the_float64_scores_of_the_network(name):
    # A float32 network scored in a small call: its float64 copy's exact scores (the
    # plain loop), to float64 rounding, whichever route scores it.
    module, shape, route = _module(name, torch.float32)
    X = _rows(shape, 5)
    assert refusals(module, torch.as_tensor(X[:1]))[route] is None
    expected = reference_terms(copy.deepcopy(module).double(), torch.as_tensor(X).double())
    got = score_terms(module, X, "auto", prefer=route)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-9, atol=1e-12)
    assert module.reference_gradients()[0].dtype == torch.float32  # the copy was cast


# A row scored by the same padded float32 kernels at another position of its chunk:
# the last bit of a float32 at most (measured up to 2.4e-7 relative on an AMD EPYC,
# bitwise on the Intel CPUs the suite first ran on).
SAME_KERNELS = dict(rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", NETWORKS)
def test_a_row_alone_matches_the_row_in_a_large_call(name, dtype):
    module, shape, route = _module(name, dtype)
    chunk = route_chunk_rows(module, torch.zeros((1, *shape), dtype=dtype), prefer=route)
    small = small_call_rows(chunk, "cpu")
    X = _rows(shape, small + 1)  # one row too many for a small call
    assert chunk_plan(len(X), "auto", chunk, "cpu").pad
    large = score_terms(module, X, "auto", prefer=route)
    alone = [score_terms(module, X[i : i + 1], "auto", prefer=route) for i in range(12)]
    error, alignment = (np.concatenate([a[j] for a in alone]) for j in range(2))
    batch = score_terms(module, X[:12], "auto", prefer=route)  # a small call too
    np.testing.assert_allclose(error, batch[0], **SMALL_CALLS)
    np.testing.assert_allclose(alignment, batch[1], **SMALL_CALLS)
    if dtype == torch.float64:  # the same precision in both regimes
        np.testing.assert_allclose(error, large[0][:12], rtol=1e-12)
        np.testing.assert_allclose(alignment, large[1][:12], rtol=1e-12, atol=1e-14)
    else:
        np.testing.assert_allclose(error, large[0][:12], **ERROR_BOUND)
        np.testing.assert_allclose(alignment, large[1][:12], **ALIGNMENT_BOUND)
    # In padded chunks, the same kernels: the last chunk is padded like every other.
    # Bitwise where the float32 matrix kernels round every row of a chunk alike; on
    # some CPUs (an AMD EPYC here) a row's position in the chunk changes its last bit.
    again = score_terms(module, X[::-1].copy(), "auto", prefer=route)
    np.testing.assert_allclose(again[0][::-1], large[0], **SAME_KERNELS)


def test_an_int_score_batch_size_pads_every_call():
    module, shape, _ = _module("package mlp", torch.float32)
    X = _rows(shape, 40)
    whole = score_terms(module, X, 16)
    for i in (0, 17, 39):
        alone = score_terms(module, X[i : i + 1], 16)
        np.testing.assert_allclose(alone[0][0], whole[0][i], **SAME_KERNELS)
        np.testing.assert_allclose(alone[1][0], whole[1][i], **SAME_KERNELS)
    assert chunk_plan(1, 16, 16, "cpu").pad and chunk_plan(1, "auto", 16, "mps").pad


def test_a_network_that_cannot_run_in_float64_is_scored_in_padded_float32():
    module = randomise_reference(GradConModule(KeepsFloat32(7), "decoder").eval())
    X = _rows((7,), 30)
    with pytest.raises(RuntimeError):
        float64_copy(module)(torch.as_tensor(X).double())
    small = score_terms(module, X[:3], "auto")
    large = score_terms(module, X, "auto")
    np.testing.assert_array_equal(small[0], large[0][:3])  # the same padded kernels


def test_float64_copy_shares_nothing_that_scoring_changes():
    network = MLPAutoencoder((6,), (6, 6), sigmoid_output=False)
    network.decoder[0].weight = network.encoder[0].weight  # tied: one Parameter
    module = GradConModule(network, "all")
    copied = float64_copy(module)
    assert type(copied.autoencoder) is MLPAutoencoder
    assert copied.autoencoder.decoder[0].weight is copied.autoencoder.encoder[0].weight
    assert all(p.dtype == torch.float64 for p in copied.parameters())
    assert all(r.dtype == torch.float64 for r in copied.reference_gradients())
    assert copied.n_reference_updates.dtype == torch.long
    for (name, p), (_, q) in zip(module.named_parameters(), copied.named_parameters()):
        assert p.dtype == torch.float32 and torch.equal(p.double(), q), name
    calls = []
    copied.autoencoder.decoder[0].register_forward_hook(lambda *args: calls.append(1))
    module.autoencoder(torch.rand(2, 6))
    assert not calls  # a hook on the copy never reaches the original
    with torch.no_grad():
        copied.autoencoder.encoder[0].weight.zero_()
    assert module.autoencoder.encoder[0].weight.abs().sum() > 0


def _estimator_network(name, dtype):
    build, _ = NETWORKS[name]

    def network(shape):
        return build(shape).to(dtype)

    return network


# Thirty random rows of three features may leave a collapsed network; the invariances
# checked hold for any network.
@pytest.mark.filterwarnings("ignore:The network collapsed:sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["package mlp", "user net", "subclassed layer"])
def test_scikit_learn_invariance_checks_pass_for_every_route(name, dtype):
    # A 20-row call against 20 one-row calls (atol 1e-7), and rows permuted.
    estimator = GradientAnomalyDetector(
        network=_estimator_network(name, dtype), max_epochs=2, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_methods_subset_invariance("GradientAnomalyDetector", estimator)
        check_methods_sample_order_invariance("GradientAnomalyDetector", estimator)
    fitted = copy.deepcopy(estimator).fit(np.random.default_rng(0).random((30, 3)))
    module = fitted.net_.module_
    probe = torch.zeros((1, 3), dtype=dtype)
    reasons = refusals(module, probe)
    assert next(route for route in ROUTES if reasons[route] is None) == NETWORKS[name][1]


def test_padded_calls_score_small_calls_as_large_ones():
    module, shape, _ = _module("package mlp", torch.float32)
    X = _rows(shape, 600)  # more than small_call_rows: padded chunks
    large = score_terms(module, X, "auto")
    with padded_calls():
        assert chunk_plan(3, "auto", 2048, "cpu").pad
        small = score_terms(module, X[:3], "auto")
    np.testing.assert_array_equal(small[0], large[0][:3])
    assert not chunk_plan(3, "auto", 2048, "cpu").pad  # restored on leaving


def test_terms_beside_the_scores_follow_the_same_plan():
    # What a pretext head's terms would do: computed by route.module, chunk by chunk.
    module, shape, _ = _module("package mlp", torch.float32)
    seen = []

    def terms(route):
        def of(chunk):
            seen.append((route.module.dtype, len(chunk)))
            with torch.no_grad():
                recon = route.module(chunk)
            return ((recon - chunk).pow(2).mean(1),)

        return of

    X = _rows(shape, 600)
    (small,) = planned_terms(module, X[:5], "auto", "cpu", [()], terms)
    (large,) = planned_terms(module, X, "auto", "cpu", [()], terms)
    assert seen == [(torch.float64, 5), (torch.float32, 2048)]  # unpadded, then padded
    np.testing.assert_allclose(small, large[:5], rtol=1e-5)
    np.testing.assert_allclose(small, score_terms(module, X[:5], "auto")[0], rtol=1e-12)
