import os
import sys

import joblib
import pytest
from sklearn.datasets import load_digits

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits scaled to [0, 1], and their labels."""
    X, y = load_digits(return_X_y=True)
    X = X / 16
    X.flags.writeable = False  # shared by every test: a test that writes to it fails
    return X, y


@pytest.fixture(scope="session")
def saved_model():
    """A detector fitted on the twos of digits, to save and load, and the digits."""
    from gradient_ad import GradientAnomalyDetector

    X, y = load_digits(return_X_y=True)
    X = X / 16
    return GradientAnomalyDetector(max_epochs=3, random_state=0).fit(X[y == 2]), X


@pytest.fixture(scope="session")
def saved_bytes(saved_model, tmp_path_factory):
    """``saved_model`` as ``joblib.dump`` writes it."""
    est, _ = saved_model
    path = tmp_path_factory.mktemp("saved") / "model.joblib"
    joblib.dump(est, path)
    return path.read_bytes()
