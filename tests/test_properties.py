"""Property-based tests (hypothesis): a sample's score depends on the sample alone.

Not on the order of the rows, nor on the other rows scored with it (bitwise, since
every scoring chunk is padded to ``score_batch_size`` rows), and not on the chunk size
beyond float32 rounding. Fits are deterministic under an int ``random_state``. Both
scoring routes are covered: linear layers (a table) and convolutions (images).
"""

import copy
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from gradient_ad import GradientAnomalyDetector

N_ROWS = 150
# Few examples and no deadline (the first call pays for warm-up); no example database.
QUICK = settings(
    max_examples=12,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
# Chunk sizes change which float32 kernels run: scores may differ by rounding only.
CHUNK_TOLERANCE = dict(rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module", params=["table", "images"])
def scored(request):
    """A fitted detector, the rows it scores and their scores in one call."""
    X, y = load_digits(return_X_y=True)
    X = X / 16
    if request.param == "table":
        est = GradientAnomalyDetector(max_epochs=3, random_state=0).fit(X[y == 0])
        rows = X[:N_ROWS]
    else:
        images = X.reshape(-1, 8, 8)
        est = GradientAnomalyDetector(max_epochs=3, conv_channels=(4, 4, 8, 8), random_state=0)
        with warnings.catch_warnings():
            # Three epochs may leave a collapsed network; the invariances tested hold
            # for any network.
            warnings.filterwarnings("ignore", "The network collapsed", ConvergenceWarning)
            est.fit(images[y == 0])
        rows = images[:N_ROWS]
    return est, rows, est.score_samples(rows)


@QUICK
@given(order=st.permutations(range(N_ROWS)))
def test_scores_do_not_depend_on_row_order(scored, order):
    est, rows, scores = scored
    np.testing.assert_array_equal(est.score_samples(rows[order]), scores[order])


@QUICK
@given(subset=st.lists(st.integers(0, N_ROWS - 1), min_size=1, max_size=N_ROWS))
def test_scores_do_not_depend_on_the_other_rows(scored, subset):
    est, rows, scores = scored
    np.testing.assert_array_equal(est.score_samples(rows[subset]), scores[subset])
    np.testing.assert_array_equal(est.predict(rows[subset]), est.predict(rows)[subset])


@QUICK
@given(chunk=st.integers(1, 2 * N_ROWS))
def test_scores_do_not_depend_on_the_chunk_size(scored, chunk):
    est, rows, scores = scored
    rechunked = copy.copy(est).set_params(score_batch_size=chunk)  # shares the fitted net
    np.testing.assert_allclose(rechunked.score_samples(rows), scores, **CHUNK_TOLERANCE)


@settings(max_examples=3, deadline=None, database=None)
@given(seed=st.integers(0, 2**31 - 1), early_stopping=st.booleans())
def test_fit_is_deterministic_under_random_state(seed, early_stopping):
    X = np.random.RandomState(0).rand(60, 6)
    params = dict(max_epochs=2, batch_size=16, early_stopping=early_stopping, random_state=seed)
    first = GradientAnomalyDetector(**params).fit(X)
    second = GradientAnomalyDetector(**params).fit(X)
    np.testing.assert_array_equal(first.score_samples(X), second.score_samples(X))
    assert first.offset_ == second.offset_
