"""gradient_ad.dask: grid search and out-of-core scoring on a local Dask cluster."""

import contextlib
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

dask = pytest.importorskip("dask")
pytest.importorskip("distributed")

import dask.array as da  # noqa: E402
import joblib  # noqa: E402
from distributed import Client, LocalCluster, get_task_stream  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler  # noqa: E402

from gradient_ad import GradientAnomalyDetector  # noqa: E402
from gradient_ad.dask import score_dask, torch_threads_config  # noqa: E402

FAST = dict(max_epochs=2, batch_size=32, score_batch_size=64, random_state=0)
# One torch thread per worker thread: more would oversubscribe the cores and slow
# every fit down several times. Local references run with as many, as convolutions
# sum in another order on another number of threads (about 1e-6 apart).
WORKER_TORCH_THREADS = 1
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@contextlib.contextmanager
def _local_cluster(n_workers, torch_threads):
    # Starting a nanny writes its thread settings into this process's environment
    # too; put it back so that later subprocesses of the test run are unaffected.
    environ = dict(os.environ)
    # Thread counts exported here (OMP_NUM_THREADS=1 on a busy machine) would take
    # precedence over the setting in Dask's nanny: the workers get the setting alone.
    for variable in THREAD_VARIABLES:
        os.environ.pop(variable, None)
    try:
        with dask.config.set(torch_threads_config(torch_threads)):
            with (
                LocalCluster(
                    n_workers=n_workers,
                    processes=True,
                    threads_per_worker=1,
                    host="127.0.0.1",  # loopback only
                    dashboard_address=None,
                ) as cluster,
                Client(cluster) as client,
            ):
                yield client
    finally:
        os.environ.clear()
        os.environ.update(environ)


@contextlib.contextmanager
def _torch_threads(n_threads):
    before = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def client():
    with _local_cluster(n_workers=2, torch_threads=WORKER_TORCH_THREADS) as client:
        yield client


@pytest.fixture(scope="module")
def detector(digits):
    X, y = digits
    return GradientAnomalyDetector(**FAST).fit(X[y == 0])


def _workers_used(task_stream):
    return {task["worker"] for task in task_stream.data}


def test_torch_threads_config_reaches_torch_in_worker_processes():
    environ = dict(os.environ)
    # 2 is not Dask's default of 1, so the setting is seen to work.
    with _local_cluster(n_workers=1, torch_threads=2) as client:
        assert client.submit(torch.get_num_threads, pure=False).result() == 2
    assert os.environ == environ


