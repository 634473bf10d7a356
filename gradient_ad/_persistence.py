"""What a saved detector carries: its version, a checksum of its model, and the
back-fills that let models saved by earlier versions load.

:meth:`GradientAnomalyDetector.__getstate__` and ``__setstate__`` call
:func:`saved_state` and :func:`loaded_state`; :func:`gradient_ad.load` (in
:mod:`gradient_ad._loading`) adds clear errors for damaged files. It imports neither
the detector nor the loader (the pretexts and the combined score only, to back-fill
models saved before the combined score had its own object), so the detector imports it
without a cycle.
"""

import hashlib
import warnings

import numpy as np
import torch

from ._combined import CombinedScore, combined_terms
from ._pretexts import get_pretext
from ._version import __version__

__all__ = ["InconsistentVersionWarning", "loaded_state", "model_digest", "saved_state"]


class InconsistentVersionWarning(UserWarning):
    """A model is loaded by a gradient-ad version other than the one that saved it.

    gradient-ad's own warning, about gradient-ad's version. It shares its name, but
    not its class, with :class:`sklearn.exceptions.InconsistentVersionWarning`, which
    is about scikit-learn's version: loading a model saved with other versions of both
    gives both warnings, and filtering one does not silence the other.
    """


def model_digest(net, *numbers):
    """SHA-256 of what a fitted detector scores with: its module's tensors and numbers
    (its ``beta_`` and ``offset_``).

    Saved with a detector and checked when it is loaded, so that a file damaged where it
    holds the model fails to load instead of loading a detector that scores nonsense.
    """
    digest = hashlib.sha256(repr([float(number) for number in numbers]).encode())
    for name, tensor in net.module_.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        # Raw bytes, so that every dtype hashes (numpy has no bfloat16).
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def saved_state(state):
    """``state`` (the detector's ``__dict__`` to pickle) with the version and, for a
    fitted detector, the checksum of what it scores with."""
    state["_gradient_ad_version"] = __version__
    if "net_" in state:
        state["_gradient_ad_sha256"] = model_digest(*_scored_with(state))
    return state


def loaded_state(state, class_name):
    """A pickled ``state`` made ready to load: warns if another version saved it,
    back-fills what earlier versions did not save, and refuses a model that does not
    match its checksum."""
    version = state.get("_gradient_ad_version")
    if version != __version__:
        warnings.warn(
            f"This {class_name} was saved by gradient-ad {version} and is "
            f"loaded by gradient-ad {__version__}; its behaviour may differ. Refit it "
            "with this version if you can.",
            InconsistentVersionWarning,
            stacklevel=3,  # the caller of pickle.load: this, __setstate__, that caller
        )
    if "net_" in state and "beta_" not in state:
        state["beta_"] = float(state["beta"])  # saved before beta_ existed
    # Saved before the reference rule and the collapse guard existed: it was trained
    # with the reconstruction-only reference and never restarted.
    state.setdefault("reference", "reconstruction")
    state.setdefault("max_restarts", 0)
    # Saved before n_threads existed: torch's thread setting was left alone.
    state.setdefault("n_threads", None)
    # Saved before the pretext existed: the paper's method.
    state.setdefault("pretext", None)
    state.setdefault("pretext_weight", 1.0)
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
            f"the model of this {class_name} does not match the checksum saved "
            "with it: the file is damaged. Save the model again, or copy the file again."
        )
    if "net_" in state and "combined_" not in state:
        state["combined_"] = _combined_of_old_model(state)
    return state


# The attributes of the combined score of a model saved before it had its own object
# (up to commit d0b5e7e; each of the pretext's calibration_names was kept as "<name>_").
_OLD_COMBINED = ("neighbours_", "term_means_", "term_scales_")


def _combined_of_old_model(state):
    """The ``combined_`` of a model saved before it existed: ``None`` (the GradCon
    score) without a pretext, else a :class:`CombinedScore` of the attributes that
    model kept, which scores as that model did (weights all ones)."""
    if _OLD_COMBINED[0] not in state:
        return None
    pretext = get_pretext(state["pretext"])
    neighbours, means, scales = (state.pop(name) for name in _OLD_COMBINED)
    calibration = {name: state.pop(f"{name}_") for name in pretext.calibration_names}
    combined = CombinedScore(combined_terms(pretext.terms), calibration)
    combined.neighbours_ = neighbours
    combined.means_, combined.scales_ = means, scales
    combined.weights_ = np.ones(len(means))
    combined.reliability_, combined.separations_ = 1.0, None
    combined.complexity_coefficients_ = np.zeros((len(means), 2))
    return combined


def _scored_with(state):
    numbers = [state["beta_"], state["offset_"]]
    if state.get("combined_") is not None:
        # What the combined score is calibrated with is part of the model too.
        numbers += state["combined_"].digest_numbers()
    elif _OLD_COMBINED[0] in state:  # saved before combined_ (_combined_of_old_model)
        calibration = get_pretext(state["pretext"]).calibration_names
        for name in (*(f"{name}_" for name in calibration), *_OLD_COMBINED[1:]):
            numbers += np.ravel(state[name]).tolist()
        numbers.append(_samples_digest(state["neighbours_"]))
    return state["net_"], *numbers


def _samples_digest(neighbours):
    """The neighbour term's training samples, as 48 bits of their own SHA-256 (a float
    holds them exactly)."""
    samples = np.ascontiguousarray(neighbours._fit_X)
    return int(hashlib.sha256(samples.tobytes()).hexdigest()[:12], 16)
