"""Progress bars: silent by default, a bar with the loss in fit and one in long scoring."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from gradient_ad import GradientAnomalyDetector, _progress
from gradient_ad._progress import progress_chunks


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16)[:150]


@pytest.fixture
def terminal(monkeypatch):
    """Output as in a terminal (pytest's capture is not one)."""
    monkeypatch.setattr(_progress, "_is_terminal", lambda stream: True)


def _detector(verbose):
    return GradientAnomalyDetector(
        max_epochs=2, score_batch_size=32, random_state=0, verbose=verbose
    )


def test_silent_by_default(digits, capfd):
    detector = _detector(verbose=0).fit(digits)
    detector.score_samples(digits)
    out, err = capfd.readouterr()
    assert out == ""
    assert err == ""


def test_verbose_fit_shows_loss_table_and_bar(digits, capfd, terminal):
    detector = _detector(verbose=1).fit(digits)
    out, err = capfd.readouterr()
    assert "train_loss" in out  # skorch's table of epochs
    # tqdm draws on stderr, batches done out of the epoch's total: 135 training rows in
    # batches of 64 plus one validation batch. (The loss joins the bar when it redraws,
    # which depends on timing, so it is not asserted here.)
    assert "/4 [" in err
    assert dict(detector.net_.callbacks_)["progress_bar"].postfix_keys[0] == "train_loss"


def test_verbose_scoring_shows_bar_only_for_several_chunks(digits, capfd, terminal):
    detector = _detector(verbose=0).fit(digits)
    detector.set_params(verbose=1)
    quiet = detector.score_samples(digits[:32])  # one chunk: no bar
    assert capfd.readouterr().err == ""
    scores = detector.score_samples(digits)  # five chunks
    err = capfd.readouterr().err
    assert "scoring" in err and f"/{len(digits)}" in err
    # The bar changes nothing in the numbers.
    np.testing.assert_array_equal(scores[:32], quiet)
    np.testing.assert_array_equal(scores, detector.set_params(verbose=0).score_samples(digits))


@pytest.mark.parametrize("n_samples, chunk_size", [(1, 4), (8, 4), (9, 4), (3, 10)])
def test_progress_chunks_cover_every_row_once(n_samples, chunk_size):
    rows = np.arange(n_samples)
    for verbose in (0, 1):
        chunks = list(progress_chunks(n_samples, chunk_size, verbose=verbose, desc="x"))
        np.testing.assert_array_equal(np.concatenate([rows[c] for c in chunks]), rows)
        assert all(len(rows[c]) <= chunk_size for c in chunks)


@pytest.mark.parametrize("installed", [False, True])
def test_fit_bar_uses_notebook_widgets_only_when_installed(monkeypatch, installed, terminal):
    # skorch's notebook bar raises without ipywidgets; the text bar works in notebooks.
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: (
            (object() if installed else None)
            if name == "ipywidgets"
            else real_find_spec(name, *args)
        ),
    )
    [(name, bar)] = _progress.fit_progress_callbacks(verbose=1)
    assert bar.detect_notebook is installed
    assert _progress.fit_progress_callbacks(verbose=0) == []


def test_redirected_output_is_the_plain_table_alone(digits, capfd):
    """Redirected to a file (pytest's capture is no terminal): the table of epochs
    without colour codes, no bar fragments, and no scoring bar."""
    detector = _detector(verbose=1).fit(digits)
    detector.score_samples(digits)
    out, err = capfd.readouterr()
    assert "train_loss" in out and "valid_loss" in out
    assert "\x1b[" not in out and "\r" not in out
    assert err == ""
    assert "progress_bar" not in dict(detector.net_.callbacks_)


def test_terminal_table_keeps_skorchs_colours(digits, capfd, terminal):
    _detector(verbose=1).fit(digits)
    out, _ = capfd.readouterr()
    assert "\x1b[" in out  # the best epoch's losses, coloured as skorch does
