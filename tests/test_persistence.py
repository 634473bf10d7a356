import pickle
import subprocess
import sys
import textwrap

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits

import gradient_ad
from gradient_ad import GradientAnomalyDetector, InconsistentVersionWarning


@pytest.fixture(scope="module")
def fitted():
    X, y = load_digits(return_X_y=True)
    X = X / 16
    return GradientAnomalyDetector(max_epochs=3, random_state=0).fit(X[y == 2]), X


def test_joblib_round_trip_gives_identical_scores(fitted, tmp_path):
    est, X = fitted
    path = tmp_path / "model.joblib"
    joblib.dump(est, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.decision_function(X), est.decision_function(X))
    assert loaded.offset_ == est.offset_
    reference = loaded.net_.module_.reference_gradients()[0]
    np.testing.assert_array_equal(
        reference.numpy(), est.net_.module_.reference_gradients()[0].numpy()
    )


def test_joblib_round_trip_in_a_fresh_process(fitted, tmp_path):
    est, X = fitted
    path = tmp_path / "model.joblib"
    np.save(tmp_path / "X.npy", X)
    joblib.dump(est, path)
    code = textwrap.dedent(f"""
        import joblib, numpy as np
        est = joblib.load({str(path)!r})
        X = np.load({str(tmp_path / "X.npy")!r})
        np.save({str(tmp_path / "scores.npy")!r}, est.decision_function(X))
    """)
    subprocess.run([sys.executable, "-c", code], check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "scores.npy"), est.decision_function(X))


def test_saved_model_records_version_and_warns_on_mismatch(fitted, monkeypatch):
    est, X = fitted
    state = est.__getstate__()
    assert state["_gradient_ad_version"] == gradient_ad.__version__
    data = pickle.dumps(est)
    monkeypatch.setattr("gradient_ad._detector.__version__", "0.0.0-other")
    with pytest.warns(InconsistentVersionWarning, match="saved by gradient-ad"):
        pickle.loads(data)
