"""Training (gradient_ad._training): seeding, the networks built, skorch's settings,
divergence and early stopping. Restarts after a collapse: test_collapse.py."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from gradient_ad import ConvAutoencoder, GradientAnomalyDetector

FAST = dict(max_epochs=3, batch_size=32, random_state=0)


def _images(n=40, shape=(1, 12, 12), seed=0):
    return np.random.RandomState(seed).rand(n, *shape).astype(np.float32)


def test_same_random_state_same_model_and_caller_seed_untouched(digits):
    X, _ = digits
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = GradientAnomalyDetector(**FAST).fit(X[:150])
    after = torch.rand(1)
    b = GradientAnomalyDetector(**FAST).fit(X[:150])
    np.testing.assert_array_equal(a.score_samples(X[150:200]), b.score_samples(X[150:200]))
    assert a.offset_ == b.offset_
    assert torch.equal(before, after)
    c = GradientAnomalyDetector(**{**FAST, "random_state": 1}).fit(X[:150])
    assert not np.allclose(a.score_samples(X[150:200]), c.score_samples(X[150:200]))


def _dropout_mlp(shape):
    # Dropout draws from torch's global generator at every training step, so concurrent
    # fits that shared it unguarded would disturb each other (and it is off when scoring).
    n = shape[0]
    return torch.nn.Sequential(
        torch.nn.Linear(n, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(16, n)
    )


def test_seeded_fits_in_threads_are_reproducible_and_leave_caller_seed_untouched(digits):
    from concurrent.futures import ThreadPoolExecutor

    X, _ = digits
    params = dict(network=_dropout_mlp, constrained="all", max_epochs=2, batch_size=8)

    def fit_and_score(seed):
        est = GradientAnomalyDetector(random_state=seed, **params).fit(X[:120])
        return est.score_samples(X[120:160]), est.offset_

    expected = fit_and_score(0)
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(fit_and_score, [0, 0, 0, 0, 1]))
    assert torch.equal(torch.random.get_rng_state(), state)
    for scores, offset in results[:4]:
        np.testing.assert_array_equal(scores, expected[0])
        assert offset == expected[1]
    assert not np.allclose(results[4][0], expected[0])


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 32, 32), (1, 64, 64), (3, 28, 28)])
def test_conv_network_built_for_image_sizes(shape):
    X = _images(n=8, shape=shape)
    est = GradientAnomalyDetector(max_epochs=1, conv_channels=(4, 4, 8, 8), random_state=0).fit(X)
    assert isinstance(est.net_.module_.autoencoder, ConvAutoencoder)
    assert est.score_samples(X).shape == (8,)


def test_divergence_stops_with_a_hint(digits):
    X, _ = digits
    est = GradientAnomalyDetector(lr=1e6, max_epochs=5, random_state=0)
    with pytest.raises(FloatingPointError, match="Lower lr"):
        est.fit(X[:100] * 1e4)
    assert not hasattr(est, "net_")


def test_skorch_settings_pass_through(digits):
    X, _ = digits
    from skorch.callbacks import LRScheduler

    scheduler = LRScheduler(policy="StepLR", step_size=1, gamma=0.5)
    est = GradientAnomalyDetector(
        callbacks=[scheduler], net_params={"optimizer": torch.optim.SGD}, **FAST
    ).fit(X[:100])
    assert isinstance(est.net_.optimizer_, torch.optim.SGD)
    assert est.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5**3)
    assert scheduler.__dict__.get("lr_scheduler_") is None  # the parameter was copied


def test_early_stopping_restores_best_epoch(digits):
    X, _ = digits
    est = GradientAnomalyDetector(max_epochs=60, n_iter_no_change=2, tol=0.5, random_state=0)
    est.fit(X[:200])
    history = est.net_.history
    assert est.n_iter_ < 60
    best = int(np.argmin(history[:, "valid_loss"]))
    assert history[best, "valid_loss_best"]
    no_stop = GradientAnomalyDetector(max_epochs=4, early_stopping=False, random_state=0).fit(
        X[:200]
    )
    assert no_stop.n_iter_ == 4 and "valid_loss" not in no_stop.net_.history[-1]


# -- running out of max_epochs ----------------------------------------------------------


def _budget_warnings(X, **params):
    """The fit's "ran all max_epochs" warnings (recorded whatever the test run's filters)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        detector = GradientAnomalyDetector(**{**FAST, **params}).fit(X)
    budget = [w for w in caught if "Training ran all max_epochs" in str(w.message)]
    return detector, budget


def test_running_out_of_max_epochs_with_early_stopping_warns_at_the_callers_line(digits):
    X, y = digits
    detector, caught = _budget_warnings(X[y == 0], max_epochs=2)
    assert detector.n_iter_ == 2
    [warning] = caught
    assert issubclass(warning.category, ConvergenceWarning)
    assert warning.filename == __file__  # the fit(...) line above, not gradient-ad's
    assert "max_epochs=2" in str(warning.message) and "n_iter_no_change=10" in str(warning.message)


def test_no_budget_warning_when_early_stopping_stopped_or_is_off(digits):
    X, y = digits
    stopped, caught = _budget_warnings(X[y == 0], max_epochs=50, n_iter_no_change=1, tol=0.5)
    assert stopped.n_iter_ < 50 and caught == []
    fixed, caught = _budget_warnings(X[y == 0], max_epochs=2, early_stopping=False)
    assert fixed.n_iter_ == 2 and caught == []


def test_budget_warning_through_a_meta_estimator_points_at_the_callers_line(digits):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    X, y = digits
    pipe = make_pipeline(MinMaxScaler(), GradientAnomalyDetector(**{**FAST, "max_epochs": 2}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe.fit(X[y == 0])
    [warning] = [w for w in caught if "max_epochs" in str(w.message)]
    assert warning.filename.endswith("pipeline.py")  # scikit-learn's line that called fit
