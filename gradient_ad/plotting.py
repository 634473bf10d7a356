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
    and the two maps of :func:`~gradient_ad.anomaly_maps` (summed over channels): the
    reconstruction map and the gradient map for a GradCon model, the reconstruction
    error's and the neighbour distance's maps for a model with a combined score. The
    colour scale of each map is shared by all rows, so rows can be compared; a map with
    negative values uses a diverging scale centred on zero (red raises the anomaly
    score, blue lowers it). Tables get one bar chart per sample with both maps per
    feature.

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
    keys = maps.get("map_names", ("reconstruction_map", "gradient_map"))
    as_samples = {
        key: np.asarray(maps[key]).reshape(n_samples, *shape) for key in ("reconstruction", *keys)
    }
    if len(shape) == 1:
        names = getattr(detector, "feature_names_in_", None)
        return _plot_table(plt, samples, as_samples, keys, names, figsize)
    return _plot_images(plt, samples, as_samples, keys, figsize)


def _plot_images(plt, samples, maps, keys, figsize):
    n_samples = len(samples)
    fig, axes = plt.subplots(
        n_samples,
        4,
        figsize=figsize or (8, 2 * n_samples + 0.5),
        squeeze=False,
        layout="constrained",
    )
    for i in range(n_samples):
        axes[i, 0].imshow(_displayable(samples[i]), cmap="gray", vmin=0, vmax=1)
        axes[i, 1].imshow(_displayable(maps["reconstruction"][i]), cmap="gray", vmin=0, vmax=1)
    for column, key in enumerate(keys, start=2):
        values = maps[key].sum(axis=1)
        top = np.abs(values).max() or 1.0
        # GradCon's reconstruction map never lowers the score: a sequential scale; the
        # others are signed.
        signed = key != "reconstruction_map"
        scale = {"cmap": "RdBu_r"} if signed else {"cmap": "magma", "vmin": 0}
        scale = {"vmin": -top, "vmax": top, **scale}
        for i in range(n_samples):
            image = axes[i, column].imshow(values[i], **scale)
        bar = fig.colorbar(image, ax=axes[:, column], location="bottom", shrink=0.9)
        bar.ax.tick_params(labelsize="small", labelrotation=45)
    titles = ["input", "reconstruction", *(_title(key) for key in keys)]
    for ax, title in zip(axes[0], titles):
        ax.set_title(title)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def _title(key):
    """A map's panel title: ``'neighbour_distance_map'`` -> ``'neighbour distance map'``."""
    return key.replace("reconstruction_error_map", "reconstruction map").replace("_", " ")


def _displayable(image):
    """``(C, H, W)`` to what ``imshow`` draws: grey for one channel, RGB for three."""
    if len(image) == 3:
        return np.clip(np.moveaxis(image, 0, -1), 0, 1)
    return image.mean(axis=0)


def _plot_table(plt, samples, maps, keys, names, figsize):
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
        for offset, key in zip((-0.2, 0.2), keys):
            ax.bar(positions + offset, maps[key][i], 0.4, label=_title(key))
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_ylabel(f"sample {i}")
    axes[0, 0].legend(loc="upper right")
    axes[-1, 0].set_xlabel("feature")
    if names is not None:
        axes[-1, 0].set_xticks(positions, names, rotation=90)
    return fig
