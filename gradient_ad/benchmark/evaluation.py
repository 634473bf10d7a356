"""One task's evaluation (every method fitted on a split, its AUROC measured) and a
whole run over tasks."""

import time

import numpy as np
from sklearn.metrics import roc_auc_score

from .. import datasets
from .._detector import GradientAnomalyDetector
from .choices import (
    COMBINED_SCORES,
    FLAT_IMAGES,
    GRADCON_SCORES,
    METHODS,
    PRETEXT_EPOCHS,
    PRETEXT_SCORES,
)
from .methods import classic_detectors, combined_scores, gradcon_scorer, pretext_scores
from .splits import tasks


def evaluate(
    split,
    seed,
    detector_params=None,
    methods=METHODS,
    image_shape=None,
    pretext_epochs=PRETEXT_EPOCHS,
):
    """Fit every method on one split and measure its AUROC.

    The pretext methods need images: ``split`` holds them, or flat rows of
    ``image_shape``; for tables they are left out.

    Returns
    -------
    results : dict
        ``{method: {"auroc", "valid_auroc", "fit_seconds", "epochs"}}``, and for the
        networks ``"restarts"`` (training runs restarted after a collapse) and
        ``"spread"`` (the fitted ``reconstruction_spread_``); ``valid_auroc`` is
        ``None`` without anomalies in the validation split.
    """
    params = {"random_state": seed, **(detector_params or {})}
    results = {}
    if any(m in methods for m in GRADCON_SCORES):
        detector, seconds = _timed_fit(
            GradientAnomalyDetector(**{**params, "beta": "auto"}), split.X_train
        )
        beta = params.get("beta", GradientAnomalyDetector().beta)
        betas = {"gradcon": detector.beta_ if beta == "auto" else beta}
        betas["gradcon_standardized"] = detector.beta_
        test = detector.score_components(split.X_test)
        valid = None if split.y_valid is None else detector.score_components(split.X_valid)
        for method in GRADCON_SCORES:
            if method in methods:
                score = gradcon_scorer(method, betas.get(method))
                valid_score = None if valid is None else score(*valid)
                results[method] = _record(split, score(*test), valid_score, seconds)
                results[method] |= _training_record(detector)
    if "autoencoder" in methods:
        ae, seconds = _timed_fit(GradientAnomalyDetector(**{**params, "alpha": 0}), split.X_train)
        test_error = ae.score_components(split.X_test)[0]
        valid_error = None if split.y_valid is None else ae.score_components(split.X_valid)[0]
        results["autoencoder"] = _record(split, test_error, valid_error, seconds)
        results["autoencoder"] |= _training_record(ae)
    is_image = split.X_train.ndim >= 3 or image_shape is not None
    if is_image and any(m in methods for m in PRETEXT_SCORES):
        pretext_params = {**params, "pretext": "rotation", "max_epochs": pretext_epochs}
        if split.X_train.ndim == 2:
            pretext_params["input_shape"] = tuple(image_shape)
        results |= _one_network(split, pretext_params, pretext_scores, PRETEXT_SCORES, methods)
    if not is_image and any(m in methods for m in COMBINED_SCORES):
        combined_params = {**params, "score": "combined"}
        results |= _one_network(split, combined_params, combined_scores, COMBINED_SCORES, methods)
    flat = _flat(split)
    for method, model in classic_detectors(seed):
        if method in methods:
            model, seconds = _timed_fit(model, flat.X_train)
            valid = None if split.y_valid is None else -model.score_samples(flat.X_valid)
            results[method] = _record(split, -model.score_samples(flat.X_test), valid, seconds)
    return results


def _one_network(split, params, scores_of, names, methods):
    """The records of the methods in ``names`` that ``methods`` asks for, each scored
    by ``scores_of`` from one detector fitted with ``params``."""
    detector, seconds = _timed_fit(GradientAnomalyDetector(**params), split.X_train)
    test = scores_of(detector, split.X_test)
    valid = None if split.y_valid is None else scores_of(detector, split.X_valid)
    results = {}
    for method in names:
        if method in methods:
            valid_score = None if valid is None else valid[method]
            results[method] = _record(split, test[method], valid_score, seconds)
            results[method] |= _training_record(detector)
    return results


def _training_record(detector):
    """How training went: epochs, restarts after a collapse, and the final spread."""
    return {
        "epochs": detector.n_iter_,
        "restarts": detector.n_restarts_,
        "spread": _finite_or_none(round(float(detector.reconstruction_spread_), 4)),
    }


def _finite_or_none(value):
    return value if np.isfinite(value) else None  # JSON has no NaN


def _timed_fit(model, X):
    start = time.perf_counter()
    model.fit(X)
    return model, time.perf_counter() - start


def _record(split, test_score, valid_score, seconds):
    valid_auroc = None
    if valid_score is not None and 0 < split.y_valid.sum() < len(split.y_valid):
        valid_auroc = float(roc_auc_score(split.y_valid, valid_score))
    return {
        "auroc": float(roc_auc_score(split.y_test, test_score)),
        "valid_auroc": valid_auroc,
        "fit_seconds": round(float(seconds), 3),
        "epochs": None,
    }


def _flat(split):
    def flat(X):
        return None if X is None else X.reshape(len(X), -1) / (255.0 if X.dtype == np.uint8 else 1)

    return datasets.OneClassSplit(
        flat(split.X_train), flat(split.X_valid), split.y_valid, flat(split.X_test), split.y_test
    )


def run(
    dataset="digits",
    data_dir=None,
    classes=None,
    seeds=(0,),
    setting="one-class",
    detector_params=None,
    methods=METHODS,
    log=print,
    on_task=None,
    pretext_epochs=PRETEXT_EPOCHS,
):
    """Evaluate every task; return one row (a dict) per task, seed and method.

    ``log`` receives a progress line per task; ``on_task(rows)`` is called with the
    rows so far after each task (e.g. to save partial results).
    """
    return run_tasks(
        dataset,
        tasks(dataset, data_dir, classes, seeds, setting),
        detector_params,
        methods,
        log,
        on_task,
        pretext_epochs,
    )


def run_tasks(dataset, todo, detector_params, methods, log, on_task, pretext_epochs=PRETEXT_EPOCHS):
    """:func:`run` on tasks already read and checked (``todo``, from :func:`tasks`)."""
    rows = []
    for task, seed, split in todo:
        start = time.perf_counter()
        results = evaluate(
            split,
            seed,
            detector_params,
            methods,
            image_shape=FLAT_IMAGES.get(dataset),
            pretext_epochs=pretext_epochs,
        )
        for method, result in results.items():
            rows.append({"dataset": dataset, "task": task, "seed": seed, "method": method} | result)
        log(
            f"{dataset} {task} seed {seed}: "
            + "  ".join(f"{m} {r['auroc']:.3f}" for m, r in results.items())
            + f"  ({time.perf_counter() - start:.1f} s)"
        )
        if on_task is not None:
            on_task(rows)
    return rows
