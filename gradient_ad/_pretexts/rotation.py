"""The rotation pretext task: which of four 90-degree rotations was applied to an image.

A network trained on normal images only learns their canonical orientation: asked how
an unfamiliar image was rotated it is unsure, and its loss and the gradient of that loss
are large (Golan & El-Yaniv, NeurIPS 2018; Hendrycks et al., NeurIPS 2019; Bergman &
Hoshen, ICLR 2020). Here a rotation classifier sits beside the autoencoder: a copy of
its encoder (same architecture, same initial weights, trained apart) and a linear head
on the flattened code. One shared encoder was tried first and measured worse: on
Fashion-MNIST sandals (class 5, 1500 images, 6 epochs) the rotation loss took the
encoder over and the reconstruction stalled (training reconstruction loss 0.09 at
``pretext_weight`` 1 and 0.1, against 0.04 without the head; reconstructions keeping
under 2% of the data's variance, a collapse), so the detector restarted it again and
again. With its own encoder, the autoencoder trains as without the pretext.

For a sample ``x`` with the four rotated copies ``x_r = rot90(x, r)``, codes
``z_r = flatten(pretext_encoder(x_r))`` and softmax outputs ``p_r = softmax(W z_r + b)``:

- the rotation loss ``l(x) = -mean_r log <t_r, p_r>`` with targets ``t_r``: one-hot on
  ``r`` in training (the cross-entropy); for scoring, the detector uses the
  *calibrated* targets, the mean softmax that held-out normal images get for rotation
  ``r`` (see :func:`calibrated_targets`). On classes that look alike under rotation (a
  0, a sandal) normal images are ambiguous too; the one-hot target would penalise them
  for it, the calibrated target does not;
- the head's weight gradient ``dl/dW = (1/4) sum_r (p_r - w_r) z_r^T``, with
  ``w_r = t_r * p_r / <t_r, p_r>`` (``t_r`` for one-hot targets), scored as the log of
  its norm. Its squared norm is the 4 x 4 Gram expression
  ``(1/16) sum_{r,s} <p_r - w_r, p_s - w_s> <z_r, z_s>``: the rotated copies play the
  role of a linear layer's positions, so the scoring engine's rule for
  :class:`~torch.nn.Linear` computes it (:mod:`gradient_ad._scoring.layers`) without
  materialising per-sample gradients.
"""

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._combined import Term
from .._gradcon import cosines_from_terms
from .._scoring.batches import planned_terms
from .._scoring.layers import rule_for
from .base import Pretext
from .registry import register_pretext

__all__ = [
    "N_ROTATIONS",
    "PretextHead",
    "Rotation",
    "calibrated_targets",
    "check_pretext_input",
    "check_pretext_network",
    "one_hot_targets",
    "pretext_logits",
    "pretext_terms",
    "rotate",
    "rotation_classifier",
    "rotation_terms",
    "score_terms",
    "training_loss",
]

N_ROTATIONS = 4


def check_pretext_input(shape, pretext="rotation"):
    """Refuse, before any work, samples the pretext cannot transform.

    Parameters
    ----------
    shape : tuple of int
        Shape of one sample as the network sees it.
    pretext : str
    """
    if len(shape) != 3:
        raise ValueError(
            f"pretext={pretext!r} needs images, but the samples are rows of {shape[0]} "
            "features (a table). Pass images as (n, H, W) or (n, C, H, W) arrays, or flat "
            "rows with input_shape; for tables use pretext=None."
        )
    if shape[1] != shape[2]:
        # A 90-degree rotation of a non-square image changes its shape, which the
        # network cannot take; the shape-keeping transformations (180 degrees, flips)
        # leave a 2-way task that is not measured here.
        raise ValueError(
            f"pretext={pretext!r} rotates images by 90 degrees and needs square images, "
            f"got height x width {shape[1]} x {shape[2]}. Crop or pad the images to a "
            "square (e.g. with numpy.pad), or use pretext=None."
        )


