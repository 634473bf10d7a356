"""
========================================================
Grid search the one-class way: a labelled validation set
========================================================

The usual one-class setting: the training data are normal (here eights of
scikit-learn's digits), and a small labelled validation set, normal rows and a few
anomalies, chooses the settings. scikit-learn's
:class:`~sklearn.model_selection.PredefinedSplit` expresses it: rows marked ``-1`` are
only ever trained on, rows marked ``0`` form the one validation fold. With labels
``+1`` (normal) and ``-1`` (anomaly), ``scoring="roc_auc"`` ranks each candidate by the
AUROC of its ``decision_function`` on the validation rows.

``refit=False`` matters: the default ``refit=True`` would refit the best candidate on
every row given to the search, the validation anomalies included. The chosen
settings are fitted on the normal rows instead, and checked on a test set that the
search never saw.
"""

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, PredefinedSplit

from gradient_ad import GradientAnomalyDetector

X, y = load_digits(return_X_y=True)
X = X / 16  # features in [0, 1]
rng = np.random.RandomState(0)
eights = rng.permutation(np.flatnonzero(y == 8))
others = rng.permutation(np.flatnonzero(y != 8))
train = eights[:100]  # normal rows only
valid = np.concatenate([eights[100:137], others[:37]])  # labelled: half normal
test = np.concatenate([eights[137:], others[37:]])

X_search = np.concatenate([X[train], X[valid]])
y_search = np.concatenate([np.ones(len(train), int), np.where(y[valid] == 8, 1, -1)])
cv = PredefinedSplit(np.concatenate([np.full(len(train), -1), np.zeros(len(valid), int)]))

# 20 epochs keep the example quick; each fit would warn that it ran them all.
warnings.filterwarnings("ignore", "Training ran all max_epochs")
detector = GradientAnomalyDetector(max_epochs=20, random_state=0)
grid = {"alpha": [0.0, 0.03], "beta": [0.0, 0.03, 0.12, 0.5, "auto"]}
search = GridSearchCV(detector, grid, scoring="roc_auc", cv=cv, refit=False)
search.fit(X_search, y_search)
print("best parameters:", search.best_params_)
print(f"validation AUROC: {search.best_score_:.3f}")

# The chosen settings, fitted on the normal rows only.
best = clone(detector).set_params(**search.best_params_).fit(X[train])
test_auroc = roc_auc_score(y[test] == 8, best.decision_function(X[test]))
print(f"test AUROC: {test_auroc:.3f}")

# %%
# Validation AUROC of every candidate
# -----------------------------------
# ``beta=0`` is the reconstruction error alone, ``beta="auto"`` weighs both terms by
# their spread on held-out normal rows. A scorer of your own works too, e.g. on
# ``score_samples``: ``scoring=lambda model, X, y: roc_auc_score(y == 1,
# model.score_samples(X))`` (``make_scorer`` cannot call ``score_samples``).
results = search.cv_results_
betas = grid["beta"]
fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
for shift, alpha in zip([-0.05, 0.05], grid["alpha"]):
    mask = results["param_alpha"] == alpha
    ax.plot(
        np.arange(len(betas)) + shift,
        results["mean_test_score"][mask],
        marker="o",
        label=f"alpha = {alpha}",
    )
ax.axhline(test_auroc, color="grey", linestyle=":", label="test, chosen settings")
ax.set_xticks(np.arange(len(betas)), [str(beta) for beta in betas])
ax.set_xlabel("beta")
ax.set_ylabel("AUROC")
ax.legend()
plt.show()
