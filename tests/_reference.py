"""A plain GradCon scorer, one sample at a time, as the reference code does it.

The package's batched scoring must agree with it; nothing here is optimised.
"""

import torch
import torch.nn.functional as F


def reference_terms(module, X):
    """Per-sample reconstruction error and mean cosine, looping over samples."""
    module.eval()
    params = module.constrained_parameters()
    errors, alignments = [], []
    for x in torch.as_tensor(X):
        x = x[None]
        error = ((module(x) - x) ** 2).mean()
        gradients = torch.autograd.grad(error, params)
        cosines = [
            F.cosine_similarity(g.flatten(), r.flatten(), dim=0)
            for g, r in zip(gradients, module.reference_gradients())
        ]
        errors.append(error.item())
        alignments.append(torch.stack(cosines).mean().item())
    return torch.tensor(errors, dtype=torch.float64), torch.tensor(alignments, dtype=torch.float64)


def randomise_reference(module, seed=0):
    """Give a module nonzero reference gradients without training it."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for reference in module.reference_gradients():
            reference.copy_(
                torch.randn(reference.shape, generator=generator, dtype=reference.dtype)
            )
        module.n_reference_updates.fill_(1)
    return module


def reference_layer_terms(module, X, directions=None):
    """Per-sample, per-tensor cosines, gradient norms and projections on
    ``directions`` (one ``(P, *shape)`` tensor per constrained tensor), looping over
    samples."""
    module.eval()
    params = module.constrained_parameters()
    cosines, norms, projections = [], [], []
    for x in torch.as_tensor(X):
        x = x[None]
        gradients = torch.autograd.grad(((module(x) - x) ** 2).mean(), params)
        cosines.append(
            [
                F.cosine_similarity(g.flatten(), r.flatten(), dim=0).item()
                for g, r in zip(gradients, module.reference_gradients())
            ]
        )
        norms.append([g.norm().item() for g in gradients])
        if directions is not None:
            projections.append(
                [(d.flatten(1) @ g.flatten()).tolist() for g, d in zip(gradients, directions)]
            )
    as_tensor = lambda values: torch.tensor(values, dtype=torch.float64)  # noqa: E731
    return as_tensor(cosines), as_tensor(norms), as_tensor(projections) if directions else None


def reference_rotation_terms(module, X, targets):
    """The rotation pretext's terms, one sample at a time by autograd: the loss
    ``-mean_r log <t_r, p_r>`` and the log norm of its gradient with respect to the
    head's weight."""
    weight = module.pretext_head.linear.weight
    losses, norms = [], []
    for sample in torch.as_tensor(X):
        with torch.enable_grad():
            copies = torch.stack([torch.rot90(sample, r, dims=(1, 2)) for r in range(4)])
            logits = module.pretext_head(module.pretext_encoder(copies))
            p = torch.softmax(logits, -1)
            loss = -torch.log((targets * p).sum(-1)).mean()
            (gradient,) = torch.autograd.grad(loss, weight)
        losses.append(loss.detach())
        norms.append(gradient.norm())
    return {
        "rotation_loss": torch.stack(losses),
        "log_rotation_gradient_norm": torch.stack(norms).log(),
    }
