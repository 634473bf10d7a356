"""``pretext=None``: the paper's method, the member without a task."""

from .._scoring import layer_terms, score_terms
from .base import Pretext
from .registry import register_pretext

__all__ = ["NoPretext"]


@register_pretext
class NoPretext(Pretext):
    """No task: no modules, no loss, no terms of its own; GradCon's terms from the
    scoring engine as for any model."""

    def check_input(self, shape):
        pass

    def modules(self, autoencoder, shape):
        return {}

    def transform(self, x):
        return x

    def training_loss(self, module, x):
        return None

    def calibrate(self, module, held_out, batch_size, device, verbose=0):
        return {}

    def score_terms(
        self, module, X, batch_size, device, calibration=None, per_layer=False, verbose=0
    ):
        if not per_layer:
            terms = score_terms(module, X, batch_size, device, verbose=verbose)
            return {
                "reconstruction_error": terms.reconstruction_error,
                "alignment": terms.alignment,
            }
        terms = layer_terms(module, X, batch_size, device, verbose=verbose)
        return {
            "reconstruction_error": terms.reconstruction_error,
            "alignment": terms.alignment,
            "layer_alignments": terms.cosines,
        }

    def own_terms(self, module, X, batch_size, device, calibration, verbose=0):
        return {}
