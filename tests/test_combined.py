"""The combined score's room (gradient_ad/_combined/): the term table, ScoreComponents,
CombinedScore and the neighbour term."""

import pickle

import numpy as np
import pytest

from gradient_ad import ScoreComponents
from gradient_ad._combined import (
    GRADCON_TERMS,
    NEIGHBOUR_TERM,
    CombinedScore,
    Term,
    fit_neighbours,
    neighbour_distance,
    neighbour_shares,
    register_terms,
)


def _components(rng, n=30):
    return ScoreComponents(
        {
            "reconstruction_error": rng.rand(n) + 0.01,
            "alignment": rng.rand(n) * 2 - 1,
            "neighbour_distance": rng.rand(n) * 3,
        }
    )


def test_score_components_unpack_name_and_round_trip():
    rng = np.random.RandomState(0)
    parts = _components(rng)
    error, alignment, distance = parts
    assert error is parts.reconstruction_error and distance is parts.neighbour_distance
    assert parts.names == ("reconstruction_error", "alignment", "neighbour_distance")
    assert list(parts.as_dict()) == list(parts.names)
    assert [name for name, _ in parts.items()] == list(parts.names)
    assert parts.higher_is_anomalous == {
        "reconstruction_error": True,
        "alignment": False,
        "neighbour_distance": True,
    }
    with pytest.raises(AttributeError, match="no term 'rotation_loss'"):
        _ = parts.rotation_loss
    with pytest.raises(AttributeError, match="read-only"):
        parts.alignment = 0
    loaded = pickle.loads(pickle.dumps(parts))
    assert type(loaded) is ScoreComponents and loaded.names == parts.names
    np.testing.assert_array_equal(loaded.alignment, parts.alignment)
    assert "alignment=(30,)" in repr(parts)


def test_equal_weights_give_the_sum_of_the_standardised_terms():
    rng = np.random.RandomState(1)
    combined = CombinedScore((*GRADCON_TERMS, NEIGHBOUR_TERM))
    held_out, new = _components(rng), _components(rng, 7)
    combined.fit(held_out)
    columns = np.stack(
        [
            np.log(held_out.reconstruction_error),
            -held_out.alignment,
            held_out.neighbour_distance,
        ],
        1,
    )
    np.testing.assert_allclose(combined.means_, columns.mean(0))
    np.testing.assert_allclose(combined.scales_, columns.std(0))
    np.testing.assert_array_equal(combined.weights_, np.ones(3))
    assert combined.weights == dict.fromkeys(combined.names, 1.0)
    assert combined.reliability_ == 1.0 and combined.separations_ is None
    new_columns = np.stack(
        [np.log(new.reconstruction_error), -new.alignment, new.neighbour_distance], 1
    )
    expected = ((new_columns - columns.mean(0)) / columns.std(0)).sum(1)
    np.testing.assert_allclose(combined.score(new), expected)
    np.testing.assert_allclose(combined.contributions(new).sum(1), combined.score(new))
    # The weights are data: a term weighted 0 drops out of the score.
    combined.weights_ = np.array([1.0, 0.0, 1.0])
    np.testing.assert_allclose(
        combined.score(new),
        expected - (new_columns[:, 1] - combined.means_[1]) / combined.scales_[1],
    )


def test_a_constant_term_weighs_nothing():
    rng = np.random.RandomState(2)
    combined = CombinedScore(GRADCON_TERMS)
    held_out = _components(rng)
    constant = ScoreComponents({**held_out.as_dict(), "alignment": np.full(30, 0.5)})
    combined.fit(constant)
    assert combined.scales_[1] == pytest.approx(1e-12)
    assert np.isfinite(combined.score(held_out)).all()


def test_the_pretexts_reliability_scales_only_its_terms():
    rng = np.random.RandomState(4)
    terms = (*GRADCON_TERMS, Term("rotation_loss", True, source="rotation"), NEIGHBOUR_TERM)
    held_out = ScoreComponents({**_components(rng).as_dict(), "rotation_loss": rng.rand(30)})
    # ScoreComponents keeps the order it is given; CombinedScore reads by name.
    combined = CombinedScore(terms).fit(held_out, reliability=0.25)
    np.testing.assert_array_equal(combined.weights_, [1.0, 1.0, 0.25, 1.0])
    assert combined.reliability_ == 0.25


def test_synthetic_outliers_set_the_weights():
    rng = np.random.RandomState(5)
    combined = CombinedScore((*GRADCON_TERMS, NEIGHBOUR_TERM))
    held_out = _components(rng, 200)
    # Outliers far in the neighbour distance only: it takes (almost) all the weight.
    far = ScoreComponents({**_components(rng, 200).as_dict()})
    far = ScoreComponents({**far.as_dict(), "neighbour_distance": far.neighbour_distance + 10})
    combined.fit(held_out, synthetic=[far])
    assert combined.separations_.shape == (1, 3)
    assert combined.separations_[0, 2] == 1.0
    assert combined.weights_.sum() == pytest.approx(3.0)
    assert combined.weights_[2] > 2.5


