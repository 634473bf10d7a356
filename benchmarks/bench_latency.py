"""Latency of small scoring calls and batch throughput, per route and network, in one run.

For each network (the paper's convolutional network on 28 x 28 grey images, the
default MLP on a 100-feature table; one epoch of training on random data), times:

- ``latency``: milliseconds per call on 1, 8 and 64 rows of

  * ``forward``: a plain forward pass computing the reconstruction error (no autograd);
  * ``fwd+bwd``: a forward pass and an autograd backward pass of the summed
    reconstruction error to every parameter (what one training step of a plain
    autoencoder costs, without the optimiser);
  * ``route <name>``: the scoring engine (``score_terms``) forced onto the ``chain``,
    ``hooks`` and ``vmap`` routes;
  * the public methods: ``score_samples``, ``decision_function``, ``predict``,
    ``score_components`` and ``GradientFeatures.transform`` (default route, input
    validation included);

  with each call's ratio to ``forward`` and to ``fwd+bwd`` of the same rows, measured
  side by side (the issue's bound: one row at most 3 times ``fwd+bwd``).
- ``throughput``: rows per second of the same on a large batch, and the ratio to the
  forward pass on that batch (in chunks of 256 and 1024 rows, the faster).
- ``designs``: the candidate ways to keep a sample's score independent of the rows
  called with it, on the chain route: a padded float32 chunk (the large calls), per-row
  float32 calls, one unpadded float64 call (the small calls), and unpadded float32 (the
  speed neither has); and how far float32 results of a row alone and among others
  differ.

Repeats are interleaved (A, B, C, A, B, C, ...) so that load from other processes hits
every method alike; medians are reported.

Example::

    python benchmarks/bench_latency.py --threads 1 --repeats 7
    python benchmarks/bench_latency.py --threads 1 --clock cpu --section latency
    python benchmarks/bench_latency.py --threads 1 --clock cpu --section designs
"""

import argparse
import functools
import sys
import warnings

import bench_scoring
import numpy as np
import torch
from bench_scoring import fitted_detector, forward_errors, interleaved_medians, machine

from gradient_ad import GradientFeatures
from gradient_ad._chunks import default_chunk_rows
from gradient_ad._gradcon import reconstruction_error
from gradient_ad._scoring import ROUTES, choose_route, score_terms
from gradient_ad._scoring.precision import float64_copy

NETWORKS = {
    # name: (sample shape as the user passes it, rows for the throughput section)
    "conv 28x28": ((28, 28), 2048),
    "mlp 100": ((100,), 65536),
}
LATENCY_ROWS = (1, 8, 64)
PUBLIC_METHODS = ("score_samples", "decision_function", "predict", "score_components")


def forward_backward(autoencoder, x):
    """A forward pass and an autograd backward pass of the summed error to every
    parameter, on one batch."""
    params = [p for p in autoencoder.parameters() if p.requires_grad]
    with torch.enable_grad():
        error = reconstruction_error(autoencoder(x), x).sum()
        torch.autograd.grad(error, params)


