"""
======================================================
Which way up? The rotation pretext on one-class digits
======================================================

With ``pretext='rotation'`` the detector's network also learns to tell which of the
four 90-degree rotations was applied to a training image. Trained on one class only, it
knows that class's upright orientation; shown an image of another class, it is unsure
how the image was turned, and its rotation loss is large. The score adds that loss to
the reconstruction error, GradCon's alignment and the distance to the nearest training
images, each standardised on held-out normal images (see :ref:`user_guide`).

Here 7 is the normal digit: a 7 turned by 90, 180 or 270 degrees does not look like a
7, so the task is learnt well. The figure shows, for a held-out 7 and for an image of
another digit, the probability the network gives to the rotation actually applied. The
7 is read with certainty whichever way it is turned (p = 1.00 in all four). The other
digit is read less surely: its rotation is still the most probable answer every time,
but only at p = 0.61 upright and 0.76 turned by 180 degrees (0.96 and 0.93 at 90 and
270 degrees). The rotation loss averages the four copies, so that doubt is enough to
set the anomaly apart; an anomaly need not be misread in every rotation.
"""

# %%
# One-class split and fit
# -----------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_auc_score

from gradient_ad import GradientAnomalyDetector
from gradient_ad.datasets import load_digits_images, split_pooled_folds

images, y = load_digits_images()
normal_class = 7
# Three fifths of the 7s to train; a held-out fifth of them and as many other digits to
# test (the Fashion-MNIST protocol of the benchmarks).
split = split_pooled_folds(images, y, normal=normal_class, seed=0)
train, test, is_anomaly = split.X_train, split.X_test, split.y_test

detector = GradientAnomalyDetector(
    pretext="rotation", max_epochs=30, early_stopping=False, random_state=0
)
detector.fit(train)

# %%
# Every term, and the combined score
# ----------------------------------
# ``score_components`` returns a ``ScoreComponents``: every per-sample term by name,
# with its direction in ``.higher_is_anomalous`` (here the alignment is the one term
# where higher is more normal, so it is negated below); the anomaly score is the
# opposite of ``score_samples``.
components = detector.score_components(test)
scores = {
    "combined (score_samples)": -detector.score_samples(test),
    "reconstruction error": components.reconstruction_error,
    "GradCon alignment": -components.alignment,
    "rotation loss": components.rotation_loss,
    "rotation gradient (log norm)": components.log_rotation_gradient_norm,
    "neighbour distance": components.neighbour_distance,
}
for name, score in scores.items():
    print(f"{name:30s} AUROC {roc_auc_score(is_anomaly, score):.3f}")

# %%
# What each rotation scores
# -------------------------
# The probability of the applied rotation, for a held-out normal image and an anomaly:
# certain in every rotation for the 7, less sure for the other digit in some rotations.
examples = {
    "held-out 7 (normal)": test[is_anomaly == 0][0],
    "another digit (anomaly)": test[is_anomaly == 1][0],
}
fig, axes = plt.subplots(2, 4, figsize=(8, 4.6))
for row, (title, image) in enumerate(examples.items()):
    probabilities = detector.rotation_probabilities(image[None])
    for r in range(4):
        ax = axes[row, r]
        ax.imshow(np.rot90(image, r), cmap="gray_r")
        ax.set_title(f"{90 * r} deg: p = {probabilities[0, r, r]:.2f}", fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    axes[row, 0].set_ylabel(title, fontsize=9)
fig.suptitle("Probability of the rotation actually applied")
fig.tight_layout()
plt.show()