def test_the_neighbour_term_is_fitted_and_measured_here_without_a_pretext():
    rng = np.random.RandomState(3)
    train = rng.rand(40, 2, 3)
    combined = CombinedScore((*GRADCON_TERMS, NEIGHBOUR_TERM)).fit_neighbours(train)
    assert combined.own_names == ("neighbour_distance",)
    X = rng.rand(6, 2, 3)
    np.testing.assert_array_equal(
        combined.own_terms(X)["neighbour_distance"],
        neighbour_distance(fit_neighbours(train), X),
    )
    assert combined.kept_ is None and combined.neighbours_.n_samples_fit_ == 40
    # Without the term: nothing kept, nothing measured.
    plain = CombinedScore(GRADCON_TERMS).fit_neighbours(train)
    assert plain.neighbours_ is None and plain.own_terms(X) == {} and plain.own_names == ()


def test_neighbour_shares_split_the_distance_over_the_elements():
    rng = np.random.RandomState(4)
    train = rng.rand(30, 4, 4)
    neighbours = fit_neighbours(train)
    X = rng.rand(5, 4, 4)
    shares = neighbour_shares(neighbours, X)
    assert shares.shape == X.shape and (shares >= 0).all()
    np.testing.assert_allclose(shares.sum(axis=(1, 2)), 1)
    # An element where X equals every neighbour has no share.
    X[0, 0, 0] = 0.5
    train[:, 0, 0] = 0.5
    assert neighbour_shares(fit_neighbours(train), X)[0, 0, 0] == 0


def test_the_digest_covers_every_number_the_score_uses():
    rng = np.random.RandomState(5)
    combined = CombinedScore((*GRADCON_TERMS, NEIGHBOUR_TERM), {"targets": np.eye(2)})
    combined.fit_neighbours(rng.rand(10, 3)).fit(_components(rng))
    numbers = combined.digest_numbers()
    combined.pretext_calibration["targets"][0, 1] = 0.5
    assert combined.digest_numbers() != numbers
    numbers = combined.digest_numbers()
    combined.weights_[0] = 2.0
    assert combined.digest_numbers() != numbers


def test_a_term_name_keeps_its_meaning():
    register_terms([Term("alignment", False)])  # the same term again: fine
    with pytest.raises(ValueError, match="'alignment' exists already"):
        register_terms([Term("alignment", True)])


def test_a_coreset_bounds_the_neighbours_and_agrees_below_the_bound():
    rng = np.random.RandomState(6)
    train, X = rng.rand(60, 1, 4, 4), rng.rand(9, 1, 4, 4)
    terms = (*GRADCON_TERMS, NEIGHBOUR_TERM)
    whole = CombinedScore(terms).fit_neighbours(train)
    below = CombinedScore(terms).fit_neighbours(train, max_samples=60, random_state=0)
    assert below.kept_ is None
    np.testing.assert_array_equal(
        below.own_terms(X)["neighbour_distance"], whole.own_terms(X)["neighbour_distance"]
    )
    bounded = CombinedScore(terms).fit_neighbours(train, max_samples=20, random_state=0)
    assert bounded.neighbours_.n_samples_fit_ == 20 and len(bounded.kept_) == 20
    np.testing.assert_array_equal(bounded.neighbours_._fit_X, train[bounded.kept_].reshape(20, -1))
    # The reference rows: those kept leave themselves out, the others are measured
    # against all that are kept.
    reference = bounded.own_terms(train, reference=True)["neighbour_distance"]
    others = np.setdiff1d(np.arange(60), bounded.kept_)
    np.testing.assert_allclose(
        reference[others], neighbour_distance(bounded.neighbours_, train[others])
    )
    np.testing.assert_allclose(reference[bounded.kept_], neighbour_distance(bounded.neighbours_))
    assert (reference > 0).all()


def test_an_image_model_takes_the_input_complexity_out_of_its_pixel_space_terms():
    rng = np.random.RandomState(7)
    c = rng.normal(size=300)
    held_out = ScoreComponents(
        {
            "reconstruction_error": np.exp(1.0 + 2.0 * c + 0.1 * rng.normal(size=300)),
            "alignment": rng.rand(300),
            "neighbour_distance": 3.0 - 0.5 * c + 0.1 * rng.normal(size=300),
            "input_complexity": c,
        }
    )
    combined = CombinedScore((*GRADCON_TERMS, NEIGHBOUR_TERM), images=True).fit(held_out)
    assert combined.component_names == (*combined.names, "input_complexity")
    np.testing.assert_allclose(combined.complexity_coefficients_[0], [1.0, 2.0], atol=0.05)
    np.testing.assert_allclose(combined.complexity_coefficients_[1], [0.0, 0.0])  # not pixels
    np.testing.assert_allclose(combined.complexity_coefficients_[2], [3.0, -0.5], atol=0.05)
    columns = combined.columns(held_out)
    for j in (0, 2):  # nothing of the complexity is left in them
        assert abs(np.corrcoef(columns[:, j], c)[0, 1]) < 1e-6
    # Two samples that differ only in their detail score the same where the
    # pixel-space terms follow the detail as on normal data.
    detail = np.array([0.0, 1.5])
    (a0, b0), _, (a2, b2) = combined.complexity_coefficients_
    pair = ScoreComponents(
        {
            "reconstruction_error": np.exp(a0 + b0 * detail),
            "alignment": np.array([0.5, 0.5]),
            "neighbour_distance": a2 + b2 * detail,
            "input_complexity": detail,
        }
    )
    score = combined.score(pair)
    assert score[0] == pytest.approx(score[1])
    tables = CombinedScore((*GRADCON_TERMS, NEIGHBOUR_TERM)).fit(_components(rng))
    assert tables.covariates == () and not tables.complexity_coefficients_.any()
