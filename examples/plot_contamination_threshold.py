"""
=============================================
Choosing a threshold with ``contamination``
=============================================

``predict`` labels a sample an outlier when ``decision_function`` is negative, that is
when ``score_samples`` falls below ``offset_``. ``contamination`` sets ``offset_`` and
says how the training data were collected:

- ``'auto'`` (default): training data that are (nearly) all normal; one training, and
  Tukey's fence on a held-out slice of them for the threshold;
- a float: the expected share of unlabelled anomalies in the training data. Two
  short trainings rank the training rows, and the detector trains on all but the
  three shares that the second ranking finds most anomalous (``n_trimmed_``; at most
  half of the rows); the
  threshold is that percentile of all the training rows' scores, so ``predict`` flags
  that share of the training data.

Here zeros are normal, and a tenth of the training images are other digits that
nobody labelled.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score

from gradient_ad import GradientAnomalyDetector

X, y = load_digits(return_X_y=True)
images = X.reshape(-1, 8, 8) / 16
rng = np.random.RandomState(0)
zeros = rng.permutation(np.flatnonzero(y == 0))
others = rng.permutation(np.flatnonzero(y != 0))
# Training: 130 zeros and 14 unlabelled other digits (a tenth of the rows).
train = images[np.r_[zeros[:130], others[:14]]]
is_planted = np.r_[np.zeros(130, bool), np.ones(14, bool)]
# Test: the other 48 zeros and 48 new other digits.
test = np.concatenate([images[zeros[130:]], images[others[14:62]]])
is_outlier = np.r_[np.zeros(len(zeros) - 130), np.ones(48)]

detectors = {
    c: GradientAnomalyDetector(
        max_epochs=40, early_stopping=False, contamination=c, random_state=0
    ).fit(train)
    for c in ("auto", 0.1)
}
for c, detector in detectors.items():
    flagged_train = detector.predict(train) == -1
    auroc = roc_auc_score(is_outlier, -detector.score_samples(test))
    print(
        f"contamination={c!s:4s}: {detector.n_trimmed_:2d} training rows left out, "
        f"flags {flagged_train.mean():5.1%} of the training rows "
        f"({flagged_train[is_planted].sum()} of the 14 planted digits), "
        f"test AUROC {auroc:.3f}"
    )

# %%
# Scores and thresholds
# ---------------------
# With ``contamination=0.1`` the threshold sits at the training rows' tenth
# percentile: the planted digits mostly fall below it.
detector = detectors[0.1]
scores = detector.score_samples(train)
fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
bins = np.histogram_bin_edges(scores, bins=30)
ax.hist(scores[~is_planted], bins, alpha=0.6, label="training zeros")
ax.hist(scores[is_planted], bins, alpha=0.6, label="unlabelled other digits")
ax.axvline(detector.offset_, color="black", label="offset_ (contamination=0.1)")
ax.set_xlabel("score_samples of the training rows (higher = more normal)")
ax.set_ylabel("images")
ax.legend(fontsize="small")
plt.show()
