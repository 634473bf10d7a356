"""How many rows are scored at once: every rule, in one place.

Scoring works on chunks of rows, each padded to its full size so that a sample's score
does not depend on the other samples scored with it; a small call (with
``score_batch_size='auto'``, at most :func:`small_call_rows` rows) is one unpadded
chunk computed in float64 instead. The size of a chunk is decided here and nowhere
else:

- the user's ``score_batch_size``: at most :data:`MAX_SCORE_BATCH_SIZE`, and a padded
  chunk's input at most :data:`MAX_CHUNK_INPUT_BYTES`
  (:func:`checked_score_batch_size`, :func:`check_chunk_memory`);
- ``'auto'``: :func:`default_chunk_rows` per network (the scores), and
  :func:`maps_chunk_rows` for the anomaly maps;
- the small calls: :data:`SMALL_CALL_SHARE` of a chunk, on :data:`FLOAT64_DEVICES`
  (:func:`small_call_rows`);
- the rows the combined score's neighbour term measures at once
  (:data:`NEIGHBOUR_CHUNK_ROWS`);
- the caps of the routes (:func:`conv_chunk_cap`, :func:`vmap_chunk_rows`) and the
  per-sample workspace of the Gram norms (:data:`WORKSPACE_ELEMENTS`).

The measurements behind the numbers are in ``docs/performance.rst``
(``benchmarks/bench_chunks.py``).
"""

import math
import numbers

import torch
from sklearn.utils._param_validation import (
    Interval,
    StrOptions,
    validate_parameter_constraints,
)

from ._modules import MLPAutoencoder
from ._settings import python

__all__ = [
    "CONV_CHUNK_ROWS",
    "DEFAULT_CHUNK_ROWS",
    "FLOAT64_DEVICES",
    "MAX_CHUNK_INPUT_BYTES",
    "MAX_SCORE_BATCH_SIZE",
    "MLP_CHUNK_ROWS",
    "NEIGHBOUR_CHUNK_ROWS",
    "SCORE_BATCH_SIZE_CONSTRAINTS",
    "SMALL_CALL_SHARE",
    "VMAP_CHUNK_ELEMENTS",
    "WORKSPACE_ELEMENTS",
    "check_chunk_memory",
    "checked_score_batch_size",
    "conv_chunk_cap",
    "default_chunk_rows",
    "maps_chunk_rows",
    "small_call_rows",
    "vmap_chunk_rows",
]

# score_batch_size: the 'auto' chunks are 1024-2048 rows and larger ones are no faster
# (docs/performance.rst), while every chunk is padded to its full size, so a huge value
# allocates that many rows even for a few samples, after training.
MAX_SCORE_BATCH_SIZE = 65536
# Most bytes of one padded scoring chunk of input (float32); the network's intermediates
# take several times as much.
MAX_CHUNK_INPUT_BYTES = 2**30
# The detector's _parameter_constraints of score_batch_size.
SCORE_BATCH_SIZE_CONSTRAINTS = [
    Interval(numbers.Integral, 1, MAX_SCORE_BATCH_SIZE, closed="both"),
    StrOptions({"auto"}),
]

# Measured with benchmarks/bench_chunks.py on a 2-core CPU: the MLP scores fastest per
# row in chunks of 2048.
MLP_CHUNK_ROWS = 2048
# Chunks of other networks (and on accelerators) with score_batch_size='auto'.
DEFAULT_CHUNK_ROWS = 1024
# Measured with benchmarks/bench_chunks.py on a 2-core CPU: the reference network on
# 28 x 28 images scores fastest per row in chunks of 256-512 rows (the chain route's
# cap on the CPU: its activations outgrow the CPU's caches beyond this).
CONV_CHUNK_ROWS = 256
# The vmap route holds ``rows x constrained weights`` gradient values at once.
VMAP_CHUNK_ELEMENTS = 2**24
# With score_batch_size='auto', calls of at most this share of a chunk run unpadded in
# float64: float64 costs 2 to 4 times float32 per row (the convolutional network on 64
# rows: 56 against 15 ms on one thread), so up to a quarter of a chunk the unpadded
# float64 call costs about what the padded float32 chunk would (46 against 58 ms for
# 64 images, benchmarks/bench_latency.py).
SMALL_CALL_SHARE = 4
# Rows the neighbour term compares with the training samples at once: bounds the
# distance matrix (rows x training samples).
NEIGHBOUR_CHUNK_ROWS = 1024
# Where small calls can run in float64 (MPS has none).
FLOAT64_DEVICES = ("cpu", "cuda")
# Per-sample temporaries of the Gram norms (unfolded patches, gradients) are built a
# few rows at a time: kept small they stay in cache and are not page-faulted in afresh
# for every chunk.
WORKSPACE_ELEMENTS = 2**20


