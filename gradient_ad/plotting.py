"""Pictures of anomaly maps (needs matplotlib, which is imported only when drawing)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from ._inputs import to_samples
from ._maps import anomaly_maps

if TYPE_CHECKING:  # matplotlib is imported only when drawing
    from matplotlib.figure import Figure

    from ._detector import GradientAnomalyDetector

__all__ = ["plot_anomaly_maps"]


def _pyplot():
    # Imported when drawing, not with the module: matplotlib is an extra.
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        # gradient-ad is not on a package index yet: name the extra as a clone uses it.
        raise ImportError(
            'plot_anomaly_maps needs matplotlib (the "plot" extra): pip install '
            'matplotlib, or pip install ".[plot]" in a clone of gradient-ad'
        ) from error
    return plt


def plot_anomaly_maps(
    detector: GradientAnomalyDetector,
    X: ArrayLike,
    *,
    n_steps: int = 32,
    maps: Mapping[str, np.ndarray] | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Draw each sample beside its reconstruction and its two anomaly maps.

    Images get one row per sample and four panels: the input, the reconstruction,
    the reconstruction map and the gradient map (summed over channels). The colour
    scale of each map is shared by all rows, so rows can be compared; the gradient
    map uses a diverging scale centred on zero (red raises the anomaly score, blue
    lowers it). Tables get one bar chart per sample with both maps per feature.

    Parameters
    ----------
    detector : GradientAnomalyDetector
        A fitted detector.
    X : array-like of the same layout as in ``fit``
        A few samples to draw.
    n_steps : int, default=32
        Passed to :func:`~gradient_ad.anomaly_maps`.
    maps : Bunch, default=None
        The result of ``anomaly_maps(detector, X)``, if already computed.
    figsize : tuple of float, default=None
        Figure size in inches; by default it grows with the number of samples.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure, with one row of axes per sample.

    See Also
    --------
    gradient_ad.anomaly_maps : The maps themselves.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_digits
    >>> from gradient_ad import GradientAnomalyDetector
    >>> from gradient_ad.plotting import plot_anomaly_maps
    >>> X, y = load_digits(return_X_y=True)
    >>> images = X.reshape(-1, 8, 8) / 16
    >>> detector = GradientAnomalyDetector(max_epochs=5, random_state=0)
    >>> fig = plot_anomaly_maps(detector.fit(images[y == 0]), images[:3])
    >>> len(fig.axes)  # 3 rows of 4 panels, and 2 colour bars
    14
    """
    plt = _pyplot()
    if maps is None:
        maps = anomaly_maps(detector, X, n_steps=n_steps)
    samples = to_samples(detector, X, reset=False)
    shape = detector.input_shape_
    n_samples = len(samples)
    as_samples = {
        key: np.asarray(maps[key]).reshape(n_samples, *shape)
        for key in ("reconstruction", "reconstruction_map", "gradient_map")
    }
    if len(shape) == 1:
        names = getattr(detector, "feature_names_in_", None)
        return _plot_table(plt, samples, as_samples, names, figsize)
    return _plot_images(plt, samples, as_samples, figsize)


def _plot_images(plt, samples, maps, figsize):
    n_samples = len(samples)
    fig, axes = plt.subplots(
        n_samples,
        4,
        figsize=figsize or (8, 2 * n_samples + 0.5),
        squeeze=False,
        layout="constrained",
    )
    reconstruction_map = maps["reconstruction_map"].sum(axis=1)
    gradient_map = maps["gradient_map"].sum(axis=1)
    reconstruction_top = reconstruction_map.max() or 1.0
    gradient_top = np.abs(gradient_map).max() or 1.0
    for i in range(n_samples):
        axes[i, 0].imshow(_displayable(samples[i]), cmap="gray", vmin=0, vmax=1)
        axes[i, 1].imshow(_displayable(maps["reconstruction"][i]), cmap="gray", vmin=0, vmax=1)
        errors = axes[i, 2].imshow(
            reconstruction_map[i], cmap="magma", vmin=0, vmax=reconstruction_top
        )
        gradients = axes[i, 3].imshow(
            gradient_map[i], cmap="RdBu_r", vmin=-gradient_top, vmax=gradient_top
        )
    for ax, title in zip(
        axes[0], ["input", "reconstruction", "reconstruction map", "gradient map"]
    ):
        ax.set_title(title)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for image, column in [(errors, 2), (gradients, 3)]:
        bar = fig.colorbar(image, ax=axes[:, column], location="bottom", shrink=0.9)
        bar.ax.tick_params(labelsize="small", labelrotation=45)
    return fig


def _displayable(image):
    """``(C, H, W)`` to what ``imshow`` draws: grey for one channel, RGB for three."""
    if len(image) == 3:
        return np.clip(np.moveaxis(image, 0, -1), 0, 1)
    return image.mean(axis=0)


def _plot_table(plt, samples, maps, names, figsize):
    n_samples, n_features = samples.shape
    fig, axes = plt.subplots(
        n_samples,
        1,
        figsize=figsize or (max(6, 0.25 * n_features), 2 * n_samples + 0.5),
        squeeze=False,
        sharex=True,
        layout="constrained",
    )
    positions = np.arange(n_features)
    for i, ax in enumerate(axes[:, 0]):
        ax.bar(positions - 0.2, maps["reconstruction_map"][i], 0.4, label="reconstruction map")
        ax.bar(positions + 0.2, maps["gradient_map"][i], 0.4, label="gradient map")
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_ylabel(f"sample {i}")
    axes[0, 0].legend(loc="upper right")
    axes[-1, 0].set_xlabel("feature")
    if names is not None:
        axes[-1, 0].set_xticks(positions, names, rotation=90)
    return fig
