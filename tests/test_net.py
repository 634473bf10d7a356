"""GradConNet's training step against a hand-written GradCon iteration."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradient_ad import MLPAutoencoder
from gradient_ad._modules import GradConModule
from gradient_ad._net import GradConNet


def _hand_written_gradcon(module, X, alpha, lr, n_steps):
    params = module.constrained_parameters()
    optimizer = torch.optim.SGD(module.parameters(), lr=lr)
    references, n = None, 0
    for _ in range(n_steps):
        optimizer.zero_grad()
        loss_rec = ((module(X) - X) ** 2).mean()
        gradients = torch.autograd.grad(loss_rec, params, create_graph=True)
        loss = loss_rec
        if references is not None:
            cosines = [
                F.cosine_similarity(g.flatten(), r.flatten(), dim=0)
                for g, r in zip(gradients, references)
            ]
            loss = loss_rec - alpha * torch.stack(cosines).mean()
        loss.backward()
        optimizer.step()
        n += 1
        detached = [g.detach() for g in gradients]
        references = (
            detached
            if references is None
            else [r + (g - r) / n for r, g in zip(references, detached)]
        )
    return module, references


def _net(module, alpha, n_steps, lr):
    return GradConNet(
        module,
        alpha=alpha,
        criterion=nn.MSELoss,
        optimizer=torch.optim.SGD,
        lr=lr,
        max_epochs=n_steps,
        batch_size=1000,
        train_split=None,
        verbose=0,
    )


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_training_step_is_gradcon(alpha):
    torch.manual_seed(0)
    X = torch.rand(32, 6)
    module = GradConModule(MLPAutoencoder((6,), (5, 3)))
    expected, references = _hand_written_gradcon(copy.deepcopy(module), X, alpha, 0.5, 3)

    net = _net(module, alpha, 3, 0.5).fit(X.numpy(), None)

    got = net.module_
    for a, b in zip(got.parameters(), expected.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(got.reference_gradients(), references):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert got.n_reference_updates.item() == 3


def test_constraint_changes_training():
    torch.manual_seed(0)
    X = torch.rand(32, 6)
    module = GradConModule(MLPAutoencoder((6,), (5, 3)))
    plain = _net(copy.deepcopy(module), 0.0, 3, 0.5).fit(X.numpy(), None).module_
    constrained = _net(module, 5.0, 3, 0.5).fit(X.numpy(), None).module_
    difference = max(
        (a - b).abs().max() for a, b in zip(plain.parameters(), constrained.parameters())
    )
    assert difference > 1e-4


def test_validation_loss_includes_the_constraint():
    torch.manual_seed(0)
    X = torch.rand(40, 6).numpy()
    from skorch.dataset import Dataset
    from skorch.helper import predefined_split

    net = GradConNet(
        GradConModule(MLPAutoencoder((6,), (5, 3))),
        alpha=1.0,
        criterion=nn.MSELoss,
        max_epochs=2,
        batch_size=40,
        train_split=predefined_split(Dataset(X)),
        verbose=0,
    ).fit(X, None)
    # Validated on the training batch itself after the step: the constraint lowers the
    # loss below the reconstruction MSE, since aligned gradients have a positive cosine.
    module = net.module_.eval()
    x = torch.as_tensor(X)
    mse = ((module(x) - x) ** 2).mean().item()
    assert net.history[-1, "valid_loss"] < mse - 0.05
