"""
=============================================
Choosing a threshold with ``contamination``
=============================================

``predict`` labels a sample an outlier when ``decision_function`` is negative, that is
when ``score_samples`` falls below ``offset_``. ``contamination`` sets ``offset_``:

- ``'auto'`` (default): Tukey's fence on a held-out slice of the training data, for
  training data that is (nearly) all normal;
- a float: the expected share of outliers in the training data, whose scores are cut
  at that percentile.

The detector is trained once per setting on the same zeros; the threshold moves, the
scores do not.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import precision_score, recall_score

from gradient_ad import GradientAnomalyDetector

X, y = load_digits(return_X_y=True)
images = X.reshape(-1, 8, 8) / 16
rng = np.random.RandomState(0)
zeros = rng.permutation(np.flatnonzero(y == 0))
train = images[zeros[:130]]
others = rng.choice(np.flatnonzero(y != 0), 48, replace=False)
test = np.concatenate([images[zeros[130:]], images[others]])
is_outlier = np.r_[np.zeros(len(zeros) - 130), np.ones(len(others))]

settings = ["auto", 0.01, 0.05, 0.2]
detectors = {
    c: GradientAnomalyDetector(max_epochs=60, contamination=c, random_state=0).fit(train)
    for c in settings
}
for c, detector in detectors.items():
    flagged = detector.predict(test) == -1
    print(
        f"contamination={c!s:5s} offset_={detector.offset_:+.4f}  "
        f"flags {flagged[is_outlier == 0].mean():5.1%} of new zeros, "
        f"{flagged[is_outlier == 1].mean():5.1%} of other digits "
        f"(precision {precision_score(is_outlier, flagged):.2f}, "
        f"recall {recall_score(is_outlier, flagged):.2f})"
    )

# %%
# Scores and thresholds
# ---------------------
# The same ``random_state`` gives the same network for every setting, so all four
# share one set of scores; only ``offset_`` differs.
scores = detectors["auto"].score_samples(test)
assert all(np.allclose(d.score_samples(test), scores) for d in detectors.values())
fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
bins = np.histogram_bin_edges(scores, bins=30)
ax.hist(scores[is_outlier == 0], bins, alpha=0.6, label="new zeros")
ax.hist(scores[is_outlier == 1], bins, alpha=0.6, label="other digits")
for (c, detector), style in zip(detectors.items(), ["-", "--", "-.", ":"]):
    ax.axvline(
        detector.offset_,
        color="black",
        linestyle=style,
        label=f"offset_ (contamination={c})",
    )
ax.set_xlabel("score_samples (higher = more normal)")
ax.set_ylabel("images")
ax.legend(fontsize="small")
plt.show()
