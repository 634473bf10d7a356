"""
=========================================
The combined score and its fitted weights
=========================================

``score='combined'`` sums every term the model has, each standardised on held-out
normal data, with weights fitted on that data: an image model's rotation terms weigh
how well the rotation head reads normal images, and a table model's terms weigh how
well each one tells held-out rows from synthetic outlier rows. This example fits both
kinds on scikit-learn's digits (eights are normal) and draws the weights the fits chose
(``combined_.weights``), beside each term's AUROC alone and the combined score's.
"""

import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from gradient_ad import GradientAnomalyDetector
from gradient_ad.datasets import load_digits_images

X, y = load_digits_images()  # 8 x 8 images in [0, 1]
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.5, stratify=y, random_state=0)
normal = X_train[y_train == 8]
is_anomaly = y_test != 8

with warnings.catch_warnings():
    # Short fits for the gallery: they run out of epochs, which is no news here.
    warnings.filterwarnings("ignore", message=".*max_epochs.*")
    images = GradientAnomalyDetector(pretext="rotation", max_epochs=10, random_state=0)
    images.fit(normal)
    table = GradientAnomalyDetector(score="combined", max_epochs=30, random_state=0)
    table.fit(normal.reshape(len(normal), -1))

fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), constrained_layout=True)
fig.suptitle("Fitted weights of the terms; on each bar, that term's AUROC alone")
for ax, detector, X_scored, title in (
    (axes[0], images, X_test, "images: pretext='rotation'"),
    (axes[1], table, X_test.reshape(len(X_test), -1), "rows: score='combined'"),
):
    weights = detector.combined_.weights
    components = detector.score_components(X_scored)
    alone = []
    for name in weights:
        sign = 1 if components.higher_is_anomalous[name] else -1
        alone.append(roc_auc_score(is_anomaly, sign * components.as_dict()[name]))
    combined = roc_auc_score(is_anomaly, -detector.score_samples(X_scored))
    positions = np.arange(len(weights))
    ax.bar(positions, list(weights.values()), color="tab:blue")
    for x, auroc in zip(positions, alone):
        ax.annotate(f"{auroc:.2f}", (x, 0.02), ha="center", color="white", fontsize=8)
    ax.set_xticks(positions, [n.replace("_", "\n") for n in weights], fontsize=7)
    ax.set_ylabel("fitted weight")
    ax.set_title(f"{title}\ncombined AUROC {combined:.3f}")
    print(title, {n: round(w, 2) for n, w in weights.items()}, f"AUROC {combined:.3f}")
plt.show()

# %%
# On the images the rotation head reads the eights' rotations with a certainty of
# ``combined_.reliability_`` (an 8 looks much the same turned by 180 degrees): its two
# terms weigh that much, the others 1, and the reconstruction error and the neighbour
# distance lose their dependence on how much detail an image holds
# (``combined_.complexity_coefficients_``). The image weights do not test GradCon's
# terms: the alignment, weak alone here, still weighs 1. On the rows, the neighbour
# distance weighs
# most and the alignment least: ``combined_.separations_`` (one row per family:
# permuted columns, uniform draws, noise, rows pulled towards the mean, pushed away
# from it) shows how each term told held-out rows from each kind of synthetic row.
# Rows pulled towards the mean look *more* normal to every term (AUROC near 0), which
# is why a term's weight is its mean separation over all the families.
print("reliability of the rotation terms:", round(images.combined_.reliability_, 3))
print("separations (families x terms):")
print(np.round(table.combined_.separations_, 2))
