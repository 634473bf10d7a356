"""Networks written the usual way: they train and score exactly, or are refused
clearly before any training."""

import warnings

import numpy as np
import pytest
import torch
from _reference import reference_terms
from torch import nn

from gradient_ad import GradientAnomalyDetector

X = np.random.RandomState(0).rand(60, 6).astype(np.float32)
RTOL_FLOAT32 = 1e-5


class Autoencoder(nn.Module):
    def __init__(self, inplace=False, returns_code=False, scales_input=False):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(6, 4), nn.ReLU(inplace=inplace))
        self.decoder = nn.Sequential(nn.Linear(4, 5), nn.ReLU(inplace=inplace), nn.Linear(5, 6))
        self.returns_code, self.scales_input = returns_code, scales_input

    def forward(self, x):
        if self.scales_input:
            x.mul_(2.0)
        code = self.encoder(x)
        recon = self.decoder(code)
        return (recon, code) if self.returns_code else recon


def _fit(network, X=X, **params):
    params = {"max_epochs": 2, "random_state": 0, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # too short to converge
        return GradientAnomalyDetector(network=network, **params).fit(X)


def _assert_exact(detector, X):
    """The detector's terms equal the plain per-sample loop's."""
    module = detector.net_.module_
    dtype = module.reference_gradients()[0].dtype
    expected = reference_terms(module, torch.as_tensor(X, dtype=dtype))
    got = detector.score_components(X)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b.numpy(), rtol=RTOL_FLOAT32, atol=1e-7)


@pytest.mark.parametrize(
    "options",
    [{"inplace": True}, {"returns_code": True}, {"scales_input": True}],
    ids=["ReLU(inplace=True)", "returns (reconstruction, code)", "modifies its input"],
)
def test_usual_networks_train_and_score_exactly(options):
    detector = _fit(Autoencoder(**options))
    _assert_exact(detector, X[:20])


def test_a_network_that_modifies_its_input_changes_no_caller_data():
    data = X.copy()
    detector = _fit(Autoencoder(scales_input=True), data)
    detector.score_samples(data)
    detector.predict(data[:7])
    np.testing.assert_array_equal(data, X)


def test_a_float64_network_trains_and_scores_in_float64():
    detector = _fit(Autoencoder().double())
    module = detector.net_.module_
    assert all(p.dtype == torch.float64 for p in module.parameters())
    assert module.reference_gradients()[0].dtype == torch.float64
    _assert_exact(detector, X[:20])


@pytest.mark.parametrize("images", [False, True], ids=["mlp", "conv"])
def test_default_dtype_float64_builds_and_fits_the_package_networks(images):
    data = np.random.RandomState(1).rand(40, 1, 8, 8) if images else X
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        detector = _fit("auto", data)
    finally:
        torch.set_default_dtype(previous)
    assert detector.net_.module_.reference_gradients()[0].dtype == torch.float64
    assert np.isfinite(detector.score_samples(data[:5])).all()


def test_half_precision_network_is_refused_before_training():
    with pytest.raises(ValueError, match="all float64.*found float16"):
        _fit(Autoencoder().half())


def test_frozen_decoder_weights_are_left_out_of_the_constraint():
    network = Autoencoder()
    network.decoder[0].weight.requires_grad_(False)
    detector = _fit(network)
    assert detector.net_.module_.constrained_names == ["decoder.2.weight"]
    # Frozen stays frozen: training did not move it.
    torch.testing.assert_close(
        detector.net_.module_.autoencoder.decoder[0].weight, network.decoder[0].weight
    )
    _assert_exact(detector, X[:10])


def test_a_frozen_tensor_named_explicitly_is_refused():
    network = Autoencoder()
    network.decoder[0].weight.requires_grad_(False)
    with pytest.raises(ValueError, match=r"\['decoder.0.weight'\] are frozen"):
        _fit(network, constrained=["decoder.0.weight", "decoder.2.weight"])


def test_every_decoder_weight_frozen_says_why_none_is_constrained():
    network = Autoencoder()
    network.decoder.requires_grad_(False)
    with pytest.raises(ValueError, match="no parameters to constrain.*frozen"):
        _fit(network)


class Tied(nn.Module):
    """A tied decoder that keeps an unused layer of its own."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(6, 3)
        self.decoder = nn.Linear(3, 6)  # not used: the encoder's weight is

    def forward(self, x):
        return torch.tanh(self.encoder(x)) @ self.encoder.weight


def test_constrained_tensors_without_gradient_are_refused_before_training(monkeypatch):
    fits = []
    monkeypatch.setattr("gradient_ad._net.GradConNet.fit", lambda *a, **k: fits.append(1))
    with pytest.raises(ValueError, match=r"\['decoder.weight'\] get no gradient"):
        _fit(Tied())
    assert not fits


def test_tied_weights_score_exactly():
    detector = _fit(Tied(), constrained=["encoder.weight"])
    _assert_exact(detector, X[:20])


class ItemInForward(Autoencoder):
    def forward(self, x):
        return super().forward(x) * float(x.abs().max().item() > -1)


def test_a_network_vmap_cannot_run_is_refused_before_training(monkeypatch):
    fits = []
    monkeypatch.setattr("gradient_ad._net.GradConNet.fit", lambda *a, **k: fits.append(1))
    network = ItemInForward()
    # A hooks-route network would be scored without vmap: constrain a bias to need it.
    with pytest.raises(ValueError, match="per-sample gradients of this network cannot be"):
        _fit(network, constrained=["decoder.2.bias"])
    assert not fits


def test_a_wrong_output_shape_is_refused_before_training():
    class Short(Autoencoder):
        def forward(self, x):
            return super().forward(x)[:, :3]

    with pytest.raises(ValueError, match=r"input's shape \(2, 6\).*returned \(2, 3\)"):
        _fit(Short())


@pytest.mark.parametrize("factory", [False, True], ids=["module", "network(input_shape)"])
def test_a_network_on_the_meta_device_is_refused_as_holding_no_data(monkeypatch, factory):
    fits = []
    monkeypatch.setattr("gradient_ad._net.GradConNet.fit", lambda *a, **k: fits.append(1))
    with torch.device("meta"):
        network = Autoencoder()
    with pytest.raises(ValueError, match=r"meta device and hold no data.*to_empty\(device="):
        _fit((lambda shape: network) if factory else network)
    assert not fits
