"""Speed and memory of GradCon scoring and training, as ratios measured in one run.

Sections (all by default):

- ``scoring``: rows per second of (a) a plain batched forward pass computing the
  reconstruction error only, in chunks of 256, 1024 and 4096 rows (the fastest is the
  baseline), (b) ``GradientAnomalyDetector.score_samples`` with default settings (the
  full GradCon score, per-sample gradients included) and (c) the reference code's
  loop, one sample at a time with a forward and a full backward pass each; for the
  reference convolutional network on 28x28 grey images and the default MLP on
  100-feature tables.
- ``routes``: the alternatives behind the default scoring route, one chunk each: the
  autograd route (forward hooks), ``torch.func.vmap`` over ``grad``, and, for the
  convolutional network, per-sample norms forced to one way for every layer.
- ``training``: seconds per epoch of GradCon training (``GradConNet``) and of a plain
  autoencoder (a skorch ``NeuralNet`` with the same network, data, batch size, Adam).
- ``memory``: peak resident memory of a fresh process scoring N rows x 100 features of
  float64 with a fitted MLP detector, for several N: the input itself and what
  scoring adds on top of it (which should not grow with N).

Repeats are interleaved (method A, B, C, A, B, C, ...) so that load from other
processes hits every method alike; medians are reported. Weights and data are random
(throughput does not depend on their values): each network is fitted for one epoch.

Example::

    python benchmarks/bench_scoring.py                    # everything, default threads
    python benchmarks/bench_scoring.py --threads 1 --clock cpu   # robust to other load
"""

import argparse
import functools
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from skorch import NeuralNet
from torch import nn

from gradient_ad import ConvAutoencoder, GradientAnomalyDetector, MLPAutoencoder, _scoring
from gradient_ad._modules import GradConModule
from gradient_ad._net import GradConNet

NETWORKS = {
    # name: (sample shape as the user passes it, rows scored, rows for the loop)
    "conv 28x28": ((28, 28), 4096, 256),
    "mlp 100": ((100,), 262144, 2048),
}


def machine():
    """One line describing the CPU, threads and library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


def interleaved_medians(functions, repeats):
    """Median time of each function, the repeats taken in turn."""
    for f in functions.values():  # warm-up
        f()
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, f in functions.items():
            start = clock()
            f()
            times[name].append(clock() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def clock_name():
    return next(name for name, f in CLOCKS.items() if f is clock) + " clock"


def fitted_detector(shape, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((512, *shape), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GradientAnomalyDetector(max_epochs=1, early_stopping=False, random_state=seed).fit(X)


def forward_errors(autoencoder, X, chunk):
    """Plain batched reconstruction error: what a recon-only autoencoder scores."""
    out = np.empty(len(X))
    with torch.no_grad():
        for start in range(0, len(X), chunk):
            x = torch.as_tensor(X[start : start + chunk])
            out[start : start + chunk] = (autoencoder(x) - x).pow(2).flatten(1).mean(1).numpy()
    return out


def loop_scores(module, X, beta):
    """The reference code's scoring: one sample at a time, forward + full backward."""
    autoencoder = module.autoencoder
    params = module.constrained_parameters()
    references = module.reference_gradients()
    scores = np.empty(len(X))
    for i, x in enumerate(torch.as_tensor(X)):
        x = x[None]
        autoencoder.zero_grad()
        error = (autoencoder(x) - x).pow(2).mean()
        error.backward()
        cosines = [
            F.cosine_similarity(p.grad.flatten(), r.flatten(), dim=0)
            for p, r in zip(params, references)
        ]
        scores[i] = -(error.item() - beta * torch.stack(cosines).mean().item())
    autoencoder.zero_grad(set_to_none=True)
    return scores


FORWARD_CHUNKS = (256, 1024, 4096)


