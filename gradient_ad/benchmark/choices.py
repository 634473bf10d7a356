"""What the benchmark can run, by name: data sets, methods, defaults.

Names only, without imports, so that the command line builds its parser (and answers
``--help``) before torch and scikit-learn load.
"""

DATASETS = ("digits", "fashion-mnist", "mnist", "cifar10", "odds")
GRADCON_SCORES = (
    "gradcon",
    "gradcon_reconstruction",
    "gradcon_gradient",
    "gradcon_standardized",
)
PRETEXT_SCORES = (
    "pretext",
    "pretext_reconstruction",
    "pretext_alignment",
    "pretext_rotation_loss",
    "pretext_rotation_gradient",
    "pretext_neighbours",
)
# Tables: score='combined' (GradCon's two terms and the neighbour term, weighted on
# synthetic outlier rows) and each of its terms alone, from one network.
COMBINED_SCORES = (
    "combined",
    "combined_reconstruction",
    "combined_alignment",
    "combined_neighbours",
)
CLASSIC = ("isolation_forest", "one_class_svm", "knn", "lof")
# The printed summary has one table per group: each fits in 100 characters.
METHOD_GROUPS = (
    (*GRADCON_SCORES, "autoencoder"),
    PRETEXT_SCORES[:3],
    PRETEXT_SCORES[3:],
    COMBINED_SCORES,
    CLASSIC,
)
METHODS = tuple(method for group in METHOD_GROUPS for method in group)
# Methods with a fit of their own; the others score a network fitted for one of these.
FITTED = ("gradcon", "autoencoder", "pretext", "combined", *CLASSIC)
# Training epochs of the pretext detector: about 2 minutes a Fashion-MNIST class on one
# core (experiments/pretext_design.py measured the choice on validation folds).
PRETEXT_EPOCHS = 10
# README's rows are means over three seeds; the command reproduces them by default.
DEFAULT_SEEDS = (0, 1, 2)
# Image data sets whose tasks hold flat rows: the pretext rotates them as these images.
FLAT_IMAGES = {"digits": (8, 8)}
