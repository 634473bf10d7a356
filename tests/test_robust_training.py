"""Robust training with a float ``contamination`` on real data with unlabelled
anomalies: the paper's GradCon and the rotation pretext leave out the rows their
rankings put worst (the table score: tests/test_combined_score.py), and the fitted
detector is reproducible, persists, and flags the expected share of its training rows."""

import joblib
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from gradient_ad import GradientAnomalyDetector


def _polluted_zeros(digits, n_planted):
    """160 zeros of digits with ``n_planted`` other digits mixed in, as 8 x 8 images;
    which rows are planted; and a test set of 17 zeros and 40 other digits."""
    X, y = digits
    rng = np.random.RandomState(0)
    zeros, others = rng.permutation(np.flatnonzero(y == 0)), rng.permutation(np.flatnonzero(y != 0))
    rows = np.r_[zeros[:160], others[:n_planted]]
    planted = np.r_[np.zeros(160, bool), np.ones(n_planted, bool)]
    test = np.r_[zeros[160:], others[n_planted : n_planted + 40]]
    y_test = np.r_[np.zeros(len(zeros) - 160), np.ones(40)]
    images = X.reshape(-1, 8, 8).astype(np.float32)
    return images[rows], planted, images[test], y_test


KINDS = {
    "gradcon": dict(max_epochs=20, early_stopping=False),
    "pretext": dict(pretext="rotation", max_epochs=8, early_stopping=False),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_robust_training_reproduces_persists_and_flags_the_share(digits, kind, tmp_path):
    train, planted, test, y_test = _polluted_zeros(digits, 18)  # 18 of 178 rows: 10%
    params = dict(contamination=0.1, random_state=0, **KINDS[kind])
    detector = GradientAnomalyDetector(**params).fit(train)
    assert detector.n_trimmed_ == round(0.3 * len(train))
    flagged = detector.predict(train) == -1
    # offset_ is the 10th percentile of all the training rows' scores.
    assert abs(flagged.mean() - 0.1) <= 1 / len(train)
    # What it flags on its own training rows are mostly the planted digits (17 and 18
    # of the 18 when written; chance would be about 2).
    assert flagged[planted].sum() >= 14
    if detector.combined_ is not None:
        # The rows trained on (all of them are the neighbour term's samples here) are
        # those the rankings kept: none of the planted digits when written, 13 of 18
        # with a random choice of rows.
        kept = detector.combined_.neighbours_._fit_X
        flat = train.reshape(len(train), -1)
        kept_planted = [(np.abs(kept - row).max(1) < 1e-6).any() for row in flat[planted]]
        assert sum(kept_planted) <= 2
    again = GradientAnomalyDetector(**params).fit(train)
    np.testing.assert_array_equal(again.score_samples(test), detector.score_samples(test))
    joblib.dump(detector, tmp_path / "robust.joblib")
    loaded = joblib.load(tmp_path / "robust.joblib")
    assert loaded.n_trimmed_ == detector.n_trimmed_ and loaded.offset_ == detector.offset_
    np.testing.assert_array_equal(loaded.score_samples(test), detector.score_samples(test))
    assert roc_auc_score(y_test, -detector.score_samples(test)) > 0.9


def test_too_few_rows_to_keep_are_refused_before_training():
    X = np.random.RandomState(0).normal(size=(3, 4)).astype(np.float32)
    detector = GradientAnomalyDetector(contamination=0.2, max_epochs=2)
    with pytest.raises(ValueError, match=r"contamination=0.2 .* keeps 1 of the 3"):
        detector.fit(X)
    assert not hasattr(detector, "net_")
    # Without a validation slice the same rows train.
    fitted = GradientAnomalyDetector(contamination=0.2, max_epochs=2, early_stopping=False).fit(X)
    assert fitted.n_trimmed_ == 2  # half of 3 rows, rounded to even


def test_two_short_rankings_then_one_training_on_the_rows_kept(digits, monkeypatch):
    from gradient_ad import _detector, _robust

    trainings = []

    def recording(train):
        def wrapped(detector, X, shape, device, **kwargs):
            trainings.append((detector.max_epochs, len(X)))
            return train(detector, X, shape, device, **kwargs)

        return wrapped

    monkeypatch.setattr(_robust, "train", recording(_robust.train))
    monkeypatch.setattr(_detector, "train", recording(_detector.train))
    train, _, _, _ = _polluted_zeros(digits, 18)
    detector = GradientAnomalyDetector(contamination=0.1, max_epochs=7, random_state=0)
    detector.fit(train)
    kept = len(train) - round(0.3 * len(train))
    # Half the epochs (rounded up) on all the rows, then on the rows the first ranking
    # keeps; all the epochs on the rows the second ranking keeps.
    assert trainings == [(4, len(train)), (4, kept), (7, kept)]
    trainings.clear()
    GradientAnomalyDetector(max_epochs=7, random_state=0).fit(train)
    assert trainings == [(7, len(train))]
