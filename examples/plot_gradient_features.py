"""
======================================================
Gradient features: the representation behind GradCon
======================================================

GradCon scores a sample by one number taken from its backpropagated gradient: the
cosine with the reference gradient learnt in training.
:class:`~gradient_ad.GradientFeatures` exposes more of that gradient as features, one
row per sample: the reconstruction error, and for each constrained decoder tensor the
cosine with its reference, the log of the gradient's norm and a few random
projections of the gradient. Any scikit-learn estimator can then work on them.

This example trains on one digit class of scikit-learn's digits, draws a 2-D
embedding of the representation of normal and anomalous test images, and compares
detectors built on it with GradCon's own score and IsolationForest on the pixels.
"""

# %%
# One-class split
# ---------------
# Digit 3 is normal: 80 % of its images train; the rest, plus as many images of the
# other digits, are the test set.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from gradient_ad import GradientAnomalyDetector, GradientFeatures

X, y = load_digits(return_X_y=True)
X = X / 16
rng = np.random.RandomState(0)
normal = rng.permutation(np.flatnonzero(y == 3))
n_train = int(0.8 * len(normal))
others = rng.choice(np.flatnonzero(y != 3), len(normal) - n_train, replace=False)
train = X[normal[:n_train]]
test = np.concatenate([X[normal[n_train:]], X[others]])
is_anomaly = np.r_[np.zeros(len(normal) - n_train), np.ones(len(others))]

# %%
# The representation
# ------------------
# ``detector`` holds the training settings; ``GradientFeatures`` trains it with
# GradCon exactly as the detector would, then transforms.
features = GradientFeatures(
    GradientAnomalyDetector(max_epochs=60, random_state=0), n_projections=4, random_state=0
)
Z_train = features.fit(train).transform(train)
Z_test = features.transform(test)
print(f"{Z_test.shape[1]} features:", ", ".join(features.get_feature_names_out()[:4]), "...")

# %%
# A 2-D embedding
# ---------------
# PCA of the standardised features (scaled on the training rows).
scaler = StandardScaler().fit(Z_train)
embedding = PCA(n_components=2, random_state=0).fit(scaler.transform(Z_train))
points = embedding.transform(scaler.transform(Z_test))
fig, ax = plt.subplots(figsize=(5.5, 4.5))
for label, name, color in ((0, "digit 3 (normal)", "tab:blue"), (1, "other digits", "tab:red")):
    chosen = is_anomaly == label
    ax.scatter(*points[chosen].T, s=12, alpha=0.7, color=color, label=name)
ax.set_xlabel("first principal component")
ax.set_ylabel("second principal component")
ax.set_title("Gradient representation of the test images")
ax.legend()
fig.tight_layout()

# %%
# Detectors on the representation
# --------------------------------
# Anomaly scores (higher = more abnormal): GradCon's own score from the fitted
# detector, a Gaussian (Mahalanobis) model and an IsolationForest of the standardised
# training features, and IsolationForest on the raw pixels.
detector = features.detector_
gaussian = LedoitWolf().fit(scaler.transform(Z_train))
forest_features = IsolationForest(random_state=0).fit(scaler.transform(Z_train))
forest_pixels = IsolationForest(random_state=0).fit(train)
scores = {
    "GradCon score": -detector.score_samples(test),
    "reconstruction error": Z_test[:, 0],
    "Mahalanobis on features": gaussian.mahalanobis(scaler.transform(Z_test)),
    "IsolationForest on features": -forest_features.score_samples(scaler.transform(Z_test)),
    "IsolationForest on pixels": -forest_pixels.score_samples(test),
}
aurocs = {name: roc_auc_score(is_anomaly, score) for name, score in scores.items()}
for name, auroc in aurocs.items():
    print(f"{name:30s} AUROC {auroc:.3f}")

fig, ax = plt.subplots(figsize=(6, 3))
ax.barh(list(aurocs), list(aurocs.values()), color="tab:gray")
ax.set_xlim(0.5, 1.0)
ax.set_xlabel("test AUROC (digit 3 normal)")
ax.invert_yaxis()
fig.tight_layout()
plt.show()

# %%
# One class and one seed say little: ``experiments/feature_detectors.py`` runs these
# detectors over every class, the ODDS tables and several seeds, and
# :doc:`/benchmarks` reports what it measured.
