"""The pretext contract: what a pretext task provides to the detector, written once.

A pretext is a self-supervised task trained beside the autoencoder (rotation is the
first); its own terms join GradCon's in the model's combined score. The skorch net,
training, calibration, scoring, features and persistence call these methods, never a
pretext by name. ``None`` (the paper's method) is the member without a task
(:class:`~gradient_ad._pretexts.none.NoPretext`), so that callers need no branch.
"""

from abc import ABC, abstractmethod

__all__ = ["Pretext"]


class Pretext(ABC):
    """One pretext task; subclasses are registered with
    :func:`~gradient_ad._pretexts.registry.register_pretext`.

    Attributes
    ----------
    name : str or None
        The ``pretext`` parameter's value that selects it.
    terms : tuple of Term
        Its scoring terms (name, direction, transform), after GradCon's two in
        :class:`~gradient_ad.ScoreComponents`.
    calibration_names : tuple of str
        The arrays :meth:`calibrate` fits; a model saved before the combined score had
        its own object kept each as the detector's attribute ``<name>_``.
    combined : bool
        Whether a model with it scores with the combined score (else GradCon's).
    """

    name = None
    terms = ()
    calibration_names = ()
    combined = False

    @abstractmethod
    def check_input(self, shape):
        """Refuse, before any work, samples of ``shape`` (one sample as the network
        sees it) that the task cannot transform: a ``ValueError`` naming the fix."""

    @abstractmethod
    def modules(self, autoencoder, shape):
        """The task's modules for ``autoencoder`` and a sample ``shape``, by the
        attribute name they get on the GradConModule, on the autoencoder's device and
        dtype; refuses (``ValueError``) a network the task cannot use."""

    @abstractmethod
    def transform(self, x):
        """The transformed copies of a batch ``x`` that the task learns on."""

    @abstractmethod
    def training_loss(self, module, x):
        """The task's mean loss on a training batch ``x`` (a scalar tensor), or
        ``None`` without one."""

    @abstractmethod
    def calibrate(self, module, held_out, batch_size, device, verbose=0):
        """What the task fits on held-out normal rows, as a dict of
        ``calibration_names`` to arrays (e.g. the rotation targets)."""

    @abstractmethod
    def score_terms(
        self, module, X, batch_size, device, calibration=None, per_layer=False, verbose=0
    ):
        """Every per-sample term of the model, rows at once, by name: GradCon's
        ``reconstruction_error`` and ``alignment`` (and ``layer_alignments`` with
        ``per_layer``) and the task's :attr:`terms`, in one pass through the chunks
        (:func:`~gradient_ad._scoring.planned_terms`). ``calibration``: from
        :meth:`calibrate`; ``None`` before it (when the network is checked)."""

    @abstractmethod
    def own_terms(self, module, X, batch_size, device, calibration, verbose=0):
        """The task's :attr:`terms` alone, by name, without GradCon's route."""

    def reliability(self, components):
        """How well the task is solved on held-out normal samples, in [0, 1], from
        their :class:`~gradient_ad.ScoreComponents`: the weight of its terms in the
        combined score. A task that normal data cannot solve either (an image class
        without a canonical orientation, for rotations) cannot be failed more by an
        anomaly, so its terms carry little information. Default: 1."""
        return 1.0

    def feature_names(self, module):
        """Names of the task's terms as :class:`~gradient_ad.GradientFeatures`
        columns (default: the terms' names)."""
        return [term.name for term in self.terms]
