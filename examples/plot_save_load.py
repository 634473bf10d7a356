"""
=========================
Saving and loading models
=========================

A fitted detector is saved with :func:`joblib.dump` (or :mod:`pickle`) and loaded with
:func:`gradient_ad.load`, which checks the file and the checksum of the weights and
gives a clear error for a damaged file. The loaded detector scores exactly as the
original did. Models trained on a GPU load on a CPU-only machine. Loading runs pickled
code, so only load files you trust.
"""

# %%
import os
import tempfile

import joblib
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

import gradient_ad
from gradient_ad import GradientAnomalyDetector

X, y = load_digits(return_X_y=True)
images = X.reshape(-1, 8, 8) / 16
# A short fit (saving is the point here): no early stopping, so no warning that 20
# epochs ran out before it stopped training.
detector = GradientAnomalyDetector(max_epochs=20, early_stopping=False, random_state=0)
detector.fit(images[y == 0])

with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "detector.joblib")
    joblib.dump(detector, path)
    print(f"saved {os.path.getsize(path) / 1024:.0f} KiB")
    loaded = gradient_ad.load(path)

before = detector.score_samples(images)
after = loaded.score_samples(images)
print("identical scores:", np.array_equal(before, after))
print("identical predictions:", np.array_equal(detector.predict(images), loaded.predict(images)))

# %%
# A damaged file is refused
# -------------------------
# Cut the file short and try to load it again.
with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "detector.joblib")
    joblib.dump(detector, path)
    with open(path, "r+b") as file:
        file.truncate(os.path.getsize(path) // 2)
    try:
        gradient_ad.load(path)
    except ValueError as error:
        print("ValueError:", error)

# %%
# Scores before and after
# -----------------------
fig, ax = plt.subplots(figsize=(5, 4.5), layout="constrained")
ax.scatter(before, after, s=8, c=np.where(y == 0, "tab:blue", "tab:orange"))
ax.plot([before.min(), before.max()], [before.min(), before.max()], "k:", linewidth=1)
ax.set_xlabel("score_samples, original detector")
ax.set_ylabel("score_samples, loaded detector")
ax.set_title("zeros (blue) and other digits (orange)")
plt.show()