def test_torch_threads_config_warns_when_an_exported_count_would_win(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with pytest.warns(UserWarning, match=r"OMP_NUM_THREADS=1 is exported.*precedence"):
        config = torch_threads_config(2)
    assert set(config.values()) == {"2"}
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same count: nothing to say
        torch_threads_config(2)


def test_grid_search_on_cluster_matches_local_search(client, digits):
    X, y = digits
    X, labels = X[:240], np.where(y[:240] == 0, 1, -1)
    pipeline = make_pipeline(MinMaxScaler(), GradientAnomalyDetector(**FAST))
    grid = {"gradientanomalydetector__alpha": [0.0, 0.05]}

    def search():
        return GridSearchCV(pipeline, grid, scoring="roc_auc", cv=2).fit(X, labels)

    with get_task_stream(client) as tasks, joblib.parallel_backend("dask"):
        remote = search()
    assert len(_workers_used(tasks)) == 2
    with _torch_threads(WORKER_TORCH_THREADS):
        local = search()  # joblib's default backend, in this process

    # Models travel by pickling and are seeded: the scores are the same bit for bit.
    for key in ("split0_test_score", "split1_test_score", "params"):
        np.testing.assert_array_equal(remote.cv_results_[key], local.cv_results_[key])
    assert remote.best_params_ == local.best_params_
    assert len(set(local.cv_results_["mean_test_score"])) > 1  # the grid matters
    np.testing.assert_array_equal(remote.decision_function(X[:50]), local.decision_function(X[:50]))


@pytest.mark.parametrize("method", ["score_samples", "decision_function", "predict"])
def test_score_dask_table_on_cluster_equals_local_scores(client, digits, detector, method):
    X, _ = digits
    X_dask = da.from_array(X, chunks=(150, -1))  # blocks unaligned with score_batch_size
    with get_task_stream(client) as tasks:
        scores = score_dask(detector, X_dask, method=method).compute()
    assert len(_workers_used(tasks)) == 2
    with _torch_threads(WORKER_TORCH_THREADS):
        expected = getattr(detector, method)(X)
    assert scores.dtype == expected.dtype
    # Chunks are padded to score_batch_size rows, so scores are exact, not close.
    np.testing.assert_array_equal(scores, expected)


def test_score_dask_pipeline_on_cluster_equals_local_scores(client, digits):
    X, y = digits
    pipeline = make_pipeline(MinMaxScaler(), GradientAnomalyDetector(**FAST)).fit(X[y == 1])
    scores = score_dask(pipeline, da.from_array(X[:400], chunks=(90, -1))).compute()
    with _torch_threads(WORKER_TORCH_THREADS):
        np.testing.assert_array_equal(scores, pipeline.score_samples(X[:400]))


def test_score_dask_images_on_cluster_equals_local_scores(client):
    images = np.random.RandomState(0).randint(0, 256, size=(70, 1, 12, 12), dtype=np.uint8)
    detector = GradientAnomalyDetector(conv_channels=(4, 8), **FAST).fit(images[:50])
    scores = score_dask(detector, da.from_array(images, chunks=(25, 1, 12, 12))).compute()
    assert scores.shape == (70,)
    with _torch_threads(WORKER_TORCH_THREADS):
        np.testing.assert_array_equal(scores, detector.score_samples(images))


def test_score_dask_handles_unknown_and_empty_blocks(digits, detector):
    X, _ = digits
    X_dask = da.from_array(X[:300], chunks=(100, -1))
    keep = np.arange(300) >= 120  # the first block ends up empty
    selected = X_dask[da.from_array(keep, chunks=100)]
    assert np.isnan(selected.shape[0])
    scores = score_dask(detector, selected).compute(scheduler="threads")
    np.testing.assert_array_equal(scores, detector.score_samples(X[:300][keep]))


def test_score_dask_probe_row_does_not_warn_about_the_training_range(digits):
    # score_dask checks the model with one row of zeros; for a model fitted on values
    # in [10, 11] zeros lie far outside the training range, but they are no data.
    X, _ = digits
    detector = GradientAnomalyDetector(**FAST).fit(X[:200] + 10)
    X_dask = da.from_array(X[:100] + 10, chunks=(50, -1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = score_dask(detector, X_dask)
        np.testing.assert_array_equal(
            scores.compute(scheduler="sync"), detector.score_samples(X[:100] + 10)
        )


class _CustomAutoencoder(torch.nn.Module):
    # Not one of the package's networks: scored through forward hooks on its layers.
    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.Tanh())
        self.decoder = torch.nn.Sequential(torch.nn.Linear(8, 64))

    def forward(self, x):
        return self.decoder(self.encoder(x))


def test_score_dask_threads_sharing_a_model_give_exact_scores(digits):
    # Several threads of one process score blocks with one model object, a custom
    # network scored through forward hooks (the scorer makes such threads take turns).
    X, _ = digits
    detector = GradientAnomalyDetector(network=_CustomAutoencoder(), **FAST).fit(X[:200])
    X_dask = da.from_array(X[:400], chunks=(40, -1))
    scores = score_dask(detector, X_dask).compute(scheduler="threads", num_workers=4)
    np.testing.assert_array_equal(scores, detector.score_samples(X[:400]))


def test_score_dask_rejects_bad_input_before_any_work(digits, detector):
    X, _ = digits
    X_dask = da.from_array(X, chunks=(100, -1))
    with pytest.raises(ValueError, match=r"first axis \(rows\) only.*axes \[1\]"):
        score_dask(detector, da.from_array(X, chunks=(100, 32)))
    images = da.zeros((20, 1, 8, 8), chunks=(10, 1, 8, 4))
    with pytest.raises(ValueError, match=r"axes \[3\]"):
        score_dask(detector, images)
    with pytest.raises(ValueError, match="64 features"):
        score_dask(detector, X_dask[:, :10])
    with pytest.raises(ValueError, match="2, 3 or 4 dimensions"):
        score_dask(detector, X_dask[:, 0])
    with pytest.raises(TypeError, match="dask.array.Array"):
        score_dask(detector, X)
    with pytest.raises(ValueError, match="method must be one of"):
        score_dask(detector, X_dask, method="fit")
    with pytest.raises(NotFittedError):
        score_dask(GradientAnomalyDetector(), X_dask)
    with pytest.raises(TypeError, match="has no method 'score_samples'"):
        score_dask(MinMaxScaler().fit(X), X_dask)


def test_torch_threads_config_sets_every_thread_variable(monkeypatch):
    for variable in THREAD_VARIABLES:
        monkeypatch.delenv(variable, raising=False)  # no warning about exported counts
    config = torch_threads_config(3)
    assert config == {
        "distributed.nanny.pre-spawn-environ.OMP_NUM_THREADS": "3",
        "distributed.nanny.pre-spawn-environ.MKL_NUM_THREADS": "3",
        "distributed.nanny.pre-spawn-environ.OPENBLAS_NUM_THREADS": "3",
    }
    with dask.config.set(config):
        assert dask.config.get("distributed.nanny.pre-spawn-environ.MKL_NUM_THREADS") == "3"
        # Dask's other pre-spawn settings are kept.
        assert "MALLOC_TRIM_THRESHOLD_" in dask.config.get("distributed.nanny.pre-spawn-environ")
    for bad, error in [(0, ValueError), (2.0, TypeError), (True, TypeError)]:
        with pytest.raises(error):
            torch_threads_config(bad)


def _docs_example():
    page = Path(__file__).parents[1] / "docs" / "scaling.rst"
    after_marker = page.read_text().split(".. The test suite runs this block", 1)[1]
    block = re.search(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", after_marker)[1]
    return "\n".join(line[4:] for line in block.splitlines())


def test_docs_example_runs_on_cluster(client, capsys):
    # The page's script, with this module's cluster in place of the one it starts.
    namespace = {"__name__": "scaling_example"}
    exec(compile(_docs_example(), "docs/scaling.rst", "exec"), namespace)
    search, decision = namespace["main"](client)
    assert "best parameters" in capsys.readouterr().out
    assert search.best_score_ > 0.8  # eights against other digits, cross-validated AUROC
    X = load_digits().data
    with _torch_threads(WORKER_TORCH_THREADS):
        expected = search.best_estimator_.decision_function(X)
    np.testing.assert_array_equal(decision.compute(), expected)