def _scoring_rates(shape, n_rows, n_loop, repeats):
    detector = fitted_detector(shape)
    module = detector.net_.module_
    X = np.random.default_rng(1).random((n_rows, *shape), dtype=np.float32)
    samples = X.reshape(n_rows, *detector.input_shape_)
    methods = {
        f"forward {chunk}": functools.partial(forward_errors, module.autoencoder, samples, chunk)
        for chunk in FORWARD_CHUNKS
    }
    methods["score"] = functools.partial(detector.score_samples, X)
    methods["loop"] = functools.partial(loop_scores, module, samples[:n_loop], detector.beta_)
    times = interleaved_medians(methods, repeats)
    rates = {k: (n_loop if k == "loop" else n_rows) / t for k, t in times.items()}
    # The fast scores are the loop's, to float32 rounding.
    loop = loop_scores(module, samples[:n_loop], detector.beta_)
    rates["max |score - loop|"] = np.abs(detector.score_samples(X[:n_loop]) - loop).max()
    return rates


def bench_scoring(repeats, scale):
    print(f"\n== scoring: rows per second ({clock_name()}, median of interleaved repeats) ==")
    forwards = [f"forward {chunk}" for chunk in FORWARD_CHUNKS]
    print(
        f"{'network':<11} "
        + " ".join(f"{'fwd ' + str(c):>9}" for c in FORWARD_CHUNKS)
        + f" {'score':>9} {'loop':>7} {'score/forward':>14} {'score/loop':>11}"
    )
    results = {}
    for name, (shape, n_rows, n_loop) in NETWORKS.items():
        n_rows, n_loop = max(1, int(n_rows * scale)), max(1, int(n_loop * scale))
        rate = _scoring_rates(shape, n_rows, n_loop, repeats)
        forward = max(rate[k] for k in forwards)
        results[name] = rate
        print(
            f"{name:<11} "
            + " ".join(f"{rate[k]:>9.0f}" for k in forwards)
            + f" {rate['score']:>9.0f} {rate['loop']:>7.0f} "
            f"{rate['score'] / forward:>14.2f} {rate['score'] / rate['loop']:>11.1f}"
            f"   (max |score - loop| {rate['max |score - loop|']:.1e})"
        )
    print(
        "fwd N: plain forward pass (reconstruction error only) in chunks of N rows; "
        "score: score_samples with default settings; score/forward: against the fastest "
        "forward. Targets: >= 0.33 and >= 10."
    )
    return results


def bench_routes(repeats):
    """The alternatives behind the default: rows per second of one chunk."""
    print(f"\n== scoring routes: rows per second of one chunk ({clock_name()}) ==")
    for name, shape, rows in (("conv 28x28", (28, 28), 256), ("mlp 100", (100,), 1024)):
        detector = fitted_detector(shape)
        module = detector.net_.module_
        x = torch.rand(rows, *detector.input_shape_, generator=torch.Generator().manual_seed(5))
        # Routes are built once, as score_samples does for all its chunks; choosing one
        # (a forward pass of one row recording the uses of the constrained tensors)
        # is timed on its own.
        route = functools.partial(_scoring.choose_route, module, x[:1])
        methods = {"forward": functools.partial(forward_errors, module.autoencoder, x, rows)}
        methods["chain route (default)"] = route()
        if name.startswith("conv"):
            for way in ("materialised", "gram"):
                methods[f"chain route, {way} norms"] = route("chain", way)
        methods["hooks route"] = route("hooks")
        methods["vmap route"] = route("vmap")
        methods = {m: f if m == "forward" else functools.partial(f, x) for m, f in methods.items()}
        methods["choosing the route"] = route
        times = interleaved_medians(methods, repeats)
        print(f"{name}, chunks of {rows} rows:")
        choosing = times.pop("choosing the route")
        for method, t in times.items():
            print(f"  {method:<34} {rows / t:>10.0f}  {times['forward'] / t:>5.2f} x forward")
        print(f"  choosing the route, once per call: {1e3 * choosing:.2f} ms")
    return times


def _train_epoch(net, X, y):
    net.partial_fit(X, y, epochs=1)


def _epoch_times(build, shape, n_rows, repeats):
    X = np.random.default_rng(2).random((n_rows, *shape), dtype=np.float32)
    common = {
        "optimizer": torch.optim.Adam,
        "lr": 1e-3,
        "batch_size": 64,
        "max_epochs": 1,
        "train_split": None,
        "iterator_train__shuffle": True,
        "verbose": 0,
    }
    torch.manual_seed(0)
    network = build()
    plain = NeuralNet(network, criterion=nn.MSELoss, **common).initialize()
    gradcon = GradConNet(
        GradConModule(build()), alpha=0.03, criterion=nn.MSELoss, **common
    ).initialize()
    gradcon.module_.autoencoder.load_state_dict(network.state_dict())
    return interleaved_medians(
        {
            "plain": lambda: _train_epoch(plain, X, X),
            "gradcon": lambda: _train_epoch(gradcon, X, None),
        },
        repeats,
    )


