"""Training a detector's network: the skorch net, seeding, restarts after a collapse.

:func:`train` is the one entry point (:meth:`GradientAnomalyDetector.fit` calls it
after checking the settings and the input). It splits off the validation slice, then
trains, and trains again from the next seed while the network has collapsed to one
output (:mod:`gradient_ad._collapse` says what that is). Each training run builds the
autoencoder under a seeded torch generator, checks it once before the first run, and
fits a new :class:`~gradient_ad._net.GradConNet` with the detector's callbacks.
"""

import contextlib
import copy
import math
import threading
import warnings
from typing import NamedTuple

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from skorch.callbacks import Callback, EarlyStopping
from skorch.dataset import Dataset
from skorch.helper import predefined_split
from torch import nn

from ._collapse import collapse_statistics, is_collapsed, kaiming_init, spread_rows
from ._gradcon import reconstruction_error
from ._modules import ConvAutoencoder, GradConModule, MLPAutoencoder
from ._net import GradConNet
from ._pretexts import get_pretext
from ._progress import PlainPrintLog, fit_progress_callbacks
from ._settings import python
from ._stopping import SignSafeEarlyStopping
from ._warnings import FitInterruptedWarning, caller_stacklevel

__all__ = [
    "SEED_LOCK",
    "StopOnNonFiniteLoss",
    "Training",
    "build_network",
    "leaves_no_training_rows",
    "seeded",
    "silent",
    "train",
]


class Training(NamedTuple):
    """What :func:`train` returns."""

    net: GradConNet  # the fitted net, its module in eval mode
    valid: np.ndarray | None  # the held-out slice (None without early stopping)
    n_restarts: int  # runs restarted because the network had collapsed
    spread: float  # collapse statistics of the net (see gradient_ad._collapse)
    error_ratio: float
    train_rows: np.ndarray  # the samples trained on (X without the held-out slice)


def train(detector, X, shape, device, *, warn_epochs=True):
    """Train the network of ``detector`` on the samples ``X`` (of ``shape`` each).

    Draws the seed from ``random_state``, holds out the validation slice when
    ``early_stopping``, then trains, and trains again while the network has collapsed
    to one output (at most ``max_restarts`` times); warns with a
    :class:`~sklearn.exceptions.ConvergenceWarning` if it is still collapsed, and,
    with ``warn_epochs``, if early stopping never stopped it.
    """
    seed = check_random_state(detector.random_state).randint(np.iinfo(np.int32).max)
    train_rows, valid = _split(detector, X, seed)
    net, n_restarts, statistics, stopped = _train_with_restarts(
        detector, shape, X, train_rows, valid, device, seed
    )
    if is_collapsed(*statistics):
        warnings.warn(
            _collapse_message(detector, *statistics, n_restarts, stopped),
            ConvergenceWarning,
            stacklevel=caller_stacklevel(),
        )
    elif warn_epochs and stopped is None and _ran_out_of_epochs(net):
        warnings.warn(
            f"Training ran all max_epochs={net.max_epochs} epochs and early stopping had "
            f"not stopped it: the validation loss improved within the last "
            f"n_iter_no_change={detector.n_iter_no_change} epochs, so a longer fit may "
            "reconstruct better. Raise max_epochs, or set early_stopping=False to train "
            "exactly max_epochs epochs.",
            ConvergenceWarning,
            stacklevel=caller_stacklevel(),
        )
    return Training(net, valid, n_restarts, *statistics, train_rows)


def leaves_no_training_rows(detector, n_rows):
    """Whether the validation slice of early stopping would take all ``n_rows``."""
    return math.ceil(detector.validation_fraction * n_rows) >= n_rows


def _split(detector, X, seed):
    if not detector.early_stopping:
        return X, None
    if leaves_no_training_rows(detector, len(X)):
        raise ValueError(
            f"validation_fraction={detector.validation_fraction} of {len(X)} samples leaves "
            "no training samples; lower it, pass more samples or set early_stopping=False"
        )
    train_rows, valid = train_test_split(
        X, test_size=python(detector.validation_fraction), random_state=seed
    )
    return train_rows, valid


