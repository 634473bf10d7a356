"""Detectors built on the gradient representation, beside GradCon's own score.

For every normal class (or table) and seed, fits :class:`~gradient_ad.GradientFeatures`
(GradCon training, the detector's default settings unless ``--set``) and scores the
evaluation split with

- ``gradcon``: the paper's score, ``error - 0.12 * alignment``;
- ``reconstruction``: the reconstruction error alone;
- ``standardized_sum``: the per-feature z-scores (mean and standard deviation of the
  training rows' features) summed with the sign that makes each more anomalous:
  ``+`` error, ``-`` every cosine, ``+`` every log gradient norm;
- ``gradient_size``: the mean z-score of the log gradient norms alone (the paper's
  intuition that anomalies need larger updates, which the cosine discards);
- ``mahalanobis``: the Mahalanobis distance of the standardised features to the
  training rows' (Ledoit-Wolf covariance);
- ``knn``: the distance to the 5th nearest training row in standardised features
  (with ``--projections``, the sketches ride along);
- ``iforest_features``: IsolationForest on the standardised features;
- ``iforest_raw``: IsolationForest on the raw input, the classic baseline.

Evaluation split: the protocol's *validation* split for the image data sets (no test
data is touched), the test split for digits and the ODDS tables (development sets).
Prints one table and writes the rows to ``--out``. Example::

    OMP_NUM_THREADS=1 python experiments/feature_detectors.py --dataset digits --seeds 0 \
        --out experiments/results/development/feature_detectors_digits.json
"""

import argparse
import ast
import json
import time

import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

from gradient_ad import GradientAnomalyDetector, GradientFeatures
from gradient_ad._gradcon import anomaly_score
from gradient_ad.benchmark import tasks

METHODS = (
    "gradcon",
    "reconstruction",
    "standardized_sum",
    "gradient_size",
    "mahalanobis",
    "knn",
    "iforest_features",
    "iforest_raw",
)


def _evaluation(split):
    if split.y_valid is not None:
        return split.X_valid, split.y_valid
    return split.X_test, split.y_test


def scores(features, X_train, X_eval, n_tensors, seed):
    """Anomaly scores (higher = more anomalous) of every method for ``X_eval``."""
    train, evaluate = features.transform(X_train), features.transform(X_eval)
    mean, std = train.mean(0), train.std(0)
    std[std == 0] = 1
    z_train, z_eval = (train - mean) / std, (evaluate - mean) / std
    cosines = slice(1, 1 + n_tensors)
    norms = slice(1 + n_tensors, 1 + 2 * n_tensors)
    error, alignment = evaluate[:, 0], evaluate[:, cosines].mean(1)
    knn = NearestNeighbors(n_neighbors=min(5, len(train))).fit(z_train)
    covariance = LedoitWolf().fit(z_train)
    forest = IsolationForest(random_state=seed).fit(z_train)
    return {
        "gradcon": anomaly_score(error, alignment, 0.12),
        "reconstruction": error,
        "standardized_sum": z_eval[:, 0] - z_eval[:, cosines].sum(1) + z_eval[:, norms].sum(1),
        "gradient_size": z_eval[:, norms].mean(1),
        "mahalanobis": covariance.mahalanobis(z_eval),
        "knn": knn.kneighbors(z_eval)[0][:, -1],
        "iforest_features": -forest.score_samples(z_eval),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-dir")
    parser.add_argument("--classes", nargs="+")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--setting", default="one-class", choices=("one-class", "unsupervised"))
    parser.add_argument("--max-epochs", type=int)
    parser.add_argument("--projections", type=int, default=0)
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    params = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set expects KEY=VALUE, got {item!r}")
        try:
            params[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[key] = value
    if args.max_epochs:
        params["max_epochs"] = args.max_epochs

    rows = []
    for task, seed, split in tasks(
        args.dataset, args.data_dir, args.classes, args.seeds, args.setting
    ):
        start = time.perf_counter()
        detector = GradientAnomalyDetector(**{"random_state": seed, **params})
        features = GradientFeatures(detector, n_projections=args.projections, random_state=seed)
        features.fit(split.X_train)
        X_eval, y_eval = _evaluation(split)
        n_tensors = len(features.constrained_names_)
        results = scores(features, split.X_train, X_eval, n_tensors, seed)
        flat = np.asarray(split.X_train).reshape(len(split.X_train), -1)
        forest = IsolationForest(random_state=seed).fit(flat)
        results["iforest_raw"] = -forest.score_samples(np.asarray(X_eval).reshape(len(X_eval), -1))
        anomalous = np.asarray(y_eval) == 1
        for method in METHODS:
            auroc = float(roc_auc_score(anomalous, results[method]))
            rows.append({"task": str(task), "seed": seed, "method": method, "auroc": auroc})
        line = " ".join(f"{m}={r['auroc']:.3f}" for m, r in zip(METHODS, rows[-len(METHODS) :]))
        print(f"{task} seed {seed} ({time.perf_counter() - start:.0f} s): {line}", flush=True)
        if args.out:
            with open(args.out, "w") as f:
                json.dump({"meta": {"command": vars(args)}, "rows": rows}, f, indent=1)
    means = {m: np.mean([r["auroc"] for r in rows if r["method"] == m]) for m in METHODS}
    print("mean AUROC:", " ".join(f"{m}={v:.3f}" for m, v in means.items()))


if __name__ == "__main__":
    main()
