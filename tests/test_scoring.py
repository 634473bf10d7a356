"""The batched GradCon score terms against a one-sample-at-a-time loop."""

import numpy as np
import pytest
import torch
from _reference import randomise_reference, reference_terms
from sklearn.base import BaseEstimator
from torch import nn

from gradient_ad import ConvAutoencoder, MLPAutoencoder
from gradient_ad import _chunks as chunks
from gradient_ad._chunks import (
    CONV_CHUNK_ROWS,
    DEFAULT_CHUNK_ROWS,
    MLP_CHUNK_ROWS,
    default_chunk_rows,
)
from gradient_ad._inputs import to_samples
from gradient_ad._modules import GradConModule
from gradient_ad._scoring import (
    choose_route,
    per_sample_terms,
    refusals,
    routes,
    score_terms,
)

# In float64 the batched routes and the loop differ by rounding only.
RTOL_FLOAT64 = 1e-9


class SkipDecoder(nn.Module):
    """A network off the fast route: a constrained bias and a layer used twice."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(6, 4), nn.Tanh())
        self.shared = nn.Linear(4, 4)
        self.decoder = nn.Linear(4, 6)

    def forward(self, x):
        h = self.encoder(x)
        return self.decoder(torch.tanh(self.shared(torch.tanh(self.shared(h)))) + h)


class ConvInDecoder(nn.Module):
    """A decoder with Conv2d and ConvTranspose2d layers and an odd-sized output."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.ReLU())
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=0),
            nn.ReLU(),
            nn.Conv2d(4, 2, 3, padding=1, dilation=1),
        )

    def forward(self, x):
        return self.decoder(self.encoder(x))


