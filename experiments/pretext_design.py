"""Design measurements for ``pretext='rotation'``, on validation data only.

Trains :class:`~gradient_ad.GradientAnomalyDetector` with the rotation pretext head for
each pretext weight ``lambda`` and, every ``--every`` epochs and at the end (the early
stopping's best epoch), scores the protocol's *validation* split (normal validation
images plus as many images of other classes from outside the test split) with every
candidate term and combination. Calibration (means, spreads, the calibrated rotation
targets) uses the detector's own held-out slice of the training data. Test data is
never touched.

Terms: reconstruction error (``rec``, log), GradCon alignment (``align``), rotation
cross-entropy against one-hot targets (``ce_plain``) and against the mean softmax of
held-out normal images (``ce_cal``), and the log norm of the head's weight gradient of
either loss (``hg_plain``, ``hg_cal``). Combinations: the sum of the terms z-scored on
the held-out slice (``z:...``), their maximum (``max:...``) and the Mahalanobis
distance of a Gaussian fitted to them (``gauss:...``).

Example::

    OMP_NUM_THREADS=1 python experiments/pretext_design.py --dataset fashion-mnist \
        --data-dir ../shared/data/fashion_mnist --classes 0 2 5 6 8 --weights 0.1 1 \
        --epochs 20 --every 5 --out experiments/results/development/pretext_design.json
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import NearestNeighbors
from skorch.callbacks import Callback

from gradient_ad import GradientAnomalyDetector
from gradient_ad._pretexts.rotation import calibrated_targets, one_hot_targets, pretext_terms
from gradient_ad._scoring import score_terms
from gradient_ad.benchmark import tasks

COMBINATIONS = {
    "rec+ce_kl": ("rec", "ce_kl"),
    "rec+ce_dir": ("rec", "ce_dir"),
    "rec+ce_cal+hg_plain": ("rec", "ce_cal", "hg_plain"),
    "rec+ce_cal": ("rec", "ce_cal"),
    "rec+ce_plain": ("rec", "ce_plain"),
    "rec+hg_cal": ("rec", "hg_cal"),
    "rec+ce_cal+hg_cal": ("rec", "ce_cal", "hg_cal"),
    "rec+align+ce_cal": ("rec", "align", "ce_cal"),
    "rec+align+ce_cal+hg_cal": ("rec", "align", "ce_cal", "hg_cal"),
}


def terms_of(module, X, targets_cal=None):
    """Every candidate term (higher = more anomalous) and the softmax outputs."""
    module.eval()
    error, alignment = score_terms(module, X, 256, "cpu")
    dtype = module.reference_gradients()[0].dtype
    out = {"rec": np.log(error), "align": -alignment}
    ce, hg, p = [], [], []
    for start in range(0, len(X), 256):
        x = torch.as_tensor(X[start : start + 256], dtype=dtype)
        loss, norm, prob = pretext_terms(module, x, one_hot_targets(dtype))
        ce.append(loss), hg.append(norm), p.append(prob)
    out["ce_plain"] = torch.cat(ce).double().numpy()
    out["hg_plain"] = torch.cat(hg).double().numpy()
    probabilities = torch.cat(p)
    if targets_cal is not None:
        ce, hg = [], []
        for start in range(0, len(X), 256):
            x = torch.as_tensor(X[start : start + 256], dtype=dtype)
            loss, norm, _ = pretext_terms(module, x, targets_cal)
            ce.append(loss), hg.append(norm)
        out["ce_cal"] = torch.cat(ce).double().numpy()
        out["hg_cal"] = torch.cat(hg).double().numpy()
    return out, probabilities


def evaluate(module, X_held, X_valid, y_valid, X_train=None):
    dtype = module.reference_gradients()[0].dtype
    _, probabilities = terms_of(module, X_held)
    targets = calibrated_targets(probabilities).to(dtype)
    held, _ = terms_of(module, X_held, targets)
    valid, p_valid = terms_of(module, X_valid, targets)
    held["ce_kl"], valid["ce_kl"] = (_reverse_kl(p, targets) for p in (probabilities, p_valid))
    alpha = _dirichlet(probabilities)
    held["ce_dir"], valid["ce_dir"] = (_dirichlet_nll(p, alpha) for p in (probabilities, p_valid))
    scores = dict(valid)
    mean = {k: held[k].mean() for k in held}
    std = {k: held[k].std() + 1e-12 for k in held}
    for name, keys in COMBINATIONS.items():
        z = np.stack([(valid[k] - mean[k]) / std[k] for k in keys])
        scores["z:" + name] = z.sum(0)
        scores["max:" + name] = z.max(0)
        H = np.stack([held[k] for k in keys], 1)
        V = np.stack([valid[k] for k in keys], 1)
        mu = H.mean(0)
        cov = np.cov(H, rowvar=False) + 1e-6 * np.eye(len(keys))
        d = V - mu
        scores["gauss:" + name] = np.einsum("ij,jk,ik->i", d, np.linalg.inv(cov), d)
    if X_train is not None:
        # A lead (--knn): the raw-pixel kNN distance as a fifth standardised term, the
        # neighbours being the training rows outside the held-out slice.
        held_rows = {r.tobytes() for r in X_held}
        fit_rows = np.array([r for r in X_train if r.tobytes() not in held_rows])
        knn = NearestNeighbors(n_neighbors=5).fit(fit_rows.reshape(len(fit_rows), -1))
        held["knn"], valid["knn"] = (
            knn.kneighbors(X.reshape(len(X), -1))[0].mean(1) for X in (X_held, X_valid)
        )
        scores["knn"] = valid["knn"]
        for name, keys in {
            "rec+align+ce_cal+hg_cal+knn": ("rec", "align", "ce_cal", "hg_cal", "knn"),
            "rec+ce_cal+hg_cal+knn": ("rec", "ce_cal", "hg_cal", "knn"),
        }.items():
            scores["z:" + name] = sum(
                (valid[k] - held[k].mean()) / (held[k].std() + 1e-12) for k in keys
            )
    record = {k: round(float(roc_auc_score(y_valid, v)), 4) for k, v in scores.items()}
    record["diag_targets"] = [round(float(v), 3) for v in torch.diagonal(targets).tolist()]
    return record


def _reverse_kl(p, targets):
    """mean_r KL(p_r || t_r)."""
    p = p.double().clamp_min(1e-12)
    return (p * (p.log() - targets.double().clamp_min(1e-12).log())).sum(-1).mean(1).numpy()


def _dirichlet(p):
    """Per rotation, a Dirichlet fitted to held-out normal softmax outputs by moments."""
    p = p.double().clamp_min(1e-6)
    mean, var = p.mean(0), p.var(0)
    precision = (mean * (1 - mean) / var.clamp_min(1e-12) - 1).clamp_min(1e-3)
    return mean * precision.mean(-1, keepdim=True)


def _dirichlet_nll(p, alpha):
    """Minus the Dirichlet log-density up to a constant, summed over rotations (GEOM)."""
    return -((alpha - 1) * p.double().clamp_min(1e-6).log()).sum((1, 2)).numpy()


class Every(Callback):
    def __init__(self, every, X_held, X_valid, y_valid, log):
        self.every, self.X_held, self.X_valid, self.y_valid, self.log = (
            every,
            X_held,
            X_valid,
            y_valid,
            log,
        )

    def on_train_begin(self, net, **kwargs):
        self.seconds = 0.0
        self.run = getattr(self, "run", -1) + 1  # restarts after a collapse count up

    def on_epoch_end(self, net, **kwargs):
        epoch = len(net.history)
        self.seconds += float(net.history[-1, "dur"])
        if epoch % self.every:
            return
        record = evaluate(net.module_, self.X_held, self.X_valid, self.y_valid)
        net.module_.train()
        self.log(
            {"epoch": epoch, "run": self.run, "training_seconds": round(self.seconds, 1)} | record
        )


def as_float(X):
    """Images as the detector sees them: (n, 1, H, W) float32 in [0, 1]."""
    X = X.astype(np.float32) / 255.0 if X.dtype == np.uint8 else X.astype(np.float32)
    return X.reshape(len(X), 1, *X.shape[-2:])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--data-dir")
    parser.add_argument("--classes", type=int, nargs="+")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--weights", type=float, nargs="+", default=[1.0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--set", nargs="*", default=[], help="extra detector params KEY=VALUE")
    parser.add_argument("--knn", action="store_true", help="also a raw-pixel kNN term (lead)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    extra = {k: eval(v) for k, v in (item.split("=", 1) for item in args.set)}
    out = Path(args.out)
    results = json.loads(out.read_text())["rows"] if out.exists() else []

    for task, seed, split in tasks(args.dataset, args.data_dir, args.classes, args.seeds):
        X, X_valid = split.X_train, split.X_valid
        if args.dataset == "digits":  # flat rows in the benchmark: 8 x 8 images here
            X, X_valid = X.reshape(-1, 8, 8), X_valid.reshape(-1, 8, 8)
        X_valid = as_float(X_valid)
        for weight in args.weights:
            # The detector's own held-out slice (as in GradientAnomalyDetector._split).
            inner = np.random.RandomState(seed).randint(np.iinfo(np.int32).max)
            _, held = train_test_split(as_float(X), test_size=0.1, random_state=inner)
            if len(held) < 100:  # as the detector calibrates: all training rows
                held = as_float(X)
            base = {"dataset": args.dataset, "task": task, "seed": seed, "weight": weight}
            base |= {k: repr(v) for k, v in extra.items()}

            def log(record, base=base, task=task, weight=weight):
                row = base | record
                results.append(row)
                keys = ["rec", "align", "ce_plain", "ce_cal", "ce_kl", "ce_dir", "hg_plain"]
                keys += ["hg_cal", "z:rec+ce_cal", "z:rec+ce_cal+hg_cal", "z:rec+ce_dir"]
                print(
                    f"{args.dataset} {task} w={weight} ep {row.get('epoch')}: "
                    + " ".join(f"{k} {row[k]:.3f}" for k in keys),
                    flush=True,
                )
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps({"meta": vars(args), "rows": results}, indent=1))

            callback = Every(args.every, held, X_valid, split.y_valid, log)
            start = time.perf_counter()
            detector = GradientAnomalyDetector(
                pretext="rotation",
                pretext_weight=weight,
                max_epochs=args.epochs,
                random_state=seed,
                callbacks=[("design", callback)],
                **extra,
            ).fit(X)
            seconds = time.perf_counter() - start
            record = evaluate(
                detector.net_.module_,
                held,
                X_valid,
                split.y_valid,
                as_float(X) if args.knn else None,
            )
            log(
                {
                    "epoch": "final",
                    "epochs_run": detector.n_iter_,
                    "fit_seconds": round(seconds, 1),
                    "restarts": detector.n_restarts_,
                }
                | record
            )


if __name__ == "__main__":
    main()
