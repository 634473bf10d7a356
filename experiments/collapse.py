"""How often training collapses to one output, and how often the detector recovers.

Fits the default detector (only ``max_epochs`` is short) once per seed on one-class
sparse images, scikit-learn's digits enlarged onto a black 28 x 28 canvas
(:func:`gradient_ad.datasets.make_canvas_digits`, no download), or on one Fashion-MNIST
class (not sparse: the control). For each seed it records whether the first training
run collapsed (the detector then restarted), how many restarts it took, and whether the
returned network is still collapsed (the detector then warns). ``--remedy reseed``
restarts with PyTorch's default initialisation under the next seed instead of the
detector's Kaiming initialisation, for comparison.

Example::

    OMP_NUM_THREADS=1 python experiments/collapse.py --dataset canvas --seeds 50 \
        --out experiments/results/development/collapse_canvas.json
"""

import argparse
import json
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from gradient_ad import ConvAutoencoder, GradientAnomalyDetector, datasets


def load(dataset, data_dir, n_samples):
    if dataset == "canvas":
        return datasets.make_canvas_digits(n_samples, random_state=0)[0]
    X_train, y_train, X_test, y_test = datasets.load_idx(data_dir)
    X = np.concatenate([X_train, X_test])[np.r_[y_train, y_test] == 0]
    return X[np.random.default_rng(0).choice(len(X), n_samples, replace=False)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", choices=("canvas", "fashion-mnist"), default="canvas")
    parser.add_argument("--data-dir", help="Fashion-MNIST's IDX directory")
    parser.add_argument("--n-samples", type=int, default=1500)
    parser.add_argument("--seeds", type=int, default=50, help="seeds 0 .. N-1")
    parser.add_argument("--max-epochs", type=int, default=2)
    parser.add_argument("--remedy", choices=("kaiming", "reseed"), default="kaiming")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    X = load(args.dataset, args.data_dir, args.n_samples)
    network = "auto" if args.remedy == "kaiming" else ConvAutoencoder
    rows = []
    for seed in range(args.seeds):
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            detector = GradientAnomalyDetector(
                network=network, max_epochs=args.max_epochs, random_state=seed
            ).fit(X)
        row = {
            "seed": seed,
            "first_run_collapsed": detector.n_restarts_ > 0,
            "restarts": detector.n_restarts_,
            "returned_collapsed": any(issubclass(w.category, ConvergenceWarning) for w in caught),
            "spread": round(detector.reconstruction_spread_, 4),
            "seconds": round(time.perf_counter() - start, 1),
        }
        rows.append(row)
        print(row, flush=True)
    summary = {
        "first_run_collapsed": sum(r["first_run_collapsed"] for r in rows),
        "returned_collapsed": sum(r["returned_collapsed"] for r in rows),
        "restarts_max": max(r["restarts"] for r in rows),
        "seeds": len(rows),
    }
    print(
        f"{args.dataset}, {args.max_epochs} epochs, remedy {args.remedy}: first run collapsed "
        f"for {summary['first_run_collapsed']} of {len(rows)} seeds; returned collapsed "
        f"{summary['returned_collapsed']} of {len(rows)}; most restarts "
        f"{summary['restarts_max']}"
    )
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "summary": summary, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
