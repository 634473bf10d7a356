"""GradCon anomaly detection from backpropagated gradients, for scikit-learn."""

from ._combined import ScoreComponents
from ._detector import GradientAnomalyDetector, InconsistentVersionWarning
from ._features import GradientFeatures
from ._loading import load
from ._maps import anomaly_maps
from ._modules import ConvAutoencoder, MLPAutoencoder
from ._version import __version__
from ._warnings import FitInterruptedWarning

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
