"""gradient_ad.load: joblib's load, with clear errors for damaged files."""

from __future__ import annotations

import os
from typing import Any

import joblib
import torch

from ._detector import GradientAnomalyDetector

__all__ = ["load"]


def load(path: str | os.PathLike) -> Any:
    """Load a model saved with :func:`joblib.dump` or :mod:`pickle`, with clear errors.

    A thin wrapper around :func:`joblib.load`: a file that is truncated, damaged or not
    a saved model raises a :class:`ValueError` that says so (joblib itself raises bare
    ``EOFError``, ``IndexError`` or ``UnpicklingError`` messages), and a detector whose
    weights no longer match the checksum saved with them is refused. Loading runs
    pickled code: only load files you trust.

    Parameters
    ----------
    path : str or path-like
        The file, e.g. written by ``joblib.dump(detector, path)``. It may hold a
        :class:`~gradient_ad.GradientAnomalyDetector` or anything containing one,
        such as a :class:`~sklearn.pipeline.Pipeline`.

    Returns
    -------
    model : object
        The loaded object.

    Raises
    ------
    ValueError
        If the file is truncated or damaged, or holds no
        :class:`~gradient_ad.GradientAnomalyDetector`.
    OSError
        If the file cannot be read (e.g. it does not exist).

    Examples
    --------
    >>> import joblib, numpy as np, os, tempfile
    >>> from gradient_ad import GradientAnomalyDetector, load
    >>> X = np.random.RandomState(0).rand(50, 4)
    >>> detector = GradientAnomalyDetector(max_epochs=2, random_state=0).fit(X)
    >>> path = os.path.join(tempfile.mkdtemp(), "detector.joblib")
    >>> _ = joblib.dump(detector, path)
    >>> bool((load(path).score_samples(X) == detector.score_samples(X)).all())
    True
    """
    try:
        model = joblib.load(path)
    except (OSError, ImportError):
        raise  # a missing file or package: the message already says what is wrong
    except Exception as error:
        raise ValueError(
            f"could not load a model from {str(path)!r}: the file is truncated, damaged or "
            f"not a file written by joblib.dump or pickle ({type(error).__name__}: {error}). "
            "Save the model again, or copy the file again."
        ) from error
    if not _holds_detector(model):
        raise ValueError(
            f"{str(path)!r} holds a {type(model).__name__}, not a GradientAnomalyDetector "
            "nor an object containing one (such as a Pipeline): load it with joblib.load "
            "if that is what you meant."
        )
    return model


def _holds_detector(obj, depth=0, seen=None):
    """Whether ``obj`` is a detector or holds one: in a Pipeline's steps, a search's
    ``best_estimator_``, a list or dict, or any other object's attributes."""
    if isinstance(obj, GradientAnomalyDetector):
        return True
    seen = set() if seen is None else seen
    if depth > 10 or id(obj) in seen or isinstance(obj, (str, bytes, torch.Tensor)):
        return False
    seen.add(id(obj))
    if isinstance(obj, dict):
        children = obj.values()
    elif isinstance(obj, (list, tuple, set, frozenset)):
        children = obj
    else:
        children = getattr(obj, "__dict__", {}).values()
    return any(_holds_detector(child, depth + 1, seen) for child in children)
