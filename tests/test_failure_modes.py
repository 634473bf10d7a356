"""Failures during fit and scoring: divergence, non-finite scores, interrupts.

Documented behaviour (docs/robustness.rst): a diverging loss (training or validation)
stops fit with a FloatingPointError that suggests a fix; non-finite scores raise a
FloatingPointError instead of being returned; a KeyboardInterrupt during training keeps
skorch's behaviour (training stops, the detector is fitted on the weights reached, the
best epoch's with early stopping) and warns, unless no training step was done, in which
case it propagates and leaves the detector unfitted.
"""

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from skorch.callbacks import Callback
from torch import nn

from gradient_ad import FitInterruptedWarning, GradientAnomalyDetector

FAST = dict(max_epochs=2, batch_size=16, random_state=0)
SCORING_METHODS = ["score_samples", "decision_function", "predict", "score_components"]


@pytest.fixture(scope="module")
def digits():
    X, _ = load_digits(return_X_y=True)
    return X[:200] / 16


class PoisonedInEval(nn.Module):
    """A small autoencoder that can return NaN in eval mode for chosen samples."""

    def __init__(self, shape, poison_above=None):
        super().__init__()
        self.encoder = nn.Linear(shape[0], 4)
        self.decoder = nn.Linear(4, shape[0])
        self.poison_above = poison_above  # NaN output where x[:, 0] > this, in eval mode

    def forward(self, x):
        out = self.decoder(torch.relu(self.encoder(x)))
        if not self.training and self.poison_above is not None:
            poisoned = (x[:, :1] > self.poison_above).expand_as(out)
            out = torch.where(poisoned, torch.full_like(out, float("nan")), out)
        return out


class Record(Callback):
    """Passes each finished batch's (training, loss) to ``sink``.

    ``sink`` is a function, so that the detector's deep copy of its callbacks still
    reaches the test. It runs after the detector's own callbacks, so it does not see a
    batch that they stop training on.
    """

    def __init__(self, sink):
        self.sink = sink

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        key = "train_loss" if training else "valid_loss"
        self.sink((training, net.history[-1, "batches", -1, key]))


class InterruptAt(Callback):
    """Raises KeyboardInterrupt at the start of a given batch of a given epoch."""

    def __init__(self, epoch, batch):
        self.epoch, self.batch = epoch, batch

    def on_batch_begin(self, net, batch=None, training=None, **kwargs):
        if training and len(net.history) == self.epoch:
            if len(net.history[-1, "batches"]) == self.batch:  # the batch's row exists
                raise KeyboardInterrupt


