"""The settings checks that need no data (gradient_ad._settings), shared by fit and by
the benchmark command. fit's whole contract on bad parameters: test_inputs.py."""

import numpy as np
import pytest
import torch
from skorch.callbacks import EarlyStopping, ProgressBar

from gradient_ad import GradientAnomalyDetector
from gradient_ad._settings import check_settings, python
from gradient_ad.benchmark.cli import check_detector_params

# One case per check that check_settings runs (not expressible as a
# _parameter_constraints entry), with the error it gives.
SETTINGS_CASES = [
    (dict(conv_channels=(0, 4)), ValueError, "conv_channels must be a non-empty tuple"),
    (dict(hidden_sizes=(8, 0)), ValueError, "hidden_sizes must be a non-empty tuple"),
    (dict(net_params={"train_split": None}), ValueError, "use early_stopping"),
    (dict(net_params={"batch_size": 0}), ValueError, r"net_params\['batch_size'\]"),
    (dict(callbacks=["progress_bar"]), TypeError, "callbacks must be skorch Callback"),
    (dict(callbacks=[("early_stopping", EarlyStopping())]), ValueError, "uses for its own"),
    (dict(device="gpu"), ValueError, "'gpu' is not a torch device"),
]
IDS = [str(params) for params, _, _ in SETTINGS_CASES]


@pytest.mark.parametrize("params, error, match", SETTINGS_CASES, ids=IDS)
def test_check_settings_refuses_each_setting(params, error, match):
    with pytest.raises(error, match=match):
        check_settings(GradientAnomalyDetector(**params))


@pytest.mark.parametrize("params, error, match", SETTINGS_CASES, ids=IDS)
def test_fit_and_the_benchmark_command_refuse_the_same_settings(params, error, match):
    # Both go through check_settings: a check added there reaches both.
    X = np.random.RandomState(0).rand(20, 4)
    with pytest.raises(error, match=match):
        GradientAnomalyDetector(max_epochs=1, **params).fit(X)
    with pytest.raises(error, match=match):
        check_detector_params(params)


def test_check_settings_returns_the_device_as_a_string():
    detector = GradientAnomalyDetector(
        device=torch.device("cpu"), hidden_sizes=(4, 2), callbacks=[("bar", ProgressBar())]
    )
    assert check_settings(detector) == "cpu"


def test_python_turns_numpy_scalars_into_python_numbers():
    value = python((np.int64(8), [np.float32(0.5)], "auto"))
    assert value == (8, [0.5], "auto")
    assert type(value[0]) is int and type(value[1][0]) is float
    assert python(np.bool_(True)) is True
