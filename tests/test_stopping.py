"""Early stopping with a loss that goes below zero (the GradCon loss on images)."""

from types import SimpleNamespace

import numpy as np
import pytest
from skorch.callbacks import EarlyStopping
from skorch.history import History

from gradient_ad import GradientAnomalyDetector
from gradient_ad._stopping import SignSafeEarlyStopping


def _stopping_epoch(callback, scores):
    """Feed ``scores`` as validation losses; the epoch it stops at, or None."""
    net = SimpleNamespace(history=History(), verbose=0)
    callback.on_train_begin(net)
    for epoch, score in enumerate(scores, start=1):
        net.history.new_epoch()
        net.history.record("epoch", epoch)
        net.history.record("valid_loss", score)
        try:
            callback.on_epoch_end(net)
        except KeyboardInterrupt:
            return epoch
    return None


def test_negative_loss_getting_worse_stops_after_patience():
    # Each epoch 0.5 * tol worse than the last: never an improvement of tol.
    scores = -1.0 * (1 - 0.5e-3) ** np.arange(30)
    callback = SignSafeEarlyStopping(patience=5, threshold=1e-3, load_best=False)
    assert _stopping_epoch(callback, scores) == 6
    assert callback.best_epoch_ == 1


def test_negative_loss_improving_by_more_than_tol_keeps_training():
    scores = -1.0 * (1 + 2e-3) ** np.arange(30)
    callback = SignSafeEarlyStopping(patience=5, threshold=1e-3, load_best=False)
    assert _stopping_epoch(callback, scores) is None
    assert callback.best_epoch_ == 30


@pytest.mark.parametrize("mode", ["rel", "abs"])
def test_positive_losses_stop_exactly_as_skorch(mode):
    rng = np.random.default_rng(0)
    for _ in range(20):
        scores = np.abs(rng.normal(1.0, 0.05, size=40)) * np.linspace(1, 0.8, 40)
        settings = dict(patience=4, threshold=1e-2, threshold_mode=mode, load_best=False)
        ours, theirs = SignSafeEarlyStopping(**settings), EarlyStopping(**settings)
        assert _stopping_epoch(ours, scores) == _stopping_epoch(theirs, scores)
        assert ours.best_epoch_ == theirs.best_epoch_


def test_detector_stops_with_the_sign_safe_rule(digits):
    X = digits[0][:300].reshape(-1, 8, 8)
    detector = GradientAnomalyDetector(max_epochs=2, random_state=0).fit(X)
    callbacks = dict(detector.net_.callbacks_)
    assert isinstance(callbacks["early_stopping"], SignSafeEarlyStopping)
