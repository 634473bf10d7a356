import os
import sys

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