def bench_training(repeats, scale):
    print(f"\n== training: seconds per epoch ({clock_name()}, median of interleaved repeats) ==")
    print(f"{'network':<11} {'rows':>6} {'plain AE':>9} {'GradCon':>9} {'GradCon/plain':>14}")
    results = {}
    builders = {
        "conv 28x28": lambda: ConvAutoencoder((1, 28, 28)),
        "mlp 100": lambda: MLPAutoencoder((100,), (64, 32, 16)),
    }
    sizes = {"conv 28x28": 1024, "mlp 100": 8192}
    for name, build in builders.items():
        shape = (1, 28, 28) if name.startswith("conv") else (100,)
        n_rows = max(64, int(sizes[name] * scale))
        times = _epoch_times(build, shape, n_rows, repeats)
        results[name] = times
        print(
            f"{name:<11} {n_rows:>6} {times['plain']:>9.3f} {times['gradcon']:>9.3f} "
            f"{times['gradcon'] / times['plain']:>14.2f}"
        )
    print("Same network, data, batch size 64, Adam; skorch loop for both. Target: <= 3.")
    return results


def _status_bytes(field):
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024  # reported in kB


def memory_child(n_rows):
    """Run in a fresh process: peak RSS of scoring ``n_rows`` float64 rows."""
    detector = fitted_detector((100,))
    X = np.random.default_rng(3).random((n_rows, 100))  # float64, as users pass tables
    try:  # restart the peak (VmHWM) at the current RSS: the peak of scoring alone
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _status_bytes("VmRSS")
    except OSError:  # no procfs: the process's peak so far
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    scores = detector.score_samples(X)
    try:
        peak = _status_bytes("VmHWM")
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert scores.shape == (n_rows,)
    print(f"{n_rows} {X.nbytes} {before} {peak}")


def bench_memory(row_counts):
    print("\n== memory: scoring N x 100 float64 rows in a fresh process (MLP) ==")
    print(f"{'rows':>9} {'input MB':>9} {'RSS before':>11} {'peak RSS':>9} {'added':>7}")
    results = {}
    for n_rows in row_counts:
        out = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(n_rows)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        _, nbytes, before, peak = (int(v) for v in out[-4:])
        mb = 1024**2
        results[n_rows] = {"input": nbytes, "before": before, "peak": peak}
        print(
            f"{n_rows:>9} {nbytes / mb:>9.0f} {before / mb:>11.0f} {peak / mb:>9.0f} "
            f"{(peak - before) / mb:>7.0f}"
        )
    print(
        "MB = MiB. RSS before: after import, a one-epoch fit and creating X; peak: highest "
        "RSS while scoring; added: the difference (the scores themselves are 8 bytes a "
        "row). Target: peak < 1.5 GB at 1M rows, added flat in the rows."
    )
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--section", nargs="+", default=["scoring", "routes", "training", "memory"],
        choices=["scoring", "routes", "training", "memory"],
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply the numbers of rows (quick runs)"
    )
    parser.add_argument(
        "--threads", type=int, help="torch threads (default: torch's choice, all cores)"
    )
    parser.add_argument(
        "--clock", choices=sorted(CLOCKS), default="wall",
        help="'cpu': process CPU time, robust to other load; meaningful with --threads 1",
    )  # fmt: skip
    parser.add_argument("--memory-rows", type=int, nargs="+", default=[250_000, 1_000_000])
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child)
        return
    global clock
    clock = CLOCKS[args.clock]
    if args.threads:
        torch.set_num_threads(args.threads)
    print("machine:", machine())
    print("clock:", args.clock)
    print("command:", " ".join([os.path.basename(sys.executable), *sys.argv]))
    if "scoring" in args.section:
        bench_scoring(args.repeats, args.scale)
    if "routes" in args.section:
        bench_routes(args.repeats)
    if "training" in args.section:
        bench_training(args.repeats, args.scale)
    if "memory" in args.section:
        bench_memory(args.memory_rows)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
