"""
==========================
Anomaly maps on images
==========================

:func:`~gradient_ad.anomaly_maps` splits a sample's anomaly score into per-pixel
contributions: the reconstruction map (the squared error of each pixel, which sums to
the sample's reconstruction error) and the gradient map (an integrated-gradients
attribution of the gradient term). Here a detector trained on zeros looks at zeros with
a planted bright patch, and at other digits; last, the maps of a model with a combined
score (``pretext='rotation'``), which explain that model's own score.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from gradient_ad import GradientAnomalyDetector, anomaly_maps
from gradient_ad.plotting import plot_anomaly_maps

X, y = load_digits(return_X_y=True)
images = X.reshape(-1, 8, 8) / 16
zeros = images[y == 0]
detector = GradientAnomalyDetector(max_epochs=60, random_state=0)
detector.fit(zeros[:-10])  # the last ten zeros are kept for testing

# %%
# Zeros with a planted patch
# --------------------------
# Three held-out zeros, each with a 2 x 2 white patch where zeros are dark, and one
# untouched zero for comparison. The reconstruction map marks the patch in every row:
# the network, having seen only zeros, does not reproduce it. The gradient map is
# noisier, because the gradient term depends on the whole image: it marks the pixels
# whose departure from the reconstruction turns the sample's weight gradient away from
# the familiar direction (red) or towards it (blue). The untouched zero has small maps
# of both kinds.
patched = zeros[-4:].copy()
for image, (row, col) in zip(patched, [(0, 0), (3, 3), (6, 6)]):
    image[row : row + 2, col : col + 2] = 1.0
fig = plot_anomaly_maps(detector, patched)
fig.suptitle("zeros with a planted patch (last row: untouched)")
plt.show()

# %%
# Other digits
# ------------
# Whole digits of other classes: the maps show the strokes a zero would not have.
fig = plot_anomaly_maps(detector, images[[1, 2, 3, 7]])
fig.suptitle("other digits")
plt.show()

# %%
# The maps add up
# ---------------
# The reconstruction map sums to the first term of ``score_components``; the gradient
# map sums to the gradient term of the image minus that of its reconstruction.
maps = anomaly_maps(detector, patched)
error, alignment = detector.score_components(patched)
_, alignment_of_reconstruction = detector.score_components(maps.reconstruction)
print("reconstruction map sums:", np.round(maps.reconstruction_map.sum(axis=(1, 2)), 4))
print("reconstruction errors:  ", np.round(error, 4))
print("gradient map sums:      ", np.round(maps.gradient_map.sum(axis=(1, 2)), 4))
print(
    "T(x) - T(r):            ",
    np.round(-detector.beta_ * (alignment - alignment_of_reconstruction), 4),
)

# %%
# A model with a combined score
# -----------------------------
# With ``pretext='rotation'`` the score is no longer GradCon's: it is the sum of five
# standardised terms (``detector.combined_``), in which ``beta`` plays no part. Its maps
# are those of its own terms: the reconstruction error's and the neighbour distance's
# parts of the score, each split over the pixels by their share of the term (red
# raises the score, blue lowers it). The alignment and the two rotation terms depend
# on the whole image and get no map; ``unmapped_terms`` names them and
# ``unmapped_contributions`` gives their parts, so that everything adds up to the
# score.
pretext_detector = GradientAnomalyDetector(
    pretext="rotation", max_epochs=20, early_stopping=False, random_state=0
)
pretext_detector.fit(zeros[:-10])
fig = plot_anomaly_maps(pretext_detector, patched)
fig.suptitle("pretext model: zeros with a planted patch (last row: untouched)")
plt.show()

maps = anomaly_maps(pretext_detector, patched)
mapped = sum(maps[key].sum(axis=(1, 2)) for key in maps.map_names)
print("terms without a map:", maps.unmapped_terms)
print("maps + unmapped parts:", np.round(mapped + maps.unmapped_contributions.sum(1), 3))
print("minus score_samples:  ", np.round(-pretext_detector.score_samples(patched), 3))
