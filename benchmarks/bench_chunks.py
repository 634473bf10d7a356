"""Measurements behind the scoring defaults: chunk sizes and tiny calls.

- ``chunks``: rows per second of ``score_samples`` with several ``score_batch_size``
  values (the MLP on 100 features; the convolutional network on 28 x 28 images with
  its CPU cap ``CONV_CHUNK_ROWS`` varied), beside a plain forward pass in chunks of
  256, 1024 and 4096 rows; repeats interleaved, medians. This chose
  ``score_batch_size='auto'``.
- ``tiny``: milliseconds of ``score_samples`` on three rows, with ``'auto'`` (a small
  call: unpadded, in float64) and with ``score_batch_size`` set to the chunk that
  ``'auto'`` pads large calls to (every call pays for one full, padded chunk).
  ``benchmarks/bench_latency.py`` measures small calls in full.

Example::

    python benchmarks/bench_chunks.py --threads 1
    python benchmarks/bench_chunks.py --threads 2 --section chunks
"""

import argparse
import copy
import functools

import bench_scoring
import numpy as np
import torch
from bench_scoring import fitted_detector, forward_errors, interleaved_medians, machine

from gradient_ad import _chunks as chunks


def _score_with_cap(detector, X, rows):
    saved = chunks.CONV_CHUNK_ROWS
    chunks.CONV_CHUNK_ROWS = rows
    try:
        detector.score_samples(X)
    finally:
        chunks.CONV_CHUNK_ROWS = saved


def bench_chunks(repeats):
    print("\n== chunks: rows per second of score_samples (and x the fastest forward) ==")
    cases = (((100,), 262_144, (1024, 2048, 4096, 8192)), ((28, 28), 4096, (128, 256, 512)))
    for shape, n_rows, sizes in cases:
        detector = fitted_detector(shape)
        X = np.random.default_rng(1).random((n_rows, *shape), dtype=np.float32)
        samples = X.reshape(n_rows, *detector.input_shape_)
        autoencoder = detector.net_.module_.autoencoder
        functions = {}
        for rows in sizes:
            if len(shape) == 1:
                scorer = copy.copy(detector).set_params(score_batch_size=rows)  # same net
                functions[f"score {rows}"] = functools.partial(scorer.score_samples, X)
            else:
                functions[f"score {rows}"] = functools.partial(_score_with_cap, detector, X, rows)
        for rows in (256, 1024, 4096):
            functions[f"forward {rows}"] = functools.partial(
                forward_errors, autoencoder, samples, rows
            )
        rates = {k: n_rows / t for k, t in interleaved_medians(functions, repeats).items()}
        fastest = max(v for k, v in rates.items() if k.startswith("forward"))
        print("mlp 100" if len(shape) == 1 else "conv 28x28 (CPU cap varied)")
        for k, v in rates.items():
            print(f"  {k:<14} {v:>12,.0f}   {v / fastest:.2f} x forward")


def bench_tiny(repeats):
    print("\n== tiny: ms of score_samples on 3 rows ('auto', and one padded chunk) ==")
    for shape, chunk in (((100,), chunks.MLP_CHUNK_ROWS), ((28, 28), chunks.CONV_CHUNK_ROWS)):
        detector = fitted_detector(shape)
        padded = copy.copy(detector).set_params(score_batch_size=chunk)  # same net
        X = np.random.default_rng(1).random((3, *shape), dtype=np.float32)
        functions = {
            "auto": functools.partial(detector.score_samples, X),
            "padded": functools.partial(padded.score_samples, X),
        }
        times = interleaved_medians(functions, repeats)
        name = "mlp 100" if len(shape) == 1 else "conv 28x28"
        print(
            f"  {name:<14} auto {times['auto'] * 1000:8.2f} ms, "
            f"padded to {chunk} rows {times['padded'] * 1000:8.2f} ms"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--section", nargs="+", default=["chunks", "tiny"], choices=["chunks", "tiny"]
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    # CPU time is robust to other load on one thread; with more threads, wall time.
    bench_scoring.clock = bench_scoring.CLOCKS["cpu" if args.threads == 1 else "wall"]
    print("machine:", machine())
    print("clock:", bench_scoring.clock_name())
    sections = {"chunks": bench_chunks, "tiny": bench_tiny}
    for name in args.section:
        sections[name](args.repeats)


if __name__ == "__main__":
    main()
