"""Model size, scoring speed and peak memory against the training set's size.

Fits the rotation-pretext detector (one epoch: enough for size and speed) on 1,000,
6,000 and 60,000 Fashion-MNIST training images (the first 1,000 T-shirts, all 6,000
T-shirts, and all ten classes as the normal set), with the neighbour term bounded
(``max_neighbours=2048``, the default) and unbounded (``None``), each in a fresh
process, and prints for each: the saved model's size (``joblib.dump``), the fit's
peak resident memory (the process's, torch included), the fit's time, and the scoring
throughput on 2,000 test images (one thread, median of 3 calls). The 60,000 images
are passed memory-mapped (``np.load(..., mmap_mode='r')``).

Command (the machine and the numbers are in docs/performance.rst)::

    OMP_NUM_THREADS=1 python benchmarks/bench_model_size.py --data-dir $DATA/fashion_mnist \
        --out benchmarks/results/model_size.json --plot docs/_static/model_size.png
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = (1000, 6000, 60000)


def measure(data_dir, n, bounded, workdir):
    """One fit and its numbers, in this process."""
    import joblib
    import torch

    from gradient_ad import GradientAnomalyDetector
    from gradient_ad.datasets import load_idx

    torch.set_num_threads(1)
    X_train, y_train, X_test, _ = load_idx(data_dir)
    if n >= len(X_train):
        path = Path(workdir) / "train.npy"
        np.save(path, X_train)
        X = np.load(path, mmap_mode="r")  # fit reads it without an extra copy
    else:
        X = X_train[y_train == 0][:n]
    del X_train
    detector = GradientAnomalyDetector(
        pretext="rotation",
        max_epochs=1,
        early_stopping=False,
        max_neighbours=2048 if bounded else None,
        random_state=0,
    )
    start = time.perf_counter()
    detector.fit(X)
    fit_seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB on Linux
    model = Path(workdir) / f"model_{n}_{bounded}.joblib"
    joblib.dump(detector, model)
    queries = X_test[:2000]
    detector.score_samples(queries[:64])  # warm up
    times = []
    for _ in range(3):
        start = time.perf_counter()
        detector.score_samples(queries)
        times.append(time.perf_counter() - start)
    return {
        "n_train": int(n),
        "bounded": bounded,
        "kept": int(detector.combined_.neighbours_.n_samples_fit_),
        "model_mb": model.stat().st_size / 1e6,
        "peak_fit_mib": peak,
        "fit_seconds": fit_seconds,
        "rows_per_second": len(queries) / float(np.median(times)),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True, help="Fashion-MNIST's IDX files")
    parser.add_argument("--out", help="also save the rows as JSON here")
    parser.add_argument("--plot", help="also draw size, memory and speed against n here")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # n, bounded: child
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as workdir:
        if args.one:
            n, bounded = int(args.one[0]), args.one[1] == "True"
            print(json.dumps(measure(args.data_dir, n, bounded, workdir)))
            return
        rows = []
        for n in SIZES:
            for bounded in (True, False):
                child = [sys.executable, __file__, "--data-dir", args.data_dir]
                child += ["--one", str(n), str(bounded)]
                out = subprocess.run(child, capture_output=True, text=True, check=True)
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
                r = rows[-1]
                print(
                    f"{r['n_train']:>6} images  {'bounded' if bounded else 'all kept':>9}: "
                    f"keeps {r['kept']:>6}, model {r['model_mb']:7.1f} MB, fit peak "
                    f"{r['peak_fit_mib']:6.0f} MiB in {r['fit_seconds']:5.0f} s, scoring "
                    f"{r['rows_per_second']:6.0f} rows/s",
                    flush=True,
                )
    by = {(r["n_train"], r["bounded"]): r for r in rows}
    for bounded in (True, False):
        big, small = by[(60000, bounded)], by[(6000, bounded)]
        print(
            f"{'bounded' if bounded else 'all kept'}: 60,000-image model / 6,000-image "
            f"model: size {big['model_mb'] / small['model_mb']:.2f}x, scoring throughput "
            f"{big['rows_per_second'] / small['rows_per_second']:.2f}x"
        )
    machine = f"{os.cpu_count()} CPUs, {' '.join(os.uname()[::2])}"
    print(f"machine: {machine}")
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
    if args.plot:
        plot(rows, args.plot)


def plot(rows, path):
    """Model size, peak memory and scoring throughput against the training set's size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), constrained_layout=True)
    panels = (
        ("model_mb", "saved model (MB)"),
        ("peak_fit_mib", "peak memory of the fit (MiB)"),
        ("rows_per_second", "scoring (rows per second)"),
    )
    for ax, (key, label) in zip(axes, panels):
        for bounded, style in ((True, "o-"), (False, "s--")):
            mine = sorted((r for r in rows if r["bounded"] == bounded), key=lambda r: r["n_train"])
            ax.plot(
                [r["n_train"] for r in mine],
                [r[key] for r in mine],
                style,
                label="max_neighbours=2048" if bounded else "max_neighbours=None",
            )
        ax.set_xscale("log")
        ax.set_xlabel("training images")
        ax.set_title(label, fontsize=10)
    axes[0].legend(fontsize=8)
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