def _train_with_restarts(detector, shape, X, train_rows, valid, device, seed):
    """Train, and train again while the network has collapsed to one output.

    Returns the net, the restarts made, its collapse statistics, and why restarts
    stopped early (``None``, or a reason).
    """
    probe = spread_rows(X, seed)
    attempts = detector.max_restarts + 1 if _can_restart(detector) else 1
    net = statistics = None
    for restart in range(attempts):
        try:
            candidate, interrupted = _train_once(
                detector,
                shape,
                X,
                train_rows,
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
        if detector.verbose and restart + 1 < attempts:
            print(
                f"The network collapsed to one output (reconstruction spread "
                f"{statistics[0]:.2g}); restarting from a fresh initialisation "
                f"({restart + 1} of {detector.max_restarts})."
            )
    return net, restart, statistics, None


def _train_once(detector, shape, X, train_rows, valid, device, seed, reinitialise):
    with seeded(seed, device):
        network = build_network(detector, shape, X, reinitialise)
        _check_materialised(network)
        parts = get_pretext(detector.pretext).modules(network, shape)
        module = GradConModule(network, detector.constrained, detector.pretext, **parts)
        # The data follow the network's dtype (float64 for module.double(), or
        # for the package's networks under torch.set_default_dtype(torch.float64)).
        dtype = _network_dtype(module)
        if not reinitialise:
            _check_network(module, X[:2].astype(dtype))
        train_rows, valid = (_as_dtype(part, dtype) for part in (train_rows, valid))
        net = GradConNet(**_net_kwargs(detector, module, valid, device, seed))
        net.fit(train_rows, y=None)
    interrupted = _check_training_ran(net)
    # skorch maps its fitted attributes (module_, ...) to the CPU when a model saved on
    # CUDA is loaded without CUDA, but pickles the `module` parameter (the same
    # instance, passed in above) plainly, which then fails to load: map it too.
    net.cuda_dependent_attributes_ = [*net.cuda_dependent_attributes_, "module"]
    net.module_.eval()
    return net, interrupted


# torch draws initial weights (and dropout masks) from one process-wide generator, which
# threads share: seeded fits in threads (a threading joblib backend, Dask's threaded
# scheduler) would reseed it under each other, and the last to restore it would leave
# another fit's state to the caller. So seeded blocks run one at a time. Reentrant: a
# network factory may itself fit a detector.
SEED_LOCK = threading.RLock()


@contextlib.contextmanager
def seeded(seed, device):
    """Seed torch for a block and restore the caller's random state afterwards.

    Holds ``SEED_LOCK``: fits in threads of one process train one at a time.
    """
    device = torch.device(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    with SEED_LOCK, torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _can_restart(detector):
    # A module instance carries the caller's weights: it is never re-initialised.
    return not isinstance(detector.network, nn.Module)


def build_network(detector, shape, X, reinitialise=False):
    """The autoencoder of ``detector`` for samples of ``shape``; ``reinitialise``: a
    restart after a collapse (Kaiming initialisation for the package's networks, a
    fresh call for a callable)."""
    network = detector.network
    if isinstance(network, nn.Module):
        return copy.deepcopy(network)
    if network == "auto":
        network = "conv" if len(shape) == 3 else "mlp"
    if network not in ("conv", "mlp"):
        module = network(shape)
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"network(input_shape) must return a torch.nn.Module, got {type(module).__name__}"
            )
        return module
    sigmoid = bool(X.min() >= 0 and X.max() <= 1)
    if network == "conv":
        if len(shape) != 3:
            raise ValueError(
                "network='conv' needs images: pass X as (n, H, W) or (n, C, H, W), "
                "or flat rows with input_shape"
            )
        channels = python(tuple(detector.conv_channels))
        module = ConvAutoencoder(shape, channels, sigmoid_output=sigmoid)
    else:
        hidden = detector.hidden_sizes
        if hidden == "auto":
            n_features = int(np.prod(shape))
            hidden = (64, 32, max(1, min(16, n_features // 2)))
        module = MLPAutoencoder(shape, python(tuple(hidden)), sigmoid_output=sigmoid)
    return kaiming_init(module) if reinitialise else module


def _check_materialised(network):
    """Refuse a network on the meta device before anything else tries its tensors
    (they would fail deep in the scoring check, with a message about torch.func)."""
    meta = [
        name
        for name, tensor in (*network.named_parameters(), *network.named_buffers())
        if tensor.is_meta
    ]
    if meta:
        shown = ", ".join(meta[:3]) + (f" and {len(meta) - 3} more" if len(meta) > 3 else "")
        raise ValueError(
            f"the network's tensors ({shown}) are on the meta device and hold no data: "
            "move it to a real device with module.to_empty(device='cpu') and initialise "
            "its weights (e.g. load a state_dict or call each layer's reset_parameters()), "
            "or build it outside a torch.device('meta') context."
        )


def _network_dtype(module):
    """The one floating dtype of the network's parameters, float32 or float64, as a
    NumPy dtype; a ``ValueError`` for any other (the only place that checks it)."""
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
            get_pretext(module.pretext).score_terms(module, X, len(X), device)
        except Exception as error:
            raise ValueError(
                "per-sample gradients of this network cannot be computed "
                f"({type(error).__name__}: {error}); the network must work with "
                "torch.func.vmap (no .item(), no data-dependent Python control flow, no "
                "batch statistics in eval mode)"
            ) from error
    finally:
        module.train(was_training)


def silent(*args, **kwargs):
    """Early stopping's ``sink``: the detector prints no message when it stops."""


def _net_kwargs(detector, module, valid, device, seed):
    """The skorch net's arguments: the detector's settings, then its ``net_params``."""
    # The callbacks' names are gradient_ad._settings.OWN_CALLBACKS.
    callbacks = [("stop_on_nonfinite_loss", StopOnNonFiniteLoss())]
    if valid is not None:
        callbacks.append(
            (
                "early_stopping",
                SignSafeEarlyStopping(
                    monitor="valid_loss",
                    patience=python(detector.n_iter_no_change),
                    threshold=python(detector.tol),
                    threshold_mode="rel",
                    load_best=True,
                    sink=silent,
                ),
            )
        )
    callbacks += fit_progress_callbacks(detector.verbose)
    callbacks += copy.deepcopy(detector.callbacks or [])
    kwargs = {
        "module": module,
        "alpha": python(detector.alpha),
        "reference": detector.reference,
        "pretext_weight": python(detector.pretext_weight),
        "criterion": nn.MSELoss,
        "optimizer": torch.optim.Adam,
        "lr": python(detector.lr),
        "optimizer__weight_decay": python(detector.weight_decay),
        "max_epochs": python(detector.max_epochs),
        "batch_size": python(detector.batch_size),
        "iterator_train__shuffle": True,
        "iterator_train__generator": torch.Generator().manual_seed(seed),
        "train_split": None if valid is None else predefined_split(Dataset(valid)),
        "callbacks": callbacks,
        "device": device,
        "verbose": python(detector.verbose),
        # skorch's table of epochs, without colour codes when stdout is redirected.
        "callbacks__print_log": PlainPrintLog(),
    }
    kwargs.update({key: python(value) for key, value in (detector.net_params or {}).items()})
    return kwargs


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
    interrupted = not (_stopped_early(net) or _finished(net))
    if interrupted:
        done = sum("train_loss" in row for row in history)
        warnings.warn(
            f"fit was interrupted (KeyboardInterrupt) after {done} complete epoch(s) of "
            f"{net.max_epochs}; the detector is fitted on the weights reached so far.",
            FitInterruptedWarning,
            stacklevel=caller_stacklevel(),
        )
    return interrupted


def _stopped_early(net):
    return any(
        isinstance(callback, EarlyStopping) and callback.misses_ >= callback.patience
        for _, callback in net.callbacks_
    )


def _finished(net):
    return "train_loss" in net.history[-1] and len(net.history) >= net.max_epochs


def _ran_out_of_epochs(net):
    """Early stopping was on and training ran all ``max_epochs`` before it stopped.

    Without early stopping ``max_epochs`` is the length asked for, not a budget that
    ran out: no warning then (scikit-learn's MLP warns on its own loss criterion).
    """
    watched = any(isinstance(callback, EarlyStopping) for _, callback in net.callbacks_)
    return watched and _finished(net) and not _stopped_early(net)


def _collapse_statistics(net, probe):
    module = net.module_
    return collapse_statistics(module, torch.as_tensor(probe).to(net.device, module.dtype))


def _collapse_message(detector, spread, error_ratio, n_restarts, stopped):
    tried = f" after {n_restarts} restart(s) from a fresh initialisation" if n_restarts else ""
    if stopped is not None:
        tried += f" ({stopped})"
    if not _can_restart(detector):
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


class StopOnNonFiniteLoss(Callback):
    """Fail fast, with a hint, when training diverges."""

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        loss = net.history[-1, "batches", -1, "train_loss" if training else "valid_loss"]
        if not np.isfinite(loss):
            raise FloatingPointError(
                f"training diverged: the loss became {loss} in epoch {len(net.history)}. "
                "Lower lr, scale the features (e.g. StandardScaler), or check X for "
                "extreme values."
            )
