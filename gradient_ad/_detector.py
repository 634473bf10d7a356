"""GradientAnomalyDetector: GradCon as a scikit-learn outlier detector.

The estimator only: its parameters, ``fit`` as four steps (check the settings,
validate the input, train, calibrate), scoring, and the pickling hooks. The steps live
in their own modules: :mod:`gradient_ad._settings`, :mod:`gradient_ad._inputs`,
:mod:`gradient_ad._training`, :mod:`gradient_ad._scoring`; see ``docs/layout.rst``.
"""

from __future__ import annotations

import copy
import numbers

import numpy as np
import torch
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._chunks import SCORE_BATCH_SIZE_CONSTRAINTS, check_chunk_memory, checked_score_batch_size
from ._combined import (
    CombinedScore,
    ScoreComponents,
    combined_terms,
    model_components,
    synthetic_rows,
)
from ._gradcon import anomaly_score, auto_beta
from ._inputs import to_samples
from ._net import REFERENCE_RULES
from ._persistence import InconsistentVersionWarning, loaded_state, saved_state
from ._pretexts import get_pretext, pretext_names
from ._robust import RANKINGS, check_rows_kept, rows_to_trim, train_first
from ._settings import check_settings, python
from ._threads import torch_threads
from ._training import StopOnNonFiniteLoss, silent, train

__all__ = ["GradientAnomalyDetector", "InconsistentVersionWarning"]

# Tukey's fence: scores beyond Q3 + 1.5 IQR of held-out normal data are outliers.
_TUKEY_K = 1.5
# Fewest held-out rows that calibrate contamination='auto' and beta='auto'. With fewer
# (under 1000 training rows at validation_fraction=0.1) its quartiles are so noisy that
# the fence flagged 8-55% of new normal data (Gaussian and digits tables of 10 to 500
# rows, mean of 3 seeds), where the fence on all training rows flagged 2-11%; from
# 1000 rows on both flag about 4%. See docs/robustness.rst.
_MIN_CALIBRATION_ROWS = 100
# Detectors pickled before training moved to _training name two of its objects here
# (skorch pickles the net's callbacks, and early stopping's sink, by reference).
_StopOnNonFiniteLoss = StopOnNonFiniteLoss
_silent = silent


def _pretext_provides(method):
    """``available_if``'s check of a method that only some pretexts provide: an
    ``AttributeError`` naming the setting where this detector's does not."""

    def check(detector):
        try:
            pretext = get_pretext(detector.pretext)
        except ValueError:
            return False
        if not hasattr(pretext, method):
            having = [n for n in pretext_names() if hasattr(get_pretext(n), method)]
            raise AttributeError(
                f"this detector has pretext={detector.pretext!r}; this method needs a "
                f"detector fitted with pretext in {having}"
            )
        return True

    return check


