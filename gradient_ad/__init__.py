"""GradCon anomaly detection from backpropagated gradients, for scikit-learn."""

from typing import TYPE_CHECKING

from ._lazy import lazy_names
from ._version import __version__

# The public names load on first use (PEP 562), so that ``import gradient_ad`` does not
# import torch: the benchmark command parses its arguments (and answers ``--help``)
# in a fraction of a second. Type checkers and the layout test read the imports below.
if TYPE_CHECKING:
    from ._combined import ScoreComponents
    from ._detector import GradientAnomalyDetector, InconsistentVersionWarning
    from ._features import GradientFeatures
    from ._loading import load
    from ._maps import anomaly_maps
    from ._modules import ConvAutoencoder, MLPAutoencoder
    from ._warnings import FitInterruptedWarning

_HOMES = {
    "ConvAutoencoder": "_modules",
    "FitInterruptedWarning": "_warnings",
    "GradientAnomalyDetector": "_detector",
    "GradientFeatures": "_features",
    "InconsistentVersionWarning": "_detector",
    "MLPAutoencoder": "_modules",
    "ScoreComponents": "_combined",
    "anomaly_maps": "_maps",
    "load": "_loading",
}

__all__ = [
    "ConvAutoencoder",
    "FitInterruptedWarning",
    "GradientAnomalyDetector",
    "GradientFeatures",
    "InconsistentVersionWarning",
    "MLPAutoencoder",
    "ScoreComponents",
    "__version__",
    "anomaly_maps",
    "load",
]


__getattr__, __dir__ = lazy_names(__name__, _HOMES)
