"""
=================================================
One-class digits: GradCon beside two baselines
=================================================

The paper's protocol on scikit-learn's digits: train on one digit class only, then
tell held-out images of that class from images of the nine other classes. GradCon's
score is compared with two baselines:

- the reconstruction error of the same trained network (GradCon's score without its
  gradient term, the paper's central ablation), and
- :class:`~sklearn.ensemble.IsolationForest` on the raw pixels.

On 8 x 8 digits with a short training run, the order of the three methods changes
from one normal class and one seed to the next; the :doc:`/benchmarks` page runs the
full protocol over all classes and several seeds.
"""

# %%
# One-class split
# ---------------
# The normal class is 8, one of the harder digits. 90 % of its images train the
# detector; the rest, plus as many images of other digits, form the test set.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.ensemble import IsolationForest
from sklearn.metrics import RocCurveDisplay, roc_auc_score

from gradient_ad import GradientAnomalyDetector

X, y = load_digits(return_X_y=True)
images = X.reshape(-1, 8, 8) / 16
rng = np.random.RandomState(0)
normal_class = 8

normal = rng.permutation(np.flatnonzero(y == normal_class))
n_train = int(0.9 * len(normal))
others = rng.choice(np.flatnonzero(y != normal_class), len(normal) - n_train, replace=False)
train = images[normal[:n_train]]
test = np.concatenate([images[normal[n_train:]], images[others]])
is_anomaly = np.r_[np.zeros(len(normal) - n_train), np.ones(len(others))]

# %%
# Fit and score
# -------------
# Anomaly scores are the opposite of ``score_samples`` (higher = more abnormal).
detector = GradientAnomalyDetector(max_epochs=60, random_state=0).fit(train)
reconstruction_error, alignment = detector.score_components(test)
forest = IsolationForest(random_state=0).fit(train.reshape(len(train), -1))

anomaly_scores = {
    "GradCon": -detector.score_samples(test),
    "reconstruction error (same network)": reconstruction_error,
    "IsolationForest": -forest.score_samples(test.reshape(len(test), -1)),
}
for name, score in anomaly_scores.items():
    print(f"{name:38s} AUROC {roc_auc_score(is_anomaly, score):.3f}")

# %%
# ROC curves and score histograms
# -------------------------------
# On the right, GradCon's scores of the held-out normal images and of the anomalies,
# with the threshold that ``predict`` uses (``contamination='auto'``).
fig, (roc_ax, hist_ax) = plt.subplots(1, 2, figsize=(11, 4.5), layout="constrained")
for name, score in anomaly_scores.items():
    RocCurveDisplay.from_predictions(is_anomaly, score, name=name, ax=roc_ax)
roc_ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
roc_ax.legend(loc="lower right", fontsize="small")
roc_ax.set_title(f"normal class {normal_class}: ROC curves")

gradcon = anomaly_scores["GradCon"]
bins = np.histogram_bin_edges(gradcon, bins=30)
hist_ax.hist(gradcon[is_anomaly == 0], bins, alpha=0.6, label="normal (held out)")
hist_ax.hist(gradcon[is_anomaly == 1], bins, alpha=0.6, label="other digits")
hist_ax.axvline(-detector.offset_, color="black", linestyle="--", label="threshold")
hist_ax.set_xlabel("GradCon anomaly score")
hist_ax.set_ylabel("images")
hist_ax.legend()
hist_ax.set_title("score histograms")
plt.show()

# %%
# The two terms of the score
# --------------------------
# Each test image in the plane of the score's two terms. Anomalies need gradients
# that point away from the reference (low alignment) and reconstruct worse.
fig, ax = plt.subplots(figsize=(6, 4.5), layout="constrained")
for label, name in [(0, "normal (held out)"), (1, "other digits")]:
    mask = is_anomaly == label
    ax.scatter(reconstruction_error[mask], alignment[mask], s=12, alpha=0.7, label=name)
ax.set_xlabel("reconstruction error")
ax.set_ylabel("gradient alignment")
ax.legend()
plt.show()
