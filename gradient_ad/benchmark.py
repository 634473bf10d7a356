"""One-class benchmark: GradCon beside its ablations and classic detectors.

Run ``python -m gradient_ad.benchmark`` for scikit-learn's digits: each digit in turn
is normal, the other nine are anomalies. For each normal class and seed it trains
GradCon once and reports the test AUROC of the GradCon score and of the
reconstruction error alone from the same network (the paper's ablation), next to
IsolationForest. ``--help`` lists the options.
"""

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from ._detector import GradientAnomalyDetector

METHODS = ("gradcon", "reconstruction", "isolation_forest")


def one_class_digits(normal, seed, test_size=0.3):
    """Train on ``1 - test_size`` of digit ``normal``; test on the rest plus as many
    images of other digits drawn at random. Labels: +1 normal, -1 anomaly."""
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    train, test = train_test_split(X[y == normal], test_size=test_size, random_state=seed)
    others = X[y != normal]
    rng = np.random.RandomState(seed)
    anomalies = others[rng.choice(len(others), len(test), replace=False)]
    X_test = np.vstack([test, anomalies])
    y_test = np.r_[np.ones(len(test), dtype=int), -np.ones(len(anomalies), dtype=int)]
    return train, X_test, y_test


def evaluate(train, X_test, y_test, seed, detector_params=None):
    """Test AUROC of each method and GradCon's fit time in seconds."""
    start = time.perf_counter()
    detector = GradientAnomalyDetector(random_state=seed, **(detector_params or {})).fit(train)
    fit_seconds = time.perf_counter() - start
    error, _ = detector.score_components(X_test)
    forest = IsolationForest(random_state=seed).fit(train)
    return {
        "gradcon": roc_auc_score(y_test, detector.score_samples(X_test)),
        "reconstruction": roc_auc_score(y_test, -error),
        "isolation_forest": roc_auc_score(y_test, forest.score_samples(X_test)),
    }, fit_seconds


def run(classes=range(10), seeds=(0,), detector_params=None, log=print):
    """Rows ``(class, seed, {method: auroc}, fit_seconds)`` for the digits benchmark."""
    rows = []
    for normal in classes:
        for seed in seeds:
            scores, seconds = evaluate(*one_class_digits(normal, seed), seed, detector_params)
            rows.append((normal, seed, scores, seconds))
            log(
                f"digit {normal} seed {seed}: "
                + "  ".join(f"{m} {scores[m]:.3f}" for m in METHODS)
                + f"  ({seconds:.1f} s)"
            )
    return rows


def format_table(rows):
    """Per-class mean AUROC (and spread over seeds) of every method, plus the mean."""
    classes = sorted({r[0] for r in rows})
    lines = ["class  " + "  ".join(f"{m:>18}" for m in METHODS)]
    per_method = {m: [] for m in METHODS}
    for c in classes:
        cells = []
        for m in METHODS:
            values = [r[2][m] for r in rows if r[0] == c]
            per_method[m].append(np.mean(values))
            cells.append(f"{np.mean(values):.3f} +/- {np.std(values):.3f}".rjust(18))
        lines.append(f"{c:>5}  " + "  ".join(cells))
    lines.append(" mean  " + "  ".join(f"{np.mean(per_method[m]):18.3f}" for m in METHODS))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m gradient_ad.benchmark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--classes", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--max-epochs", type=int, default=None)
    args = parser.parse_args(argv)
    params = {} if args.max_epochs is None else {"max_epochs": args.max_epochs}
    start = time.perf_counter()
    rows = run(args.classes, args.seeds, params)
    print("\nTest AUROC on scikit-learn's digits (one digit normal, the others anomalies)")
    print(format_table(rows))
    print(f"total time {time.perf_counter() - start:.1f} s")
    return rows


if __name__ == "__main__":
    main()
