"""GradConNet's training step against a hand-written GradCon iteration."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradient_ad import ConvAutoencoder, MLPAutoencoder
from gradient_ad._modules import GradConModule
from gradient_ad._net import GradConNet


def _hand_written_gradcon(module, X, alpha, n_steps, reference, optimizer=torch.optim.SGD, lr=0.5):
    """The authors' training iteration (``ae_grad_reg.train``), written out plainly."""
    params = module.constrained_parameters()
    optimizer = optimizer(module.parameters(), lr=lr)
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
        # 'total' reads .grad after the backward pass of the whole loss, as the
        # authors' code does; 'reconstruction' keeps dL_rec/dW alone.
        new = [
            (p.grad if reference == "total" else g).detach().clone()
            for p, g in zip(params, gradients)
        ]
        optimizer.step()
        n += 1
        references = (
            new if references is None else [r + (g - r) / n for r, g in zip(references, new)]
        )
    return module, references


def _net(module, alpha, n_steps, lr, reference="total", optimizer=torch.optim.SGD):
    return GradConNet(
        module,
        alpha=alpha,
        reference=reference,
        criterion=nn.MSELoss,
        optimizer=optimizer,
        lr=lr,
        max_epochs=n_steps,
        batch_size=1000,
        train_split=None,
        verbose=0,
    )


def _assert_same_training(got, expected, references, n_steps):
    for a, b in zip(got.parameters(), expected.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(got.reference_gradients(), references):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert got.n_reference_updates.item() == n_steps


@pytest.mark.parametrize("reference", ["total", "reconstruction"])
@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_training_step_is_gradcon(alpha, reference):
    torch.manual_seed(0)
    X = torch.rand(32, 6)
    module = GradConModule(MLPAutoencoder((6,), (5, 3)))
    expected, references = _hand_written_gradcon(copy.deepcopy(module), X, alpha, 3, reference)

    net = _net(module, alpha, 3, 0.5, reference).fit(X.numpy(), None)

    _assert_same_training(net.module_, expected, references, 3)


def test_default_step_is_the_authors_on_their_network():
    # The reference network (conv, sigmoid output), Adam at the reference settings.
    torch.manual_seed(0)
    X = torch.rand(16, 1, 12, 12)
    module = GradConModule(ConvAutoencoder((1, 12, 12), channels=(4, 6)))
    expected, references = _hand_written_gradcon(
        copy.deepcopy(module), X, 0.03, 4, "total", torch.optim.Adam, 1e-3
    )

    net = GradConNet(
        module,
        criterion=nn.MSELoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        max_epochs=4,
        batch_size=64,
        train_split=None,
        verbose=0,
    ).fit(X.numpy(), None)

    assert net.reference == "total"
    _assert_same_training(net.module_, expected, references, 4)


def test_reference_rules_differ():
    torch.manual_seed(0)
    X = torch.rand(32, 6)
    module = GradConModule(MLPAutoencoder((6,), (5, 3)))
    total = _net(copy.deepcopy(module), 0.5, 3, 0.5, "total").fit(X.numpy(), None).module_
    rec = _net(module, 0.5, 3, 0.5, "reconstruction").fit(X.numpy(), None).module_
    difference = max(
        (a - b).abs().max() for a, b in zip(total.reference_gradients(), rec.reference_gradients())
    )
    assert difference > 1e-4


def test_unknown_reference_rule_is_refused():
    net = _net(GradConModule(MLPAutoencoder((6,), (5, 3))), 0.5, 1, 0.5, "gradients")
    with pytest.raises(ValueError, match="reference must be one of"):
        net.fit(torch.rand(8, 6).numpy(), None)


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
