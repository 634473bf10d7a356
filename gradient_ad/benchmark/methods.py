"""The detectors the benchmark compares, beyond the fitted detector itself: the
scores read from one GradCon or pretext network, and the classic detectors."""

from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor
from sklearn.svm import OneClassSVM

from .._combined import fit_neighbours, neighbour_distance
from .._gradcon import anomaly_score
from .choices import COMBINED_SCORES, PRETEXT_SCORES


def gradcon_scorer(method, beta):
    """Anomaly score (higher = more anomalous) from ``(error, alignment)``."""
    if method == "gradcon_reconstruction":
        return lambda error, alignment: error
    if method == "gradcon_gradient":
        return lambda error, alignment: -alignment
    return lambda error, alignment: anomaly_score(error, alignment, beta)


# The benchmark's names for the terms of a combined score.
_TERMS = {
    "reconstruction": "reconstruction_error",
    "alignment": "alignment",
    "rotation_loss": "rotation_loss",
    "rotation_gradient": "log_rotation_gradient_norm",
    "neighbours": "neighbour_distance",
}


def _combined_and_terms(detector, X, methods):
    """Anomaly scores (higher = more anomalous) of a combined-score detector,
    ``methods[0]``, and of each term alone, ``methods[1:]`` (``<prefix>_<term>``), from
    the components computed once."""
    components = detector.score_components(X)
    scores = {methods[0]: detector.combined_.score(components)}
    for method in methods[1:]:
        name = _TERMS[method[len(methods[0]) + 1 :]]
        sign = 1 if components.higher_is_anomalous[name] else -1
        scores[method] = sign * getattr(components, name)
    return scores


def pretext_scores(detector, X):
    """Anomaly scores of the pretext detector and of its terms."""
    return _combined_and_terms(detector, X, PRETEXT_SCORES)


def combined_scores(detector, X):
    """Anomaly scores of a table model's combined score and of each of its terms."""
    return _combined_and_terms(detector, X, COMBINED_SCORES)


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
