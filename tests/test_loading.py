"""gradient_ad.load: clear errors for damaged files, any object holding a detector
(gradient_ad._loading)."""

import joblib
import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gradient_ad import GradientAnomalyDetector, load


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],
        lambda data: data[:100],
        lambda data: data[:-10],
        lambda data: b"",
        lambda data: b"not a model" * 20,
    ],
    ids=["half", "first 100 bytes", "last 10 bytes missing", "empty", "text"],
)
def test_truncated_or_garbage_file_gives_a_clear_error(saved_bytes, tmp_path, damage):
    path = tmp_path / "damaged.joblib"
    path.write_bytes(damage(saved_bytes))
    with pytest.raises(ValueError, match="could not load a model from .*truncated, damaged"):
        load(path)


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent.joblib")


def test_load_returns_pipelines_and_unfitted_detectors(saved_model, tmp_path):
    est, X = saved_model
    pipeline = make_pipeline(
        StandardScaler(), GradientAnomalyDetector(max_epochs=2, random_state=0)
    )
    pipeline.fit(X[:100])
    joblib.dump(pipeline, tmp_path / "pipeline.joblib")
    np.testing.assert_array_equal(
        load(tmp_path / "pipeline.joblib").decision_function(X), pipeline.decision_function(X)
    )
    joblib.dump(GradientAnomalyDetector(alpha=0.5), tmp_path / "unfitted.joblib")
    assert load(tmp_path / "unfitted.joblib").alpha == 0.5


@pytest.mark.parametrize("content", [{"weights": [1, 2]}, np.arange(3), "a model", None], ids=repr)
def test_file_without_a_detector_is_refused(tmp_path, content):
    joblib.dump(content, tmp_path / "other.joblib")
    with pytest.raises(ValueError, match="not a GradientAnomalyDetector nor an object"):
        load(tmp_path / "other.joblib")


def _mean_score(model, X, y=None):
    return model.score_samples(X).mean()


def test_detectors_inside_searches_and_containers_load(saved_model, tmp_path):
    from sklearn.model_selection import GridSearchCV

    est, X = saved_model
    search = GridSearchCV(
        GradientAnomalyDetector(max_epochs=1, random_state=0),
        {"alpha": [0.03]},
        scoring=_mean_score,
        cv=2,
    ).fit(X[:40])
    for content in (search, {"model": est, "note": "v1"}, [StandardScaler(), est]):
        joblib.dump(content, tmp_path / "held.joblib")
        assert type(load(tmp_path / "held.joblib")) is type(content)
