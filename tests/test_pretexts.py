"""The pretext contract (gradient_ad/_pretexts/): every registered pretext keeps the same
guarantees. A new pretext is registered, then added to the tables below (its plain
per-sample loop, the inputs it refuses); the first test fails until it is."""

import copy
import io
import warnings

import joblib
import numpy as np
import pytest
import torch
from _reference import randomise_reference, reference_rotation_terms, reference_terms
from torch import nn

from gradient_ad import GradientAnomalyDetector, ScoreComponents
from gradient_ad._combined import term
from gradient_ad._modules import ConvAutoencoder, GradConModule
from gradient_ad._pretexts import Pretext, get_pretext, pretext_names, register_pretext
from gradient_ad.datasets import load_digits_images

# Each pretext's own terms, one sample at a time by autograd, on a float64 module:
# (module, X, calibration) -> {term name: tensor (n,)}.
PLAIN_LOOPS = {
    "rotation": lambda module, X, calibration: reference_rotation_terms(
        module, X, torch.as_tensor(calibration["rotation_targets"])
    ),
}
# Samples each pretext refuses before any work (as float32 arrays), and what the error says.
REFUSED = {
    "rotation": [
        (np.zeros((20, 16), np.float32), "needs images"),
        (np.zeros((20, 6, 8), np.float32), "square images"),
    ],
}
# Images every pretext takes, and calibration to score them with.
SHAPE = (1, 8, 8)


def _calibration(name, module):
    """A calibration as the pretext's calibrate gives it, from random rows."""
    X = np.random.RandomState(0).rand(12, *SHAPE)
    return get_pretext(name).calibrate(module, X, "auto", "cpu")


@pytest.fixture(scope="module")
def digit_images():
    X, y = load_digits_images()
    return X.astype(np.float32), y