class GradientAnomalyDetector(OutlierMixin, BaseEstimator):
    """Anomaly detection from backpropagated gradients (GradCon).

    An autoencoder is trained on (mostly) normal data with a constraint that keeps
    the reconstruction gradients of its decoder aligned with their running average.
    A sample is scored by its reconstruction error plus how far its own gradient
    points away from that average: anomalies need larger, unfamiliar updates. This
    is GradCon (Kwon et al., ECCV 2020), on a skorch-wrapped PyTorch autoencoder.

    Read more in the :ref:`User Guide <user_guide>`.

    Parameters
    ----------
    network : {'auto', 'conv', 'mlp'}, torch.nn.Module or callable, default='auto'
        The autoencoder. ``'auto'`` picks ``'conv'`` for images and ``'mlp'`` for
        tables. ``'conv'`` is the reference network of the paper
        (:class:`~gradient_ad.ConvAutoencoder`), adapted to the image size; ``'mlp'``
        is :class:`~gradient_ad.MLPAutoencoder`. A module instance is deep-copied and
        trained from its current weights; any other callable is called as
        ``network(input_shape)`` under the seeded random state and must return a
        module. A module maps a batch of shape ``(n, *input_shape)`` to a
        reconstruction of the same shape, and must not mix samples (no batch
        statistics in eval mode).
    input_shape : tuple of int, default=None
        ``(height, width)`` or ``(channels, height, width)`` of an image, when images
        arrive as flat rows (so that a scaler can precede the detector in a
        :class:`~sklearn.pipeline.Pipeline`). ``None``: 2-D input is a table, 3-D
        input is ``(n, H, W)`` and 4-D input is ``(n, C, H, W)``.
    hidden_sizes : 'auto' or tuple of int, default='auto'
        Encoder widths of the MLP, the last being the code size; the decoder mirrors
        them. ``'auto'``: ``(64, 32, k)`` with ``k = max(1, min(16, n_features // 2))``.
    conv_channels : tuple of int, default=(32, 32, 64, 64)
        Encoder channels of the convolutional network (up to four layers).
    constrained : {'decoder', 'all'} or list of str, default='decoder'
        Tensors whose gradients are constrained in training and scored:
        ``'decoder'`` takes the weight tensors (not biases) of the network's
        ``decoder`` submodule, as in the paper; ``'all'`` every weight tensor; a list
        names parameters of the network.
    alpha : float, default=0.03
        Weight of the gradient constraint in the training loss. ``0`` trains a plain
        autoencoder (the reference gradients are still recorded).
    reference : {'total', 'reconstruction'}, default='total'
        What the reference gradient (the running mean over all training iterations)
        averages. ``'total'``: the gradient of the whole training loss, constraint
        included, with respect to each constrained tensor, as in the authors' code.
        ``'reconstruction'``: the gradient of the reconstruction loss alone. See
        :ref:`user_guide`.
    pretext : {None, 'rotation'}, default=None
        ``None``: the paper's method. ``'rotation'`` (square images only): a rotation
        classifier trained beside the autoencoder learns which of the four 90-degree
        rotations was applied to each training image (its loss weighted by
        ``pretext_weight`` in the training loss); with ``score='auto'`` the anomaly
        score becomes the combined score (see ``score``) of five terms (the fields of
        :meth:`score_components`): the log reconstruction error, minus the gradient
        alignment, the rotation loss against targets calibrated on held-out normal
        images and the log norm of its gradient with respect to the head's weight,
        and the mean distance to the 5 nearest training samples. The rotation
        classifier is a copy of the network's ``encoder`` submodule plus a linear
        head, so a network passed as ``network`` needs an ``encoder``. Tables and
        non-square images are refused. See :ref:`rotation_pretext`.
    pretext_weight : float, default=1.0
        Weight of the rotation loss in the training loss, with ``pretext``.
    score : {'auto', 'gradcon', 'combined'}, default='auto'
        How the terms become the anomaly score. ``'gradcon'``: the paper's score,
        ``reconstruction_error - beta * alignment``. ``'combined'``: the weighted sum
        of every term the model has (GradCon's two, the pretext's, and the mean
        distance to the 5 nearest training samples), each standardised by its median
        and interquartile range on held-out normal data, with weights fitted on that
        data (``combined_.weights_``): a pretext's terms weigh how well its task is
        solved on normal data (the rotation head's certainty), and a table model's
        terms weigh how well each tells held-out rows from synthetic outlier rows
        (permuted columns, uniform draws, noise); ``beta`` plays no part in it, and
        the model keeps (at most ``max_neighbours`` of) its training samples for the
        neighbour term. ``'auto'``: ``'combined'`` with a pretext, ``'gradcon'``
        without, so that the default detector is the paper's. See
        :ref:`combined_score`.
    max_neighbours : int or None, default=2048
        Most training samples the neighbour term of the combined score keeps and
        measures against: with more, a greedy k-centre coreset of this many (the
        samples that cover the training set best, as PatchCore bounds its memory),
        so that the model's size and the cost of a query do not grow with the
        training set; ``None`` keeps all. A Fashion-MNIST class (3,780 images) lost
        no AUROC beyond noise at 2048 (see :ref:`performance`).
    beta : float or 'auto', default=0.12
        Weight of the gradient term in the anomaly score
        ``reconstruction_error - beta * alignment``. It is not scale-free: the
        reconstruction error depends on the data's scale, the alignment lies in
        [-1, 1]. ``'auto'`` weighs the two terms equally: ``beta_`` is the standard
        deviation of the reconstruction error divided by that of the alignment, both
        on the held-out validation slice (all training data when there is none or it
        has fewer than 100 rows), which ranks samples as the sum of the two terms
        standardised would. The paper's
        setting is ``0.12``; see :ref:`user_guide` for when ``'auto'`` does better.
    max_epochs : int, default=100
        Most training epochs. With early stopping, running them all before it stopped
        training warns (:class:`~sklearn.exceptions.ConvergenceWarning`).
    batch_size : int, default=64
        Training mini-batch size.
    lr : float, default=1e-3
        Learning rate of Adam.
    weight_decay : float, default=0.0
        L2 penalty of Adam.
    contamination : 'auto' or float, default='auto'
        Sets ``offset_`` and, as a float, trains robustly. A float in (0, 0.5] is the
        expected share of outliers in the training data: a short network (half of
        ``max_epochs``) trained on all the rows ranks them (each against all the
        others by the neighbour term), a second short one trained without the three
        shares it ranks worst (at most half of the rows) ranks them again, and the
        detector trains, from the same seed, on all but the three shares this second
        ranking puts worst (``n_trimmed_`` rows are left out); the neighbour term and
        the calibration use the rows kept. A network trained on polluted rows ranks
        only about half of the outliers among its top share; three shares, a shorter
        training and a second ranking find most of them (see
        :ref:`unlabelled_anomalies`). Fitting then costs about 1.5 to 2 times one
        training on all the rows. ``offset_`` is that percentile of
        the scores of all the training rows as :meth:`score_samples` gives them, so
        that ``predict`` flags that share of the training data (as
        :class:`~sklearn.ensemble.IsolationForest` does). ``'auto'``: one training;
        Tukey's fence on the held-out validation slice (all training data
        when there is none or it has fewer than 100 rows, as its quartiles would be
        too noisy): samples whose anomaly score exceeds the third quartile plus 1.5
        interquartile ranges of those scores are outliers.
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the training data, stop when its GradCon
        loss has not improved for ``n_iter_no_change`` epochs, and keep the weights
        of the best epoch.
    validation_fraction : float, default=0.1
        Share of the training data held out, when ``early_stopping``.
    n_iter_no_change : int, default=10
        Patience of early stopping, in epochs.
    tol : float, default=1e-4
        Relative improvement of the validation loss that counts as one, relative to
        the loss's magnitude (the GradCon loss goes below zero on images).
    max_restarts : int, default=3
        Restarts after a collapsed training run. A network that returns nearly the same
        output whatever the input (a dead start, common on sparse images with dark
        backgrounds) is detected after training: its reconstructions keep less than
        1% of the variance of the training rows and do worse than returning the
        data's mean (1.25 times its error or more). The detector then trains again
        from the next seed, with Kaiming-normal weights for the package's networks (a
        callable ``network`` is called again), at most ``max_restarts`` times; if the
        network is still collapsed, a :class:`~sklearn.exceptions.ConvergenceWarning`
        says so. ``0`` only warns. A module instance is never re-initialised. See
        :ref:`user_guide`.
    score_batch_size : int or 'auto', default='auto'
        Rows scored at once. ``'auto'``: 2048 for the MLP, 1024 for other networks,
        the fastest on the machines measured (see :ref:`performance`). On the CPU the
        convolutional network scores at most 256 at once, which is faster. Every chunk
        is padded to its full size, so a sample's score does not depend on the other
        samples scored with it. With ``'auto'``, a call of at most a quarter of a chunk
        (64 images for the convolutional network on the CPU, 512 rows for the MLP) is
        computed unpadded in float64 instead, so that one sample costs about one
        sample: its score then agrees with the same sample's score in a larger call to
        float32 rounding (see :ref:`performance`). An int pads every call, so the
        same kernels score a sample whatever the call (bitwise the same score where
        the CPU's float32 matrix kernels round every row alike; on some CPUs a row's
        position in its chunk changes the last bit). At most 65536, and a chunk's input
        (``score_batch_size`` samples as float32) at most 1 GiB, checked before
        training.
    device : str or torch.device, default='cpu'
        Where to train and score, e.g. ``'cuda'``. A fitted model can be loaded on a
        machine without that device; it then runs on the CPU.
    n_threads : int or None, default=None
        torch's intra-op threads while ``fit`` and the scoring methods run, set in the
        calling thread and restored afterwards (``torch.set_num_threads``). ``None``
        leaves torch's setting alone (by default one thread per core). On a machine
        whose cores other processes keep busy, use ``1``: with two threads on a busy
        2-core machine, fitting was 10 times and scoring up to 40 times slower than
        with one (see :ref:`performance`).
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, the validation split and shuffling. With an int, fits
        are reproducible (on the CPU) and the caller's global torch seed is left
        untouched.
    verbose : int, default=0
        ``0`` is silent. ``1`` prints skorch's table of losses per epoch, a progress
        bar with the running loss during each epoch, and a progress bar while scoring
        more than ``score_batch_size`` rows (:mod:`tqdm`, so it works in a terminal and
        in a notebook). Redirected to a file, only the table is written, without
        colour codes.
    callbacks : list of skorch callbacks, default=None
        Extra callbacks for the skorch net (copied at each fit), e.g.
        ``skorch.callbacks.LRScheduler``: instances, classes or ``(name, callback)``
        tuples, as skorch takes them.
    net_params : dict, default=None
        Further keyword arguments of the skorch net, e.g.
        ``{"optimizer": torch.optim.SGD, "optimizer__momentum": 0.9}``. They override
        the settings derived from the parameters above. ``'module'``, ``'callbacks'``,
        ``'train_split'`` and ``warm_start=True`` are refused: use ``network``,
        ``callbacks`` and ``early_stopping``; every fit trains a new network.

    Attributes
    ----------
    net_ : GradConNet
        The fitted skorch net; ``net_.module_.autoencoder`` is the torch autoencoder
        and ``net_.history`` its training history.
    beta_ : float
        Weight of the gradient term in use: ``beta``, or the one chosen by
        ``beta='auto'``.
    offset_ : float
        ``decision_function(X) = score_samples(X) - offset_``.
    combined_ : object or None
        With the combined score (``score``): how the terms become the score, all of it
        fitted on held-out normal data: ``combined_.names`` (the terms it sums),
        ``combined_.weights_`` (each term's weight, summing to the number of terms;
        ``combined_.weights`` maps names to them), ``combined_.means_`` and
        ``combined_.scales_`` (each term's median and interquartile range over 1.349,
        after its transform and sign, as ``score_samples`` standardises them),
        ``combined_.reliability_`` (the pretext's certainty on normal data that its
        terms' weights were multiplied by), ``combined_.separations_`` (table models:
        each term's AUROC against each family of synthetic outlier rows),
        ``combined_.neighbours_`` (a :class:`~sklearn.neighbors.NearestNeighbors` on
        the training samples without the held-out slice, that
        ``neighbour_distance`` measures against) and, with the rotation pretext,
        ``combined_.pretext_calibration["rotation_targets"]`` (row ``r``: the mean
        softmax output of held-out normal images turned by ``90 r`` degrees, the
        targets of the scored rotation loss). ``None`` with GradCon's score.
    n_trimmed_ : int
        Training rows left out of the second training with a float
        ``contamination``: ``round(min(3 * contamination, 0.5) * n_samples)`` (0 with
        ``'auto'``).
    input_shape_ : tuple of int
        Shape of one sample as the network sees it.
    input_scale_ : float
        What the training data was divided by: 255.0 for ``uint8`` input (8-bit
        images), 1.0 for any other dtype. Scoring applies the same rule: a model
        fitted on ``uint8`` refuses other dtypes with values above 1.5 (pixels of 0-255
        not divided by 255), a model fitted on other dtypes refuses ``uint8``. ``None``
        for a model saved before this attribute existed: no check.
    input_range_ : tuple of float
        Smallest and largest training value, after the division by
        ``input_scale_``; ``None`` for a model saved before this attribute existed.
    n_iter_ : int
        Epochs run (in the last training run, after restarts).
    n_restarts_ : int
        Training runs restarted because the network had collapsed.
    reconstruction_spread_ : float
        Share of the variance of (at most 512 of) the training rows that the fitted
        network's reconstructions keep: near 0 for a collapsed network; ``nan`` when
        the training rows do not vary.
    n_features_in_ : int
        Number of features (for images: the size of the second axis) seen in fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names, when X is a DataFrame with string column names.

    See Also
    --------
    sklearn.ensemble.IsolationForest : Isolation-based outlier detector.
    sklearn.neighbors.LocalOutlierFactor : Density-based outlier detector.

    References
    ----------
    G. Kwon, M. Prabhushankar, D. Temel and G. AlRegib, "Backpropagated Gradient
    Representations for Anomaly Detection", ECCV 2020, arXiv:2007.09507.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from gradient_ad import GradientAnomalyDetector
    >>> X, y = load_digits(return_X_y=True)
    >>> X = X / 16
    >>> detector = GradientAnomalyDetector(max_epochs=5, random_state=0)
    >>> detector.fit(X[y == 0]).predict(X[:3]).tolist()
    [1, -1, -1]
    """

    _parameter_constraints = {
        "network": [StrOptions({"auto", "conv", "mlp"}), nn.Module, callable],
        "input_shape": [tuple, list, None],
        "hidden_sizes": [StrOptions({"auto"}), tuple, list],
        "conv_channels": [tuple, list],
        "constrained": [StrOptions({"decoder", "all"}), list, tuple],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "reference": [StrOptions(set(REFERENCE_RULES))],
        "pretext": [StrOptions(set(pretext_names())), None],
        "pretext_weight": [Interval(numbers.Real, 0, None, closed="left")],
        "score": [StrOptions({"auto", "gradcon", "combined"})],
        "max_neighbours": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "beta": [Interval(numbers.Real, 0, None, closed="left"), StrOptions({"auto"})],
        "max_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "contamination": [StrOptions({"auto"}), Interval(numbers.Real, 0, 0.5, closed="right")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "max_restarts": [Interval(numbers.Integral, 0, None, closed="left")],
        "score_batch_size": SCORE_BATCH_SIZE_CONSTRAINTS,
        "device": [str, torch.device],
        "n_threads": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": [list, None],
        "net_params": [dict, None],
    }

    def __init__(
        self,
        *,
        network="auto",
        input_shape=None,
        hidden_sizes="auto",
        conv_channels=(32, 32, 64, 64),
        constrained="decoder",
        alpha=0.03,
        reference="total",
        pretext=None,
        pretext_weight=1.0,
        score="auto",
        max_neighbours=2048,
        beta=0.12,
        max_epochs=100,
        batch_size=64,
        lr=1e-3,
        weight_decay=0.0,
        contamination="auto",
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        max_restarts=3,
        score_batch_size="auto",
        device="cpu",
        n_threads=None,
        random_state=None,
        verbose=0,
        callbacks=None,
        net_params=None,
    ):
        self.network = network
        self.input_shape = input_shape
        self.hidden_sizes = hidden_sizes
        self.conv_channels = conv_channels
        self.constrained = constrained
        self.alpha = alpha
        self.reference = reference
        self.pretext = pretext
        self.pretext_weight = pretext_weight
        self.score = score
        self.max_neighbours = max_neighbours
        self.beta = beta
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.contamination = contamination
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.max_restarts = max_restarts
        self.score_batch_size = score_batch_size
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.net_params = net_params

    # -- fitting --------------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: ArrayLike, y: object = None) -> GradientAnomalyDetector:
        """Train the autoencoder with GradCon on (mostly) normal data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n_samples, H, W) \
                or (n_samples, C, H, W)
            Training data. ``uint8`` images are divided by 255; any other dtype is
            taken as it is. The model records which (``input_scale_``) and refuses,
            when scoring, input prepared the other way (see :ref:`user_guide`).
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : GradientAnomalyDetector
            The fitted detector.

        Notes
        -----
        Bad input raises before training, and a failed fit leaves the detector
        unfitted. A KeyboardInterrupt (Ctrl-C) during training ends it as in skorch:
        the detector is fitted on the weights reached (the best epoch's, with early
        stopping) and a warning says so; before the first training step the interrupt
        propagates. See :ref:`robustness`.
        """
        self._reset()
        try:
            with torch_threads(self.n_threads):
                return self._fit(X)
        except BaseException:
            # A failed fit leaves an unfitted estimator, not a half-fitted one.
            self._reset()
            raise

    def _fit(self, X):
        device = check_settings(self)
        X, shape = self._validate_input(X)
        robust = self.contamination != "auto"
        rows = X
        if robust:
            # Robust training: short trainings rank the training rows, each on the
            # rows the ranking before it kept, and the detector trains on the rows the
            # last ranking keeps. Their offset_ would be thrown away: not computed.
            check_rows_kept(self, len(X))
            kept = np.arange(len(X))
            for _ in range(RANKINGS):
                training = train_first(self, X[kept], shape, device)
                beta, _, combined = self._calibrate(
                    training.net, X[kept], training.valid, training.train_rows, offset_rows=None
                )
                kept = self._kept_rows(training.net, X, kept, beta, combined)
            rows = X[kept]
        training = train(self, rows, shape, device)
        # offset_ from all the training rows: a float contamination is a share of them.
        beta, offset, combined = self._calibrate(
            training.net, rows, training.valid, training.train_rows, offset_rows=X
        )
        n_trimmed = len(X) - len(rows)
        # Every fitted attribute but those of the input (set by to_samples, as
        # scikit-learn's validate_data sets n_features_in_).
        self.input_shape_ = shape
        self.net_ = training.net
        self.n_iter_ = len(training.net.history)
        self.n_restarts_ = training.n_restarts
        self.reconstruction_spread_ = training.spread
        self.beta_ = beta
        self.offset_ = offset
        self.combined_ = combined
        self.n_trimmed_ = n_trimmed
        return self

    def _kept_rows(self, net, X, trained, beta, combined):
        """Indices of the training rows outside the ``rows_to_trim`` that ``net``
        scores as the most anomalous (:meth:`_ranking_scores`)."""
        scores = self._ranking_scores(net, X, trained, beta, combined)
        n_kept = len(X) - rows_to_trim(self.contamination, len(X))
        return np.sort(np.argsort(scores, kind="stable")[:n_kept])

    def _ranking_scores(self, net, X, trained, beta, combined):
        """Anomaly scores of all the training rows ``X`` by ``net``: the rows it trained
        on (indices ``trained``) each against the others of them by the neighbour term,
        the rest as new samples."""
        rows = X[trained]
        if combined is not None:
            combined = copy.copy(combined).fit_neighbours(
                rows, self.max_neighbours, self.random_state
            )
        scores = np.empty(len(X))
        components = self._components(net, rows, combined, "the training data", reference=True)
        scores[trained] = _anomaly_score(components, beta, combined)
        rest = np.setdiff1d(np.arange(len(X)), trained)
        if len(rest):
            components = self._components(net, X[rest], combined, "the training data")
            scores[rest] = _anomaly_score(components, beta, combined)
        return scores

    def _validate_input(self, X):
        """The training samples as float32 (or float64) and the shape of one, with the
        settings that depend on that shape checked."""
        X, shape = to_samples(self, X, reset=True)
        shape = python(tuple(shape))  # input_shape may hold NumPy integers
        get_pretext(self.pretext).check_input(shape)
        check_chunk_memory(self.score_batch_size, shape)
        return X, shape

    def _calibrate(self, net, X, valid, train_rows, offset_rows):
        """``beta_``, ``offset_`` and ``combined_`` of the trained ``net``, ``X`` its
        training rows; ``offset_`` from ``offset_rows`` (all the user's training rows),
        ``None`` when they are ``None``.

        Held-out normal data calibrates ``beta='auto'``, ``contamination='auto'`` and
        the combined score; the quartiles and spreads of a small slice are too noisy,
        so below ``_MIN_CALIBRATION_ROWS`` rows all the training data calibrates
        instead.
        """
        held_out = _calibration_rows(X, valid)
        # Without a held-out slice, every training row is measured against all the
        # others by the neighbour term; else held-out rows against the rows trained on,
        # as new samples will be.
        reference = held_out is X
        combined = self._fit_combined(net, held_out, X if reference else train_rows)
        components = self._components(net, held_out, combined, "the training data", reference)
        if combined is not None:
            synthetic = None
            if held_out.ndim == 2:  # a table: weigh the terms with synthetic rows
                made = synthetic_rows(held_out, check_random_state(self.random_state))
                of = "synthetic outlier rows made from the training data"
                synthetic = [self._components(net, rows, combined, of) for rows in made.values()]
            reliability = get_pretext(self.pretext).reliability(components)
            combined.fit(components, reliability, synthetic)
        if self.beta == "auto":
            beta = auto_beta(components.reconstruction_error, components.alignment)
        else:
            beta = float(self.beta)
        if offset_rows is None:
            return beta, None, combined
        if self.contamination != "auto" and (held_out is not offset_rows or combined is not None):
            # A float contamination is a share of all the training data, scored as
            # score_samples scores it, so that predict flags that share of it.
            components = self._components(net, offset_rows, combined, "the training data")
        return beta, self._offset(-_anomaly_score(components, beta, combined)), combined

    def _fit_combined(self, net, held_out, neighbour_rows):
        """The combined score (else ``None``): the pretext's calibration on the
        held-out rows and the neighbour term's training rows; its standardisation and
        weights follow from the held-out components."""
        pretext = get_pretext(self.pretext)
        if self.score == "gradcon" or (self.score == "auto" and not pretext.combined):
            return None
        batch_size = checked_score_batch_size(self)
        calibration = pretext.calibrate(net.module_, held_out, batch_size, net.device, self.verbose)
        images = held_out.ndim == 4
        combined = CombinedScore(combined_terms(pretext.terms), calibration, images)
        return combined.fit_neighbours(neighbour_rows, self.max_neighbours, self.random_state)

    def _offset(self, scores):
        """``offset_`` from the training scores (``score_samples``) it is set on."""
        if self.contamination == "auto":
            q1, q3 = np.percentile(scores, [25, 75])
            return float(q1 - _TUKEY_K * (q3 - q1))
        return float(np.percentile(scores, 100.0 * self.contamination))

    def _reset(self):
        for name in (
            "net_",
            "beta_",
            "combined_",
            "n_trimmed_",
            "offset_",
            "input_shape_",
            "input_scale_",
            "input_range_",
            "n_iter_",
            "n_restarts_",
            "reconstruction_spread_",
            "n_features_in_",
            "feature_names_in_",
        ):
            self.__dict__.pop(name, None)

    # -- scoring --------------------------------------------------------------------

    def score_components(self, X: ArrayLike, per_layer: bool = False) -> ScoreComponents:
        """The terms of the score of each sample, by name.

        A :class:`~gradient_ad.ScoreComponents`, a tuple of arrays whose fields are the
        terms of this model's score (``.names``; each term's direction in
        ``.higher_is_anomalous``):

        - without a pretext, GradCon's two: ``reconstruction_error`` (higher is more
          anomalous) and ``alignment`` (higher is more normal), so that
          ``error, alignment = detector.score_components(X)`` unpacks them;
          ``score_samples`` is ``-(reconstruction_error - beta_ * alignment)``;
        - with ``pretext='rotation'``, five: those two, ``rotation_loss``
          (``-mean_r log <t_r, p_r>`` over the four rotations, ``p_r`` the head's
          softmax output for the copy turned by ``90 r`` degrees and ``t_r`` its
          calibrated target), ``log_rotation_gradient_norm`` (the log norm of that
          loss's gradient with respect to the head's weight) and
          ``neighbour_distance`` (the mean distance to the 5 nearest training
          samples); the last three are higher for more anomalous samples.
          ``score_samples`` is minus their standardised sum (``combined_``).

        Parameters
        ----------
        X : array-like of the same layout as in ``fit``
            Samples to score.
        per_layer : bool, default=False
            Also return each constrained tensor's cosine, to see which layer flags a
            sample.

        Returns
        -------
        components : ScoreComponents
            The terms above, each an ndarray of shape (n_samples,):
            ``reconstruction_error`` is the mean squared reconstruction error of each
            sample; ``alignment`` the mean over the constrained tensors of the cosine
            between the sample's reconstruction gradient and the reference gradient
            learnt in training, in [-1, 1]. With ``per_layer``, last,
            ``layer_alignments`` of shape (n_samples, n_constrained): the cosine of
            each constrained tensor, columns in the order of
            ``net_.module_.constrained_names``; ``alignment`` is their mean.
        """
        check_is_fitted(self)
        with torch_threads(self.n_threads):
            return self._score_components(X, per_layer)

    def _score_components(self, X, per_layer):
        X = to_samples(self, X, reset=False, stream=True)
        self.net_.module_.eval()
        return self._components(self.net_, X, self.combined_, per_layer=per_layer)

    def _components(self, net, X, combined, of="X", reference=False, per_layer=False):
        return model_components(
            net,
            X,
            get_pretext(self.pretext),
            combined,
            checked_score_batch_size(self),
            self.verbose,
            per_layer,
            of,
            reference,
        )

    def score_samples(self, X: ArrayLike) -> np.ndarray:
        """The opposite of the model's anomaly score: higher is more normal.

        With GradCon's score (``score='gradcon'``, or ``'auto'`` without a pretext),
        ``-(reconstruction_error - beta_ * alignment)``; with the combined score,
        minus the weighted sum of the terms standardised on held-out normal data
        (``combined_``; ``beta_`` plays no part). See :meth:`score_components`.

        Parameters
        ----------
        X : array-like of the same layout as in ``fit``
            Samples to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            The lower, the more abnormal.
        """
        return -_anomaly_score(self.score_components(X), self.beta_, self.combined_)

    @available_if(_pretext_provides("probabilities"))
    def rotation_probabilities(self, X: ArrayLike) -> np.ndarray:
        """What the rotation head predicts for each rotated copy of each sample.

        Only for a detector with ``pretext='rotation'`` (``hasattr`` is ``False``
        otherwise).

        Parameters
        ----------
        X : array-like of the same layout as in ``fit``
            Samples (images).

        Returns
        -------
        probabilities : ndarray of shape (n_samples, 4, 4)
            ``[i, r, k]``: the probability that sample ``i`` turned by ``90 r`` degrees
            (counter-clockwise, :func:`numpy.rot90`) was turned by ``90 k`` degrees.
        """
        check_is_fitted(self)
        with torch_threads(self.n_threads):
            X = to_samples(self, X, reset=False, stream=True)
            net = self.net_
            net.module_.eval()
            batch_size = checked_score_batch_size(self)
            return get_pretext(self.pretext).probabilities(
                net.module_, X, batch_size, net.device, self.verbose
            )

    def decision_function(self, X: ArrayLike) -> np.ndarray:
        """``score_samples(X) - offset_``: negative for outliers.

        Parameters
        ----------
        X : array-like of the same layout as in ``fit``
            Samples to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Negative for outliers, non-negative for inliers.
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Whether each sample is an inlier (+1) or an outlier (-1).

        Parameters
        ----------
        X : array-like of the same layout as in ``fit``
            Samples to classify.

        Returns
        -------
        labels : ndarray of shape (n_samples,) of int
            +1 where ``decision_function(X) >= 0``, else -1.
        """
        return np.where(self.decision_function(X) >= 0, 1, -1)

    # -- scikit-learn plumbing ------------------------------------------------------

    def __sklearn_is_fitted__(self):
        return hasattr(self, "net_")

    def __getstate__(self):
        return saved_state(super().__getstate__())

    def __setstate__(self, state):
        super().__setstate__(loaded_state(state, type(self).__name__))


def _calibration_rows(X, valid):
    """The rows that calibrate ``beta='auto'`` and ``contamination='auto'``: the held-out
    slice when it has at least ``_MIN_CALIBRATION_ROWS`` rows, else all of ``X``."""
    if valid is None or len(valid) < _MIN_CALIBRATION_ROWS:
        return X
    return valid


def _anomaly_score(components, beta, combined):
    """The anomaly score (higher = more anomalous): the combined score's, or GradCon's
    ``reconstruction_error - beta * alignment`` where there is none."""
    if combined is None:
        return anomaly_score(components.reconstruction_error, components.alignment, beta)
    return combined.score(components)