class SequenceDecoder(nn.Module):
    """Linear layers applied at every position of a sequence: per-sample gradients
    are sums of outer products, off the one-position shortcut."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 3), nn.Tanh())
        self.decoder = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 4))

    def forward(self, x):
        return self.decoder(self.encoder(x))


CASES = {
    "mlp": (lambda: MLPAutoencoder((7,), (5, 3)), (7,), "decoder"),
    "mlp-all": (lambda: MLPAutoencoder((7,), (5, 3)), (7,), "all"),
    "conv28": (lambda: ConvAutoencoder((1, 28, 28), (4, 4, 6, 6)), (1, 28, 28), "decoder"),
    "conv32-rgb": (lambda: ConvAutoencoder((3, 32, 32), (4, 4, 6, 6)), (3, 32, 32), "all"),
    "conv-odd": (lambda: ConvInDecoder(), (2, 9, 9), "decoder"),
    "fallback": (lambda: SkipDecoder(), (6,), ["shared.weight", "decoder.bias"]),
    "sequence": (lambda: SequenceDecoder(), (6, 4), "decoder"),
}


def _module(case, dtype):
    build, shape, constrained = CASES[case]
    torch.manual_seed(0)
    module = GradConModule(build(), constrained).to(dtype)
    return randomise_reference(module), shape


@pytest.mark.parametrize("case", CASES)
def test_batched_terms_match_loop_in_float64(case):
    module, shape = _module(case, torch.float64)
    X = torch.rand(13, *shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    expected_error, expected_alignment = reference_terms(module, X)

    error, alignment = score_terms(module, X.numpy(), batch_size=5)

    np.testing.assert_allclose(error, expected_error, rtol=RTOL_FLOAT64)
    np.testing.assert_allclose(alignment, expected_alignment, rtol=RTOL_FLOAT64, atol=1e-12)
    assert np.ptp(alignment) > 0.01  # the cosines differ between samples


@pytest.mark.parametrize("norms", ["gram", "materialised", "polyphase"])
@pytest.mark.parametrize("case", ["conv28", "conv32-rgb", "conv-odd", "sequence"])
def test_every_way_to_per_sample_norms_matches_loop(case, norms):
    # Which way a layer takes depends on its shape; force each in turn (the polyphase
    # way where it applies: transposed convolutions whose stride divides the kernel).
    module, shape = _module(case, torch.float64)
    X = torch.rand(7, *shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    expected = reference_terms(module, X)

    got = score_terms(module, X.numpy(), batch_size=4, norms=norms)

    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=RTOL_FLOAT64, atol=1e-12)


@pytest.mark.parametrize("case", ["mlp", "conv28", "conv-odd", "fallback"])
def test_small_gradients_keep_their_cosines(case):
    # A trained network's gradients and references are small: |g| |gbar| falls below
    # the cosine's eps although neither norm does. Each norm is clamped on its own, as
    # in torch.nn.functional.cosine_similarity; clamping the product shrank cosines.
    module, shape = _module(case, torch.float64)
    with torch.no_grad():
        for reference in module.reference_gradients():
            reference.mul_(1e-6 / reference.norm())
    X = 1e-3 * torch.rand(5, *shape, generator=torch.Generator().manual_seed(6)).double()
    expected = reference_terms(module, X)

    got = score_terms(module, X.numpy(), batch_size=5)

    np.testing.assert_allclose(got[1], expected[1], rtol=RTOL_FLOAT64, atol=1e-12)
    assert expected[1].abs().max() > 1e-3


@pytest.mark.parametrize("case", ["mlp", "mlp-all", "conv28", "conv32-rgb"])
def test_chain_route_matches_layer_and_vmap_routes(case):
    module, shape = _module(case, torch.float64)
    x = torch.rand(6, *shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    # The package's networks take the hand-written backward.
    assert choose_route(module, x[:1]).name == "chain"
    original = x.clone()
    chain = per_sample_terms(module, x, prefer="chain")
    for other in (per_sample_terms(module, x, prefer=p) for p in ("hooks", "vmap")):
        for a, b in zip(chain, other):
            torch.testing.assert_close(a, b, rtol=RTOL_FLOAT64, atol=1e-12)
    # score_terms passes the input as a view of the caller's array when it can.
    X = original.numpy().copy()
    score_terms(module, X, batch_size=len(X))
    assert torch.equal(x, original) and np.array_equal(X, original.numpy())


def test_chain_route_never_overwrites_its_input():
    # Activations work in place on intermediate results; a network that starts with
    # one must not clip the caller's (negative) inputs.
    module, shape = _module("mlp", torch.float64)
    encoder = module.autoencoder.encoder
    module.autoencoder.encoder = nn.Sequential(nn.ReLU(), *encoder)
    X = np.random.default_rng(2).standard_normal((6, *shape))
    assert refusals(module, torch.as_tensor(X[:1]))["chain"] is None
    original = X.copy()
    score_terms(module, X, batch_size=len(X))
    np.testing.assert_array_equal(X, original)


def test_subclassed_network_leaves_the_chain_route():
    class Shifted(MLPAutoencoder):
        def forward(self, x):
            return super().forward(x) + 1.0

    module = GradConModule(Shifted((7,), (5, 3))).double()
    randomise_reference(module)
    X = torch.rand(5, 7, dtype=torch.float64)
    assert "exact types" in refusals(module, X[:1])["chain"]
    for a, b in zip(score_terms(module, X.numpy(), batch_size=5), reference_terms(module, X)):
        np.testing.assert_allclose(a, b, rtol=RTOL_FLOAT64)


@pytest.mark.parametrize("case", ["mlp", "conv28", "conv-odd"])
def test_fast_and_vmap_routes_agree(case):
    module, shape = _module(case, torch.float64)
    x = torch.rand(6, *shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert refusals(module, x[:1])["hooks"] is None
    fast, slow = per_sample_terms(module, x, "hooks"), per_sample_terms(module, x, "vmap")
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, rtol=RTOL_FLOAT64, atol=1e-12)


def test_layer_used_twice_is_not_taken_by_fast_route():
    X = torch.rand(5, 6, dtype=torch.float64)
    module = GradConModule(SkipDecoder(), ["decoder.bias"]).double()
    assert "decoder.bias is not the weight of a layer" in refusals(module, X[:1])["hooks"]
    module = GradConModule(SkipDecoder(), ["shared.weight"]).double()
    randomise_reference(module)
    # A plain Linear layer, but `shared` runs twice: its weight has two uses.
    assert "used by linear, linear" in refusals(module, X[:1])["hooks"]
    assert choose_route(module, X[:1]).name == "vmap"
    expected = reference_terms(module, X)
    got = score_terms(module, X.numpy(), batch_size=5)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=RTOL_FLOAT64)


def test_scores_do_not_depend_on_chunk_neighbours():
    module, shape = _module("conv28", torch.float32)
    X = np.random.RandomState(0).rand(9, *shape).astype(np.float32)
    whole = score_terms(module, X, batch_size=16)
    alone = [score_terms(module, X[i : i + 1], batch_size=16) for i in range(len(X))]
    for j in range(2):
        np.testing.assert_array_equal(whole[j], [a[j][0] for a in alone])


def _chunk_rows(module, shape, batch_size, device):
    route = choose_route(module, torch.zeros(1, *shape))
    return route.chunk_rows(default_chunk_rows(module, batch_size), device)


def test_chunks_are_capped_where_larger_ones_cost_more(monkeypatch):
    conv, shape = _module("conv28", torch.float32)
    assert _chunk_rows(conv, shape, 1024, "cpu") == CONV_CHUNK_ROWS
    assert _chunk_rows(conv, shape, "auto", "cpu") == CONV_CHUNK_ROWS
    assert _chunk_rows(conv, shape, 100, "cpu") == 100
    assert _chunk_rows(conv, shape, "auto", "cuda") == DEFAULT_CHUNK_ROWS
    mlp, shape = _module("mlp", torch.float32)
    assert _chunk_rows(mlp, shape, 4096, "cpu") == 4096
    assert _chunk_rows(mlp, shape, "auto", "cpu") == MLP_CHUNK_ROWS
    fallback, shape = _module("fallback", torch.float32)  # the vmap route
    n_weights = sum(r.numel() for r in fallback.reference_gradients())
    monkeypatch.setattr(chunks, "VMAP_CHUNK_ELEMENTS", 10 * n_weights)
    assert _chunk_rows(fallback, shape, 4096, "cpu") == 10
    assert _chunk_rows(fallback, shape, "auto", "cpu") == 10


def test_vmap_cap_holds_for_the_package_network_off_the_chain_route(monkeypatch):
    # A constrained bias sends the conv network to vmap, whose cap must then apply
    # (the conv network's CPU cap used to be returned first).
    torch.manual_seed(0)
    module = GradConModule(ConvAutoencoder((1, 16, 16), (4, 4, 6)), ["decoder.0.bias"])
    n_weights = sum(r.numel() for r in module.reference_gradients())
    monkeypatch.setattr(chunks, "VMAP_CHUNK_ELEMENTS", 3 * n_weights)
    assert _chunk_rows(module, (1, 16, 16), 1024, "cpu") == 3


def test_vmap_route_caps_the_rows_it_materialises(monkeypatch):
    # A chunk larger than the cap is scored in capped pieces, with the same results.
    module, shape = _module("fallback", torch.float64)
    x = torch.rand(10, *shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    whole = per_sample_terms(module, x, "vmap")
    n_weights = sum(r.numel() for r in module.reference_gradients())
    monkeypatch.setattr(chunks, "VMAP_CHUNK_ELEMENTS", 3 * n_weights)
    seen = []
    original = routes.VmapRoute._terms
    monkeypatch.setattr(
        routes.VmapRoute, "_terms", lambda self, x: seen.append(len(x)) or original(self, x)
    )
    pieces = per_sample_terms(module, x, "vmap")
    assert max(seen) == 3 and sum(seen) == 10
    for a, b in zip(pieces, whole):
        torch.testing.assert_close(a, b, rtol=RTOL_FLOAT64, atol=1e-12)


def test_prefer_names_a_route_or_says_why_not():
    module, shape = _module("conv-odd", torch.float64)
    x = torch.rand(2, *shape, dtype=torch.float64)
    with pytest.raises(ValueError, match="chain route cannot score.*exact types"):
        per_sample_terms(module, x, prefer="chain")
    with pytest.raises(ValueError, match="prefer must be one of"):
        per_sample_terms(module, x, prefer="fast")
    with pytest.raises(ValueError, match="norms must be one of"):
        per_sample_terms(module, x, norms="fastest")


def test_scoring_leaves_parameter_gradients_untouched():
    module, shape = _module("mlp", torch.float32)
    score_terms(
        module, np.random.default_rng(0).random((4, *shape), dtype=np.float32), batch_size=4
    )
    assert all(p.grad is None for p in module.parameters())


class _Fitted(BaseEstimator):
    """Just what ``to_samples`` reads from a fitted estimator."""

    n_features_in_ = 12
    input_shape = (3, 4)
    input_shape_ = (1, 3, 4)


@pytest.mark.parametrize(
    "X",
    [
        np.random.default_rng(0).random((9, 12)),  # float64
        np.asfortranarray(np.random.default_rng(1).random((9, 12))),
        np.random.default_rng(2).integers(0, 256, (9, 12), dtype=np.uint8),
        np.random.default_rng(3).random((9, 12), dtype=np.float32),
    ],
    ids=["float64", "fortran", "uint8", "float32"],
)
def test_streamed_chunks_equal_the_full_conversion(X):
    full = to_samples(_Fitted(), X, reset=False)
    chunks = to_samples(_Fitted(), X, reset=False, stream=True)
    assert len(chunks) == len(full) and chunks.shape == full.shape
    streamed = np.concatenate([chunks[i : i + 4] for i in range(0, len(X), 4)])
    assert streamed.dtype == np.float32 and streamed.flags.c_contiguous
    np.testing.assert_array_equal(streamed, full)


@pytest.mark.parametrize("case", ["fallback", "conv-odd"])
def test_threads_sharing_a_module_get_exact_scores(case):
    # The hook and vmap routes change the module while they run; concurrent callers
    # must not see each other's hooks or parameter swaps.
    from concurrent.futures import ThreadPoolExecutor

    module, shape = _module(case, torch.float32)
    X = np.random.default_rng(3).random((64, *shape), dtype=np.float32)
    expected = score_terms(module, X, batch_size=8)
    with ThreadPoolExecutor(4) as pool:
        parts = list(pool.map(lambda i: score_terms(module, X[i : i + 8], 8), range(0, 64, 8)))
    for j in range(2):
        np.testing.assert_array_equal(np.concatenate([p[j] for p in parts]), expected[j])


def test_gradients_of_large_inputs_keep_their_headroom():
    # Squared norms grow as the fourth power of the input scale. Scoring keeps the
    # output gradient's 2 / size factor (cosines would not need it), so inputs 300
    # times the accepted 1e9 still give finite terms here (without the factor: NaN).
    import warnings

    from gradient_ad import GradientAnomalyDetector

    X = np.random.RandomState(0).rand(40, 1, 16, 16).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # max_restarts=0: the network with PyTorch's default initialisation (a
        # Kaiming-initialised restart has about 3 times less headroom).
        est = GradientAnomalyDetector(
            max_epochs=2, conv_channels=(4, 4, 8, 8), random_state=0, max_restarts=0
        ).fit(X * 1e9)
    error, alignment = score_terms(est.net_.module_, X * 3e11, 64)
    assert np.isfinite(error).all() and np.isfinite(alignment).all()
