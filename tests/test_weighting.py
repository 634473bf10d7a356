"""Tests of the combined score's standardisation, weights, synthetic rows and coreset."""

import numpy as np
import pytest

from gradient_ad._combined.coreset import k_centre_coreset
from gradient_ad._combined.synthetic import FAMILIES, MAX_ROWS, synthetic_rows
from gradient_ad._combined.weighting import (
    MIN_SCALE,
    complexity,
    fit_complexity_correction,
    fit_standardisation,
    separation_weights,
)


def test_synthetic_rows_keep_shape_dtype_and_are_seeded():
    rows = np.random.RandomState(0).rand(12, 5).astype(np.float32)
    made = synthetic_rows(rows, np.random.RandomState(1))
    again = synthetic_rows(rows, np.random.RandomState(1))
    assert tuple(made) == FAMILIES
    for name in FAMILIES:
        assert made[name].shape == rows.shape and made[name].dtype == rows.dtype
        np.testing.assert_array_equal(made[name], again[name])
        assert not np.array_equal(made[name], rows), name


def test_synthetic_rows_keep_each_columns_values_when_permuted():
    rows = np.random.RandomState(0).rand(30, 4)
    permuted = synthetic_rows(rows, np.random.RandomState(0))["permute"]
    np.testing.assert_array_equal(np.sort(permuted, 0), np.sort(rows, 0))


def test_uniform_rows_stay_in_the_bounding_box():
    rows = np.random.RandomState(0).normal(size=(50, 3)) * [1, 10, 100]
    uniform = synthetic_rows(rows, np.random.RandomState(0))["uniform"]
    assert (uniform >= rows.min(0)).all() and (uniform <= rows.max(0)).all()


def test_at_most_max_rows_are_made():
    rows = np.zeros((MAX_ROWS + 7, 2))
    assert len(synthetic_rows(rows, np.random.RandomState(0))["uniform"]) == MAX_ROWS


def test_synthetic_rows_refuse_images():
    with pytest.raises(ValueError, match="rows"):
        synthetic_rows(np.zeros((3, 1, 4, 4)), np.random.RandomState(0))


def test_standardisation_is_the_mean_and_floored_spread():
    columns = np.c_[np.arange(10.0), np.full(10, 3.0)]
    centres, scales = fit_standardisation(columns)
    np.testing.assert_allclose(centres, [4.5, 3.0])
    np.testing.assert_allclose(scales, [columns[:, 0].std(), MIN_SCALE])


def test_complexity_grows_with_detail_and_ignores_brightness():
    rng = np.random.RandomState(0)
    smooth = np.tile(np.linspace(0, 1, 16), (4, 1, 16, 1))
    detailed = smooth + rng.normal(0, 0.2, smooth.shape)
    assert (complexity(detailed) > complexity(smooth) + 2).all()
    np.testing.assert_allclose(complexity(detailed + 0.5), complexity(detailed), atol=1e-9)


def test_complexity_correction_removes_a_linear_dependence():
    rng = np.random.RandomState(0)
    c = rng.normal(size=300)
    values = 2.0 + 3.0 * c + rng.normal(size=300)
    coefficients = fit_complexity_correction(values, c)
    np.testing.assert_allclose(coefficients, [2.0, 3.0], atol=0.2)
    residual = values - (coefficients[0] + coefficients[1] * c)
    assert abs(np.corrcoef(residual, c)[0, 1]) < 1e-8


def test_weights_follow_separation_and_ignore_inverted_terms():
    rng = np.random.RandomState(0)
    normal = rng.normal(size=(400, 3))
    # Term 0 reacts to both families, term 1 to one, term 2 ranks them as normal.
    families = [normal + [2.0, 2.0, -2.0], normal + [2.0, 0.0, -2.0]]
    weights, separations = separation_weights(normal, families)
    assert separations.shape == (2, 3)
    assert weights[0] > weights[1] > 0 and weights[2] == 0
    assert weights.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(separations[:, 2], 0.08, atol=0.05)


def test_weights_are_equal_when_no_term_separates():
    normal = np.random.RandomState(0).normal(size=(100, 4))
    weights, _ = separation_weights(normal, [normal.copy()])
    np.testing.assert_allclose(weights, 0.25)


def test_k_centre_coreset_covers_better_than_a_random_draw():
    rng = np.random.RandomState(0)
    # Five tight clusters of very different sizes: a random draw misses the small ones.
    centres = rng.normal(scale=20, size=(5, 300))
    sizes = [2000, 500, 20, 5, 2]
    samples = np.concatenate([c + rng.normal(size=(n, 300)) for c, n in zip(centres, sizes)])
    chosen = k_centre_coreset(samples, 10, np.random.RandomState(0))
    assert len(set(chosen.tolist())) == 10

    def largest_gap(kept):
        d = ((samples[:, None, :] - samples[kept][None]) ** 2).sum(-1)
        return np.sqrt(d.min(1)).max()

    random_draw = np.random.RandomState(1).choice(len(samples), 10, replace=False)
    assert largest_gap(chosen) < 0.5 * largest_gap(random_draw)


def test_k_centre_coreset_keeps_everything_below_its_size_and_is_seeded():
    samples = np.random.RandomState(0).rand(50, 3)
    np.testing.assert_array_equal(
        k_centre_coreset(samples, 50, np.random.RandomState(0)), np.arange(50)
    )
    a = k_centre_coreset(samples, 7, np.random.RandomState(3))
    b = k_centre_coreset(samples, 7, np.random.RandomState(3))
    np.testing.assert_array_equal(a, b)
