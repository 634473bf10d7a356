"""
=======================================
Pipeline and grid search over ``beta``
=======================================

The detector is a scikit-learn estimator, so it sits in a
:class:`~sklearn.pipeline.Pipeline` behind a scaler and its parameters can be tuned
with :class:`~sklearn.model_selection.GridSearchCV`. Grid search needs a few labelled
anomalies to score candidates: with labels ``+1`` (inlier) and ``-1`` (outlier),
``scoring="roc_auc"`` ranks candidates by the AUROC of ``decision_function``.

Here the digits are a table of 64 pixel features. The training data are eights with 15 %
of other digits mixed in; the search picks ``beta`` (the weight of the gradient term)
and ``alpha`` (the weight of the gradient constraint in training), and the chosen
model is checked on a test set the search never saw.
"""

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from gradient_ad import GradientAnomalyDetector

X, y = load_digits(return_X_y=True)
rng = np.random.RandomState(0)
eights = np.flatnonzero(y == 8)
n_others = round(0.15 / 0.85 * len(eights))  # 15 % of all rows
others = rng.choice(np.flatnonzero(y != 8), n_others, replace=False)
rows = np.concatenate([eights, others])
labels = np.where(y[rows] == 8, 1, -1)  # +1 inlier, -1 outlier
X_train, X_test, y_train, y_test = train_test_split(
    X[rows], labels, test_size=0.5, stratify=labels, random_state=0
)

# 30 epochs keep the example quick; each of the search's fits would warn that it ran
# them all before early stopping stopped it.
warnings.filterwarnings("ignore", "Training ran all max_epochs")
pipeline = make_pipeline(
    MinMaxScaler(),
    GradientAnomalyDetector(max_epochs=30, random_state=0),
)
grid = {
    "gradientanomalydetector__alpha": [0.0, 0.03],
    "gradientanomalydetector__beta": [0.0, 0.03, 0.12, 0.5, "auto"],
}
search = GridSearchCV(
    pipeline, grid, scoring="roc_auc", cv=StratifiedKFold(3, shuffle=True, random_state=0)
)
search.fit(X_train, y_train)
print("best parameters:", search.best_params_)
print(f"cross-validated AUROC: {search.best_score_:.3f}")
print(f"test AUROC of the refitted best model: {search.score(X_test, y_test):.3f}")

# %%
# Cross-validated AUROC of every candidate
# ----------------------------------------
# ``beta=0`` is the reconstruction error alone; ``beta="auto"`` weighs both terms
# equally on held-out training data; the error bars are the spread over the
# three folds. Which candidate wins depends on the data (its scale above all, since
# ``beta`` is not scale-free), which is why a search is worth its cost when a few
# labelled anomalies are at hand.
results = search.cv_results_
betas = grid["gradientanomalydetector__beta"]
fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
for shift, alpha in zip([-0.05, 0.05], grid["gradientanomalydetector__alpha"]):
    mask = results["param_gradientanomalydetector__alpha"] == alpha
    ax.errorbar(
        np.arange(len(betas)) + shift,
        results["mean_test_score"][mask],
        yerr=results["std_test_score"][mask],
        marker="o",
        capsize=3,
        label=f"alpha = {alpha}",
    )
ax.set_xticks(np.arange(len(betas)), [str(beta) for beta in betas])
ax.set_xlabel("beta")
ax.set_ylabel("cross-validated AUROC")
ax.legend()
plt.show()
