"""How many rows are scored at once (gradient_ad._chunks). The routes' caps in action:
test_scoring.py; score_batch_size through the estimators: test_inputs.py."""

import numpy as np
import pytest

from gradient_ad import ConvAutoencoder, GradientAnomalyDetector, MLPAutoencoder
from gradient_ad import _chunks as chunks
from gradient_ad._modules import GradConModule


def test_auto_chunks_per_network_and_for_the_maps():
    mlp = GradConModule(MLPAutoencoder((6,), (4, 2)))
    conv = GradConModule(ConvAutoencoder((1, 12, 12), (4, 4, 8, 8)))
    assert chunks.default_chunk_rows(mlp, "auto") == chunks.MLP_CHUNK_ROWS == 2048
    assert chunks.default_chunk_rows(conv, "auto") == chunks.DEFAULT_CHUNK_ROWS == 1024
    assert chunks.default_chunk_rows(mlp, 7) == chunks.default_chunk_rows(conv, 7) == 7
    # The maps' chunks do not depend on the network (they were not measured per network).
    assert chunks.maps_chunk_rows("auto") == chunks.DEFAULT_CHUNK_ROWS
    assert chunks.maps_chunk_rows(7) == 7


def test_route_caps():
    assert chunks.conv_chunk_cap(1024, "cpu") == chunks.CONV_CHUNK_ROWS == 256
    assert chunks.conv_chunk_cap(100, "cpu") == 100
    assert chunks.conv_chunk_cap(1024, "cuda") == 1024
    assert chunks.vmap_chunk_rows(2**20) == 2**24 // 2**20
    assert chunks.vmap_chunk_rows(2**30) == 1  # at least one row


def test_chunk_memory_bound_is_one_gibibyte_of_float32_input():
    shape = (1, 64, 64)  # 16 KiB per row: 65536 rows are exactly 1 GiB
    chunks.check_chunk_memory(65536, shape)
    chunks.check_chunk_memory("auto", (10**6,))
    with pytest.raises(ValueError, match="at most 32768 for this data"):
        chunks.check_chunk_memory(65536, (2, 64, 64))


def test_checked_score_batch_size_is_the_detectors_rule():
    detector = GradientAnomalyDetector(score_batch_size=np.int64(64))
    assert GradientAnomalyDetector._parameter_constraints["score_batch_size"] is (
        chunks.SCORE_BATCH_SIZE_CONSTRAINTS
    )
    value = chunks.checked_score_batch_size(detector)
    assert value == 64 and type(value) is int
    detector.set_params(score_batch_size=chunks.MAX_SCORE_BATCH_SIZE + 1)
    with pytest.raises(ValueError, match="'score_batch_size' parameter"):
        chunks.checked_score_batch_size(detector)
    detector.set_params(score_batch_size=65536)
    detector.input_shape_ = (2, 64, 64)  # as after a fit on such images
    with pytest.raises(ValueError, match="2 GiB of float32 input"):
        chunks.checked_score_batch_size(detector)


def test_small_calls_are_a_quarter_of_a_chunk_where_float64_exists():
    assert chunks.SMALL_CALL_SHARE == 4
    assert chunks.small_call_rows(chunks.CONV_CHUNK_ROWS, "cpu") == 64
    assert chunks.small_call_rows(chunks.MLP_CHUNK_ROWS, "cpu") == 512
    assert chunks.small_call_rows(chunks.DEFAULT_CHUNK_ROWS, "cuda") == 256
    assert chunks.small_call_rows(3, "cpu") == 1  # at least one row
    assert chunks.small_call_rows(1024, "mps") == 0  # no float64 there: always padded
