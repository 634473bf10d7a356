"""Progress output for fitting and long scoring, shown only when asked for.

Fitting prints skorch's table of losses per epoch (:class:`PlainPrintLog`: without
colour codes when standard output is not a terminal) and, in a terminal or a
notebook, skorch's :class:`~skorch.callbacks.ProgressBar` (one bar per epoch, with the
running loss); scoring walks its chunks through :func:`tqdm.auto.tqdm`, which draws a
text bar in a terminal and a widget in a notebook. Redirected to a file, progress is
the table alone: bars would leave fragments of carriage-return updates there.
"""

import importlib.util
import re
import sys

from skorch.callbacks import PrintLog, ProgressBar
from tqdm.auto import tqdm

__all__ = ["PlainPrintLog", "fit_progress_callbacks", "progress_chunks"]

_ANSI_CODE = re.compile(r"\x1b\[[0-9;]*m")


def _is_terminal(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _in_notebook():
    """A Jupyter kernel, as skorch's ProgressBar detects it."""
    shell = sys.modules.get("IPython")
    get_ipython = getattr(shell, "get_ipython", None)
    return get_ipython is not None and type(get_ipython()).__name__ == "ZMQInteractiveShell"


class PlainPrintLog(PrintLog):
    """skorch's table of losses per epoch, its colour codes dropped when standard
    output is not a terminal (a log file, a pipe, a CI log)."""

    def format_row(self, row, key, color):
        text = super().format_row(row, key, color)
        if isinstance(text, str) and not _is_terminal(sys.stdout):
            return _ANSI_CODE.sub("", text)
        return text


def fit_progress_callbacks(verbose):
    """skorch callbacks drawing a bar per epoch with the loss, when ``verbose`` and
    standard error is a terminal or a notebook shows the bar."""
    if not verbose:
        return []
    notebook = _in_notebook()
    if not (notebook or _is_terminal(sys.stderr)):
        return []
    # skorch's notebook bar needs ipywidgets and fails without it; the text bar works
    # everywhere (tqdm.auto makes the same choice for the scoring bar).
    widgets = importlib.util.find_spec("ipywidgets") is not None
    bar = ProgressBar(detect_notebook=widgets, postfix_keys=["train_loss", "valid_loss"])
    return [("progress_bar", bar)]


def progress_chunks(n_samples, chunk_size, *, verbose, desc):
    """Slices of ``chunk_size`` rows covering ``range(n_samples)``.

    With ``verbose`` and more than one chunk, a progress bar counts the rows done (in
    a terminal or a notebook; not when standard error is redirected).
    """
    starts = range(0, n_samples, chunk_size)
    if not verbose or len(starts) < 2:
        yield from (slice(start, start + chunk_size) for start in starts)
        return
    shown = _in_notebook() or _is_terminal(sys.stderr)
    with tqdm(total=n_samples, desc=desc, unit="rows", leave=False, disable=not shown) as bar:
        for start in starts:
            yield slice(start, start + chunk_size)
            bar.update(min(chunk_size, n_samples - start))
