"""Progress bars for fitting and long scoring, shown only when asked for.

Fitting uses skorch's :class:`~skorch.callbacks.ProgressBar` (one bar per epoch, with
the running loss); scoring walks its chunks through :func:`tqdm.auto.tqdm`, which
draws a text bar in a terminal and a widget in a notebook.
"""

import importlib.util

from skorch.callbacks import ProgressBar
from tqdm.auto import tqdm

__all__ = ["fit_progress_callbacks", "progress_chunks"]


def fit_progress_callbacks(verbose):
    """skorch callbacks drawing a bar per epoch with the loss, when ``verbose``."""
    if not verbose:
        return []
    # skorch's notebook bar needs ipywidgets and fails without it; the text bar works
    # everywhere (tqdm.auto makes the same choice for the scoring bar).
    widgets = importlib.util.find_spec("ipywidgets") is not None
    bar = ProgressBar(detect_notebook=widgets, postfix_keys=["train_loss", "valid_loss"])
    return [("progress_bar", bar)]


def progress_chunks(n_samples, chunk_size, *, verbose, desc):
    """Slices of ``chunk_size`` rows covering ``range(n_samples)``.

    With ``verbose`` and more than one chunk, a progress bar counts the rows done.
    """
    starts = range(0, n_samples, chunk_size)
    if not verbose or len(starts) < 2:
        yield from (slice(start, start + chunk_size) for start in starts)
        return
    with tqdm(total=n_samples, desc=desc, unit="rows", leave=False) as bar:
        for start in starts:
            yield slice(start, start + chunk_size)
            bar.update(min(chunk_size, n_samples - start))
