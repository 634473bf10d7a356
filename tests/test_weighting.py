"""Tests of the combined score's weighting steps and the synthetic outliers."""

import numpy as np
import pytest

from gradient_ad._synthetic import (
    IMAGE_FAMILIES,
    MAX_SAMPLES,
    TABLE_FAMILIES,
    synthetic_outliers,
)
from gradient_ad._weighting import (
    complexity,
    fit_complexity_correction,
    fit_standardisation,
    separation_weights,
)


@pytest.mark.parametrize(
    "shape, families", [((12, 1, 8, 8), IMAGE_FAMILIES), ((12, 5), TABLE_FAMILIES)]
)
def test_synthetic_outliers_keep_shape_dtype_and_are_seeded(shape, families):
    X = np.random.RandomState(0).rand(*shape).astype(np.float32)
    made = synthetic_outliers(X, np.random.RandomState(1))
    again = synthetic_outliers(X, np.random.RandomState(1))
    assert tuple(made) == families
    for name in families:
        assert made[name].shape == X.shape and made[name].dtype == X.dtype
        np.testing.assert_array_equal(made[name], again[name])
        assert not np.array_equal(made[name], X), name


def test_image_outliers_stay_in_the_samples_range():
    X = np.random.RandomState(0).rand(20, 3, 6, 6) * 4 - 1
    for name, values in synthetic_outliers(X, np.random.RandomState(0)).items():
        assert values.min() >= X.min() - 1e-12 and values.max() <= X.max() + 1e-12, name


def test_shuffled_quarters_are_a_permutation_of_the_image():
    X = np.random.RandomState(0).rand(15, 1, 8, 8)
    shuffled = synthetic_outliers(X, np.random.RandomState(0))["shuffle"]
    for original, moved in zip(X, shuffled):
        quarters = sorted(q.tobytes() for q in _quarters(original))
        assert sorted(q.tobytes() for q in _quarters(moved)) == quarters
        assert not np.array_equal(original, moved)


def _quarters(image):
    return [image[:, a : a + 4, b : b + 4] for a in (0, 4) for b in (0, 4)]


def test_at_most_max_samples_are_made():
    X = np.zeros((MAX_SAMPLES + 7, 2))
    assert len(synthetic_outliers(X, np.random.RandomState(0))["uniform"]) == MAX_SAMPLES


def test_synthetic_outliers_refuse_other_shapes():
    with pytest.raises(ValueError, match="images"):
        synthetic_outliers(np.zeros((3, 4, 4)), np.random.RandomState(0))


def test_complexity_grows_with_detail_and_ignores_brightness():
    rng = np.random.RandomState(0)
    smooth = np.tile(np.linspace(0, 1, 16), (4, 1, 16, 1))
    detailed = smooth + rng.normal(0, 0.2, smooth.shape)
    assert (complexity(detailed) > complexity(smooth) + 2).all()
    np.testing.assert_allclose(complexity(detailed + 0.5), complexity(detailed), atol=1e-9)


def test_complexity_correction_removes_a_linear_dependence():
    rng = np.random.RandomState(0)
    c = rng.normal(size=300)
    noise = rng.normal(size=300)
    coefficients = fit_complexity_correction(2.0 + 3.0 * c + noise, c)
    np.testing.assert_allclose(coefficients, [2.0, 3.0], atol=0.2)
    residual = 2.0 + 3.0 * c + noise - (coefficients[0] + coefficients[1] * c)
    assert abs(np.corrcoef(residual, c)[0, 1]) < 1e-8


def test_standardisation_is_robust_to_a_few_outliers():
    rng = np.random.RandomState(0)
    column = rng.normal(5.0, 2.0, size=(1000, 1))
    polluted = np.r_[column, np.full((30, 1), 1e6)]
    centres, scales = fit_standardisation(polluted)
    np.testing.assert_allclose(centres, [5.0], atol=0.3)
    np.testing.assert_allclose(scales, [2.0], rtol=0.15)


def test_standardisation_falls_back_for_flat_terms():
    columns = np.c_[np.r_[np.zeros(90), np.ones(10) * 4], np.full(100, 3.0)]
    centres, scales = fit_standardisation(columns)
    np.testing.assert_allclose(scales, [columns[:, 0].std(), 1.0])
    np.testing.assert_allclose(centres, [0.0, 3.0])


def test_weights_follow_separation_and_ignore_inverted_terms():
    rng = np.random.RandomState(0)
    normal = rng.normal(size=(400, 3))
    # Term 0 reacts to both families, term 1 to one, term 2 ranks them as normal.
    families = [normal + [2.0, 2.0, -2.0], normal + [2.0, 0.0, -2.0]]
    weights, separations = separation_weights(normal, families)
    assert separations.shape == (2, 3)
    assert weights[0] > weights[1] > 0 and weights[2] == 0
    assert weights.sum() == pytest.approx(1.0)


def test_weights_are_equal_when_no_term_separates():
    normal = np.random.RandomState(0).normal(size=(100, 4))
    weights, _ = separation_weights(normal, [normal.copy()])
    np.testing.assert_allclose(weights, 0.25)