def check_pretext_network(autoencoder, shape, pretext="rotation"):
    """Refuse, before any training, a network the pretext head cannot read.

    Parameters
    ----------
    autoencoder : torch.nn.Module
        Must have an ``encoder`` submodule mapping a batch of images to codes of
        ``n`` rows (a copy of it feeds the head, which reads the flattened code).
    shape : tuple of int
        Shape of one sample as the network sees it.
    pretext : str
    """
    check_pretext_input(shape, pretext)
    encoder = getattr(autoencoder, "encoder", None)
    if not isinstance(encoder, nn.Module):
        raise ValueError(
            f"pretext={pretext!r} trains a rotation classifier made of a copy of the "
            "network's `encoder` submodule and a linear head on its code; "
            f"{type(autoencoder).__name__} has no `encoder` "
            "submodule. Give the network an `encoder` attribute (a torch.nn.Module mapping "
            "a batch of images to codes), or use pretext=None."
        )


def rotation_classifier(autoencoder, shape, pretext="rotation"):
    """The rotation classifier's encoder (a copy of ``autoencoder.encoder``, same
    weights) and head (sized from a probe of one ``shape`` sample), on the
    autoencoder's device and dtype; refuses a network the head cannot read."""
    check_pretext_network(autoencoder, shape, pretext)
    encoder = copy.deepcopy(autoencoder.encoder)
    parameter = next(autoencoder.parameters())
    n_inputs = code_size(encoder, shape, parameter.dtype, parameter.device)
    return encoder, PretextHead(n_inputs).to(parameter.device, parameter.dtype)


def code_size(encoder, shape, dtype, device):
    """Number of values in the flattened code of one sample, from a probe forward."""
    probe = torch.zeros((2, *shape), dtype=dtype, device=device)
    try:
        with torch.no_grad():
            code = encoder(probe)
    except Exception as error:
        # The package's MLP flattens images in its forward, not in its encoder.
        raise ValueError(
            "the rotation classifier feeds the network's `encoder` a batch of images of "
            f"shape (n, *{shape}), which it cannot take ({type(error).__name__}: {error}). "
            "Use the convolutional network (network='conv' or 'auto'), or an encoder that "
            "takes image batches."
        ) from error
    if not isinstance(code, torch.Tensor) or code.ndim < 2 or len(code) != 2:
        got = tuple(code.shape) if isinstance(code, torch.Tensor) else type(code).__name__
        raise ValueError(
            "the network's `encoder` must map a batch of n images to a tensor of codes with "
            f"n rows, for the pretext head to read; for 2 images it returned {got}"
        )
    return math.prod(code.shape[1:])


class PretextHead(nn.Module):
    """A linear classifier of the flattened code: logits of the four rotations.

    Parameters
    ----------
    n_inputs : int
        Values in one sample's flattened code.
    n_classes : int, default=4
    """

    def __init__(self, n_inputs, n_classes=N_ROTATIONS):
        super().__init__()
        self.linear = nn.Linear(n_inputs, n_classes)

    def forward(self, code):
        return self.linear(code.flatten(1))


def rotate(x):
    """The four 90-degree rotations of a batch ``(n, C, H, W)``, rotation-major:
    rows ``r n`` to ``(r + 1) n - 1`` hold ``rot90(x, r)``."""
    return torch.cat([torch.rot90(x, r, dims=(2, 3)) for r in range(N_ROTATIONS)])


def pretext_logits(module, x):
    """Logits ``(n, 4, 4)`` (sample, rotation applied, rotation predicted) and the
    flattened codes ``(n, 4, F)`` of the rotated copies of ``x``."""
    n = len(x)
    code = module.pretext_encoder(rotate(x)).flatten(1)
    logits = module.pretext_head.linear(code)
    return (
        logits.reshape(N_ROTATIONS, n, -1).transpose(0, 1),
        code.reshape(N_ROTATIONS, n, -1).transpose(0, 1),
    )


def one_hot_targets(dtype=torch.float32, device="cpu"):
    """The training targets: rotation ``r`` is class ``r``."""
    return torch.eye(N_ROTATIONS, dtype=dtype, device=device)


def training_loss(module, x):
    """Mean cross-entropy of the rotation head over the four copies of the batch."""
    logits, _ = pretext_logits(module, x)
    labels = torch.arange(N_ROTATIONS, device=x.device).expand(len(x), -1)
    return F.cross_entropy(logits.reshape(-1, N_ROTATIONS), labels.reshape(-1))


