"""Throughput of GradientFeatures.transform against a plain batched forward pass.

For the reference convolutional network on 28 x 28 images and the default MLP on
100-feature tables (random weights and data, one-epoch fits: throughput does not
depend on their values), rows per second of

- *forward*: the network's reconstruction error, batched, the fastest of chunks of
  256, 1024 and 4096 rows;
- *features*: ``GradientFeatures.transform`` with the default features (error,
  per-tensor cosines and log gradient norms), input validation included;
- *features, 32 projections*: the same with ``n_projections=32``.

Repeats are interleaved and medians reported; the ratios are measured side by side.
Example (the numbers on docs/performance.rst)::

    python benchmarks/bench_features.py --threads 1 --clock cpu --repeats 5
"""

import argparse
import functools
import os
import sys

import bench_scoring
import numpy as np
import torch
from bench_scoring import fitted_detector, forward_errors, interleaved_medians, machine

from gradient_ad import GradientFeatures
from gradient_ad._features import random_directions

CASES = {"conv 28x28": ((28, 28), 4096), "mlp 100": ((100,), 131_072)}


def _features(detector, n_projections):
    features = GradientFeatures(detector, n_projections=n_projections, random_state=0)
    # Fitted as GradientFeatures.fit would, from the detector already trained.
    module = detector.net_.module_
    features.directions_ = random_directions(
        module.reference_gradients(), n_projections, np.random.RandomState(0)
    )
    features.detector_ = detector
    features.constrained_names_ = list(module.constrained_names)
    features.n_features_in_ = detector.n_features_in_
    return features


def bench(repeats, scale):
    print(f"\n== features: rows per second ({bench_scoring.clock_name()}) ==")
    print(
        f"{'network':<12} {'forward':>10} {'features':>10} {'32 proj.':>10} "
        f"{'features/forward':>17} {'32 proj./forward':>17}"
    )
    for name, (shape, n_rows) in CASES.items():
        n_rows = max(256, int(n_rows * scale))
        detector = fitted_detector(shape)
        X = np.random.default_rng(1).random((n_rows, *shape), dtype=np.float32)
        samples = X.reshape(n_rows, *detector.input_shape_)
        methods = {
            f"forward {chunk}": functools.partial(
                forward_errors, detector.net_.module_.autoencoder, samples, chunk
            )
            for chunk in (256, 1024, 4096)
        }
        methods["features"] = functools.partial(_features(detector, 0).transform, X)
        methods["projections"] = functools.partial(_features(detector, 32).transform, X)
        times = interleaved_medians(methods, repeats)
        forward = min(t for m, t in times.items() if m.startswith("forward"))
        rates = {m: n_rows / t for m, t in times.items()}
        print(
            f"{name:<12} {n_rows / forward:>10.0f} {rates['features']:>10.0f} "
            f"{rates['projections']:>10.0f} {forward / times['features']:>17.2f} "
            f"{forward / times['projections']:>17.2f}"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the rows")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--clock", choices=sorted(bench_scoring.CLOCKS), default="wall")
    args = parser.parse_args(argv)
    bench_scoring.clock = bench_scoring.CLOCKS[args.clock]
    if args.threads:
        torch.set_num_threads(args.threads)
    print("machine:", machine())
    print("command:", " ".join([os.path.basename(sys.executable), *sys.argv]))
    bench(args.repeats, args.scale)


if __name__ == "__main__":
    main()
