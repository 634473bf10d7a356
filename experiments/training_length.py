"""How the two GradCon score terms evolve with training, on validation data only.

Trains GradCon for a fixed number of epochs (no early stopping) on one normal class
and, every ``--every`` epochs, scores the protocol's *validation* split (normal
validation images plus as many images of other classes from outside the test split)
with four scores from the same network: the GradCon score, reconstruction error alone,
gradient alignment alone and the standardised combination (both terms divided by their
standard deviation on the normal validation images). Test data is never touched.

Example::

    OMP_NUM_THREADS=1 python experiments/training_length.py --dataset fashion-mnist \
        --data-dir $DATA/fashion_mnist --classes 0 6 --epochs 60 --every 5 \
        --out experiments/results/training_length_fmnist.json
"""

import argparse
import json
import time

import numpy as np
from sklearn.metrics import roc_auc_score
from skorch.callbacks import Callback

from gradient_ad import GradientAnomalyDetector
from gradient_ad._scoring import score_terms
from gradient_ad.benchmark import tasks


class ValidationScores(Callback):
    """Record the validation AUROC of each score every ``every`` epochs."""

    def __init__(self, X_valid, y_valid, beta, every, log, restart):
        self.X_valid = X_valid
        self.y_valid = y_valid
        self.beta = beta
        self.every = every
        self.log = log
        self.restart = restart

    def on_train_begin(self, net, **kwargs):
        # A run restarted after a collapse starts its curve again.
        self.restart()
        self.training_seconds_ = 0.0

    def on_epoch_end(self, net, **kwargs):
        epoch = len(net.history)
        # skorch's per-epoch duration excludes this callback's own scoring time.
        self.training_seconds_ += float(net.history[-1, "dur"])
        if epoch % self.every:
            return
        net.module_.eval()
        error, alignment = score_terms(net.module_, self.X_valid, 256, net.device)
        net.module_.train()
        normal = self.y_valid == 0
        mu_e, sd_e = error[normal].mean(), error[normal].std()
        mu_a, sd_a = alignment[normal].mean(), alignment[normal].std()
        scores = {
            "gradcon": error - self.beta * alignment,
            "reconstruction": error,
            "gradient": -alignment,
            "standardized": (error - mu_e) / sd_e - (alignment - mu_a) / sd_a,
        }
        record = {
            "epoch": epoch,
            "training_seconds": self.training_seconds_,
            "train_loss": float(net.history[-1, "train_loss"]),
        }
        # A beta sweep: image errors are ~0.01, so beta=0.12 lets the cosine dominate.
        for beta in (0.001, 0.003, 0.01, 0.03):
            scores[f"beta={beta}"] = error - beta * alignment
        record |= {k: float(roc_auc_score(self.y_valid, v)) for k, v in scores.items()}
        record["error_std"] = float(sd_e)
        record["alignment_std"] = float(sd_a)
        self.log(record)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-dir")
    parser.add_argument("--classes", nargs="+", default=["0"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--beta", type=float, default=0.12)
    parser.add_argument("--alpha", type=float, default=0.03)
    parser.add_argument("--constrained", default="decoder")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out")
    args = parser.parse_args(argv)

    results = []

    def save():
        # Written after every checkpoint, so a stopped run keeps what it measured.
        if args.out:
            with open(args.out, "w") as f:
                json.dump({"args": vars(args), "results": results}, f, indent=1)

    for task, seed, split in tasks(args.dataset, args.data_dir, args.classes, [args.seed]):
        X_valid = split.X_valid
        if X_valid.dtype == np.uint8:
            X_valid = X_valid / np.float32(255)
        X_valid = X_valid.astype(np.float32)
        if X_valid.ndim == 3:
            X_valid = X_valid[:, None]
        records = []
        result = {"task": task, "seed": seed, "records": records, "training_runs": 0}
        results.append(result)

        def restart(records=records, result=result):
            records.clear()
            result["training_runs"] += 1

        def log(record, task=task, records=records):
            # The detector deep-copies its callbacks; functions survive that by reference.
            records.append(record)
            print(task, {k: round(v, 4) for k, v in record.items()}, flush=True)
            save()

        recorder = ValidationScores(X_valid, split.y_valid, args.beta, args.every, log, restart)
        start = time.perf_counter()
        GradientAnomalyDetector(
            max_epochs=args.epochs,
            early_stopping=False,
            alpha=args.alpha,
            beta=args.beta,
            constrained=args.constrained,
            lr=args.lr,
            random_state=seed,
            callbacks=[recorder],
        ).fit(split.X_train)
        print(f"{task}: {time.perf_counter() - start:.0f} s", flush=True)
    save()


if __name__ == "__main__":
    main()
