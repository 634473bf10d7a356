"""GradientAnomalyDetector: GradCon as a scikit-learn outlier detector."""

import contextlib
import copy
import math
import numbers
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import Callback, EarlyStopping
from skorch.dataset import Dataset
from skorch.helper import predefined_split
from torch import nn

from ._collapse import collapse_statistics, is_collapsed, kaiming_init, spread_rows
from ._inputs import to_samples
from ._modules import ConvAutoencoder, GradConModule, MLPAutoencoder
from ._net import REFERENCE_RULES, GradConNet
from ._persistence import model_digest
from ._progress import fit_progress_callbacks
from ._scoring import score_terms
from ._version import __version__

__all__ = ["GradientAnomalyDetector", "InconsistentVersionWarning"]

# Tukey's fence: scores beyond Q3 + 1.5 IQR of held-out normal data are outliers.
_TUKEY_K = 1.5


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
    beta : float or 'auto', default=0.12
        Weight of the gradient term in the anomaly score
        ``reconstruction_error - beta * alignment``. It is not scale-free: the
        reconstruction error depends on the data's scale, the alignment lies in
        [-1, 1]. ``'auto'`` weighs the two terms equally: ``beta_`` is the standard
        deviation of the reconstruction error divided by that of the alignment, both
        on the held-out validation slice (all training data when there is none), which
        ranks samples as the sum of the two terms standardised would. The paper's
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
        when there is none): samples whose anomaly score exceeds the slice's third
        quartile plus 1.5 interquartile ranges are outliers.
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the training data, stop when its GradCon
        loss has not improved for ``n_iter_no_change`` epochs, and keep the weights
        of the best epoch.
    validation_fraction : float, default=0.1
        Share of the training data held out, when ``early_stopping``.
    n_iter_no_change : int, default=10
        Patience of early stopping, in epochs.
    tol : float, default=1e-4
        Relative improvement of the validation loss that counts as one.
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
        samples scored with it.
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
        ``skorch.callbacks.LRScheduler``.
    net_params : dict, default=None
        Further keyword arguments of the skorch net, e.g.
        ``{"optimizer": torch.optim.SGD, "optimizer__momentum": 0.9}``. They override
        the settings derived from the parameters above.

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
            Interval(numbers.Integral, 1, None, closed="left"),
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
        if self.hidden_sizes != "auto":
            _check_layer_sizes("hidden_sizes", self.hidden_sizes)
        X, shape = to_samples(self, X, reset=True)
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

        # Held-out normal data calibrates beta='auto' and contamination='auto'.
        held_out = X if valid is None else valid
        held_out_terms = self._score_terms(net, held_out)
        _check_finite(held_out_terms[0] - held_out_terms[1], "the training data")
        beta = _auto_beta(*held_out_terms) if self.beta == "auto" else float(self.beta)
        terms = held_out_terms
        if self.contamination != "auto" and held_out is not X:
            # A float contamination is a share of all the training data.
            terms = self._score_terms(net, X)
            _check_finite(terms[0] - terms[1], "the training data")
        scores = -_anomaly_score(*terms, beta)
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

    def _reset(self):
        for name in (
            "net_",
            "beta_",
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
        train, valid = train_test_split(X, test_size=self.validation_fraction, random_state=seed)
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
            module = GradConModule(self._build_network(shape, X, reinitialise), self.constrained)
            if not reinitialise:
                _check_reconstruction_shape(module, X[:2])
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
            module = ConvAutoencoder(shape, tuple(self.conv_channels), sigmoid_output=sigmoid)
        else:
            hidden = self.hidden_sizes
            if hidden == "auto":
                n_features = int(np.prod(shape))
                hidden = (64, 32, max(1, min(16, n_features // 2)))
            module = MLPAutoencoder(shape, tuple(hidden), sigmoid_output=sigmoid)
        return kaiming_init(module) if reinitialise else module

    def _net_kwargs(self, module, valid, device, seed):
        callbacks = [("stop_on_nonfinite_loss", _StopOnNonFiniteLoss())]
        if valid is not None:
            callbacks.append(
                (
                    "early_stopping",
                    EarlyStopping(
                        monitor="valid_loss",
                        patience=self.n_iter_no_change,
                        threshold=self.tol,
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
            "alpha": self.alpha,
            "reference": self.reference,
            "criterion": nn.MSELoss,
            "optimizer": torch.optim.Adam,
            "lr": self.lr,
            "optimizer__weight_decay": self.weight_decay,
            "max_epochs": self.max_epochs,
            "batch_size": self.batch_size,
            "iterator_train__shuffle": True,
            "iterator_train__generator": torch.Generator().manual_seed(seed),
            "train_split": None if valid is None else predefined_split(Dataset(valid)),
            "callbacks": callbacks,
            "device": device,
            "verbose": self.verbose,
        }
        kwargs.update(self.net_params or {})
        return kwargs

    # -- scoring --------------------------------------------------------------------

    def score_components(self, X):
        """The two terms of the GradCon score of each sample.

        Parameters
        ----------
        X : array-like of the same layout as in ``fit``
            Samples to score.

        Returns
        -------
        reconstruction_error : ndarray of shape (n_samples,)
            Mean squared reconstruction error of each sample.
        alignment : ndarray of shape (n_samples,)
            Mean over the constrained tensors of the cosine between the sample's
            reconstruction gradient and the reference gradient learnt in training;
            in [-1, 1], higher = more familiar.
        """
        check_is_fitted(self)
        X = to_samples(self, X, reset=False, stream=True)
        self.net_.module_.eval()
        terms = self._score_terms(self.net_, X)
        _check_finite(terms[0] - terms[1], "X")
        return terms

    def _score_terms(self, net, X):
        return score_terms(net.module_, X, self.score_batch_size, net.device, verbose=self.verbose)

    def score_samples(self, X):
        """Opposite of the GradCon anomaly score: higher is more normal.

        ``-(reconstruction_error - beta_ * alignment)``, see :meth:`score_components`.

        Parameters
        ----------
        X : array-like of the same layout as in ``fit``
            Samples to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            The lower, the more abnormal.
        """
        return -_anomaly_score(*self.score_components(X), self.beta_)

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
    return state["net_"], state["beta_"], state["offset_"]


def _anomaly_score(reconstruction_error, alignment, beta):
    return reconstruction_error - beta * alignment


def _auto_beta(reconstruction_error, alignment):
    """The ``beta`` that weighs both terms equally on normal data: the ratio of their
    standard deviations (0 when the alignment does not vary, as it then carries no
    information)."""
    spread = alignment.std()
    return float(reconstruction_error.std() / spread) if spread > 0 else 0.0


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


@contextlib.contextmanager
def _seeded(seed, device):
    """Seed torch for a block and restore the caller's random state afterwards."""
    device = torch.device(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _check_reconstruction_shape(module, X):
    was_training = module.training
    module.eval()
    with torch.no_grad():
        x = torch.as_tensor(X)
        recon = module(x)
    module.train(was_training)
    if recon.shape != x.shape:
        raise ValueError(
            f"the network must return a reconstruction of its input's shape {tuple(x.shape)}, "
            f"but returned shape {tuple(recon.shape)}"
        )


def _silent(*args, **kwargs):
    pass


def _check_layer_sizes(name, sizes):
    # A tuple or list already (_parameter_constraints); check its entries.
    if not sizes or not all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in sizes
    ):
        raise ValueError(f"{name} must be a non-empty tuple of positive integers, got {sizes!r}")


def _check_net_params(net_params):
    """The settings that skorch would only trip over after training."""
    for key in ("max_epochs", "batch_size"):
        value = net_params.get(key, 1)
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
            raise ValueError(f"net_params[{key!r}] must be a positive integer, got {value!r}")


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
