"""Images as users bring them: scaled by a Pipeline, as PIL images, as file names."""

import warnings

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gradient_ad import GradientAnomalyDetector

FAST = dict(conv_channels=(4, 8), max_epochs=1, batch_size=16, random_state=0)


def _objects(n=40, size=12, seed=0):
    """uint8 images of a bright square on a dark background whose border pixels are
    nearly always 0, as in Fashion-MNIST."""
    rng = np.random.RandomState(seed)
    images = np.zeros((n, size, size), np.uint8)
    images[:, 3:-3, 3:-3] = rng.randint(100, 256, size=(n, size - 6, size - 6))
    images[0, 0, 0] = 40  # one rare bright border pixel: scaled to about 6 std
    return images


def _fit(model, X):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X)
    return [str(w.message) for w in caught if "pixel by pixel" in str(w.message)]


def test_images_standardised_pixel_by_pixel_warn_with_the_fix():
    flat = _objects().reshape(40, -1)
    model = make_pipeline(StandardScaler(), GradientAnomalyDetector(input_shape=(12, 12), **FAST))
    (message,) = _fit(model, flat)
    assert "StandardScaler" in message and "one mean and one standard deviation" in message
    assert "values in [" in message


@pytest.mark.parametrize(
    "prepare",
    [
        lambda X: X,  # uint8, divided by 255 by the detector
        lambda X: X / 255.0,
        lambda X: (X - X.mean()) / X.std(),  # one mean and deviation for all pixels
    ],
    ids=["uint8", "divided by 255", "standardised as a whole"],
)
def test_images_prepared_as_a_whole_do_not_warn(prepare):
    assert _fit(GradientAnomalyDetector(**FAST), prepare(_objects())) == []


def test_a_standardised_table_does_not_warn():
    table = _objects().reshape(40, -1)[:, :20].astype(float)
    table[0, :] = 40.0  # a far outlier in every column
    model = make_pipeline(StandardScaler(), GradientAnomalyDetector(max_epochs=1, random_state=0))
    assert _fit(model, table) == []
