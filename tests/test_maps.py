"""Anomaly maps: exact reconstruction maps, integrated-gradients maps, plots, bad input."""

import warnings

import matplotlib
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.ensemble import IsolationForest
from sklearn.exceptions import NotFittedError

from gradient_ad import GradientAnomalyDetector, anomaly_maps
from gradient_ad.plotting import plot_anomaly_maps

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def image_detector(digits):
    X, y = digits
    images = X.reshape(-1, 8, 8)
    return GradientAnomalyDetector(max_epochs=30, random_state=0).fit(images[y == 0])


@pytest.fixture(scope="module")
def table_detector(digits):
    X, y = digits
    return GradientAnomalyDetector(max_epochs=30, random_state=0).fit(X[y == 0])


def _zeros(digits, n=10):
    X, y = digits
    return X[y == 0][-n:].reshape(-1, 8, 8).copy()  # the last zeros, inliers


def test_reconstruction_map_sums_to_reconstruction_error(image_detector, digits):
    X, _ = digits
    images = X[:30].reshape(-1, 8, 8)
    maps = anomaly_maps(image_detector, images, n_steps=1)
    error, _ = image_detector.score_components(images)
    np.testing.assert_allclose(maps.reconstruction_map.sum(axis=(1, 2)), error, rtol=1e-5)
    np.testing.assert_allclose(
        maps.reconstruction_map * 64, (maps.reconstruction - images) ** 2, rtol=1e-5, atol=1e-12
    )


def test_gradient_map_sums_to_gradient_term_change(image_detector, digits):
    # Integrated gradients from the reconstruction r to x: the map sums to
    # T(x) - T(r), T = -beta * alignment, up to the quadrature error of n_steps.
    X, _ = digits
    images = X[:8].reshape(-1, 8, 8)
    maps = anomaly_maps(image_detector, images, n_steps=128)
    _, alignment = image_detector.score_components(images)
    _, alignment_of_reconstruction = image_detector.score_components(maps.reconstruction)
    expected = -image_detector.beta_ * (alignment - alignment_of_reconstruction)
    total = maps.gradient_map.sum(axis=(1, 2))
    assert np.corrcoef(total, expected)[0, 1] > 0.98
    assert np.median(np.abs(total - expected)) < 0.02 * np.abs(expected).max()


def test_maps_locate_a_bright_patch(image_detector, digits):
    # A 2 x 2 white patch in a corner that is dark on every zero, in three corners.
    corners = [(0, 0), (0, 6), (6, 0)]
    images = []
    for i, j in corners:
        patched = _zeros(digits)
        patched[:, i : i + 2, j : j + 2] = 1.0
        images.append(patched)
    maps = anomaly_maps(image_detector, np.concatenate(images), n_steps=16)
    where = np.repeat(corners, len(images[0]), axis=0)
    for name in ("reconstruction_map", "gradient_map"):
        windows = sliding_window_view(maps[name], (2, 2), axis=(1, 2)).sum(axis=(-1, -2))
        strongest = np.array([np.unravel_index(np.argmax(w), w.shape) for w in windows])
        hits = np.mean((strongest == where).all(axis=1))
        # The reconstruction map always finds it; the gradient map on most images.
        assert hits >= (1.0 if name == "reconstruction_map" else 0.8), name
    patch_sums = [
        maps.gradient_map[k, i : i + 2, j : j + 2].sum() for k, (i, j) in enumerate(where)
    ]
    assert np.all(np.array(patch_sums) > 0)


def test_maps_locate_a_corrupted_feature(table_detector, digits):
    X, y = digits
    rows = X[y == 0][-10:].copy()
    feature = 36  # a pixel in the middle of the zeros' hole: dark on every zero
    assert np.all(X[y == 0][:, feature] < 0.25)
    rows[:, feature] = 1.0
    maps = anomaly_maps(table_detector, rows)
    assert maps.reconstruction_map.shape == rows.shape
    assert np.all(maps.reconstruction_map.argmax(axis=1) == feature)
    # The gradient term spreads over the features the corrupted one interacts with:
    # the feature raises it on every row and ranks among the five strongest.
    assert (maps.gradient_map[:, feature] > 0).all()
    ranks = (np.argsort(-np.abs(maps.gradient_map), axis=1) == feature).argmax(axis=1)
    assert np.mean(ranks < 5) >= 0.9


# One epoch may leave a collapsed network; only the maps' shapes are under test.
@pytest.mark.filterwarnings("ignore:The network collapsed:sklearn.exceptions.ConvergenceWarning")
def test_map_shapes_follow_x(digits):
    X, y = digits
    normal = X[y == 0][:60]
    cases = [
        ({}, normal.reshape(-1, 1, 8, 8), normal.reshape(-1, 1, 8, 8)[:3]),
        ({"input_shape": (8, 8)}, normal, normal[:3]),
    ]
    for params, train, test in cases:
        detector = GradientAnomalyDetector(max_epochs=1, random_state=0, **params).fit(train)
        maps = anomaly_maps(detector, test, n_steps=2)
        assert set(maps) == {"reconstruction", "reconstruction_map", "gradient_map"}
        for value in maps.values():
            assert value.shape == test.shape
            assert value.dtype == np.float64
            assert np.isfinite(value).all()


