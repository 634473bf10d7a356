"""The user guide's recipe for choosing beta and contamination on one fitted network
("Choosing beta and contamination without retraining") relies on these facts."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from gradient_ad import GradientAnomalyDetector


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[y == 3][:150] / 16, X[:200] / 16


@pytest.mark.parametrize("early_stopping", [True, False])
def test_refit_with_other_beta_and_contamination_is_the_same_network(digits, early_stopping):
    train, other = digits
    params = dict(max_epochs=3, random_state=0, early_stopping=early_stopping)
    first = GradientAnomalyDetector(**params).fit(train)
    error, alignment = first.score_components(other)
    train_error, train_alignment = first.score_components(train)

    beta, contamination = 0.5, 0.07
    tuned = GradientAnomalyDetector(beta=beta, **params).fit(train)
    tuned_error, tuned_alignment = tuned.score_components(other)
    # beta does not change training: the same network, bit for bit.
    np.testing.assert_array_equal(tuned_error, error)
    np.testing.assert_array_equal(tuned_alignment, alignment)
    # The recombined score is the detector's score.
    np.testing.assert_allclose(
        tuned.score_samples(other), -(error - beta * alignment), rtol=1e-12, atol=1e-12
    )
    # A float contamination trains robustly (another network), and its offset_ is that
    # percentile of all its training rows' scores.
    robust = GradientAnomalyDetector(beta=beta, contamination=contamination, **params).fit(train)
    # It leaves out three times the expected share (at most half the rows).
    assert robust.n_trimmed_ == round(3 * contamination * len(train)) and tuned.n_trimmed_ == 0
    robust_train = robust.score_samples(train)
    assert robust.offset_ == pytest.approx(np.percentile(robust_train, 100 * contamination))
    assert np.mean(robust.predict(train) == -1) == pytest.approx(contamination, abs=1 / len(train))
