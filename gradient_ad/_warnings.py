"""The package's own warning classes, and where its warnings point.

A warning raised deep inside ``fit`` or scoring should name the user's line, not a
line of gradient-ad: :func:`caller_stacklevel` finds it however many of the package's
calls (and scikit-learn's ``fit`` wrapper) lie between.
"""

import os
import sys

import sklearn.base

__all__ = ["FitInterruptedWarning", "caller_stacklevel"]


class FitInterruptedWarning(UserWarning):
    """A fit ended by a KeyboardInterrupt (Ctrl-C) or a callback that raised one.

    The detector is fitted on the weights reached (the best epoch's, with early
    stopping). Filter it like any warning, e.g. ``warnings.simplefilter("error",
    FitInterruptedWarning)`` to treat an interrupted fit as a failure.
    """


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def caller_stacklevel():
    """``warnings.warn``'s ``stacklevel`` for the first frame outside gradient-ad's
    private modules (``_name.py``, ``_scoring/``) and scikit-learn's ``fit`` wrapper
    (``sklearn/base.py``): the line of the user's code, of a meta-estimator, or of a
    public module such as the benchmark command, that called into the package."""
    wrapper = os.path.abspath(sklearn.base.__file__)
    frame, level = sys._getframe(1), 1  # the function that calls warnings.warn
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        private = filename.startswith(_PACKAGE_DIR) and filename[len(_PACKAGE_DIR)] == "_"
        if not (private or filename == wrapper):
            break
        frame, level = frame.f_back, level + 1
    return level
