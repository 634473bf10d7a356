"""Torch's intra-op threads for the length of a fit or a scoring call (``n_threads``).

torch runs each operation on one thread per core by default. When other processes
keep those cores busy, every operation waits for its slowest thread: on a busy 2-core
machine, two threads fitted 10 times and scored scikit-learn's digits up to 40 times
slower than one (docs/performance.rst, ``benchmarks/bench_threads.py``).
:func:`torch_threads` sets the count for a block and restores the previous one
afterwards.

What ``torch.set_num_threads`` changes: the calling thread's OpenMP and MKL thread
counts (the pools of other threads already running keep theirs) and the count that
threads started later begin with. So a block in one thread leaves blocks running in
other threads alone; the set-and-restore pairs are serialised by a lock so that two
threads never interleave them half-way.
"""

import contextlib
import numbers
import threading

import torch

__all__ = ["check_n_threads", "torch_threads"]

_LOCK = threading.Lock()


def check_n_threads(n_threads):
    """``n_threads`` if it is ``None`` or a positive int, else a clear error."""
    if n_threads is None:
        return None
    if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral):
        raise TypeError(f"n_threads must be None or an int, got {type(n_threads).__name__}")
    if n_threads < 1:
        raise ValueError(f"n_threads must be None or at least 1, got {n_threads}")
    return int(n_threads)


@contextlib.contextmanager
def torch_threads(n_threads):
    """Run the block with ``n_threads`` torch intra-op threads in the calling thread.

    Parameters
    ----------
    n_threads : int or None
        Threads for the block; ``None`` leaves torch's setting as it is.

    Examples
    --------
    >>> import torch
    >>> from gradient_ad._threads import torch_threads
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    n_threads = check_n_threads(n_threads)
    if n_threads is None:
        yield
        return
    with _LOCK:
        previous = torch.get_num_threads()
        if previous != n_threads:
            torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        with _LOCK:
            if torch.get_num_threads() != previous:
                torch.set_num_threads(previous)
