"""The detector's ``score`` parameter: the combined score with weights fitted on each
fit's own data, on tables and images; ``max_neighbours``; the flagged share of the
training rows with a float ``contamination``."""

import math
import warnings

import joblib
import numpy as np
import pytest

from gradient_ad import GradientAnomalyDetector, ScoreComponents
from gradient_ad._pretexts import get_pretext
from gradient_ad.datasets import load_digits_images


@pytest.fixture(autouse=True)
def _short_fits():
    # Deliberately short fits: their convergence warnings say nothing here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*max_epochs.*")
        warnings.filterwarnings("ignore", message=".*collapsed.*")
        yield


def _table(seed=0, n=400):
    rng = np.random.RandomState(seed)
    latent = rng.normal(size=(n, 2))
    return (latent @ rng.normal(size=(2, 6)) + 0.1 * rng.normal(size=(n, 6))).astype(np.float32)


TABLE = dict(max_epochs=3, hidden_sizes=(8, 4), random_state=0)


def test_auto_is_gradcon_without_a_pretext_and_combined_with_one():
    X = _table()
    plain = GradientAnomalyDetector(**TABLE).fit(X)
    assert plain.combined_ is None
    gradcon = GradientAnomalyDetector(score="gradcon", **TABLE).fit(X)
    np.testing.assert_array_equal(plain.score_samples(X), gradcon.score_samples(X))
    error, alignment = plain.score_components(X)
    np.testing.assert_allclose(plain.score_samples(X), -(error - plain.beta_ * alignment))


# Far rows are meant to be far: the scoring warning about rows beyond the training
# range says nothing here.
@pytest.mark.filterwarnings("ignore:X has values in:UserWarning")
def test_a_combined_table_model_weighs_its_terms_on_synthetic_rows():
    X = _table()
    detector = GradientAnomalyDetector(score="combined", **TABLE).fit(X)
    combined = detector.combined_
    names = ("reconstruction_error", "alignment", "neighbour_distance")
    assert combined.names == names == detector.score_components(X[:3]).names
    assert combined.separations_.shape == (5, 3)
    assert (combined.weights_ >= 0).all() and combined.weights_.sum() == pytest.approx(3)
    expected = np.maximum(combined.separations_.mean(0) - 0.5, 0)
    np.testing.assert_allclose(combined.weights_, 3 * expected / expected.sum())
    assert list(combined.weights) == list(names)
    # Far rows are flagged: every term grows with abnormality once signed.
    far = X[:20] + 20 * X.std(0)
    assert np.median(detector.score_samples(far)) < np.percentile(detector.score_samples(X), 1)


def test_the_combined_score_is_the_weighted_sum_in_each_terms_direction():
    X = _table()
    detector = GradientAnomalyDetector(score="combined", **TABLE).fit(X)
    parts = detector.score_components(X[:50])
    combined = detector.combined_
    columns = []
    for name, values in parts.items():
        values = np.log(values) if name == "reconstruction_error" else values
        columns.append(values if parts.higher_is_anomalous[name] else -values)
    standardised = (np.stack(columns, 1) - combined.means_) / combined.scales_
    np.testing.assert_allclose(-detector.score_samples(X[:50]), standardised @ combined.weights_)
    # Moving one term in its anomalous direction never raises the score.
    for j, name in enumerate(parts.names):
        step = 1.0 if parts.higher_is_anomalous[name] else -1.0
        moved = ScoreComponents({**parts.as_dict(), name: parts[j] + step})
        if name == "reconstruction_error":
            moved = ScoreComponents({**parts.as_dict(), name: parts[j] * math.e})
        assert (combined.score(moved) >= combined.score(parts)).all(), name


