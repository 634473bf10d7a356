"""The detectors the benchmark compares, beyond the fitted detector itself: the
scores read from one GradCon or pretext network, and the classic detectors."""

from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor
from sklearn.svm import OneClassSVM

from .._combined import fit_neighbours, neighbour_distance
from .._gradcon import anomaly_score


def gradcon_scorer(method, beta):
    """Anomaly score (higher = more anomalous) from ``(error, alignment)``."""
    if method == "gradcon_reconstruction":
        return lambda error, alignment: error
    if method == "gradcon_gradient":
        return lambda error, alignment: -alignment
    return lambda error, alignment: anomaly_score(error, alignment, beta)


def pretext_scores(detector, X):
    """Anomaly scores (higher = more anomalous) of the pretext detector and its terms."""
    components = detector.score_components(X)
    return {
        # score_samples, from the components computed once.
        "pretext": detector.combined_.score(components),
        "pretext_reconstruction": components.reconstruction_error,
        "pretext_alignment": -components.alignment,
        "pretext_rotation_loss": components.rotation_loss,
        "pretext_rotation_gradient": components.log_rotation_gradient_norm,
        "pretext_neighbours": components.neighbour_distance,
    }


def combined_scores(detector, X):
    """Anomaly scores of a table model's combined score and of each of its terms."""
    components = detector.score_components(X)
    return {
        "combined": detector.combined_.score(components),
        "combined_reconstruction": components.reconstruction_error,
        "combined_alignment": -components.alignment,
        "combined_neighbours": components.neighbour_distance,
    }


class KNN:
    """The mean distance to the ``N_NEIGHBOURS`` (5) nearest training rows, as
    ``score_samples`` (higher = more normal, as scikit-learn's detectors): the pretext
    detector's neighbour term on its own."""

    def fit(self, X):
        self.neighbours_ = fit_neighbours(X)
        return self

    def score_samples(self, X):
        return -neighbour_distance(self.neighbours_, X)


def classic_detectors(seed):
    """``(method, unfitted detector)`` of the detectors on flat rows, in table order."""
    return (
        ("isolation_forest", IsolationForest(random_state=seed)),
        ("one_class_svm", OneClassSVM()),
        ("knn", KNN()),
        ("lof", LocalOutlierFactor(novelty=True)),
    )