def pretext_terms(module, x, targets):
    """Per-sample rotation loss and log norm of its head-weight gradient.

    The loss of one rotated copy is ``-log <t_r, p_r>``: the log-likelihood that the
    classifier gives to a rotation label drawn from ``t_r``. For one-hot targets this
    is the cross-entropy; for the calibrated targets (the mean softmax of normal images)
    a normal image of a class that looks alike under rotation (a 0 turned by 180
    degrees) is not penalised for choosing between the rotations normal images confuse,
    while an image that puts its mass where normal images put none still is. (The
    cross-entropy ``-sum_k t_rk log p_rk`` against the calibrated targets would instead
    penalise confident normal images; measured, it ranks worse.)

    Parameters
    ----------
    module : GradConModule
        With a ``pretext_head``; in eval mode.
    x : Tensor of shape (n, C, H, W)
    targets : Tensor of shape (4, 4)
        Row ``r``: the target distribution of rotation ``r`` (one-hot or calibrated).

    Returns
    -------
    loss : Tensor of shape (n,)
        ``mean_r -log <t_r, p_r>``.
    log_head_gradient_norm : Tensor of shape (n,)
        ``log ||dl/dW||`` of the head's weight, clamped at ``log(1e-30)``.
    probabilities : Tensor of shape (n, 4, 4)
        ``p_r`` of each sample.
    """
    with torch.no_grad():
        logits, code = pretext_logits(module, x)
        log_p = torch.log_softmax(logits, -1)
        joint = targets.log() + log_p  # log(t_rk p_rk), -inf where t_rk = 0
        loss = -torch.logsumexp(joint, -1).mean(1)
        # d l / d logits of copy r: p_r - w_r, with w_r the responsibilities
        # t_rk p_rk / <t_r, p_r> (t_r itself for one-hot targets). The copies are the
        # linear layer's positions.
        delta = (log_p.exp() - torch.softmax(joint, -1)) / N_ROTATIONS
        layer = module.pretext_head.linear
        _, norm = rule_for(layer).terms(layer, code, delta, layer.weight)
    return loss, norm.clamp_min(1e-30).log(), log_p.exp()


def calibrated_targets(probabilities):
    """Mean softmax per rotation ``(4, 4)`` over held-out normal samples' ``(n, 4, 4)``
    probabilities: the targets that score a sample by how far its predictions are from
    those normal images get (equal to one-hot where normal images are unambiguous)."""
    return probabilities.mean(0)


def score_terms(module, X, batch_size, device, targets, verbose=0):
    """Every per-sample term of a module with a pretext head, rows at once.

    Chunks, padding and precision as :func:`gradient_ad._scoring.score_terms` (through
    :func:`~gradient_ad._scoring.batches.planned_terms`); the GradCon terms come from
    the same route.

    Parameters
    ----------
    module : GradConModule
        With a ``pretext_head``, in eval mode.
    X : ndarray of shape (n_samples, C, H, W)
    batch_size : int or 'auto'
    device : str or torch.device
    targets : Tensor of shape (4, 4)
        Targets of the rotation loss (:func:`one_hot_targets` or calibrated).
    verbose : int, default=0

    Returns
    -------
    reconstruction_error, alignment, rotation_loss, log_head_gradient_norm : ndarray \
            of shape (n_samples,)
    layer_alignments : ndarray of shape (n_samples, n_constrained)
    probabilities : ndarray of shape (n_samples, 4, 4)
    """
    n_tensors = len(module.constrained_names)
    shapes = [(), (), (), (), (n_tensors,), (N_ROTATIONS, N_ROTATIONS)]
    if not len(X):
        return tuple(np.empty((0, *shape)) for shape in shapes)
    targets = torch.as_tensor(targets)

    def terms(route):
        # A small call's route scores a float64 copy of the module: use its tensors.
        scored = route.module
        route_targets = targets.to(device, scored.dtype)

        def of(chunk):
            result = route.layer_terms(chunk)
            cosines = cosines_from_terms(result.dots, result.norms, route.references)
            loss, log_norm, probabilities = pretext_terms(scored, chunk, route_targets)
            return result.error, cosines.mean(0), loss, log_norm, cosines.T, probabilities

        return of

    return planned_terms(module, X, batch_size, device, shapes, terms, verbose)