def test_weights_are_reproducible_and_persisted(tmp_path):
    X = _table(1)
    a = GradientAnomalyDetector(score="combined", **TABLE).fit(X)
    b = GradientAnomalyDetector(score="combined", **TABLE).fit(X)
    np.testing.assert_array_equal(a.combined_.weights_, b.combined_.weights_)
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))
    joblib.dump(a, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(loaded.combined_.weights_, a.combined_.weights_)
    np.testing.assert_array_equal(loaded.score_samples(X), a.score_samples(X))


def test_a_tampered_weight_fails_the_checksum(tmp_path):
    import pickle

    detector = GradientAnomalyDetector(score="combined", **TABLE).fit(_table())
    state = detector.__getstate__()
    state["combined_"].weights_ = state["combined_"].weights_ * 2
    with pytest.raises(Exception, match="(?i)checksum|damaged|changed"):
        pickle.loads(pickle.dumps(detector.__class__)).__new__(detector.__class__).__setstate__(
            state
        )


@pytest.mark.parametrize(
    "contamination, n_trimmed",
    # Three times the expected share is left out of the second training, at most half.
    [(0.05, 180), (0.2, 600), (0.5, 600)],
)
@pytest.mark.parametrize("score", ["gradcon", "combined"])
def test_a_float_contamination_flags_that_share_of_the_training_rows(
    contamination, n_trimmed, score
):
    X = _table(2, n=1200)  # a held-out slice of 120 rows calibrates the combined score
    detector = GradientAnomalyDetector(score=score, contamination=contamination, **TABLE).fit(X)
    assert detector.n_trimmed_ == n_trimmed
    # predict flags the expected share of all the training rows, trimmed ones included.
    flagged = np.mean(detector.predict(X) == -1)
    assert abs(flagged - contamination) <= 1 / len(X)


def test_max_neighbours_bounds_the_kept_samples():
    X = _table(3, n=300)
    bounded = GradientAnomalyDetector(score="combined", max_neighbours=40, **TABLE).fit(X)
    assert bounded.combined_.neighbours_.n_samples_fit_ == 40
    assert len(bounded.combined_.kept_) == 40
    whole = GradientAnomalyDetector(score="combined", max_neighbours=None, **TABLE).fit(X)
    above = GradientAnomalyDetector(score="combined", max_neighbours=10_000, **TABLE).fit(X)
    np.testing.assert_array_equal(whole.score_samples(X), above.score_samples(X))
    assert whole.combined_.kept_ is None


@pytest.mark.parametrize("bad", [0, -3, 2.5, "all"])
def test_bad_max_neighbours_and_score_are_refused(bad):
    with pytest.raises(ValueError, match="max_neighbours"):
        GradientAnomalyDetector(max_neighbours=bad).fit(_table())
    with pytest.raises(ValueError, match="score"):
        GradientAnomalyDetector(score="sum").fit(_table())


def test_rotation_reliability_is_the_heads_certainty_on_normal_images():
    rotation = get_pretext("rotation")
    certain = ScoreComponents({"rotation_loss": np.zeros(5)})
    guessing = ScoreComponents({"rotation_loss": np.full(5, math.log(4))})
    worse = ScoreComponents({"rotation_loss": np.full(5, 3.0)})
    halfway = ScoreComponents({"rotation_loss": np.full(5, math.log(4) / 2)})
    assert rotation.reliability(certain) == 1.0
    assert rotation.reliability(guessing) == 0.0 == rotation.reliability(worse)
    assert rotation.reliability(halfway) == pytest.approx(0.5)
    assert get_pretext(None).reliability(certain) == 1.0


def test_a_pretext_models_weights_come_from_its_reliability():
    X, y = load_digits_images()
    detector = GradientAnomalyDetector(
        pretext="rotation", max_epochs=2, random_state=0, early_stopping=False
    ).fit(X[y == 3])
    combined = detector.combined_
    held_out = detector.score_components(X[y == 3])
    assert 0.0 <= combined.reliability_ <= 1.0
    expected = [1.0, 1.0, combined.reliability_, combined.reliability_, 1.0]
    np.testing.assert_allclose(combined.weights_, expected)
    assert combined.separations_ is None  # images get no synthetic outliers
    assert held_out.names == (*combined.names, "input_complexity")
    assert held_out.higher_is_anomalous["input_complexity"] is None
    # The pixel-space terms are corrected for the input complexity, the others not.
    corrected = combined.complexity_coefficients_.any(1)
    assert corrected.tolist() == [True, False, False, False, True]
    gradcon = GradientAnomalyDetector(
        pretext="rotation", score="gradcon", max_epochs=2, random_state=0, early_stopping=False
    ).fit(X[y == 3])
    assert gradcon.combined_ is None
    assert gradcon.score_components(X[:2]).names == ("reconstruction_error", "alignment")


@pytest.mark.parametrize("score", ["gradcon", "combined"])
def test_a_float_contamination_trains_again_without_the_worst_rows(score):
    X = _table(4, n=400)
    # Unlabelled anomalies among the training rows, scattered (a tight cluster of them
    # would be its own neighbourhood: kNN's masking).
    far = X[:20] + 15 * X.std(0) * np.random.RandomState(0).choice([-1, 1], size=(20, 6))
    polluted = np.concatenate([X, far])
    detector = GradientAnomalyDetector(score=score, contamination=0.05, **TABLE).fit(polluted)
    assert detector.n_trimmed_ == round(3 * 0.05 * len(polluted))
    assert GradientAnomalyDetector(score=score, **TABLE).fit(polluted).n_trimmed_ == 0
    if score == "combined":
        # The neighbour term keeps none of the far rows (matched row by row: the kept
        # rows are float32, the far rows float64; a random choice of rows keeps 18).
        kept = detector.combined_.neighbours_._fit_X
        assert not (np.abs(kept[:, None] - far[None]).max(2) < 1e-4).any()
    # The far rows are the ones flagged on the training data.
    flagged = detector.predict(polluted) == -1
    assert flagged[len(X) :].all()
    again = GradientAnomalyDetector(score=score, contamination=0.05, **TABLE).fit(polluted)
    np.testing.assert_array_equal(again.score_samples(polluted), detector.score_samples(polluted))
