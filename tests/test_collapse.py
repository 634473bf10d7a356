"""A network collapsed to one output is detected, restarted, and never returned silently."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from torch import nn

from gradient_ad import GradientAnomalyDetector, MLPAutoencoder
from gradient_ad._collapse import collapse_statistics, is_collapsed, kaiming_init
from gradient_ad.datasets import make_canvas_digits


class _Constant(nn.Module):
    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, x):
        return torch.full_like(x, self.value)


def test_collapse_statistics_of_a_constant_and_the_identity():
    x = torch.rand(50, 6, dtype=torch.float64)
    spread, ratio = collapse_statistics(_Constant(0.0), x)
    assert spread == 0
    assert ratio == pytest.approx(((x**2).mean() / x.var(dim=0, correction=0).mean()).item())
    spread, ratio = collapse_statistics(nn.Identity(), x)
    assert (spread, ratio) == (pytest.approx(1.0), 0.0)
    assert np.isnan(collapse_statistics(nn.Identity(), torch.ones(5, 3))).all()


def test_a_constant_near_the_mean_is_not_a_collapse():
    # Template matching against the normal data's mean still detects; a dark constant
    # ranks by brightness.
    x = torch.rand(200, 8, dtype=torch.float64) * 0.2 + 0.4
    assert not is_collapsed(*collapse_statistics(_Constant(0.5), x))
    assert is_collapsed(*collapse_statistics(_Constant(0.0), x))
    assert not is_collapsed(float("nan"), float("nan"))


def test_kaiming_init_touches_exact_layer_types_only():
    class MyLinear(nn.Linear):
        pass

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(8, 64, 4), nn.ConvTranspose2d(64, 32, 4), nn.Linear(256, 512), MyLinear(4, 4)
    )
    custom = net[3].weight.detach().clone()
    kaiming_init(net)
    for layer in net[:3]:
        fan_in = nn.init._calculate_fan_in_and_fan_out(layer.weight)[0]
        assert layer.weight.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.1)
        assert torch.all(layer.bias == 0)
    torch.testing.assert_close(net[3].weight, custom)


def _dead_start(shape):
    """An MLP whose sigmoid output starts saturated near 0: a dark, flat output that its
    vanishing gradient cannot leave within a few epochs."""
    module = MLPAutoencoder(shape, (16, 8), sigmoid_output=True)
    last = module.decoder[-2]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(-20.0)
    return module


def _first_call_dead():
    calls = []

    def network(shape):
        calls.append(shape)
        return _dead_start(shape) if len(calls) == 1 else kaiming_init(MLPAutoencoder(shape))

    return network, calls


def _fit(X, **params):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        params = {"max_epochs": 5, "random_state": 0, **params}
        detector = GradientAnomalyDetector(**params).fit(X)
    collapse_warnings = [
        w
        for w in caught
        if issubclass(w.category, ConvergenceWarning) and "collapsed" in str(w.message)
    ]
    return detector, collapse_warnings


def test_a_collapsed_run_is_restarted_reproducibly(digits):
    X, y = digits
    network, calls = _first_call_dead()
    detector, caught = _fit(X[y == 0], network=network)
    assert len(calls) == 2
    assert detector.n_restarts_ == 1
    assert detector.reconstruction_spread_ > 0.01
    assert caught == []
    again, _ = _fit(X[y == 0], network=_first_call_dead()[0])
    np.testing.assert_array_equal(detector.score_samples(X), again.score_samples(X))


def test_a_collapse_that_stays_warns_and_says_what_to_do(digits):
    X, y = digits
    detector, caught = _fit(X[y == 0], network=_dead_start, max_restarts=2)
    assert detector.n_restarts_ == 2
    assert detector.reconstruction_spread_ < 1e-6
    [warning] = caught
    assert "collapsed to one output" in str(warning.message)
    assert "after 2 restart(s)" in str(warning.message)
    assert "max_epochs" in str(warning.message)


def test_a_module_instance_is_never_reinitialised(digits):
    X, y = digits
    module = _dead_start((64,))
    detector, caught = _fit(X[y == 0], network=module)
    assert detector.n_restarts_ == 0
    [warning] = caught
    assert "module instance" in str(warning.message)
    # Trained from the caller's weights, not re-initialised: still saturated.
    assert torch.all(detector.net_.module_.autoencoder.decoder[-2].bias < -19)


class _Diverging(MLPAutoencoder):
    def forward(self, x):
        return super().forward(x) * float("inf")


def test_a_restart_that_fails_keeps_the_fit_before_it(digits):
    X, y = digits
    calls = []

    def network(shape):
        calls.append(shape)
        return _dead_start(shape) if len(calls) == 1 else _Diverging(shape, (16, 8))

    detector, caught = _fit(X[y == 0], network=network)
    assert len(calls) == 2 and detector.n_restarts_ == 0
    [warning] = caught
    assert "restart 1 failed: training diverged" in str(warning.message)
    assert np.isfinite(detector.score_samples(X[:5])).all()


def test_verbose_says_it_restarts(digits, capsys):
    X, y = digits
    _fit(X[y == 0], network=_first_call_dead()[0], verbose=1)
    assert "restarting from a fresh initialisation (1 of 3)" in capsys.readouterr().out


def test_max_restarts_zero_only_warns(digits):
    X, y = digits
    network, calls = _first_call_dead()
    detector, caught = _fit(X[y == 0], network=network, max_restarts=0)
    assert len(calls) == 1 and detector.n_restarts_ == 0
    assert len(caught) == 1


def test_canvas_reproducer_is_recovered():
    # The reproducer: digits enlarged onto a black 28 x 28 canvas, as in MNIST. After two
    # epochs with PyTorch's default initialisation seed 0 is in the dead start: the
    # detector restarts (it restarts only after a collapsed run) and recovers.
    canvas = make_canvas_digits(600, random_state=0)[0]
    detector, caught = _fit(canvas, max_epochs=2)
    assert caught == []
    assert detector.n_restarts_ >= 1
    x = torch.as_tensor(canvas[:, None] / np.float32(255))
    assert not is_collapsed(*collapse_statistics(detector.net_.module_, x))
