"""Does a per-pixel scaler in front of an image detector help or hurt?

Fashion-MNIST, T-shirts (class 0) normal: 1,000 training images of the official
protocol (:func:`gradient_ad.datasets.split_official`), 3 epochs, tested on the
official test set's T-shirts against as many images of the other classes. Each
detector (``pretext='rotation'`` and ``pretext=None``) is fitted on

- the uint8 images as they are (the detector divides them by 255);
- flat rows through ``make_pipeline(StandardScaler(), GradientAnomalyDetector(
  input_shape=(28, 28)))``: every pixel standardised on its own;
- the images standardised with one mean and one standard deviation for all pixels
  (the training images'), which keeps the pixels' relative brightness.

It prints the test AUROC, the training input's range on the network's scale and the
fit time. The data are read from ``$GRADIENT_AD_DATA/fashion_mnist`` (default:
``../shared/data`` beside the repository).

Example::

    OMP_NUM_THREADS=1 python experiments/scaler_images.py --seeds 0 1 2
"""

import argparse
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gradient_ad import GradientAnomalyDetector
from gradient_ad.datasets import load_idx, split_official

N_TRAIN = 1000
EPOCHS = 3


def _data_dir():
    default = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    return Path(os.environ.get("GRADIENT_AD_DATA", default)) / "fashion_mnist"


def _inputs(split):
    """(name, make the model, training input, test input) of each preparation."""
    X_train, X_test = split.X_train[:N_TRAIN], split.X_test
    flat_train, flat_test = X_train.reshape(len(X_train), -1), X_test.reshape(len(X_test), -1)
    pixels = X_train / 255.0
    mean, std = pixels.mean(), pixels.std()

    def detector(pretext, seed, **kwargs):
        return GradientAnomalyDetector(
            pretext=pretext, max_epochs=EPOCHS, early_stopping=False, random_state=seed, **kwargs
        )

    return [
        ("raw uint8 images", lambda p, s: detector(p, s), X_train, X_test),
        (
            "StandardScaler (per pixel)",
            lambda p, s: make_pipeline(StandardScaler(), detector(p, s, input_shape=(28, 28))),
            flat_train,
            flat_test,
        ),
        (
            "one mean and std for all pixels",
            lambda p, s: detector(p, s),
            ((pixels - mean) / std).astype(np.float32),
            ((X_test / 255.0 - mean) / std).astype(np.float32),
        ),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args(argv)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}")
    X_train, y_train, X_test, y_test = load_idx(_data_dir())
    aurocs = {}
    for seed in args.seeds:
        split = split_official(X_train, y_train, X_test, y_test, normal=0, seed=seed)
        for pretext in ("rotation", None):
            for name, make, train, test in _inputs(split):
                model = make(pretext, seed)
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # 3 epochs: the short-training warning
                    model.fit(train)
                seconds = time.perf_counter() - start
                auroc = roc_auc_score(split.y_test, -model.score_samples(test))
                aurocs.setdefault((pretext, name), []).append(auroc)
                low, high = (model[-1] if hasattr(model, "steps") else model).input_range_
                print(
                    f"seed {seed}, pretext={pretext!s:8}, {name:32}: AUROC {auroc:.3f}, "
                    f"input range [{low:.2f}, {high:.2f}], fit {seconds:.0f} s",
                    flush=True,
                )
    print(f"mean test AUROC over seeds {args.seeds}:")
    for (pretext, name), values in aurocs.items():
        print(f"  pretext={pretext!s:8}, {name:32}: {np.mean(values):.3f}")


if __name__ == "__main__":
    main()
