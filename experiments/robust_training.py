"""How many training rows should robust training leave out?

With a float ``contamination`` the detector trains short networks on the polluted
rows, leaves out the rows they score as the most anomalous, and trains again on the
rest. This study (one ranking; ``--rounds 2`` ranks again) measures, for the pretext
detector on images with unlabelled anomalies mixed in (the benchmark's
``--contamination-rate``, same draws):

- how many of the mixed-in anomalies the first network's ranking of the training rows
  (each row against all the others by the neighbour term, as robust training ranks
  them) puts in the top 1, 1.5, 2 and 3 shares of ``q``; and the same for two networks
  on disjoint halves, each ranking the half it did not train on (an out-of-fold
  ranking, as SRR's disjoint subsets; Yoon et al., TMLR 2022);
- the validation and test AUROC of a detector trained again without the top 1, 2 or
  3 shares of the first network's ranking (its neighbour term measures against the
  rows kept), beside the first network's own;
- the test AUROC of kNN on raw pixels (the benchmark's ``knn``) measuring against the
  clean rows, all the polluted rows, and the rows left after each share.

Settings are chosen on the validation AUROC; the test AUROC is printed for the record.
The data are read from ``$GRADIENT_AD_DATA`` (default: ``../shared/data`` beside the
repository). Each task trains 4 networks (6 with ``--out-of-fold``): about 5 minutes a
Fashion-MNIST class on one core.

Example::

    OMP_NUM_THREADS=1 python experiments/robust_training.py --classes 0 6 --seeds 0 \\
        --out experiments/results/robust_training.json
"""

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score

from gradient_ad import GradientAnomalyDetector
from gradient_ad.benchmark import tasks
from gradient_ad.benchmark.methods import classic_detectors

SHARES = (1, 1.5, 2, 3)
RETRAINED = (1, 2, 3)
DATA_DIRS = {"fashion-mnist": "fashion_mnist", "cifar10": "cifar10_dev"}


def _data_dir(dataset):
    default = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    return Path(os.environ.get("GRADIENT_AD_DATA", default)) / DATA_DIRS[dataset]


def _rows(X):
    return [row.tobytes() for row in X]


def _mixed_in(polluted, clean):
    """Which rows of the polluted training set are the mixed-in anomalies (not in the
    clean one)."""
    return ~np.isin(np.array(_rows(polluted), dtype=object), np.array(_rows(clean), dtype=object))


def _fit(X, seed, epochs):
    start = time.perf_counter()
    detector = GradientAnomalyDetector(pretext="rotation", max_epochs=epochs, random_state=seed)
    return detector.fit(X), time.perf_counter() - start


def _ranking(detector, X, trained):
    """Anomaly scores of all the training rows ``X`` by ``detector``'s network, as robust
    training ranks them (the rows it trained on, indices ``trained``, against each
    other by the neighbour term; the rest as new samples)."""
    samples, _ = detector._validate_input(X)
    return detector._ranking_scores(
        detector.net_, samples, trained, detector.beta_, detector.combined_
    )


def _out_of_fold_ranking(X, seed, epochs):
    """Robust z-scores of each half's rows by the network trained on the other half."""
    half = np.random.RandomState(seed).permutation(len(X)) < len(X) // 2
    z = np.empty(len(X))
    seconds = 0.0
    for trained, scored in ((half, ~half), (~half, half)):
        detector, took = _fit(X[trained], seed, epochs)
        seconds += took
        score = -detector.score_samples(X[scored])
        q1, median, q3 = np.percentile(score, [25, 50, 75])
        z[scored] = (score - median) / (q3 - q1)
    return z, seconds


def _found(score, anomalous, share):
    top = np.argsort(-score, kind="stable")[: int(round(share * len(score)))]
    return round(float(anomalous[top].sum() / anomalous.sum()), 3)


def _aurocs(detector, split):
    return {
        "valid": round(roc_auc_score(split.y_valid, -detector.score_samples(split.X_valid)), 4),
        "test": round(roc_auc_score(split.y_test, -detector.score_samples(split.X_test)), 4),
    }


