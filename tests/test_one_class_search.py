"""The user guide's one-class grid search: train on normal rows only, choose the
settings on a labelled validation set, refit on the normal rows."""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, PredefinedSplit

from gradient_ad import GradientAnomalyDetector

GRID = {"alpha": [0.0, 0.03], "beta": [0.0, "auto"]}


@pytest.fixture(scope="module")
def task(digits):
    X, y = digits
    rng = np.random.RandomState(0)
    normal, others = rng.permutation(np.flatnonzero(y == 8)), np.flatnonzero(y != 8)
    X_train = X[normal[:100]]  # normal rows only
    valid = np.concatenate([normal[100:140], rng.choice(others, 40, replace=False)])
    y_valid = np.where(y[valid] == 8, 1, -1)  # +1 normal, -1 anomaly
    return X_train, X[valid], y_valid


def _search(task, **params):
    X_train, X_valid, y_valid = task
    # The recipe: -1 marks rows that are only ever trained on, 0 the validation fold.
    X_search = np.concatenate([X_train, X_valid])
    y_search = np.concatenate([np.ones(len(X_train), int), y_valid])
    cv = PredefinedSplit(np.r_[np.full(len(X_train), -1), np.zeros(len(X_valid), int)])
    detector = GradientAnomalyDetector(max_epochs=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 3 epochs: too short to converge
        search = GridSearchCV(detector, GRID, cv=cv, **params).fit(X_search, y_search)
    return detector, search


def _fit(detector, params, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return clone(detector).set_params(**params).fit(X)


def test_each_candidate_trains_on_normal_rows_and_is_scored_on_the_validation_set(task):
    X_train, X_valid, y_valid = task
    detector, search = _search(task, scoring="roc_auc", refit=False)
    scores = search.cv_results_["split0_test_score"]
    for params, score in zip(search.cv_results_["params"], scores):
        fitted = _fit(detector, params, X_train)
        # roc_auc with labels +1/-1 ranks by decision_function, higher = normal.
        assert score == roc_auc_score(y_valid == 1, fitted.decision_function(X_valid))
    assert len(set(scores)) > 1  # the grid matters
    assert search.best_params_ == search.cv_results_["params"][int(np.argmax(scores))]
    assert not hasattr(search, "best_estimator_")  # refit=False: nothing trained on anomalies


def test_a_scorer_on_score_samples_ranks_alike(task):
    def auroc(estimator, X, y):
        return roc_auc_score(y == 1, estimator.score_samples(X))

    _, by_decision = _search(task, scoring="roc_auc", refit=False)
    _, by_samples = _search(task, scoring=auroc, refit=False)
    np.testing.assert_allclose(
        by_samples.cv_results_["mean_test_score"], by_decision.cv_results_["mean_test_score"]
    )


def test_the_default_refit_would_train_on_the_validation_anomalies(task):
    # Why the recipe sets refit=False and refits on the normal rows itself.
    X_train, X_valid, _ = task
    detector, search = _search(task, scoring="roc_auc")
    on_normal = _fit(detector, search.best_params_, X_train)
    on_everything = _fit(detector, search.best_params_, np.concatenate([X_train, X_valid]))
    np.testing.assert_array_equal(
        search.best_estimator_.score_samples(X_valid), on_everything.score_samples(X_valid)
    )
    assert not np.array_equal(
        on_normal.score_samples(X_valid), on_everything.score_samples(X_valid)
    )
