"""Scoring throughput of the rotation pretext against a plain forward pass.

Times, side by side on the same rows, (a) the detector's scoring with
``pretext='rotation'`` (every term: reconstruction error and GradCon alignment through
the scoring route, the four rotated copies through the encoder and head, the rotation
loss and its head-gradient norm) and (b) a plain forward pass without gradients of the
autoencoder and of the rotation classifier (its encoder and head) over the four rotated
copies of every row, in chunks of the same size, and (c) only the forward work that
scoring needs (the autoencoder on the rows, the rotation classifier on the copies).
Prints the medians and the ratios
(b / a and c / a: the share of each forward pass's throughput that scoring reaches).

Example::

    OMP_NUM_THREADS=1 python benchmarks/bench_pretext.py --rows 2048 --repeats 5
"""

import argparse
import json
import platform
import statistics
import sys
import time

import numpy as np
import torch

from gradient_ad import GradientAnomalyDetector
from gradient_ad._pretexts.rotation import rotate


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2048)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--repeats", type=int, default=5)
    # The training images the neighbour term measures against: a Fashion-MNIST class.
    parser.add_argument("--train-rows", type=int, default=4200)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    rng = np.random.RandomState(0)
    X = rng.rand(args.rows, args.size, args.size).astype(np.float32)
    detector = GradientAnomalyDetector(
        pretext="rotation", max_epochs=1, random_state=0, early_stopping=False
    ).fit(rng.rand(args.train_rows, args.size, args.size).astype(np.float32))
    module = detector.net_.module_.eval()
    chunk = 256  # the scoring chunk of the convolutional network on the CPU

    def plain():
        with torch.no_grad():
            for start in range(0, len(X), chunk):
                x = torch.as_tensor(X[start : start + chunk])[:, None]
                copies = rotate(x)
                module.autoencoder(copies)
                module.pretext_head(module.pretext_encoder(copies))

    def needed():
        # Only the forward work scoring needs: the autoencoder on the rows themselves,
        # the rotation classifier on the four copies.
        with torch.no_grad():
            for start in range(0, len(X), chunk):
                x = torch.as_tensor(X[start : start + chunk])[:, None]
                module.autoencoder(x)
                module.pretext_head(module.pretext_encoder(rotate(x)))

    def scoring():
        detector.score_samples(X)

    timings = {"plain_forward": [], "forward_needed": [], "scoring": []}
    for _ in range(args.repeats):
        for name, call in (
            ("plain_forward", plain),
            ("forward_needed", needed),
            ("scoring", scoring),
        ):
            start = time.perf_counter()
            call()
            timings[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    ratio = medians["plain_forward"] / medians["scoring"]
    ratio_needed = medians["forward_needed"] / medians["scoring"]
    result = {
        "command": "python benchmarks/bench_pretext.py " + " ".join(sys.argv[1:]),
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "rows": args.rows,
        "train_rows": args.train_rows,
        "median_seconds": medians,
        "rows_per_second": {k: args.rows / v for k, v in medians.items()},
        "throughput_ratio": ratio,
        "throughput_ratio_to_forward_needed": ratio_needed,
    }
    print(json.dumps(result, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