class StopAfterEpoch(Callback):
    """Stops training the skorch way, by raising KeyboardInterrupt at an epoch's end."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.epoch:
            raise KeyboardInterrupt


def _assert_unfitted(est, X):
    assert not hasattr(est, "net_") and not hasattr(est, "n_features_in_")
    with pytest.raises(NotFittedError):
        est.predict(X[:2])


# -- divergence and non-finite scores ---------------------------------------------------


def test_diverging_training_stops_in_its_first_epoch_with_a_hint():
    X = np.random.RandomState(0).randn(200, 8)
    losses = []
    est = GradientAnomalyDetector(
        lr=1e3, max_epochs=20, random_state=0, callbacks=[Record(losses.append)]
    )
    with pytest.raises(FloatingPointError, match="training diverged.*epoch 1.*Lower lr"):
        est.fit(X)
    _assert_unfitted(est, X)
    # Every batch before the failing one was finite: it stopped at the first bad loss.
    assert losses and all(training and np.isfinite(loss) for training, loss in losses)


def test_non_finite_validation_loss_stops_training(digits):
    losses = []
    est = GradientAnomalyDetector(
        network=lambda shape: PoisonedInEval(shape, poison_above=-1.0),
        callbacks=[Record(losses.append)],
        **FAST,
    )
    with pytest.raises(FloatingPointError, match="loss became nan in epoch 1"):
        est.fit(digits)
    _assert_unfitted(est, digits)
    # All 12 training batches of epoch 1 (180 rows of 16) were finite; the first
    # validation batch raised.
    assert len(losses) == 12
    assert all(training and np.isfinite(loss) for training, loss in losses)


def test_non_finite_training_scores_fail_fit(digits):
    est = GradientAnomalyDetector(
        network=lambda shape: PoisonedInEval(shape, poison_above=-1.0),
        early_stopping=False,
        **FAST,
    )
    with pytest.raises(FloatingPointError, match="non-finite scores for 200 of 200 samples"):
        est.fit(digits)
    _assert_unfitted(est, digits)


@pytest.mark.parametrize("method", SCORING_METHODS)
def test_non_finite_scores_raise_instead_of_being_returned(digits, method):
    est = GradientAnomalyDetector(network=lambda shape: PoisonedInEval(shape), **FAST)
    est.fit(digits)
    est.net_.module_.autoencoder.poison_above = 0.5
    X = digits[:20].copy()
    X[:, 0] = 0.0
    X[[7, 12], 0] = 1.0  # two samples get a NaN reconstruction
    with pytest.raises(FloatingPointError, match="for 2 of 20 samples of X \\(first: row 7\\)"):
        getattr(est, method)(X)
    assert getattr(est, method)(np.delete(X, [7, 12], axis=0)) is not None  # others score


# -- KeyboardInterrupt ------------------------------------------------------------------


# Fits of two or three epochs on digits, interrupted: whether the network has collapsed
# yet is beside the point of these tests.
_SHORT_FITS_MAY_COLLAPSE = pytest.mark.filterwarnings(
    "ignore:The network collapsed:sklearn.exceptions.ConvergenceWarning"
)


@_SHORT_FITS_MAY_COLLAPSE
def test_interrupt_mid_training_keeps_weights_reached_and_warns(digits):
    est = GradientAnomalyDetector(
        max_epochs=6,
        batch_size=16,
        early_stopping=False,
        random_state=0,
        callbacks=[InterruptAt(epoch=3, batch=2)],
    )
    with pytest.warns(
        FitInterruptedWarning, match="interrupted \\(KeyboardInterrupt\\) after 2 complete"
    ) as caught:
        est.fit(digits)
    # The warning names the caller's line (this file), not gradient-ad's.
    assert [w.filename for w in caught if w.category is FitInterruptedWarning] == [__file__]
    assert issubclass(FitInterruptedWarning, UserWarning)
    assert est.n_iter_ == 3 and len(est.net_.history[-1, "batches"]) == 2
    assert not est.net_.module_.training
    scores = est.score_samples(digits)
    assert np.isfinite(scores).all() and np.isfinite(est.offset_)
    np.testing.assert_array_equal(est.decision_function(digits), scores - est.offset_)


@_SHORT_FITS_MAY_COLLAPSE
def test_interrupt_with_early_stopping_restores_best_epoch(digits):
    # No restart after a collapse: an interrupted fit never restarts, so neither may this.
    common = {"batch_size": 16, "random_state": 0, "max_restarts": 0}
    three = GradientAnomalyDetector(max_epochs=3, **common).fit(digits)
    assert three.net_.history[-1, "valid_loss_best"]  # epoch 3 is the best of three
    interrupted = GradientAnomalyDetector(
        max_epochs=6, callbacks=[InterruptAt(epoch=4, batch=3)], **common
    )
    with pytest.warns(FitInterruptedWarning, match="after 3 complete epoch"):
        interrupted.fit(digits)
    # Weights and reference gradients (buffers) come back from the end of epoch 3.
    np.testing.assert_array_equal(interrupted.score_samples(digits), three.score_samples(digits))


def test_interrupt_before_first_training_step_propagates_and_leaves_unfitted(digits):
    est = GradientAnomalyDetector(callbacks=[InterruptAt(epoch=1, batch=1)], **FAST)
    with pytest.raises(KeyboardInterrupt, match="before the first training step"):
        est.fit(digits)
    _assert_unfitted(est, digits)


def test_interrupt_after_training_propagates_and_leaves_unfitted(digits, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(GradientAnomalyDetector, "_components", interrupted)
    est = GradientAnomalyDetector(**FAST)
    with pytest.raises(KeyboardInterrupt):
        est.fit(digits)  # interrupted while computing offset_
    _assert_unfitted(est, digits)


@_SHORT_FITS_MAY_COLLAPSE
def test_callback_stopping_training_warns_but_early_stopping_does_not(digits):
    est = GradientAnomalyDetector(callbacks=[StopAfterEpoch(2)], **{**FAST, "max_epochs": 5})
    with pytest.warns(FitInterruptedWarning, match="after 2 complete epoch\\(s\\) of 5"):
        est.fit(digits)
    assert est.n_iter_ == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stopped = GradientAnomalyDetector(
            max_epochs=50, n_iter_no_change=1, tol=0.5, random_state=0
        ).fit(digits)
        # Ran all its epochs; without early stopping no budget ran out either.
        GradientAnomalyDetector(early_stopping=False, **FAST).fit(digits)
    assert stopped.n_iter_ < 50
