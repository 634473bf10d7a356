"""Which remaining differences from the authors' training code move AUROC?

The detector follows the authors' training step (olivesgatech/gradcon-anomaly,
``ae_grad_reg.train``), reference rule included. Around that step their script differs
in how the model is selected; this script measures each difference on its own, on the
Fashion-MNIST protocol (pooled folds), against the package's default:

- ``default``: early stopping on a 10% slice of the three training folds, the best
  epoch's weights kept;
- ``authors_checkpoint``: the same fit, but the weights kept by the authors' rule: the
  best validation loss is only saved at epochs 1, 6, 11, ... (every fifth) and the last;
- ``validation_fold``: trained on all three training folds, the best epoch chosen on the
  normal images of the protocol's validation fold (the authors' ``val`` split);
- ``reconstruction_reference``: the default fit with ``reference='reconstruction'``,
  the rule this package used before (the authors average the total-loss gradient).

Each is scored with the paper's ``beta=0.12`` and by reconstruction error alone; test
AUROC is reported, since these are comparisons with the authors' protocol, not choices
of settings.

Example::

    OMP_NUM_THREADS=1 python experiments/authors_differences.py \
        --data-dir $DATA/fashion_mnist --classes 1 6 --seeds 0 1 --max-epochs 10 \
        --out experiments/results/development/authors_differences.json
"""

import argparse
import copy
import json
import time

import numpy as np
from sklearn.metrics import roc_auc_score
from skorch.callbacks import Callback, EarlyStopping
from skorch.dataset import Dataset
from skorch.helper import predefined_split

from gradient_ad import GradientAnomalyDetector
from gradient_ad.benchmark import tasks

PAPER_BETA = 0.12
WRITE_EVERY = 5


class AuthorsCheckpoint(Callback):
    """Keep the weights the authors' script would keep as ``model_best``.

    Their script tracks the best validation loss every epoch, but writes checkpoints
    (and so copies the best one) only every ``WRITE_EVERY`` epochs and at the last.
    """

    def initialize(self):
        self.best_loss_ = np.inf
        self.state_ = None
        return self

    def on_epoch_end(self, net, **kwargs):
        epoch = len(net.history)
        loss = net.history[-1, "valid_loss"]
        is_best = loss < self.best_loss_
        self.best_loss_ = min(loss, self.best_loss_)
        if ((epoch - 1) % WRITE_EVERY == 0 or epoch == net.max_epochs) and is_best:
            self.state_ = copy.deepcopy(net.module_.state_dict())


def aurocs(detector, split):
    error, alignment = detector.score_components(split.X_test)
    return {
        "gradcon": float(roc_auc_score(split.y_test, error - PAPER_BETA * alignment)),
        "reconstruction": float(roc_auc_score(split.y_test, error)),
    }


def _images(X):
    return (X / np.float32(255)).astype(np.float32)[:, None]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True, help="Fashion-MNIST's IDX directory")
    parser.add_argument("--classes", nargs="+", default=["1", "6"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    rows = []
    for task, seed, split in tasks("fashion-mnist", args.data_dir, args.classes, args.seeds):
        start = time.perf_counter()
        common = {"max_epochs": args.max_epochs, "random_state": seed}
        row = {"task": task, "seed": seed}

        default = GradientAnomalyDetector(**common, callbacks=[AuthorsCheckpoint()])
        default.fit(split.X_train)
        row["default"] = aurocs(default, split)
        [checkpoint] = [c for _, c in default.net_.callbacks_ if isinstance(c, AuthorsCheckpoint)]
        default.net_.module_.load_state_dict(checkpoint.state_)
        row["authors_checkpoint"] = aurocs(default, split)

        valid_normal = _images(split.X_valid[split.y_valid == 0])
        on_fold = GradientAnomalyDetector(
            **common,
            early_stopping=False,
            net_params={"train_split": predefined_split(Dataset(valid_normal))},
            callbacks=[
                EarlyStopping(
                    monitor="valid_loss",
                    patience=10,
                    threshold=1e-4,
                    threshold_mode="rel",
                    load_best=True,
                    sink=lambda *a, **k: None,
                )
            ],
        ).fit(split.X_train)
        row["validation_fold"] = aurocs(on_fold, split)

        old_rule = GradientAnomalyDetector(**common, reference="reconstruction")
        row["reconstruction_reference"] = aurocs(old_rule.fit(split.X_train), split)
        row["seconds"] = round(time.perf_counter() - start, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)

    variants = ("default", "authors_checkpoint", "validation_fold", "reconstruction_reference")
    means = {
        v: {s: float(np.mean([r[v][s] for r in rows])) for s in ("gradcon", "reconstruction")}
        for v in variants
    }
    for v in variants:
        print(
            f"{v:26s} gradcon {means[v]['gradcon']:.3f}  reconstruction "
            f"{means[v]['reconstruction']:.3f}"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "rows": rows, "mean": means}, f, indent=1)


if __name__ == "__main__":
    main()
