"""Is the pretext detector's near-chance alignment on the 8 x 8 digits the pretext's doing?

Fits the paper's convolutional autoencoder on the digits as 8 x 8 images (the pretext
detector's input; the benchmark's GradCon column uses the MLP on flat rows), 10 epochs,
with and without ``pretext='rotation'``, and prints the test AUROC of the GradCon
alignment alone (and of the images' brightness, a trivial score) for classes 0 and 8.

Example::

    OMP_NUM_THREADS=1 python experiments/alignment_conv_digits.py
"""

import platform
import warnings

import torch
from sklearn.metrics import roc_auc_score

from gradient_ad import GradientAnomalyDetector
from gradient_ad.benchmark import tasks


def main():
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}")
    for task, seed, split in tasks("digits", classes=[0, 8], seeds=(0, 1)):
        row = {"brightness": roc_auc_score(split.y_test, -split.X_test.sum(1))}
        for pretext in (None, "rotation"):
            detector = GradientAnomalyDetector(
                input_shape=(8, 8), pretext=pretext, max_epochs=10, random_state=seed
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # 10 epochs: the budget warning
                detector.fit(split.X_train)
            alignment = detector.score_components(split.X_test)[1]
            row[f"alignment, pretext={pretext}"] = roc_auc_score(split.y_test, -alignment)
            row[f"restarts, pretext={pretext}"] = detector.n_restarts_
        print(f"class {task} seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))


if __name__ == "__main__":
    main()