def _fit(X, name, **params):
    params = {"pretext": name, "max_epochs": 2, "random_state": 0, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # too short to converge
        return GradientAnomalyDetector(**params).fit(X)


def test_every_registered_pretext_is_in_the_tables_and_accepted():
    assert set(pretext_names()) == set(PLAIN_LOOPS) == set(REFUSED)
    allowed = GradientAnomalyDetector._parameter_constraints["pretext"]
    assert None in allowed
    assert set(allowed[0].options) == set(pretext_names())
    for name in (None, *pretext_names()):
        member = get_pretext(name)
        assert isinstance(member, Pretext) and member.name == name
        for spec in member.terms:  # each term's direction is in the table
            assert term(spec.name) == spec


def test_unknown_pretexts_and_double_registrations_are_refused():
    with pytest.raises(ValueError, match=r"pretext must be None or one of \('rotation',\)"):
        get_pretext("jigsaw")

    with pytest.raises(ValueError, match="registered already"):

        @register_pretext
        class Again(type(get_pretext("rotation"))):
            pass


@pytest.mark.parametrize("name", pretext_names())
@pytest.mark.parametrize("seed", [0, 1])
def test_terms_agree_with_a_plain_per_sample_loop_in_float64(name, seed):
    pretext = get_pretext(name)
    torch.manual_seed(seed)
    autoencoder = ConvAutoencoder(SHAPE, (4, 5, 6)).double()
    module = GradConModule(autoencoder, pretext=name, **pretext.modules(autoencoder, SHAPE))
    module = module.double().eval()
    randomise_reference(module, seed)
    calibration = _calibration(name, module)
    # 11 rows in padded chunks of 4, and a small call of 3 rows.
    X = np.random.RandomState(seed).rand(11, *SHAPE)
    expected = PLAIN_LOOPS[name](module, X, calibration)
    gradcon = reference_terms(module, X)
    for rows, batch_size in ((slice(None), 4), (slice(0, 3), "auto")):
        terms = pretext.score_terms(module, X[rows], batch_size, "cpu", calibration)
        own = pretext.own_terms(module, X[rows], batch_size, "cpu", calibration)
        assert list(own) == [t.name for t in pretext.terms]
        for spec in pretext.terms:
            want = expected[spec.name][rows].numpy()
            np.testing.assert_allclose(terms[spec.name], want, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(own[spec.name], want, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(terms["reconstruction_error"], gradcon[0][rows], rtol=1e-10)
        np.testing.assert_allclose(terms["alignment"], gradcon[1][rows], rtol=1e-9, atol=1e-12)


class _Untouchable(nn.Module):
    """Fails the test if anything calls it: refusals come before any work."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(4, 2)
        self.decoder = nn.Linear(2, 4)

    def forward(self, x):
        raise AssertionError("the network ran")


@pytest.mark.parametrize("name", pretext_names())
def test_refusals_come_before_any_work(name):
    calls = []

    def network(shape):
        calls.append(shape)
        return _Untouchable()

    for X, message in REFUSED[name]:
        detector = GradientAnomalyDetector(pretext=name, network=network)
        with pytest.raises(ValueError, match=message):
            detector.fit(X)
        assert not calls and not hasattr(detector, "net_")


@pytest.mark.parametrize("name", pretext_names())
def test_seeded_fits_are_reproducible_and_give_one_named_surface(name, digit_images):
    X, y = digit_images
    first, second = _fit(X[y == 0][:120], name), _fit(X[y == 0][:120], name)
    np.testing.assert_array_equal(first.score_samples(X[:40]), second.score_samples(X[:40]))
    components = first.score_components(X[:40])
    assert isinstance(components, ScoreComponents)
    expected = ("reconstruction_error", "alignment", *(t.name for t in get_pretext(name).terms))
    assert components.names[: len(expected)] == expected
    assert components.names == first.combined_.component_names
    scores = -first.combined_.score(components)
    np.testing.assert_array_equal(first.score_samples(X[:40]), scores)


@pytest.mark.parametrize("name", pretext_names())
def test_persistence_round_trip_and_checksum(name, digit_images):
    X, y = digit_images
    detector = _fit(X[y == 5][:120], name)
    buffer = io.BytesIO()
    joblib.dump(detector, buffer)
    buffer.seek(0)
    loaded = joblib.load(buffer)
    np.testing.assert_array_equal(loaded.score_samples(X[:40]), detector.score_samples(X[:40]))
    assert loaded.combined_.names == detector.combined_.names
    # Every tensor of the pretext's modules, and every array of its calibration, is
    # in the checksum.
    for module_name in get_pretext(name).modules(
        detector.net_.module_.autoencoder, detector.input_shape_
    ):
        state = copy.deepcopy(detector).__getstate__()
        part = getattr(state["net_"].module_, module_name)
        with torch.no_grad():
            next(part.parameters()).view(-1)[0] += 1
        with pytest.raises(ValueError, match="checksum"):
            GradientAnomalyDetector.__new__(GradientAnomalyDetector).__setstate__(state)
    for key in get_pretext(name).calibration_names:
        state = copy.deepcopy(detector).__getstate__()
        state["combined_"].pretext_calibration[key] += 0.01
        with pytest.raises(ValueError, match="checksum"):
            GradientAnomalyDetector.__new__(GradientAnomalyDetector).__setstate__(state)


def test_pretext_only_methods_exist_only_with_the_pretext(digit_images):
    X, y = digit_images
    plain = GradientAnomalyDetector()
    assert not hasattr(plain, "rotation_probabilities")
    with pytest.raises(AttributeError, match="rotation_probabilities") as error:
        plain.rotation_probabilities(X[:2])
    # scikit-learn's available_if raises its own message from the check's, which
    # names the setting (shown above it in the traceback).
    assert "pretext=None" in str(error.value.__cause__)
    assert "pretext in ['rotation']" in str(error.value.__cause__)
    assert hasattr(GradientAnomalyDetector(pretext="rotation"), "rotation_probabilities")
