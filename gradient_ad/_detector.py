"""GradientAnomalyDetector: GradCon as a scikit-learn outlier detector."""

import contextlib
import copy
import math
import numbers
import threading
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import (
    Interval,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import Callback, EarlyStopping
from skorch.dataset import Dataset
from skorch.helper import predefined_split
from torch import nn

from ._collapse import collapse_statistics, is_collapsed, kaiming_init, spread_rows
from ._gradcon import anomaly_score, auto_beta, reconstruction_error
from ._inputs import to_samples
from ._modules import ConvAutoencoder, GradConModule, MLPAutoencoder
from ._net import REFERENCE_RULES, GradConNet
from ._persistence import model_digest
from ._pretext import (
    PRETEXTS,
    PretextComponents,
    PretextLayerComponents,
    calibrated_targets,
    check_pretext_input,
    combined_score,
    fit_standardisation,
    one_hot_targets,
)
from ._pretext import score_terms as pretext_score_terms
from ._progress import fit_progress_callbacks
from ._scoring import layer_terms, score_terms
from ._stopping import SignSafeEarlyStopping
from ._version import __version__

__all__ = ["GradientAnomalyDetector", "InconsistentVersionWarning"]

# Tukey's fence: scores beyond Q3 + 1.5 IQR of held-out normal data are outliers.
_TUKEY_K = 1.5
# Fewest held-out rows that calibrate contamination='auto' and beta='auto'. With fewer
# (under 1000 training rows at validation_fraction=0.1) its quartiles are so noisy that
# the fence flagged 8-55% of new normal data (Gaussian and digits tables of 10 to 500
# rows, mean of 3 seeds), where the fence on all training rows flagged 2-11%; from
# 1000 rows on both flag about 4%. See docs/robustness.rst.
_MIN_CALIBRATION_ROWS = 100


# score_batch_size: the 'auto' chunks are 1024-2048 rows and larger ones are no faster
# (docs/performance.rst), while every chunk is padded to its full size, so a huge value
# allocates that many rows even for a few samples, after training.
_MAX_SCORE_BATCH_SIZE = 65536
# Most bytes of one padded scoring chunk of input (float32); the network's intermediates
# take several times as much.
_MAX_CHUNK_INPUT_BYTES = 2**30


class InconsistentVersionWarning(UserWarning):
    """A model is loaded by a gradient-ad version other than the one that saved it."""


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
        ``pretext_weight`` in the training loss), and the anomaly score becomes the sum
        of the terms named by
        ``gradient_ad._pretext.COMBINED_TERMS``: the log reconstruction error, minus
        the gradient alignment, the rotation loss against targets calibrated on
        held-out normal images and the log norm of its gradient with respect to the
        head's weight, each standardised on the held-out normal data; ``beta`` then
        plays no part in ``score_samples``. The rotation classifier is a copy of the
        network's ``encoder`` submodule plus a linear head, so a network passed as
        ``network`` needs an ``encoder``. Tables and non-square images are refused.
        See :ref:`user_guide`.
    pretext_weight : float, default=1.0
        Weight of the rotation loss in the training loss, with ``pretext``.
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
        Most training epochs.
    batch_size : int, default=64
        Training mini-batch size.
    lr : float, default=1e-3
        Learning rate of Adam.
    weight_decay : float, default=0.0
        L2 penalty of Adam.
    contamination : 'auto' or float, default='auto'
        Sets ``offset_``. A float in (0, 0.5] is the expected share of outliers in
        the training data: ``offset_`` is that percentile of the training scores.
        ``'auto'``: Tukey's fence on the held-out validation slice (all training data
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
        samples scored with it. At most 65536, and a chunk's input (``score_batch_size``
        samples as float32) at most 1 GiB, checked before training.
    device : str or torch.device, default='cpu'
        Where to train and score, e.g. ``'cuda'``. A fitted model can be loaded on a
        machine without that device; it then runs on the CPU.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, the validation split and shuffling. With an int, fits
        are reproducible (on the CPU) and the caller's global torch seed is left
        untouched.
    verbose : int, default=0
        ``0`` is silent. ``1`` prints skorch's table of losses per epoch, a progress
        bar with the running loss during each epoch, and a progress bar while scoring
        more than ``score_batch_size`` rows (:mod:`tqdm`, so it works in a terminal and
        in a notebook).
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
    rotation_targets_ : ndarray of shape (4, 4)
        With ``pretext``: row ``r`` is the mean softmax output of the held-out
        normal images turned by ``90 r`` degrees, the targets of the scored rotation
        loss (about one-hot where normal images are unambiguous).
    term_means_, term_scales_ : ndarray of shape (n_combined_terms,)
        With ``pretext``: mean and standard deviation on the held-out normal data of
        each combined term, as ``score_samples`` standardises them.
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
        "pretext": [StrOptions(set(PRETEXTS)), None],
        "pretext_weight": [Interval(numbers.Real, 0, None, closed="left")],
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
        "score_batch_size": [
            Interval(numbers.Integral, 1, _MAX_SCORE_BATCH_SIZE, closed="both"),
            StrOptions({"auto"}),
        ],
        "device": [str, torch.device],
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
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.net_params = net_params

    # -- fitting --------------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
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
            return self._fit(X)
        except BaseException:
            # A failed fit leaves an unfitted estimator, not a half-fitted one.
            self._reset()
            raise

    def _fit(self, X):
        _check_layer_sizes("conv_channels", self.conv_channels)
        _check_net_params(self.net_params or {})
        _check_callbacks(self.callbacks or [])
        if self.hidden_sizes != "auto":
            _check_layer_sizes("hidden_sizes", self.hidden_sizes)
        X, shape = to_samples(self, X, reset=True)
        shape = _python(tuple(shape))  # input_shape may hold NumPy integers
        if self.pretext is not None:
            check_pretext_input(shape, self.pretext)
        _check_chunk_memory(self.score_batch_size, shape)
        device = _resolve_device(self.device)
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        train, valid = self._split(X, seed)

        net, restarts, statistics, stopped = self._train(shape, X, train, valid, device, seed)
        if is_collapsed(*statistics):
            warnings.warn(
                _collapse_message(self, *statistics, restarts, stopped),
                ConvergenceWarning,
                stacklevel=4,
            )

        # Held-out normal data calibrates beta='auto' and contamination='auto'; the
        # quartiles and spreads of a small slice are too noisy, so below
        # _MIN_CALIBRATION_ROWS rows all the training data calibrates instead.
        held_out = _calibration_rows(X, valid)
        if self.pretext is not None:
            beta, scores = self._calibrate_pretext(net, X, held_out)
        else:
            held_out_terms = self._score_terms(net, held_out)
            _check_finite(held_out_terms[0] - held_out_terms[1], "the training data")
            beta = auto_beta(*held_out_terms) if self.beta == "auto" else float(self.beta)
            terms = held_out_terms
            if self.contamination != "auto" and held_out is not X:
                # A float contamination is a share of all the training data.
                terms = self._score_terms(net, X)
                _check_finite(terms[0] - terms[1], "the training data")
            scores = -anomaly_score(*terms, beta)
        if self.contamination == "auto":
            q1, q3 = np.percentile(scores, [25, 75])
            offset = q1 - _TUKEY_K * (q3 - q1)
        else:
            offset = np.percentile(scores, 100.0 * self.contamination)

        self.input_shape_ = shape
        self.net_ = net
        self.n_iter_ = len(net.history)
        self.n_restarts_ = restarts
        self.reconstruction_spread_ = statistics[0]
        self.beta_ = beta
        self.offset_ = float(offset)
        return self

    def _calibrate_pretext(self, net, X, held_out):
        """Fit the calibrated rotation targets and the standardisation of the combined
        terms on the held-out normal rows; return ``beta`` and the scores ``offset_``
        is taken from."""
        module = net.module_
        batch_size = self._checked_score_batch_size()
        one_hot = one_hot_targets(module.reference_gradients()[0].dtype)
        probabilities = pretext_score_terms(module, held_out, batch_size, net.device, one_hot)[5]
        targets = calibrated_targets(torch.as_tensor(probabilities))
        components = self._pretext_components(net, held_out, targets, "the training data")
        beta = auto_beta(*components[:2]) if self.beta == "auto" else float(self.beta)
        means, scales = fit_standardisation(components)
        if self.contamination != "auto" and held_out is not X:
            # A float contamination is a share of all the training data.
            components = self._pretext_components(net, X, targets, "the training data")
        self.rotation_targets_ = targets.numpy()
        self.term_means_ = means
        self.term_scales_ = scales
        return beta, -combined_score(components, means, scales)

    def rotation_probabilities(self, X):
        """What the rotation head predicts for each rotated copy of each sample.

        Only for a detector fitted with ``pretext='rotation'``.

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
        if getattr(self, "pretext", None) is None:
            raise ValueError(
                "rotation_probabilities needs a detector fitted with pretext='rotation'"
            )
        X = to_samples(self, X, reset=False, stream=True)
        net = self.net_
        net.module_.eval()
        one_hot = one_hot_targets(net.module_.reference_gradients()[0].dtype)
        return pretext_score_terms(
            net.module_, X, self._checked_score_batch_size(), net.device, one_hot, self.verbose
        )[5]

    def _pretext_components(self, net, X, targets, what, per_layer=False):
        parts = pretext_score_terms(
            net.module_,
            X,
            self._checked_score_batch_size(),
            net.device,
            torch.as_tensor(targets),
            verbose=self.verbose,
        )
        for part in parts[:4]:
            _check_finite(part, what)
        if per_layer:
            return PretextLayerComponents(*parts[:5])
        return PretextComponents(*parts[:4])

    def _reset(self):
        for name in (
            "net_",
            "beta_",
            "rotation_targets_",
            "term_means_",
            "term_scales_",
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

    def _split(self, X, seed):
        if not self.early_stopping:
            return X, None
        if math.ceil(self.validation_fraction * len(X)) >= len(X):
            raise ValueError(
                f"validation_fraction={self.validation_fraction} of {len(X)} samples leaves "
                "no training samples; lower it, pass more samples or set early_stopping=False"
            )
        train, valid = train_test_split(
            X, test_size=_python(self.validation_fraction), random_state=seed
        )
        return train, valid

    def _train(self, shape, X, train, valid, device, seed):
        """Train, and train again while the network has collapsed to one output.

        Returns the net, the restarts made, its collapse statistics, and why restarts
        stopped early (``None``, or a reason).
        """
        probe = spread_rows(X, seed)
        attempts = self.max_restarts + 1 if self._can_restart() else 1
        net = statistics = None
        for restart in range(attempts):
            try:
                candidate, interrupted = self._train_once(
                    shape,
                    X,
                    train,
                    valid,
                    device,
                    (seed + restart) % np.iinfo(np.int32).max,
                    reinitialise=restart > 0,
                )
            except (FloatingPointError, KeyboardInterrupt) as error:
                if net is None:
                    raise
                # A restart that fails must not lose the fit made before it.
                return net, restart - 1, statistics, f"restart {restart} failed: {error}"
            net = candidate
            statistics = _collapse_statistics(net, probe)
            if interrupted:
                return net, restart, statistics, "fit was interrupted"
            if not is_collapsed(*statistics):
                break
            if self.verbose and restart + 1 < attempts:
                print(
                    f"The network collapsed to one output (reconstruction spread "
                    f"{statistics[0]:.2g}); restarting from a fresh initialisation "
                    f"({restart + 1} of {self.max_restarts})."
                )
        return net, restart, statistics, None

    def _train_once(self, shape, X, train, valid, device, seed, reinitialise):
        with _seeded(seed, device):
            module = GradConModule(
                self._build_network(shape, X, reinitialise),
                self.constrained,
                pretext=self.pretext,
                input_shape=shape,
            )
            # The data follow the network's dtype (float64 for module.double(), or
            # for the package's networks under torch.set_default_dtype(torch.float64)).
            dtype = _network_dtype(module)
            if not reinitialise:
                _check_network(module, X[:2].astype(dtype))
            train, valid = (_as_dtype(part, dtype) for part in (train, valid))
            net = GradConNet(**self._net_kwargs(module, valid, device, seed))
            net.fit(train, y=None)
        interrupted = _check_training_ran(net)
        # skorch maps its fitted attributes (module_, ...) to the CPU when a model saved on
        # CUDA is loaded without CUDA, but pickles the `module` parameter (the same
        # instance, passed in above) plainly, which then fails to load: map it too.
        net.cuda_dependent_attributes_ = [*net.cuda_dependent_attributes_, "module"]
        net.module_.eval()
        return net, interrupted

    def _can_restart(self):
        # A module instance carries the caller's weights: it is never re-initialised.
        return not isinstance(self.network, nn.Module)

    def _build_network(self, shape, X, reinitialise=False):
        """The autoencoder; ``reinitialise``: a restart after a collapse (Kaiming
        initialisation for the package's networks, a fresh call for a callable)."""
        network = self.network
        if isinstance(network, nn.Module):
            return copy.deepcopy(network)
        if network == "auto":
            network = "conv" if len(shape) == 3 else "mlp"
        if network not in ("conv", "mlp"):
            module = network(shape)
            if not isinstance(module, nn.Module):
                raise TypeError(
                    "network(input_shape) must return a torch.nn.Module, got "
                    f"{type(module).__name__}"
                )
            return module
        sigmoid = bool(X.min() >= 0 and X.max() <= 1)
        if network == "conv":
            if len(shape) != 3:
                raise ValueError(
                    "network='conv' needs images: pass X as (n, H, W) or (n, C, H, W), "
                    "or flat rows with input_shape"
                )
            channels = _python(tuple(self.conv_channels))
            module = ConvAutoencoder(shape, channels, sigmoid_output=sigmoid)
        else:
            hidden = self.hidden_sizes
            if hidden == "auto":
                n_features = int(np.prod(shape))
                hidden = (64, 32, max(1, min(16, n_features // 2)))
            module = MLPAutoencoder(shape, _python(tuple(hidden)), sigmoid_output=sigmoid)
        return kaiming_init(module) if reinitialise else module

    def _net_kwargs(self, module, valid, device, seed):
        callbacks = [("stop_on_nonfinite_loss", _StopOnNonFiniteLoss())]
        if valid is not None:
            callbacks.append(
                (
                    "early_stopping",
                    SignSafeEarlyStopping(
                        monitor="valid_loss",
                        patience=_python(self.n_iter_no_change),
                        threshold=_python(self.tol),
                        threshold_mode="rel",
                        load_best=True,
                        sink=_silent,
                    ),
                )
            )
        callbacks += fit_progress_callbacks(self.verbose)
        callbacks += copy.deepcopy(self.callbacks or [])
        kwargs = {
            "module": module,
            "alpha": _python(self.alpha),
            "reference": self.reference,
            "pretext_weight": _python(self.pretext_weight),
            "criterion": nn.MSELoss,
            "optimizer": torch.optim.Adam,
            "lr": _python(self.lr),
            "optimizer__weight_decay": _python(self.weight_decay),
            "max_epochs": _python(self.max_epochs),
            "batch_size": _python(self.batch_size),
            "iterator_train__shuffle": True,
            "iterator_train__generator": torch.Generator().manual_seed(seed),
            "train_split": None if valid is None else predefined_split(Dataset(valid)),
            "callbacks": callbacks,
            "device": device,
            "verbose": _python(self.verbose),
        }
        kwargs.update({key: _python(value) for key, value in (self.net_params or {}).items()})
        return kwargs

    # -- scoring --------------------------------------------------------------------

    def score_components(self, X, per_layer=False):
        """The terms of the score of each sample.

        Without a pretext, the two terms of the GradCon score (below). With
        ``pretext='rotation'``, a named tuple of arrays ``(reconstruction_error,
        alignment, rotation_loss, log_rotation_gradient_norm)`` (plus
        ``layer_alignments`` with ``per_layer``): ``rotation_loss`` is
        ``-mean_r log <t_r, p_r>`` over the four rotations, ``p_r`` the head's softmax
        output for the copy turned by ``90 r`` degrees and ``t_r`` its calibrated
        target (``rotation_targets_``); ``log_rotation_gradient_norm`` is the log norm
        of that loss's gradient with respect to the head's weight.

        Parameters
        ----------
        X : array-like of the same layout as in ``fit``
            Samples to score.
        per_layer : bool, default=False
            Also return each constrained tensor's cosine, to see which layer flags a
            sample.

        Returns
        -------
        reconstruction_error : ndarray of shape (n_samples,)
            Mean squared reconstruction error of each sample.
        alignment : ndarray of shape (n_samples,)
            Mean over the constrained tensors of the cosine between the sample's
            reconstruction gradient and the reference gradient learnt in training;
            in [-1, 1], higher = more familiar.
        layer_alignments : ndarray of shape (n_samples, n_constrained)
            Only with ``per_layer``: the cosine of each constrained tensor, columns in
            the order of ``net_.module_.constrained_names``; ``alignment`` is their
            mean.
        """
        check_is_fitted(self)
        X = to_samples(self, X, reset=False, stream=True)
        self.net_.module_.eval()
        if getattr(self, "pretext", None) is not None:
            return self._pretext_components(
                self.net_, X, self.rotation_targets_, "X", per_layer=per_layer
            )
        if not per_layer:
            terms = self._score_terms(self.net_, X)
        else:
            net = self.net_
            error, alignment, cosines, _, _ = layer_terms(
                net.module_, X, self._checked_score_batch_size(), net.device, verbose=self.verbose
            )
            terms = error, alignment, cosines
        _check_finite(terms[0] - terms[1], "X")
        return terms

    def _score_terms(self, net, X):
        return score_terms(
            net.module_, X, self._checked_score_batch_size(), net.device, verbose=self.verbose
        )

    def _checked_score_batch_size(self):
        """``score_batch_size``, checked again: ``set_params`` after ``fit`` bypasses
        fit's validation, and a huge value would pad every chunk to that many rows."""
        validate_parameter_constraints(
            {"score_batch_size": self._parameter_constraints["score_batch_size"]},
            {"score_batch_size": self.score_batch_size},
            caller_name=type(self).__name__,
        )
        if hasattr(self, "input_shape_"):  # not yet during fit, which checked it already
            _check_chunk_memory(self.score_batch_size, self.input_shape_)
        return _python(self.score_batch_size)

    def score_samples(self, X):
        """Opposite of the anomaly score: higher is more normal.

        ``-(reconstruction_error - beta_ * alignment)``, see :meth:`score_components`.
        With ``pretext``: minus the sum of the combined terms, each standardised with
        ``term_means_`` and ``term_scales_``.

        Parameters
        ----------
        X : array-like of the same layout as in ``fit``
            Samples to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            The lower, the more abnormal.
        """
        components = self.score_components(X)
        if getattr(self, "pretext", None) is not None:
            return -combined_score(components, self.term_means_, self.term_scales_)
        return -anomaly_score(*components, self.beta_)

    def decision_function(self, X):
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

    def predict(self, X):
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
        state = super().__getstate__()
        state["_gradient_ad_version"] = __version__
        if "net_" in state:
            state["_gradient_ad_sha256"] = model_digest(*_scored_with(state))
        return state

    def __setstate__(self, state):
        version = state.get("_gradient_ad_version")
        if version != __version__:
            warnings.warn(
                f"This {type(self).__name__} was saved by gradient-ad {version} and is "
                f"loaded by gradient-ad {__version__}; its behaviour may differ. Refit it "
                "with this version if you can.",
                InconsistentVersionWarning,
                stacklevel=2,
            )
        if "net_" in state and "beta_" not in state:
            state["beta_"] = float(state["beta"])  # saved before beta_ existed
        # Saved before the reference rule and the collapse guard existed: it was trained
        # with the reconstruction-only reference and never restarted.
        state.setdefault("reference", "reconstruction")
        state.setdefault("pretext", None)  # saved before the pretext existed
        state.setdefault("pretext_weight", 1.0)
        state.setdefault("max_restarts", 0)
        if "net_" in state:
            state.setdefault("n_restarts_", 0)
            state.setdefault("reconstruction_spread_", float("nan"))
            # Saved before the input scale was recorded: scoring keeps that version's
            # rule (uint8 divided by 255, anything else as it is), unchecked.
            state.setdefault("input_scale_", None)
            state.setdefault("input_range_", None)
        digest = state.pop("_gradient_ad_sha256", None)
        if digest is not None and model_digest(*_scored_with(state)) != digest:
            raise ValueError(
                f"the model of this {type(self).__name__} does not match the checksum saved "
                "with it: the file is damaged. Save the model again, or copy the file again."
            )
        super().__setstate__(state)


def _scored_with(state):
    numbers = [state["beta_"], state["offset_"]]
    if state.get("pretext") is not None:
        # What the combined score is calibrated with is part of the model too.
        for name in ("rotation_targets_", "term_means_", "term_scales_"):
            numbers += np.ravel(state[name]).tolist()
    return state["net_"], *numbers


def _calibration_rows(X, valid):
    """The rows that calibrate ``beta='auto'`` and ``contamination='auto'``: the held-out
    slice when it has at least ``_MIN_CALIBRATION_ROWS`` rows, else all of ``X``."""
    if valid is None or len(valid) < _MIN_CALIBRATION_ROWS:
        return X
    return valid


def _python(value):
    """``value`` with NumPy scalars (also inside a tuple or list) as Python numbers.

    GridSearchCV over ``np.array([8, 16])`` passes ``np.int64(8)``, which scikit-learn's
    validation accepts as an integer but torch's DataLoader refuses as a batch size.
    """
    if isinstance(value, np.generic):
        return value.item()
    if type(value) in (tuple, list):  # not subclasses, e.g. a namedtuple
        return type(value)(_python(v) for v in value)
    return value


def _resolve_device(device):
    try:
        device = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"device={device!r} is not a torch device: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} was requested, but CUDA is not available")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={str(device)!r} was requested, but MPS is not available")
    return str(device)


# torch draws initial weights (and dropout masks) from one process-wide generator, which
# threads share: seeded fits in threads (a threading joblib backend, Dask's threaded
# scheduler) would reseed it under each other, and the last to restore it would leave
# another fit's state to the caller. So seeded blocks run one at a time. Reentrant: a
# network factory may itself fit a detector.
_SEED_LOCK = threading.RLock()


@contextlib.contextmanager
def _seeded(seed, device):
    """Seed torch for a block and restore the caller's random state afterwards.

    Holds ``_SEED_LOCK``: fits in threads of one process train one at a time.
    """
    device = torch.device(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    with _SEED_LOCK, torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _network_dtype(module):
    """The one floating dtype of the network's parameters, float32 or float64."""
    dtypes = {p.dtype for p in module.parameters() if p.is_floating_point()}
    if len(dtypes) != 1 or not dtypes <= {torch.float32, torch.float64}:
        found = ", ".join(sorted(str(d).removeprefix("torch.") for d in dtypes)) or "none"
        raise ValueError(
            "the network's parameters must all be float32 or all float64 (GradCon's "
            f"cosines of small gradients need at least single precision); found {found}. "
            "Convert it with module.float() or module.double()."
        )
    return np.float64 if dtypes == {torch.float64} else np.float32


def _as_dtype(X, dtype):
    return X if X is None or X.dtype == dtype else X.astype(dtype)


def _check_network(module, X):
    """Refuse, before any training, a network that cannot be trained or scored: a wrong
    output shape, constrained tensors that get no gradient, or a forward pass that
    per-sample scoring cannot run."""
    was_training = module.training
    module.eval()
    device = next(module.parameters()).device
    x = torch.as_tensor(X).to(device)
    try:
        with torch.enable_grad():
            recon = module(x)
            if not isinstance(recon, torch.Tensor) or recon.shape != x.shape:
                got = tuple(recon.shape) if isinstance(recon, torch.Tensor) else type(recon)
                raise ValueError(
                    "the network must return a reconstruction of its input's shape "
                    f"{tuple(x.shape)} (or a tuple whose first element is one), but "
                    f"returned {got}"
                )
            loss = reconstruction_error(recon, x).mean()
            params = module.constrained_parameters()
            gradients = (
                torch.autograd.grad(loss, params, allow_unused=True)
                if loss.requires_grad
                else [None] * len(params)
            )
        unused = [n for n, g in zip(module.constrained_names, gradients) if g is None]
        if unused:
            raise ValueError(
                f"the constrained parameters {unused} get no gradient from the "
                "reconstruction: the forward pass does not use them. Constrain the tensors "
                "it uses (constrained=[...])."
            )
        try:
            score_terms(module, X, len(X), device)
            if getattr(module, "pretext", None) is not None:
                one_hot = one_hot_targets(module.reference_gradients()[0].dtype)
                pretext_score_terms(module, X, len(X), device, one_hot)
        except Exception as error:
            raise ValueError(
                "per-sample gradients of this network cannot be computed "
                f"({type(error).__name__}: {error}); the network must work with "
                "torch.func.vmap (no .item(), no data-dependent Python control flow, no "
                "batch statistics in eval mode)"
            ) from error
    finally:
        module.train(was_training)


def _silent(*args, **kwargs):
    pass


def _check_layer_sizes(name, sizes):
    # A tuple or list already (_parameter_constraints); check its entries.
    if not sizes or not all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in sizes
    ):
        raise ValueError(f"{name} must be a non-empty tuple of positive integers, got {sizes!r}")


# net_params keys that would silently undo what the detector sets up, with what to use.
_REFUSED_NET_PARAMS = {
    "module": "pass the autoencoder as network",
    "callbacks": (
        "pass them as callbacks (net_params['callbacks'] would replace the detector's "
        "own: early stopping and the divergence check)"
    ),
    "train_split": "use early_stopping and validation_fraction",
}
# skorch callback names the detector uses itself.
_OWN_CALLBACKS = ("stop_on_nonfinite_loss", "early_stopping", "progress_bar")


def _check_net_params(net_params):
    """The settings that skorch would only trip over after training, or ignore."""
    for key, advice in _REFUSED_NET_PARAMS.items():
        if key in net_params:
            raise ValueError(f"net_params[{key!r}] is not supported: {advice}")
    if net_params.get("warm_start", False):
        # Each fit builds a new skorch net (a failed fit must leave no model behind, a
        # collapsed one is trained again from scratch), so skorch's warm start would be
        # silently ignored.
        raise ValueError(
            "net_params['warm_start'] is not supported: every fit trains a new network. "
            "To start from the weights of a fitted detector, pass "
            "network=fitted.net_.module_.autoencoder (its reference gradients start "
            "afresh)."
        )
    for key in (
        "max_epochs",
        "batch_size",
        "iterator_train__batch_size",
        "iterator_valid__batch_size",
    ):
        value = net_params.get(key, 1)
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
            raise ValueError(f"net_params[{key!r}] must be a positive integer, got {value!r}")


def _check_chunk_memory(score_batch_size, shape):
    """Refuse, before training, a scoring chunk whose input alone exceeds 1 GiB: every
    chunk is padded to ``score_batch_size`` rows, and the calibration after training
    would otherwise try to allocate it."""
    if score_batch_size == "auto":
        return
    row_bytes = 4 * math.prod(shape)
    if score_batch_size * row_bytes > _MAX_CHUNK_INPUT_BYTES:
        largest = max(1, _MAX_CHUNK_INPUT_BYTES // row_bytes)
        raise ValueError(
            f"score_batch_size={score_batch_size} pads every scoring chunk to "
            f"{score_batch_size} samples of shape {shape}: "
            f"{score_batch_size * row_bytes / 2**30:.3g} GiB of float32 input before the "
            f"network's own intermediates. Use at most {largest} for this data, or 'auto'."
        )


def _check_callbacks(callbacks):
    """What skorch accepts as a callback, checked before training: skorch would fail
    with an AttributeError on a string, in its first epoch."""
    for i, item in enumerate(callbacks):
        name, callback = None, item
        if isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str):
            name, callback = item
        is_callback = isinstance(callback, Callback) or (
            isinstance(callback, type) and issubclass(callback, Callback)
        )
        if not is_callback:
            raise TypeError(
                f"callbacks[{i}] is {item!r} ({type(item).__name__}): callbacks must be skorch "
                "Callback instances (e.g. skorch.callbacks.ProgressBar()), Callback classes, "
                "or (name, callback) tuples"
            )
        if name in _OWN_CALLBACKS:
            raise ValueError(
                f"callbacks[{i}] is named {name!r}, a name the detector uses for its own "
                "callback; choose another name"
            )


def _check_training_ran(net):
    """Accept skorch's stop on KeyboardInterrupt (Ctrl-C) if something was learnt, with a warning.

    skorch ends training quietly on a KeyboardInterrupt (its EarlyStopping raises one).
    With at least one training step the detector is fitted on the weights reached (the
    best epoch's, with early stopping); without one there is no model, so the
    interrupt propagates and the detector stays unfitted.
    """
    history = net.history
    if not len(history):
        raise ValueError("no training epoch ran: max_epochs in net_params must be at least 1")
    if net.module_.n_reference_updates.item() == 0:
        raise KeyboardInterrupt("fit was interrupted before the first training step")
    stopped_early = any(
        isinstance(callback, EarlyStopping) and callback.misses_ >= callback.patience
        for _, callback in net.callbacks_
    )
    finished = "train_loss" in history[-1] and len(history) >= net.max_epochs
    interrupted = not (stopped_early or finished)
    if interrupted:
        done = sum("train_loss" in row for row in history)
        warnings.warn(
            f"fit was interrupted (KeyboardInterrupt) after {done} complete epoch(s) of "
            f"{net.max_epochs}; the detector is fitted on the weights reached so far.",
            UserWarning,
            stacklevel=5,
        )
    return interrupted


def _collapse_statistics(net, probe):
    module = net.module_
    dtype = module.reference_gradients()[0].dtype  # as scoring does
    return collapse_statistics(module, torch.as_tensor(probe).to(net.device, dtype))


def _collapse_message(detector, spread, error_ratio, n_restarts, stopped):
    tried = f" after {n_restarts} restart(s) from a fresh initialisation" if n_restarts else ""
    if stopped is not None:
        tried += f" ({stopped})"
    if not detector._can_restart():
        advice = (
            "The network was passed as a module instance, so it is not re-initialised: "
            "pass a callable network(input_shape) instead, or initialise it differently"
        )
    elif stopped == "fit was interrupted":
        advice = "Fit again without interrupting it to let it restart"
    else:
        advice = "Train longer (max_epochs), lower lr, or allow more max_restarts"
    return (
        f"The network collapsed to one output whatever the input{tried}: its "
        f"reconstructions keep {spread:.2g} of the training data's variance, with "
        f"{error_ratio:.3g} times the error of the data's mean, so its scores rank "
        f"samples by their distance to that one output (for dark images, by their "
        f"brightness). {advice}."
    )


def _check_finite(scores, what):
    bad = ~np.isfinite(scores)
    if bad.any():
        raise FloatingPointError(
            f"the network returned non-finite scores for {bad.sum()} of {len(scores)} "
            f"samples of {what} (first: row {np.flatnonzero(bad)[0]}). Check X for extreme "
            "values, scale the features (e.g. StandardScaler) or lower lr."
        )


class _StopOnNonFiniteLoss(Callback):
    """Fail fast, with a hint, when training diverges."""

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        loss = net.history[-1, "batches", -1, "train_loss" if training else "valid_loss"]
        if not np.isfinite(loss):
            raise FloatingPointError(
                f"training diverged: the loss became {loss} in epoch {len(net.history)}. "
                "Lower lr, scale the features (e.g. StandardScaler), or check X for "
                "extreme values."
            )