def checked_score_batch_size(detector):
    """``detector.score_batch_size``, checked again before scoring, as a Python int or
    ``'auto'``: ``set_params`` after ``fit`` bypasses fit's validation, and a huge value
    would pad every chunk to that many rows."""
    validate_parameter_constraints(
        {"score_batch_size": SCORE_BATCH_SIZE_CONSTRAINTS},
        {"score_batch_size": detector.score_batch_size},
        caller_name=type(detector).__name__,
    )
    if hasattr(detector, "input_shape_"):  # not yet during fit, which checked it already
        check_chunk_memory(detector.score_batch_size, detector.input_shape_)
    return python(detector.score_batch_size)


def check_chunk_memory(score_batch_size, shape):
    """Refuse, before training, a scoring chunk whose input alone exceeds 1 GiB: every
    chunk is padded to ``score_batch_size`` rows, and the calibration after training
    would otherwise try to allocate it."""
    if score_batch_size == "auto":
        return
    row_bytes = 4 * math.prod(shape)
    if score_batch_size * row_bytes > MAX_CHUNK_INPUT_BYTES:
        largest = max(1, MAX_CHUNK_INPUT_BYTES // row_bytes)
        raise ValueError(
            f"score_batch_size={score_batch_size} pads every scoring chunk to "
            f"{score_batch_size} samples of shape {shape}: "
            f"{score_batch_size * row_bytes / 2**30:.3g} GiB of float32 input before the "
            f"network's own intermediates. Use at most {largest} for this data, or 'auto'."
        )


def default_chunk_rows(module, batch_size):
    """``batch_size``, or for ``'auto'`` the rows per chunk measured fastest for the
    network of ``module`` (a GradConModule)."""
    if batch_size != "auto":
        return batch_size
    return MLP_CHUNK_ROWS if type(module.autoencoder) is MLPAutoencoder else DEFAULT_CHUNK_ROWS


def maps_chunk_rows(batch_size):
    """Rows per chunk of the anomaly maps: ``batch_size``, or for ``'auto'``
    :data:`DEFAULT_CHUNK_ROWS` whatever the network (each row costs ``n_steps`` double
    backward passes through vmap; the MLP's larger chunks were measured for scores)."""
    return DEFAULT_CHUNK_ROWS if batch_size == "auto" else batch_size


def conv_chunk_cap(batch_size, device):
    """The chain route's rows per chunk for the convolutional network: at most
    :data:`CONV_CHUNK_ROWS` on the CPU."""
    if torch.device(device).type == "cpu":
        return min(batch_size, CONV_CHUNK_ROWS)
    return batch_size


def vmap_chunk_rows(n_weights):
    """Rows the vmap route differentiates at once, for ``n_weights`` constrained
    weights: at most :data:`VMAP_CHUNK_ELEMENTS` gradient values."""
    return max(1, VMAP_CHUNK_ELEMENTS // n_weights)


def small_call_rows(chunk_rows, device):
    """Most rows a call with ``score_batch_size='auto'`` scores unpadded in float64,
    given its route's rows per padded chunk: ``chunk_rows // SMALL_CALL_SHARE`` (at
    least 1), and 0 on a device without float64."""
    if torch.device(device).type not in FLOAT64_DEVICES:
        return 0
    return max(1, chunk_rows // SMALL_CALL_SHARE)
