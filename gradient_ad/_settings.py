"""Checks of a detector's settings that need no data, run before any training.

scikit-learn's ``_parameter_constraints`` check each parameter's type and range; the
checks here are the ones those cannot express (entries of a tuple, keys of a dict,
callbacks, an available device). :func:`check_settings` runs them all, in one order,
for :meth:`GradientAnomalyDetector.fit` and for the benchmark command, so that a check
added here reaches both.
"""

import numbers

import numpy as np
import torch
from skorch.callbacks import Callback

__all__ = [
    "OWN_CALLBACKS",
    "check_callbacks",
    "check_layer_sizes",
    "check_net_params",
    "check_settings",
    "python",
    "resolve_device",
]


def check_settings(detector):
    """Check the settings of ``detector`` that need no data and that its
    ``_parameter_constraints`` cannot express, and return its device as a string.

    Raises ``ValueError`` or ``TypeError`` naming the setting.
    """
    check_layer_sizes("conv_channels", detector.conv_channels)
    check_net_params(detector.net_params or {})
    check_callbacks(detector.callbacks or [])
    if detector.hidden_sizes != "auto":
        check_layer_sizes("hidden_sizes", detector.hidden_sizes)
    return resolve_device(detector.device)


def python(value):
    """``value`` with NumPy scalars (also inside a tuple or list) as Python numbers.

    GridSearchCV over ``np.array([8, 16])`` passes ``np.int64(8)``, which scikit-learn's
    validation accepts as an integer but torch's DataLoader refuses as a batch size.
    """
    if isinstance(value, np.generic):
        return value.item()
    if type(value) in (tuple, list):  # not subclasses, e.g. a namedtuple
        return type(value)(python(v) for v in value)
    return value


def resolve_device(device):
    """``device`` as a string, after checking that torch has it."""
    try:
        device = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"device={device!r} is not a torch device: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} was requested, but CUDA is not available")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={str(device)!r} was requested, but MPS is not available")
    return str(device)


def check_layer_sizes(name, sizes):
    """Entries of ``conv_channels`` or ``hidden_sizes``: positive integers."""
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
# skorch callback names the detector uses itself (gradient_ad._training names them).
OWN_CALLBACKS = ("stop_on_nonfinite_loss", "early_stopping", "progress_bar")


def check_net_params(net_params):
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


def check_callbacks(callbacks):
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
        if name in OWN_CALLBACKS:
            raise ValueError(
                f"callbacks[{i}] is named {name!r}, a name the detector uses for its own "
                "callback; choose another name"
            )
