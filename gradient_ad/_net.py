"""The skorch net that trains an autoencoder with GradCon's gradient constraint."""

import torch
from skorch import NeuralNet
from skorch.dataset import unpack_data

from ._gradcon import alignment
from ._pretexts import get_pretext

__all__ = ["GradConNet", "REFERENCE_RULES"]

REFERENCE_RULES = ("total", "reconstruction")


class GradConNet(NeuralNet):
    """skorch net whose training step is GradCon (Kwon et al., ECCV 2020).

    The module must be a :class:`~gradient_ad._modules.GradConModule`. For every
    mini-batch ``x`` the step computes the reconstruction loss ``L_rec`` (the
    criterion between ``module(x)`` and ``x``), its gradients ``g_l`` with respect to
    the constrained tensors (a double backward keeps them differentiable), and
    minimises ``L = L_rec - alpha * mean_l cos(g_l, gbar_l)``, where ``gbar_l`` is the
    cumulative mean over all previous training iterations of the gradient named by
    ``reference``. The first iteration has no reference and trains on ``L_rec`` alone.
    After each backward pass the reference is updated with that step's gradient.

    The validation loss is the same quantity, computed without updating the
    reference, so early stopping and checkpointing select on GradCon's own objective.
    Targets are the inputs; ``y`` is ignored.

    Parameters
    ----------
    module : GradConModule
        Autoencoder with reference-gradient buffers.
    alpha : float, default=0.03
        Weight of the gradient constraint.
    pretext_weight : float, default=1.0
        Weight ``lambda`` of the pretext loss, for a module with a pretext (its
        ``pretext`` names the task): the step then minimises ``L + lambda *
        L_pretext``, ``L_pretext`` being the task's ``training_loss``
        (:mod:`gradient_ad._pretexts`; for rotation, the head's mean cross-entropy
        over the four rotated copies of the batch). The rotation classifier has its
        own encoder: the loss does not reach the autoencoder, whose reference
        gradients mean what they mean without it. With Adam, the weight matters
        mostly to early stopping, which watches the sum.
    reference : {'total', 'reconstruction'}, default='total'
        What the reference averages. ``'total'``: the gradient of the whole training
        loss ``L`` with respect to each constrained tensor, second-order term of the
        constraint included (what the authors' code reads from ``.grad`` after the
        backward pass). ``'reconstruction'``: the reconstruction gradients ``g_l``.
    **kwargs
        Passed to :class:`skorch.NeuralNet`.
    """

    def __init__(self, module, *args, alpha=0.03, reference="total", pretext_weight=1.0, **kwargs):
        super().__init__(module, *args, **kwargs)
        self.alpha = alpha
        self.reference = reference
        self.pretext_weight = pretext_weight

    def initialize(self):
        if self.reference not in REFERENCE_RULES:
            raise ValueError(f"reference must be one of {REFERENCE_RULES}, got {self.reference!r}")
        return super().initialize()

    def get_loss(self, y_pred, y_true, X=None, training=False):
        # An autoencoder reconstructs its input: the target is X, whatever y holds.
        return self.criterion_(y_pred, X)

    def _pretext_loss(self, Xi, training):
        """``lambda * L_pretext`` (``None`` without a pretext loss), recorded per batch."""
        loss = get_pretext(self.module_.pretext).training_loss(self.module_, Xi)
        if loss is None:
            return None
        self.history.record_batch(
            "train_pretext_loss" if training else "valid_pretext_loss", loss.item()
        )
        return self.pretext_weight * loss

    def _gradcon_loss(self, Xi, training):
        module = self.module_
        params = module.constrained_parameters()
        recon = self.infer(Xi)
        loss_rec = self.get_loss(recon, None, X=Xi, training=training)
        pretext_loss = self._pretext_loss(Xi, training)
        constrain = self.alpha != 0 and module.n_reference_updates.item() > 0
        if not constrain:
            # The pretext loss does not reach the autoencoder, so the constrained
            # tensors' gradients are the reconstruction's whichever rule reads them.
            total = loss_rec if pretext_loss is None else loss_rec + pretext_loss
            if training:
                total.backward()
                gradients = [p.grad.detach().clone() for p in params]
            else:
                gradients = None
            return total, loss_rec, recon, gradients
        gradients = torch.autograd.grad(loss_rec, params, create_graph=training)
        loss = loss_rec - self.alpha * alignment(gradients, module.reference_gradients())
        if pretext_loss is not None:
            loss = loss + pretext_loss
        if not training:
            return loss, loss_rec, recon, None
        loss.backward()
        if self.reference == "total":
            gradients = [p.grad for p in params]
        return loss, loss_rec, recon, [g.detach().clone() for g in gradients]

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        Xi, _ = unpack_data(batch)
        loss, loss_rec, recon, gradients = self._gradcon_loss(Xi, training=True)
        self.module_.update_reference(gradients)
        self.history.record_batch("rec_loss", loss_rec.item())
        return {"loss": loss, "y_pred": recon}

    def validation_step(self, batch, **fit_params):
        self._set_training(False)
        Xi, _ = unpack_data(batch)
        with torch.enable_grad():
            loss, _, recon, _ = self._gradcon_loss(Xi, training=False)
        return {"loss": loss.detach(), "y_pred": recon.detach()}
