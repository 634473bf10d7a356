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