def _knn_auroc(rows, split):
    knn = dict(classic_detectors(0))["knn"].fit(rows.reshape(len(rows), -1))
    score = -knn.score_samples(split.X_test.reshape(len(split.X_test), -1))
    return round(roc_auc_score(split.y_test, score), 4)


def _second_round(X, ranking, seed, q, epochs):
    """Rank again with a network trained on the rows the first ranking keeps (top
    three shares left out)."""
    kept = np.sort(np.argsort(ranking, kind="stable")[: len(X) - int(round(3 * q * len(X)))])
    detector, seconds = _fit(X[kept], seed, epochs)
    return _ranking(detector, X, kept), seconds


def run_task(
    dataset, normal, seed, q, epochs, out_of_fold, first_epochs=None, retrained=RETRAINED, rounds=1
):
    data_dir = _data_dir(dataset)
    _, _, clean = next(tasks(dataset, data_dir, classes=[normal], seeds=[seed]))
    _, _, split = next(
        tasks(dataset, data_dir, classes=[normal], seeds=[seed], contamination_rate=q)
    )
    X = split.X_train
    anomalous = _mixed_in(X, clean.X_train)
    first_epochs = first_epochs or epochs
    first, seconds = _fit(X, seed, first_epochs)
    ranking = _ranking(first, X, np.arange(len(X)))
    record = {
        "dataset": dataset, "class": normal, "seed": seed, "q": q,
        "n_train": len(X), "n_mixed_in": int(anomalous.sum()),
        "first": {**_aurocs(first, split), "epochs": first_epochs, "seconds": round(seconds, 1)},
        "found_in_sample": {str(f): _found(ranking, anomalous, f * q) for f in SHARES},
    }  # fmt: skip
    for round_ in range(2, rounds + 1):
        ranking, seconds = _second_round(X, ranking, seed, q, first_epochs)
        found = {str(f): _found(ranking, anomalous, f * q) for f in SHARES}
        record[f"found_round_{round_}"] = found
        record[f"round_{round_}_seconds"] = round(seconds, 1)
    if out_of_fold:
        z, seconds = _out_of_fold_ranking(X, seed, epochs)
        record["found_out_of_fold"] = {str(f): _found(z, anomalous, f * q) for f in SHARES}
        record["out_of_fold_seconds"] = round(seconds, 1)
    record["knn"] = {"clean": _knn_auroc(clean.X_train, split), "polluted": _knn_auroc(X, split)}
    for f in SHARES:
        kept = np.argsort(ranking, kind="stable")[: len(X) - int(round(f * q * len(X)))]
        record["knn"][f"trimmed_{f}"] = _knn_auroc(X[kept], split)
    for f in retrained:
        kept = np.sort(np.argsort(ranking, kind="stable")[: len(X) - int(round(f * q * len(X)))])
        again, seconds = _fit(X[kept], seed, epochs)
        record[f"trimmed_{f}"] = {**_aurocs(again, split), "seconds": round(seconds, 1)}
    return record


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=sorted(DATA_DIRS), default="fashion-mnist")
    parser.add_argument("--classes", type=int, nargs="+", default=[0, 6])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--rate", type=float, default=0.1, help="share mixed in (q)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--first-epochs", type=int, help="the first network's (default: --epochs)")
    parser.add_argument(
        "--trimmed", type=float, nargs="+", default=list(RETRAINED), help="shares of q left out"
    )
    parser.add_argument("--rounds", type=int, default=1, help="rankings before the last training")
    parser.add_argument("--out-of-fold", action="store_true", help="also the halves' ranking")
    parser.add_argument("--out", help="JSON file of the records")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    records = []
    for normal in args.classes:
        for seed in args.seeds:
            record = run_task(
                args.dataset, normal, seed, args.rate, args.epochs, args.out_of_fold,
                args.first_epochs, args.trimmed, args.rounds,
            )  # fmt: skip
            print(json.dumps(record), flush=True)
            records.append(record)
    if args.out:
        meta = {"machine": platform.processor() or platform.machine(), "args": vars(args)}
        Path(args.out).write_text(json.dumps({"meta": meta, "records": records}, indent=1))


if __name__ == "__main__":
    main()