def rotation_terms(module, X, batch_size, device, targets, verbose=0):
    """The rotation classifier's terms alone, rows at once: what :func:`score_terms`
    gives without the GradCon route's per-sample gradients (same chunks, padding and
    precision).

    Returns
    -------
    rotation_loss, log_head_gradient_norm : ndarray of shape (n_samples,)
    probabilities : ndarray of shape (n_samples, 4, 4)
    """
    shapes = [(), (), (N_ROTATIONS, N_ROTATIONS)]
    if not len(X):
        return tuple(np.empty((0, *shape)) for shape in shapes)
    targets = torch.as_tensor(targets)

    def terms(route):
        scored = route.module  # the float64 copy in a small call
        route_targets = targets.to(device, scored.dtype)
        return lambda chunk: pretext_terms(scored, chunk, route_targets)

    return planned_terms(module, X, batch_size, device, shapes, terms, verbose)


@register_pretext
class Rotation(Pretext):
    """``pretext='rotation'``: which of four 90-degree rotations was applied to a
    square image (see the module's docstring)."""

    name = "rotation"
    terms = (
        Term("rotation_loss", True, source="rotation"),
        Term("log_rotation_gradient_norm", True, source="rotation"),
    )
    calibration_names = ("rotation_targets",)
    combined = True

    def check_input(self, shape):
        check_pretext_input(shape, self.name)

    def modules(self, autoencoder, shape):
        encoder, head = rotation_classifier(autoencoder, shape, self.name)
        return {"pretext_encoder": encoder, "pretext_head": head}

    def transform(self, x):
        return rotate(x)

    def training_loss(self, module, x):
        return training_loss(module, x)

    def calibrate(self, module, held_out, batch_size, device, verbose=0):
        """The calibrated targets: the mean softmax of the held-out normal rows."""
        one_hot = one_hot_targets(module.dtype)
        probabilities = rotation_terms(module, held_out, batch_size, device, one_hot, verbose)[2]
        return {"rotation_targets": calibrated_targets(torch.as_tensor(probabilities)).numpy()}

    def _targets(self, module, calibration):
        if calibration is None:  # before calibration, as trained
            return one_hot_targets(module.dtype)
        return calibration["rotation_targets"]

    def score_terms(
        self, module, X, batch_size, device, calibration=None, per_layer=False, verbose=0
    ):
        targets = self._targets(module, calibration)
        parts = score_terms(module, X, batch_size, device, targets, verbose)
        names = ["reconstruction_error", "alignment", *(t.name for t in self.terms)]
        terms = dict(zip(names, parts[:4]))
        if per_layer:
            terms["layer_alignments"] = parts[4]
        return terms

    def own_terms(self, module, X, batch_size, device, calibration, verbose=0):
        targets = self._targets(module, calibration)
        parts = rotation_terms(module, X, batch_size, device, targets, verbose)
        return dict(zip((t.name for t in self.terms), parts[:2]))

    def reliability(self, components):
        """``1 - mean rotation loss / log 4`` on held-out normal images, at least 0:
        1 where their rotations are read with certainty, 0 where the head is no better
        than a guess among the four (the loss of a uniform prediction is ``log 4``)."""
        loss = float(np.mean(components.rotation_loss))
        return min(1.0, max(0.0, 1.0 - loss / math.log(N_ROTATIONS)))

    def probabilities(self, module, X, batch_size, device, verbose=0):
        """``(n, 4, 4)``: what the head predicts for each rotated copy (one-hot targets
        play no part in them)."""
        one_hot = one_hot_targets(module.dtype)
        return rotation_terms(module, X, batch_size, device, one_hot, verbose)[2]

    def feature_names(self, module):
        # The gradient norm is the head weight's, named as in the module's state_dict.
        return ["rotation_loss", "log_rotation_gradient_norm__pretext_head.linear.weight"]
