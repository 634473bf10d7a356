"""What robust training (a float ``contamination``) costs against one training.

Fits each detector on the same polluted training data with ``contamination='auto'``
(one training) and with ``contamination=0.1`` (a first network for half the epochs, a
second one on the rows kept), alternating, and prints the median fit times and their
ratio. Cases:

- GradCon (``pretext=None``) on scikit-learn's digits: the zeros and a tenth of other
  digits, as flat rows (ships with scikit-learn; always run);
- the table score (``score='combined'``) on the ODDS cardio table, all rows (its
  anomalies are unlabelled), with ``--data-dir``;
- the rotation pretext on Fashion-MNIST T-shirts with a tenth of other classes mixed in
  (the benchmark's ``--contamination-rate 0.1`` split of seed 0), 10 epochs, with
  ``--data-dir``.

Command (the machine and the numbers are in docs/user_guide.rst, "Training with
unlabelled anomalies")::

    OMP_NUM_THREADS=1 python benchmarks/bench_robust_cost.py --data-dir $DATA --repeats 3
"""

import argparse
import platform
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from gradient_ad import GradientAnomalyDetector, datasets
from gradient_ad.benchmark import tasks


def _digits():
    X, y = load_digits(return_X_y=True)
    rng = np.random.RandomState(0)
    others = rng.choice(np.flatnonzero(y != 0), 20, replace=False)
    return (X[np.r_[np.flatnonzero(y == 0), others]] / 16).astype(np.float32)


def cases(data_dir):
    """``(name, training data, detector parameters)`` of each case."""
    yield "GradCon, digits zeros + 10% (198 rows)", _digits(), dict(max_epochs=100)
    if data_dir is None:
        return
    X, _ = datasets.load_table(Path(data_dir) / "odds" / "cardio.mat")
    X = ((X - X.mean(0)) / X.std(0)).astype(np.float32)
    yield f"combined, ODDS cardio ({len(X)} rows)", X, dict(score="combined")
    _, _, split = next(
        tasks("fashion-mnist", Path(data_dir) / "fashion_mnist", [0], [0], contamination_rate=0.1)
    )
    name = f"pretext, Fashion-MNIST T-shirts + 10% ({len(split.X_train)} images)"
    yield name, split.X_train, dict(pretext="rotation", max_epochs=10)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="the shared data folder (odds/, fashion_mnist/)")
    parser.add_argument("--repeats", type=int, default=3, help="fits of each kind per case")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    print(f"machine: {platform.processor() or platform.machine()}; repeats: {args.repeats}")
    print(f"{'case':55s} {'auto (s)':>9s} {'0.1 (s)':>9s} {'ratio':>6s}")
    for name, X, params in cases(args.data_dir):
        seconds = {"auto": [], 0.1: []}
        for _ in range(args.repeats):
            for contamination in seconds:
                detector = GradientAnomalyDetector(
                    contamination=contamination, random_state=0, **params
                )
                start = time.perf_counter()
                detector.fit(X)
                seconds[contamination].append(time.perf_counter() - start)
        auto, robust = np.median(seconds["auto"]), np.median(seconds[0.1])
        print(f"{name:55s} {auto:9.1f} {robust:9.1f} {robust / auto:6.2f}", flush=True)


if __name__ == "__main__":
    main()
