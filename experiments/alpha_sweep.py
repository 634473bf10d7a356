"""How the constraint weight ``alpha`` acts, one fit per value (made for the ODDS tables).

The constraint ``alpha * (1 - cos)`` is scale-free but the reconstruction loss is not:
on standardised tables it is of order 0.1 to 1, against about 0.01 on images in
[0, 1], so the paper's ``alpha = 0.03`` weighs the constraint far less on tables. For
each table and each ``alpha`` this fits the default detector (standardised features,
as in ``gradient_ad.benchmark``) and records on the test split the AUROC of the
reconstruction error, of the gradient term alone (``-alignment``) and of the GradCon
score with the paper's ``beta``, the mean alignment of the normal test rows (how well
the constraint took), the epochs run and the fit seconds.

ODDS tables are this package's development data for tables; nothing here is chosen
on image test splits. Example::

    OMP_NUM_THREADS=1 python experiments/alpha_sweep.py --data-dir $DATA/odds \
        --alphas 0.03 0.3 1 3 --out experiments/results/development/alpha_tables.json

``--dataset digits --classes 0 1 2 3 --alphas 0.03`` gives the same record for images.
"""

import argparse
import json
import statistics
import time

from sklearn.metrics import roc_auc_score

from gradient_ad import GradientAnomalyDetector
from gradient_ad.benchmark import tasks


def measure(split, alpha, seed, beta=0.12):
    """One fit: the record described in the module docstring."""
    start = time.perf_counter()
    detector = GradientAnomalyDetector(alpha=alpha, random_state=seed).fit(split.X_train)
    seconds = time.perf_counter() - start
    error, alignment = detector.score_components(split.X_test)
    y = split.y_test
    return {
        "alpha": alpha,
        "reconstruction": roc_auc_score(y, error),
        "gradient": roc_auc_score(y, -alignment),
        "gradcon": roc_auc_score(y, error - beta * alignment),
        "normal_alignment": float(alignment[y == 0].mean()),
        "anomaly_alignment": float(alignment[y == 1].mean()),
        "epochs": len(detector.net_.history),
        "n_restarts": detector.n_restarts_,
        "seconds": seconds,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="odds")
    parser.add_argument("--data-dir")
    parser.add_argument("--classes", "--tables", nargs="+", default=None)
    parser.add_argument("--alphas", nargs="+", type=float, default=[0.03, 0.3, 1.0, 3.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--setting", choices=["one-class", "unsupervised"], default="one-class")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    if any(alpha < 0 for alpha in args.alphas):
        parser.error("--alphas must be non-negative")

    rows = []
    for task, seed, split in tasks(
        args.dataset, args.data_dir, args.classes, [args.seed], args.setting
    ):
        for alpha in args.alphas:
            rows.append({"task": task, "seed": seed} | measure(split, alpha, seed))
            print({k: round(v, 4) if isinstance(v, float) else v for k, v in rows[-1].items()})
            if args.out:
                with open(args.out, "w") as f:
                    json.dump({"args": vars(args), "rows": rows}, f, indent=1)

    print("\nmean over tasks")
    print("alpha    recon.  gradient  GradCon  normal alignment")
    for alpha in args.alphas:
        mine = [row for row in rows if row["alpha"] == alpha]
        means = [
            statistics.fmean(row[k] for row in mine)
            for k in ("reconstruction", "gradient", "gradcon", "normal_alignment")
        ]
        print(f"{alpha:<7}  " + "  ".join(f"{m:7.3f}" for m in means))


if __name__ == "__main__":
    main()
