import pytest
import torch

from gradient_ad import ConvAutoencoder, MLPAutoencoder
from gradient_ad._modules import GradConModule, constrained_parameter_names


def test_reference_network_for_28_pixels():
    net = ConvAutoencoder((1, 28, 28))
    convs = [m for m in net.decoder if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [c.padding for c in convs] == [(2, 2), (1, 1), (2, 2), (1, 1)]
    assert [m.out_channels for m in net.encoder if isinstance(m, torch.nn.Conv2d)] == [
        32,
        32,
        64,
        64,
    ]
    assert sum(p.numel() for p in net.parameters()) == 230_721  # "about 231k" in the paper
    assert isinstance(net.decoder[-1], torch.nn.Sigmoid)
    assert net.encoder(torch.zeros(1, 1, 28, 28)).shape == (1, 64, 3, 3)


@pytest.mark.parametrize(
    "shape",
    [
        (1, 28, 28),
        (3, 28, 28),
        (1, 32, 32),
        (3, 32, 32),
        (1, 64, 64),
        (3, 64, 64),
        (1, 8, 8),
        (2, 5, 7),
        (1, 20, 36),
        (1, 1, 1),
    ],
)
def test_conv_autoencoder_reconstructs_any_image_size(shape):
    net = ConvAutoencoder(shape, channels=(4, 4, 8, 8))
    assert net(torch.rand(2, *shape)).shape == (2, *shape)


def test_small_images_get_fewer_layers():
    assert len(ConvAutoencoder((1, 8, 8)).encoder) == 2 * 3


def test_mlp_autoencoder_restores_shape_and_mirrors():
    net = MLPAutoencoder((3, 4), hidden_sizes=(6, 2), sigmoid_output=True)
    out = net(torch.rand(5, 3, 4))
    assert out.shape == (5, 3, 4) and out.min() >= 0 and out.max() <= 1
    widths = [m.out_features for m in net.decoder if isinstance(m, torch.nn.Linear)]
    assert widths == [6, 12]


def test_constrained_names():
    net = MLPAutoencoder((5,), (4, 2))
    assert constrained_parameter_names(net) == ["decoder.0.weight", "decoder.2.weight"]
    assert len(constrained_parameter_names(net, "all")) == 4
    assert constrained_parameter_names(net, ["encoder.0.bias"]) == ["encoder.0.bias"]
    with pytest.raises(ValueError, match="not parameters"):
        constrained_parameter_names(net, ["nope.weight"])
    with pytest.raises(ValueError, match="decoder"):
        constrained_parameter_names(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="must be 'decoder', 'all'"):
        constrained_parameter_names(net, "encoder")


def test_reference_is_cumulative_mean_and_a_buffer():
    module = GradConModule(MLPAutoencoder((5,), (4, 2)))
    draws = [[torch.randn_like(p) for p in module.constrained_parameters()] for _ in range(5)]
    for gradients in draws:
        module.update_reference(gradients)
    for i, reference in enumerate(module.reference_gradients()):
        torch.testing.assert_close(reference, torch.stack([d[i] for d in draws]).mean(0))
    assert module.n_reference_updates.item() == 5
    state = module.state_dict()
    assert "reference_0" in state and "n_reference_updates" in state