def test_bad_input_raises_before_work(image_detector, digits):
    X, _ = digits
    images = X[:3].reshape(-1, 8, 8)
    with pytest.raises(NotFittedError):
        anomaly_maps(GradientAnomalyDetector(), images)
    with pytest.raises(TypeError, match="GradientAnomalyDetector"):
        anomaly_maps(IsolationForest().fit(X[:20]), X[:3])
    for n_steps in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="n_steps"):
            anomaly_maps(image_detector, images, n_steps=n_steps)
    with pytest.raises(ValueError, match="fitted on images of 8 x 8 pixels"):
        anomaly_maps(image_detector, X[:3, :60])
    bad = images.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        anomaly_maps(image_detector, bad)


def test_plot_images_and_tables(image_detector, table_detector, digits):
    X, _ = digits
    fig = plot_anomaly_maps(image_detector, X[:2].reshape(-1, 8, 8), n_steps=2)
    assert len(fig.axes) == 2 * 4 + 2  # four panels a row, two colour bars
    assert [ax.get_title() for ax in fig.axes[:4]] == [
        "input",
        "reconstruction",
        "reconstruction map",
        "gradient map",
    ]
    fig = plot_anomaly_maps(table_detector, X[:3], n_steps=2)
    assert len(fig.axes) == 3
    assert len(fig.axes[0].patches) == 2 * 64  # two bars per feature
    matplotlib.pyplot.close("all")


def test_gradient_map_ignores_the_scale_of_the_reference(table_detector, digits):
    # Cosines do not depend on the reference's length while it stays above the norms'
    # clamp (1e-8; a trained network's is about 1e-2 here); a guard on the product of
    # the norms would shrink them.
    import copy

    import torch

    X, _ = digits
    small = copy.deepcopy(table_detector)
    with torch.no_grad():
        for reference in small.net_.module_.reference_gradients():
            reference.mul_(1e-4)
    expected = anomaly_maps(table_detector, X[:4], n_steps=4).gradient_map
    got = anomaly_maps(small, X[:4], n_steps=4).gradient_map
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-9)


def test_gradient_map_follows_the_fitted_beta(table_detector, digits):
    import copy

    X, _ = digits
    auto = copy.deepcopy(table_detector).set_params(beta="auto")
    auto.beta_ = 3 * table_detector.beta_  # as beta='auto' would set it, without a refit
    expected = anomaly_maps(table_detector, X[:4], n_steps=2).gradient_map
    got = anomaly_maps(auto, X[:4], n_steps=2).gradient_map
    np.testing.assert_allclose(got, 3 * expected, rtol=1e-4, atol=1e-8)  # float32


def test_non_finite_network_raises(table_detector, digits):
    import copy

    import torch

    X, _ = digits
    broken = copy.deepcopy(table_detector)
    with torch.no_grad():
        broken.net_.module_.constrained_parameters()[0][0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="non-finite values for 4 of 4 samples"):
        anomaly_maps(broken, X[:4], n_steps=1)


# -- a model with a combined score: the maps of its own terms -----------------------------


@pytest.fixture(scope="module")
def combined_detector(digits):
    X, y = digits
    images = X.reshape(-1, 8, 8).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # too short to converge
        detector = GradientAnomalyDetector(pretext="rotation", max_epochs=3, random_state=0)
        return detector.fit(images[y == 0][:150])


def test_combined_maps_explain_the_combined_score(combined_detector, digits):
    X, _ = digits
    images = X[:6].reshape(-1, 8, 8).astype(np.float32)
    maps = anomaly_maps(combined_detector, images)
    assert "gradient_map" not in maps  # never a map of GradCon's score
    assert maps.map_names == ("reconstruction_error_map", "neighbour_distance_map")
    assert maps.terms == combined_detector.combined_.names
    assert maps.unmapped_terms == ("alignment", "rotation_loss", "log_rotation_gradient_norm")
    # Each map sums to its term's standardised, weighted part of the score, and the
    # maps and the unmapped parts add up to the score the model gives.
    components = combined_detector.score_components(images)
    contributions = combined_detector.combined_.contributions(components)
    np.testing.assert_allclose(maps.contributions, contributions)
    for column, name in enumerate(maps.terms):
        if f"{name}_map" in maps:
            total = maps[f"{name}_map"].sum(axis=(1, 2))
            np.testing.assert_allclose(total, contributions[:, column], rtol=1e-6, atol=1e-9)
    total = sum(maps[key].sum(axis=(1, 2)) for key in maps.map_names)
    total = total + maps.unmapped_contributions.sum(1)
    np.testing.assert_allclose(total, -combined_detector.score_samples(images), rtol=1e-5)
    assert maps.reconstruction.shape == images.shape


def test_combined_maps_point_at_a_planted_patch(combined_detector, digits):
    # A bright patch where zeros are dark: both maps put more of their term on the
    # patch's four pixels than on any other four.
    X, y = digits
    zero = X[y == 0][-1].reshape(1, 8, 8).astype(np.float32).copy()
    zero[0, 3:5, 3:5] = 1.0
    maps = anomaly_maps(combined_detector, zero)
    for key in maps.map_names:
        values = maps[key][0]
        patch = values[3:5, 3:5].sum()
        assert patch > 0
        assert patch >= np.sort(values.ravel())[-4:].sum() * 0.5, key


def test_plot_combined_maps(combined_detector, digits):
    X, _ = digits
    fig = plot_anomaly_maps(combined_detector, X[:2].reshape(-1, 8, 8).astype(np.float32))
    assert [ax.get_title() for ax in fig.axes[:4]] == [
        "input",
        "reconstruction",
        "reconstruction map",
        "neighbour distance map",
    ]
