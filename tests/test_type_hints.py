"""Type hints on the public API: present on every parameter and return, and resolvable
(``gradient_ad/py.typed`` tells type checkers to read them)."""

import inspect
import typing

import pytest

import gradient_ad
from gradient_ad import GradientAnomalyDetector, GradientFeatures, datasets, plotting

PUBLIC_CALLABLES = [
    GradientAnomalyDetector.fit,
    GradientAnomalyDetector.score_components,
    GradientAnomalyDetector.score_samples,
    GradientAnomalyDetector.decision_function,
    GradientAnomalyDetector.predict,
    GradientFeatures.fit,
    GradientFeatures.transform,
    GradientFeatures.get_feature_names_out,
    gradient_ad.load,
    gradient_ad.anomaly_maps,
    plotting.plot_anomaly_maps,
    datasets.load_idx_file,
    datasets.load_idx,
    datasets.load_cifar10,
    datasets.load_table,
    datasets.load_digits_images,
    datasets.make_canvas_digits,
    datasets.split_official,
    datasets.split_pooled_folds,
    datasets.split_table,
]


@pytest.mark.parametrize("function", PUBLIC_CALLABLES, ids=lambda f: f.__qualname__)
def test_public_api_is_annotated_and_the_hints_resolve(function):
    # plotting names matplotlib's Figure and the detector for type checkers only.
    from matplotlib.figure import Figure

    hints = typing.get_type_hints(
        function, localns={"Figure": Figure, "GradientAnomalyDetector": GradientAnomalyDetector}
    )
    parameters = [p for p in inspect.signature(function).parameters if p != "self"]
    assert [p for p in parameters if p not in hints] == []
    assert "return" in hints
