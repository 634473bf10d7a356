"""torch_threads: torch's thread count for a block, restored afterwards, per thread;
and the estimators' n_threads, which uses it in fit and scoring."""

import threading

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from gradient_ad import GradientAnomalyDetector, GradientFeatures, MLPAutoencoder, anomaly_maps
from gradient_ad._threads import check_n_threads, torch_threads


@pytest.fixture
def two_threads():
    """torch at 2 threads in this thread for the test, as it was afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_the_count_holds_inside_and_is_restored_after(two_threads):
    with torch_threads(1):
        assert torch.get_num_threads() == 1
        with torch_threads(3):
            assert torch.get_num_threads() == 3
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(KeyError), torch_threads(1):
        raise KeyError("restored on the way out of an error too")
    assert torch.get_num_threads() == 2


def test_none_leaves_torch_alone(two_threads):
    with torch_threads(None):
        assert torch.get_num_threads() == 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_counts_are_refused(bad):
    with pytest.raises((TypeError, ValueError), match="n_threads"):
        check_n_threads(bad)
    with pytest.raises((TypeError, ValueError), match="n_threads"), torch_threads(bad):
        pass


def test_a_block_in_another_thread_leaves_this_thread_alone(two_threads):
    inside, leave = threading.Event(), threading.Event()
    seen = {}

    def worker():
        with torch_threads(1):
            seen["worker"] = torch.get_num_threads()
            inside.set()
            leave.wait(10)
        seen["worker after"] = torch.get_num_threads()

    thread = threading.Thread(target=worker)
    thread.start()
    assert inside.wait(10)
    seen["main while the worker is inside"] = torch.get_num_threads()
    with torch_threads(3):  # and a block here meanwhile
        seen["main inside"] = torch.get_num_threads()
    leave.set()
    thread.join(10)
    assert seen == {
        "worker": 1,
        "main while the worker is inside": 2,
        "main inside": 3,
        "worker after": 2,  # its own count before the block (it started with 2)
    }
    assert torch.get_num_threads() == 2


class _Recording(MLPAutoencoder):
    """The package's MLP, recording torch's thread count at every forward pass."""

    seen = []

    def __init__(self, shape):
        super().__init__(shape, (8, 4))

    def forward(self, x):
        _Recording.seen.append(torch.get_num_threads())
        return super().forward(x)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16)[y == 0], (X / 16)[:40]


# Two epochs may leave a collapsed network; only the thread count is under test.
@pytest.mark.filterwarnings("ignore:The network collapsed:sklearn.exceptions.ConvergenceWarning")
def test_n_threads_holds_in_fit_and_every_scoring_method(two_threads, digits):
    train, X = digits
    _Recording.seen = []
    detector = GradientAnomalyDetector(
        network=_Recording, n_threads=1, max_epochs=2, random_state=0
    ).fit(train)
    assert _Recording.seen and set(_Recording.seen) == {1}  # training and calibration
    assert torch.get_num_threads() == 2
    for method in ("score_samples", "decision_function", "predict", "score_components"):
        _Recording.seen = []
        getattr(detector, method)(X)
        assert set(_Recording.seen) == {1}, method
        assert torch.get_num_threads() == 2
    features = GradientFeatures(detector, random_state=0).fit(train)
    _Recording.seen = []
    features.transform(X)
    assert set(_Recording.seen) == {1}
    _Recording.seen = []
    anomaly_maps(detector, X[:2], n_steps=2)
    assert set(_Recording.seen) == {1}
    assert torch.get_num_threads() == 2
    # None leaves torch alone; set_params after fit is checked when scoring.
    _Recording.seen = []
    detector.set_params(n_threads=None).score_samples(X)
    assert set(_Recording.seen) == {2}
    with pytest.raises(ValueError, match="n_threads"):
        detector.set_params(n_threads=0).score_samples(X)


def test_seeded_fits_in_threads_with_n_threads_match_a_sequential_fit(two_threads, digits):
    # n_threads inside fit nests with the seeded-fit lock: four threads, each fitting
    # and scoring with its own count, give the sequential fit's scores bitwise.
    train, X = digits
    params = dict(hidden_sizes=(8, 4), max_epochs=2, random_state=0)
    expected = GradientAnomalyDetector(n_threads=1, **params).fit(train).score_samples(X)
    results, errors = {}, []

    def fit(i):
        try:
            detector = GradientAnomalyDetector(n_threads=1 + i % 2, **params).fit(train)
            results[i] = detector.set_params(n_threads=1).score_samples(X)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=fit, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    for i in range(4):
        # Two threads sum float32 products in another order: 1e-6 of the scores.
        np.testing.assert_allclose(results[i], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(results[0], expected)  # one thread, as expected's
    assert torch.get_num_threads() == 2
