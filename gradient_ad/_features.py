"""GradientFeatures: the backpropagated-gradient representation as a transformer."""

from __future__ import annotations

import numbers

import numpy as np
import torch
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from ._chunks import checked_score_batch_size
from ._detector import GradientAnomalyDetector
from ._gradcon import EPS, check_finite
from ._inputs import to_samples
from ._pretexts import get_pretext
from ._scoring import layer_terms
from ._threads import torch_threads

__all__ = ["GradientFeatures"]


class GradientFeatures(TransformerMixin, BaseEstimator):
    """Backpropagated gradients as features: how the model would update for a sample.

    Trains an autoencoder with GradCon exactly as
    :class:`~gradient_ad.GradientAnomalyDetector` does (it fits a clone of
    ``detector``), then represents each sample by its reconstruction error and, for
    each constrained tensor ``W_l``, the cosine between the sample's reconstruction
    gradient ``de/dW_l`` and the reference gradient learnt in training, the log of that
    gradient's norm and, optionally, ``n_projections`` random projections of the
    gradient (a seeded Johnson-Lindenstrauss sketch). Per-sample gradients are never
    materialised for the package's networks: the projections ride along the same
    backward pass as the reference.

    Read more in the :ref:`User Guide <user_guide>`.

    Parameters
    ----------
    detector : GradientAnomalyDetector, default=None
        The settings of the autoencoder and its training (cloned at fit; its
        ``beta`` and ``contamination`` play no part). ``None``:
        ``GradientAnomalyDetector()``. Its parameters are reachable as
        ``detector__<name>``, e.g. in :class:`~sklearn.model_selection.GridSearchCV`.
    n_projections : int, default=0
        Random projections per constrained tensor: ``<de/dW_l, d_lj>`` for fixed
        Gaussian directions ``d_lj`` whose entries have variance ``1 / n_projections``,
        so that the squared projections of a gradient sum to about its squared norm.
    random_state : int, RandomState instance or None, default=None
        Seeds the projections and, when ``detector`` has no ``random_state`` of its
        own, its training.

    Attributes
    ----------
    detector_ : GradientAnomalyDetector
        The fitted detector whose network gives the features.
    constrained_names_ : list of str
        The constrained tensors, in the order of their feature columns.
    directions_ : list of ndarray
        For each constrained tensor, the ``(n_projections, *shape)`` directions.
    n_features_in_ : int
        Number of features (for images: the size of the second axis) seen in fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names, when X is a DataFrame with string column names.

    See Also
    --------
    GradientAnomalyDetector : GradCon's anomaly score from the same quantities.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from gradient_ad import GradientAnomalyDetector, GradientFeatures
    >>> X, y = load_digits(return_X_y=True)
    >>> features = GradientFeatures(
    ...     GradientAnomalyDetector(max_epochs=5), n_projections=2, random_state=0
    ... )
    >>> Z = features.fit(X[y == 0] / 16).transform(X[:3] / 16)
    >>> Z.shape
    (3, 13)
    >>> features.get_feature_names_out()[:3].tolist()
    ['reconstruction_error', 'cosine__decoder.0.weight', 'cosine__decoder.2.weight']
    """

    _parameter_constraints = {
        "detector": [HasMethods(["fit", "score_components"]), None],
        "n_projections": [Interval(numbers.Integral, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, detector=None, *, n_projections=0, random_state=None):
        self.detector = detector
        self.n_projections = n_projections
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X: ArrayLike, y: object = None) -> GradientFeatures:
        """Train the autoencoder with GradCon on (mostly) normal data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n_samples, H, W) \
                or (n_samples, C, H, W)
            Training data, as for :meth:`GradientAnomalyDetector.fit`.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : GradientFeatures
            The fitted transformer.
        """
        detector = GradientAnomalyDetector() if self.detector is None else clone(self.detector)
        if not isinstance(detector, GradientAnomalyDetector):
            raise TypeError(
                f"detector must be a GradientAnomalyDetector, got {type(detector).__name__}"
            )
        random_state = check_random_state(self.random_state)
        if detector.random_state is None and self.random_state is not None:
            detector.set_params(random_state=random_state.randint(np.iinfo(np.int32).max))
        detector.fit(X)
        module = detector.net_.module_
        self.directions_ = random_directions(
            module.reference_gradients(), self.n_projections, random_state
        )
        self.detector_ = detector
        self.constrained_names_ = list(module.constrained_names)
        self.n_features_in_ = detector.n_features_in_
        if hasattr(detector, "feature_names_in_"):
            self.feature_names_in_ = detector.feature_names_in_
        return self

    def transform(self, X: ArrayLike) -> np.ndarray:
        """The gradient representation of each sample.

        Parameters
        ----------
        X : array-like of the same layout as in ``fit``
            Samples to represent.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features_out)
            The columns named by :meth:`get_feature_names_out`: the reconstruction
            error; for each constrained tensor its cosine with the reference; for each
            its log gradient norm; then the projections, tensor by tensor; with a
            pretext (``detector`` with ``pretext='rotation'``), the rotation loss and
            the log norm of its gradient with respect to the head's weight, then,
            with a combined score, the distance to the nearest training samples, as
            :meth:`GradientAnomalyDetector.score_components` gives them.
        """
        check_is_fitted(self)
        detector = self.detector_
        samples = to_samples(detector, X, reset=False, stream=True)
        net = detector.net_
        net.module_.eval()
        dtype = net.module_.dtype
        directions = None
        if self.n_projections:
            # torch.tensor copies: directions loaded read-only (joblib's mmap_mode='r')
            # would make torch.as_tensor warn that the array is not writable.
            directions = [torch.tensor(d, dtype=dtype, device=net.device) for d in self.directions_]
        with torch_threads(detector.n_threads):
            terms = layer_terms(
                net.module_,
                samples,
                checked_score_batch_size(detector),
                net.device,
                verbose=detector.verbose,
                directions=directions,
            )
        columns = [
            terms.reconstruction_error[:, None],
            terms.cosines,
            np.log(np.maximum(terms.gradient_norms, EPS)),
        ]
        if terms.projections is not None:
            columns.append(terms.projections.reshape(len(samples), -1))
        # The pretext's and the combined score's own terms: the GradCon ones are above.
        combined = detector.combined_
        calibration = None if combined is None else combined.pretext_calibration
        with torch_threads(detector.n_threads):
            own = get_pretext(detector.pretext).own_terms(
                net.module_,
                samples,
                checked_score_batch_size(detector),
                net.device,
                calibration,
                detector.verbose,
            )
        if combined is not None:
            own.update(combined.own_terms(samples))
        columns += [values[:, None] for values in own.values()]
        features = np.hstack(columns)
        check_finite(features, "features", "Check X for extreme values.")
        return features

    def get_feature_names_out(self, input_features: ArrayLike | None = None) -> np.ndarray:
        """Names of the output features: the quantity and the tensor it is about.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Checked against ``feature_names_in_`` when given; not used otherwise (the
            output features are not named after the input ones).

        Returns
        -------
        feature_names_out : ndarray of str objects
            ``reconstruction_error``, ``cosine__<tensor>``, ``log_gradient_norm__<tensor>``
            and ``projection<j>__<tensor>``; with a pretext, ``rotation_loss`` and
            ``log_rotation_gradient_norm__pretext_head.linear.weight`` and
            ``neighbour_distance``.
        """
        check_is_fitted(self)
        if hasattr(self, "feature_names_in_") or input_features is not None:
            _check_feature_names_in(self, input_features, generate_names=False)
        names = ["reconstruction_error"]
        names += [f"cosine__{name}" for name in self.constrained_names_]
        names += [f"log_gradient_norm__{name}" for name in self.constrained_names_]
        names += [
            f"projection{j}__{name}"
            for name in self.constrained_names_
            for j in range(self.n_projections)
        ]
        detector = self.detector_
        names += get_pretext(detector.pretext).feature_names(detector.net_.module_)
        if detector.combined_ is not None:
            names += list(detector.combined_.own_names)
        return np.asarray(names, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


def random_directions(references, n_projections, random_state):
    """For each reference tensor, ``n_projections`` Gaussian directions of its shape
    with entries of variance ``1 / n_projections``, as float32."""
    scale = np.sqrt(max(n_projections, 1))
    return [
        (random_state.standard_normal((n_projections, *r.shape)) / scale).astype(np.float32)
        for r in references
    ]
