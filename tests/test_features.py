"""GradientFeatures: the gradient representation as a scikit-learn transformer."""

import io
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from _reference import reference_layer_terms, reference_terms
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

import gradient_ad
from gradient_ad import GradientAnomalyDetector, GradientFeatures


def _small(**params):
    params = {"max_epochs": 2, "hidden_sizes": (8, 4), "batch_size": 16, **params}
    return GradientAnomalyDetector(score_batch_size=64, **params)


@parametrize_with_checks([GradientFeatures(_small(), n_projections=2)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16, y


@pytest.fixture(scope="module")
def fitted(digits):
    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GradientFeatures(_small(max_epochs=3), n_projections=4, random_state=0).fit(
            X[y == 0]
        )


def test_features_agree_with_a_plain_per_sample_loop(fitted, digits):
    X, _ = digits
    Z = fitted.transform(X[:25])
    module = fitted.detector_.net_.module_
    x = torch.as_tensor(X[:25], dtype=torch.float32)
    directions = [torch.as_tensor(d) for d in fitted.directions_]
    error, _ = reference_terms(module, x)
    cosines, norms, projections = reference_layer_terms(module, x, directions)
    n_tensors = len(fitted.constrained_names_)
    np.testing.assert_allclose(Z[:, 0], error, rtol=1e-5)
    np.testing.assert_allclose(Z[:, 1 : 1 + n_tensors], cosines, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        Z[:, 1 + n_tensors : 1 + 2 * n_tensors], np.log(norms.numpy()), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        Z[:, 1 + 2 * n_tensors :], projections.reshape(25, -1), rtol=1e-4, atol=1e-9
    )


def test_feature_names_say_quantity_and_tensor(fitted):
    names = fitted.get_feature_names_out()
    tensors = fitted.constrained_names_
    assert len(names) == 1 + len(tensors) * (2 + fitted.n_projections)
    assert names[0] == "reconstruction_error"
    assert f"cosine__{tensors[0]}" in names
    assert f"log_gradient_norm__{tensors[-1]}" in names
    assert f"projection3__{tensors[1]}" in names
    assert len(set(names)) == len(names)


def test_projections_are_seeded_and_stable(digits):
    X, y = digits

    def features(seed, detector_seed=0):
        return GradientFeatures(
            _small(random_state=detector_seed), n_projections=3, random_state=seed
        ).fit(X[y == 1])

    a, b, c = features(0), features(0), features(1)
    np.testing.assert_array_equal(a.transform(X[:10]), b.transform(X[:10]))
    assert not np.allclose(a.directions_[0], c.directions_[0])
    # The same network (the detector's own seed), other directions: only those change.
    fixed = 1 + 2 * len(a.constrained_names_)
    np.testing.assert_array_equal(a.transform(X[:10])[:, :fixed], c.transform(X[:10])[:, :fixed])
    assert not np.allclose(a.transform(X[:10])[:, fixed:], c.transform(X[:10])[:, fixed:])
    # Scored alone or in a batch, a sample's features are the same (both small calls,
    # computed in float64: to float64 rounding).
    np.testing.assert_allclose(a.transform(X[3:4]), a.transform(X[:10])[3:4], rtol=1e-12)


def test_projections_sketch_the_gradient_norm(digits):
    # Johnson-Lindenstrauss: with 256 directions of variance 1/256 the squared
    # projections sum to the squared norm within about 2 / sqrt(256) = 12 % (3 sigma:
    # 27 %); stated tolerance 30 % for every sample and tensor.
    X, y = digits
    features = GradientFeatures(_small(random_state=0), n_projections=256, random_state=0)
    Z = features.fit(X[y == 2]).transform(X[:20])
    n = len(features.constrained_names_)
    norms = np.exp(Z[:, 1 + n : 1 + 2 * n])
    sketch = Z[:, 1 + 2 * n :].reshape(20, n, 256)
    live = norms > 1e-7  # a gradient that is exactly 0 (dead units) is clamped to 1e-8
    ratio = np.sqrt((sketch**2).sum(2))[live] / norms[live]
    assert live.mean() > 0.5 and np.all(np.abs(ratio - 1) < 0.3), ratio


def test_random_state_seeds_an_unseeded_detector(digits):
    X, y = digits
    a = GradientFeatures(_small(), random_state=3).fit(X[y == 4])
    b = GradientFeatures(_small(), random_state=3).fit(X[y == 4])
    np.testing.assert_array_equal(a.transform(X[:5]), b.transform(X[:5]))
    assert a.detector.random_state is None  # the parameter itself is left alone


def test_pandas_output_pipeline_and_column_transformer(fitted, digits):
    X, y = digits
    frame = pd.DataFrame(X, columns=[f"px{i}" for i in range(64)])
    features = GradientFeatures(_small(random_state=0), random_state=0).set_output(
        transform="pandas"
    )
    out = features.fit(frame[y == 0]).transform(frame.iloc[:5])
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == list(features.get_feature_names_out())
    column = ColumnTransformer(
        [("gradients", GradientFeatures(_small(random_state=0)), slice(0, 64))]
    )
    assert column.fit(X[y == 0]).transform(X[:5]).shape == (5, len(out.columns))


def test_grid_search_reaches_the_detector_parameters(digits):
    X, y = digits
    keep = (y == 0) | (y == 1)
    pipe = Pipeline(
        [
            ("gradients", GradientFeatures(_small(random_state=0), random_state=0)),
            ("classify", LogisticRegression()),
        ]
    )
    search = GridSearchCV(pipe, {"gradients__detector__max_epochs": [1, 2]}, cv=2)
    search.fit(X[keep][:200], y[keep][:200])
    assert search.best_params_["gradients__detector__max_epochs"] in (1, 2)
    assert search.best_score_ > 0.6


def test_joblib_round_trip_keeps_the_features(fitted, digits, tmp_path):
    X, _ = digits
    buffer = io.BytesIO()
    joblib.dump(fitted, buffer)
    buffer.seek(0)
    loaded = joblib.load(buffer)
    np.testing.assert_array_equal(loaded.transform(X[:8]), fitted.transform(X[:8]))
    # gradient_ad.load checks the detector inside (version record and checksum).
    joblib.dump(fitted, tmp_path / "features.joblib")
    loaded = gradient_ad.load(tmp_path / "features.joblib")
    np.testing.assert_array_equal(loaded.transform(X[:8]), fitted.transform(X[:8]))


def test_memory_mapped_load_transforms_without_warnings(fitted, digits, tmp_path):
    """joblib's mmap_mode='r' loads the random directions as read-only memory maps;
    transform gives the same features without torch's "not writable" warning."""
    X, _ = digits
    joblib.dump(fitted, tmp_path / "features.joblib")
    loaded = joblib.load(tmp_path / "features.joblib", mmap_mode="r")
    assert isinstance(loaded.directions_[0], np.memmap)  # the case under test
    X_read_only = np.require(X[:8], requirements="C")
    X_read_only.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        features = loaded.transform(X_read_only)
    np.testing.assert_array_equal(features, fitted.transform(X[:8]))


def test_a_detector_of_another_kind_is_refused(digits):
    from sklearn.ensemble import IsolationForest

    X, _ = digits
    with pytest.raises((TypeError, ValueError), match="detector"):
        GradientFeatures(IsolationForest()).fit(X[:50])


def test_per_layer_components_explain_the_alignment(fitted, digits):
    X, _ = digits
    detector = fitted.detector_
    error, alignment, layers = detector.score_components(X[:30], per_layer=True)
    plain = detector.score_components(X[:30])
    np.testing.assert_array_equal(error, plain[0])
    np.testing.assert_array_equal(alignment, plain[1])
    np.testing.assert_allclose(layers.mean(1), alignment, rtol=1e-6)
    n = len(fitted.constrained_names_)
    np.testing.assert_allclose(layers, fitted.transform(X[:30])[:, 1 : 1 + n], rtol=1e-12)