def _features(detector, X):
    """A GradientFeatures whose detector is ``detector`` (no second training)."""
    features = GradientFeatures(detector, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        features.fit(X[:64])  # fitted attributes; then reuse the benchmark's network
    features.detector_ = detector
    return features


def _methods(detector, features, X, samples):
    """Everything timed on the rows of ``X`` (as the user passes them) and ``samples``
    (as the network sees them)."""
    module = detector.net_.module_
    autoencoder = module.autoencoder
    x = torch.as_tensor(samples)
    methods = {
        "forward": functools.partial(forward_errors, autoencoder, samples, 1024),
        "fwd+bwd": functools.partial(forward_backward, autoencoder, x),
    }
    for route in ROUTES:
        methods[f"route {route}"] = functools.partial(
            score_terms, module, samples, "auto", prefer=route
        )
    for name in PUBLIC_METHODS:
        methods[name] = functools.partial(getattr(detector, name), X)
    methods["features.transform"] = functools.partial(features.transform, X)
    return methods


def bench_latency(repeats):
    print("\n== latency: milliseconds per call (x forward, x fwd+bwd of the same rows) ==")
    for name, (shape, _) in NETWORKS.items():
        detector = fitted_detector(shape)
        rng = np.random.default_rng(1)
        X_all = rng.random((max(LATENCY_ROWS), *shape), dtype=np.float32)
        features = _features(detector, X_all)
        functions = {}
        for rows in LATENCY_ROWS:
            X = X_all[:rows]
            samples = X.reshape(rows, *detector.input_shape_)
            for method, f in _methods(detector, features, X, samples).items():
                functions[(rows, method)] = f
        times = interleaved_medians(functions, repeats)
        print(f"{name}")
        print(f"  {'rows':>4}  {'method':<20} {'ms':>9} {'x fwd':>8} {'x fwd+bwd':>10}")
        for (rows, method), t in times.items():
            forward, both = times[(rows, "forward")], times[(rows, "fwd+bwd")]
            print(
                f"  {rows:>4}  {method:<20} {1e3 * t:>9.3f} {t / forward:>8.2f} {t / both:>10.2f}"
            )


def bench_throughput(repeats):
    print("\n== throughput: rows per second (x the faster forward of chunks 256, 1024) ==")
    for name, (shape, n_rows) in NETWORKS.items():
        detector = fitted_detector(shape)
        X = np.random.default_rng(1).random((n_rows, *shape), dtype=np.float32)
        samples = X.reshape(n_rows, *detector.input_shape_)
        features = _features(detector, X)
        module = detector.net_.module_
        functions = {
            f"forward {chunk}": functools.partial(
                forward_errors, module.autoencoder, samples, chunk
            )
            for chunk in (256, 1024)
        }
        for method, f in _methods(detector, features, X, samples).items():
            if method not in ("forward", "fwd+bwd", "decision_function", "predict"):
                functions[method] = f
        rates = {k: n_rows / t for k, t in interleaved_medians(functions, repeats).items()}
        fastest = max(v for k, v in rates.items() if k.startswith("forward"))
        print(f"{name}, {n_rows} rows")
        for method, rate in rates.items():
            print(f"  {method:<20} {rate:>12,.0f} {rate / fastest:>8.2f}")


def _designs(route32, route64, x, rows, chunk):
    """The candidate ways to score ``rows`` rows with a route."""
    part = x[:rows]
    padded = torch.cat([part, part.new_zeros((chunk - rows, *part.shape[1:]))])
    return {
        "padded float32 chunk": functools.partial(route32, padded),
        "unpadded float32": functools.partial(route32, part),
        "per-row float32": lambda: [route32(part[i : i + 1]) for i in range(rows)],
        "unpadded float64": functools.partial(route64, part.double()),
    }


def bench_designs(repeats):
    print(
        "\n== designs: ms of the chain route on k rows, the network and route built once "
        "(the float64 copy made once) =="
    )
    for name, (shape, _) in NETWORKS.items():
        detector = fitted_detector(shape)
        module = detector.net_.module_
        rng = np.random.default_rng(1)
        x = torch.as_tensor(rng.random((256, *detector.input_shape_), dtype=np.float32))
        route32 = choose_route(module, x[:1])
        route64 = type(route32)(float64_copy(module))
        chunk = route32.chunk_rows(default_chunk_rows(module, "auto"), "cpu")
        functions = {}
        for rows in LATENCY_ROWS:
            for design, f in _designs(route32, route64, x, rows, chunk).items():
                functions[(rows, design)] = f
        times = interleaved_medians(functions, repeats)
        print(f"{name} (padded chunk: {chunk} rows)")
        for (rows, design), t in times.items():
            print(f"  {rows:>4}  {design:<22} {1e3 * t:>9.3f}")
        # Float32 kernels round differently for different row counts: a row alone
        # against the same row among 63 others.
        alone = [route32(x[i : i + 1]) for i in range(64)]
        together = route32(x[:64])
        for j, term in enumerate(("error", "alignment")):
            difference = (torch.cat([a[j] for a in alone]) - together[j]).abs().max().item()
            print(f"  float32, a row alone vs among 64: {term} differs by up to {difference:.2e}")


SECTIONS = {"latency": bench_latency, "throughput": bench_throughput, "designs": bench_designs}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--clock", choices=sorted(bench_scoring.CLOCKS), default="wall")
    parser.add_argument("--section", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    bench_scoring.clock = bench_scoring.CLOCKS[args.clock]
    print("command: python benchmarks/bench_latency.py " + " ".join(sys.argv[1:]))
    print(machine())
    print(f"{args.clock} clock, median of {args.repeats} interleaved repeats")
    for section in args.section:
        SECTIONS[section](args.repeats)


if __name__ == "__main__":
    main()
