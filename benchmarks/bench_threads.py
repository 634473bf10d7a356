"""Fit and scoring time with 1 torch thread and with one per core, on a busy machine.

Starts ``--busy`` processes that each keep one core busy (a Python loop) for the whole
run, then times, for each ``n_threads``, wall-clock seconds of

- ``fit``: :class:`~gradient_ad.GradientAnomalyDetector` on one digit of
  scikit-learn's digits (the default MLP, ``--epochs`` epochs, no early stopping);
- ``score``: ``score_samples`` on all 1797 digits (padded float32 chunks);
- ``score 1 row``: ``score_samples`` on one digit (the float64 small-call path),

with ``n_threads`` set on the detector (torch's thread count during fit and scoring,
restored afterwards). Repeats interleaved, medians. The busy processes are ended at
the end, by their process ids.

Example::

    python benchmarks/bench_threads.py --busy 1 --threads 1 2
    python benchmarks/bench_threads.py --busy 0 --threads 1 2    # an idle machine
"""

import argparse
import functools
import os
import subprocess
import sys
import warnings

import bench_scoring
import numpy as np
import torch
from bench_scoring import interleaved_medians, machine
from sklearn.datasets import load_digits

from gradient_ad import GradientAnomalyDetector


def _fit(X, epochs, n_threads):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GradientAnomalyDetector(
            max_epochs=epochs, early_stopping=False, n_threads=n_threads, random_state=0
        ).fit(X)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--busy", type=int, default=1, help="busy processes to start")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count()])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print("command: python benchmarks/bench_threads.py " + " ".join(sys.argv[1:]))
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        print(machine())
        print(f"{args.busy} busy process(es) started; wall clock, median of {args.repeats}")
        functions = {}
        for n in args.threads:
            detector = _fit(X[y == 0], 1, n)
            functions[(n, "fit")] = functools.partial(_fit, X[y == 0], args.epochs, n)
            functions[(n, "score")] = functools.partial(detector.score_samples, X)
            functions[(n, "score 1 row")] = functools.partial(detector.score_samples, X[:1])
        times = interleaved_medians(functions, args.repeats)
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        for process in busy:
            process.kill()
            process.wait()
    print(f"{'n_threads':>9}  {'fit s':>8}  {'score s':>8}  {'score 1 row ms':>14}")
    for n in args.threads:
        print(
            f"{n:>9}  {times[(n, 'fit')]:>8.3f}  {times[(n, 'score')]:>8.3f}"
            f"  {1e3 * times[(n, 'score 1 row')]:>14.2f}"
        )
    print(f"torch threads after the run: {torch.get_num_threads()} (unchanged by n_threads)")


if __name__ == "__main__":
    bench_scoring.clock = bench_scoring.CLOCKS["wall"]
    main()
