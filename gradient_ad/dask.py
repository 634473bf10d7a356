"""Scaling out on Dask: scoring arrays larger than memory, and worker settings.

Grid search needs nothing from this module: a fitted detector pickles, so
scikit-learn's searches run on a Dask cluster through joblib's ``"dask"`` backend::

    with joblib.parallel_backend("dask"):
        GridSearchCV(detector, grid, scoring="roc_auc").fit(X, y)

This module adds what joblib cannot do: :func:`score_dask` scores a Dask array
block by block on the cluster, and :func:`torch_threads_config` sets how many
threads torch uses in each worker process. It needs the ``dask`` extra (in a clone
of gradient-ad)::

    pip install ".[dask]"

See the "Scaling out" page of the documentation.
"""

import math
import os
import warnings

import numpy as np
from sklearn.utils.validation import check_is_fitted

try:
    import dask
    import dask.array as da
except ImportError as error:  # pragma: no cover - exercised only without dask
    raise ImportError(
        'gradient_ad.dask needs Dask (the "dask" extra): pip install "dask[array,distributed]", '
        'or pip install ".[dask]" in a clone of gradient-ad'
    ) from error

from ._scoring import padded_calls

__all__ = ["score_dask", "torch_threads_config"]

_METHODS = ("score_samples", "decision_function", "predict")
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def score_dask(estimator, X, method="score_samples"):
    """Score a Dask array block by block, lazily, on the current Dask scheduler.

    Each block of rows is scored where it lies, by a copy of the fitted model that
    travels to each worker once (it is one key of the task graph). Every block is
    scored as a large call is, in chunks padded to ``score_batch_size`` rows, so a
    sample's score does not depend on the rows scored with it, nor on how ``X`` is
    split into blocks: the scores equal those of ``getattr(estimator, method)(X.compute())``
    whenever that call is large enough to be scored in padded chunks too (with
    ``score_batch_size='auto'``, more than a quarter of a chunk: 513 rows for the MLP,
    65 images for the convolutional network on the CPU); smaller calls are computed
    in float64, within the bound of :ref:`performance`.

    Parameters
    ----------
    estimator : GradientAnomalyDetector or Pipeline ending in one
        A fitted model; any fitted scikit-learn estimator with ``method`` works.
    X : dask.array.Array of shape (n_samples, n_features), (n_samples, H, W) \
            or (n_samples, C, H, W)
        Samples in the layout the model was fitted on, chunked along the first
        axis (rows) only: every other axis must be one chunk. Rechunk with
        ``X.rechunk({axis: -1 for axis in range(1, X.ndim)})``. A Dask DataFrame
        converts with ``df.to_dask_array(lengths=True)``.
    method : {'score_samples', 'decision_function', 'predict'}, \
            default='score_samples'
        The method applied to each block.

    Returns
    -------
    scores : dask.array.Array of shape (n_samples,)
        Lazy; chunked like the rows of ``X``. Call ``.compute()`` for a NumPy
        array, or store it with ``.to_zarr`` when it is too large too.

    Raises
    ------
    ValueError
        If ``X`` is chunked along another axis than its first, has an unknown
        sample shape, or its samples do not fit the model; before any block is
        read.

    Examples
    --------
    >>> import dask.array as da
    >>> from sklearn.datasets import load_digits
    >>> from gradient_ad import GradientAnomalyDetector
    >>> from gradient_ad.dask import score_dask
    >>> X = load_digits().data / 16
    >>> detector = GradientAnomalyDetector(max_epochs=2, random_state=0).fit(X[:300])
    >>> X_big = da.from_array(X, chunks=(500, -1))  # stands for an array on disk
    >>> scores = score_dask(detector, X_big)
    >>> scores.chunks
    ((500, 500, 500, 297),)
    >>> bool((scores.compute() == detector.score_samples(X)).all())
    True
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if not hasattr(estimator, method):
        raise TypeError(f"{type(estimator).__name__} has no method {method!r}")
    check_is_fitted(estimator)
    if not isinstance(X, da.Array):
        raise TypeError(
            f"X must be a dask.array.Array, got {type(X).__name__}; wrap a NumPy array "
            "with dask.array.from_array, convert a Dask DataFrame with "
            "df.to_dask_array(lengths=True)"
        )
    if X.ndim not in (2, 3, 4):
        raise ValueError(f"X must have 2, 3 or 4 dimensions, got shape {X.shape}")
    if any(math.isnan(size) for size in X.shape[1:]):
        raise ValueError(f"X has an unknown sample shape {X.shape[1:]}; compute its chunk sizes")
    if any(len(chunks) != 1 for chunks in X.chunks[1:]):
        raise ValueError(
            f"X must be chunked along its first axis (rows) only, but its chunks are "
            f"{X.chunksize} at most, split along axes "
            f"{[axis for axis in range(1, X.ndim) if len(X.chunks[axis]) != 1]}; rechunk "
            "it with X.rechunk({axis: -1 for axis in range(1, X.ndim)})"
        )

    # One row scored now checks that the samples fit the model before any block is
    # read, and gives the scores' dtype. Its zeros are no data: they may lie outside the
    # training range, which is no reason to warn (the blocks are checked as scored).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "X has values in", UserWarning)
        probe = getattr(estimator, method)(np.zeros((1, *X.shape[1:]), dtype=X.dtype))
    model = dask.delayed(estimator, pure=False)
    return da.map_blocks(
        _score_block,
        X,
        model,
        method,
        probe.dtype,
        drop_axis=list(range(1, X.ndim)),
        dtype=probe.dtype,
        meta=np.empty((0,), dtype=probe.dtype),
    )


def _score_block(block, estimator, method, dtype):
    if len(block) == 0:  # e.g. after boolean indexing
        return np.empty((0,), dtype=dtype)
    with padded_calls():
        return np.asarray(getattr(estimator, method)(block), dtype=dtype)


def torch_threads_config(n_threads):
    """Dask settings that start each worker process with ``n_threads`` torch threads.

    Dask's nanny starts every worker process with ``OMP_NUM_THREADS=1`` and
    ``MKL_NUM_THREADS=1`` (``distributed.nanny.pre-spawn-environ``), so torch runs
    each task on one thread: right when a machine's cores are all worker threads.
    When workers have fewer threads than cores, give each task
    ``cores per machine // (worker processes per machine * threads per worker)``
    threads. The count must be in the environment before the worker process
    starts (``torch.set_num_threads`` from a plugin reaches only the calling
    thread), and torch takes ``MKL_NUM_THREADS`` over ``OMP_NUM_THREADS``, so both
    are set. Workers started with the ``dask worker`` command read the same
    variables from their shell.

    Dask's nanny lets these variables, where the process that starts the cluster
    has them exported, take precedence over this setting: with
    ``OMP_NUM_THREADS=1`` exported, every worker would run torch on one thread.
    This function warns when the current environment holds another count; unset
    the variables (``os.environ.pop("OMP_NUM_THREADS")``) before starting the
    cluster, or pass them to it explicitly
    (``LocalCluster(..., env={"OMP_NUM_THREADS": "4", ...})``).

    Parameters
    ----------
    n_threads : int
        Threads each torch operation in a worker may use.

    Returns
    -------
    config : dict
        For ``dask.config.set``, around the start of the cluster.

    Examples
    --------
    >>> import dask
    >>> from gradient_ad.dask import torch_threads_config
    >>> with dask.config.set(torch_threads_config(4)):
    ...     pass  # cluster = LocalCluster(n_workers=2, threads_per_worker=1)
    >>> sorted(torch_threads_config(4).values())
    ['4', '4', '4']
    """
    if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)):
        raise TypeError(f"n_threads must be an int, got {type(n_threads).__name__}")
    if n_threads < 1:
        raise ValueError(f"n_threads must be at least 1, got {n_threads}")
    value = str(int(n_threads))
    exported = {
        variable: os.environ[variable]
        for variable in _THREAD_VARIABLES
        if os.environ.get(variable, value) != value
    }
    if exported:
        shown = ", ".join(f"{name}={count}" for name, count in exported.items())
        warnings.warn(
            f"{shown} is exported in this process, and Dask's nanny gives it precedence "
            f"over torch_threads_config({value}): workers started from here would not get "
            f"{value} threads. Unset it before starting the cluster (os.environ.pop), or "
            "pass the counts to the cluster explicitly (LocalCluster(..., env={...})).",
            UserWarning,
            stacklevel=2,
        )
    return {
        f"distributed.nanny.pre-spawn-environ.{variable}": value for variable in _THREAD_VARIABLES
    }
