"""The inputs module's test (gradient_ad._inputs) and the bad-input matrix: every case
fails clearly before any work, or works and is tested.

Each rejected input or parameter must raise a ``ValueError`` or ``TypeError`` that names
the problem, before the skorch net is built (so before any epoch), and leave the
estimator unfitted, also when it was fitted before. docs/robustness.rst lists the
matrix.
"""

import copy
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import Callback, EarlyStopping, LRScheduler

import gradient_ad
from gradient_ad import GradientAnomalyDetector

FAST = dict(max_epochs=2, batch_size=16, random_state=0)
N_FEATURES = 4
IMAGE = (1, 8, 8)
SMALL_CONV = dict(FAST, conv_channels=(2, 2, 4, 4))

SCORING_METHODS = ["score_samples", "decision_function", "predict", "score_components"]
if hasattr(gradient_ad, "anomaly_maps"):
    SCORING_METHODS.append("anomaly_maps")


def _table(n=40, n_features=N_FEATURES, seed=0):
    return np.random.RandomState(seed).rand(n, n_features)


def _images(n=30, shape=IMAGE, seed=0):
    return np.random.RandomState(seed).rand(n, *shape).astype(np.float32)


def _with(X, row, col, value):
    X = np.array(X, dtype=float)
    X[row, col] = value
    return X


def _call(est, method, X):
    if method == "anomaly_maps":
        return gradient_ad.anomaly_maps(est, X, n_steps=2)
    return getattr(est, method)(X)


@pytest.fixture
def net_never_built(monkeypatch):
    """Fail the test if the skorch net is built, i.e. if training gets under way."""
    built = []

    def forbidden(*args, **kwargs):
        built.append(True)
        raise AssertionError("the skorch net was built: training started before the error")

    monkeypatch.setattr("gradient_ad._training.GradConNet", forbidden)
    yield
    assert not built


@pytest.fixture
def nothing_scored(monkeypatch):
    """Fail the test if the network starts scoring before the error."""

    def forbidden(*args, **kwargs):
        raise AssertionError("scoring started before the error")

    # Scoring starts in the network check before training, or in the calibration: the
    # one policy of chunks that every scoring call goes through (a pretext's too).
    monkeypatch.setattr("gradient_ad._scoring.batches.planned_terms", forbidden)
    monkeypatch.setattr("gradient_ad._pretexts.rotation.planned_terms", forbidden)


@pytest.fixture(scope="module")
def table_model():
    return GradientAnomalyDetector(**FAST).fit(_table())


@pytest.fixture(scope="module")
def image_model():
    return GradientAnomalyDetector(**SMALL_CONV).fit(_images())


@pytest.fixture(scope="module")
def frame_model():
    frame = pd.DataFrame(_table(), columns=["a", "b", "c", "d"])
    return GradientAnomalyDetector(**FAST).fit(frame)


def _assert_unfitted(est):
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    fitted = [name for name in vars(est) if name.endswith("_") and not name.startswith("_")]
    assert not fitted, f"a failed fit left fitted attributes {fitted}"


# -- fit: bad data ----------------------------------------------------------------------

BAD_TRAINING_DATA = {
    "NaN": (_with(_table(), 3, 1, np.nan), ValueError, "NaN"),
    "+inf": (_with(_table(), 3, 1, np.inf), ValueError, "infinity"),
    "-inf": (_with(_table(), 3, 1, -np.inf), ValueError, "infinity"),
    "empty": (np.empty((0, N_FEATURES)), ValueError, "0 sample"),
    "no features": (np.empty((10, 0)), ValueError, "0 feature"),
    "one sample": (_table(1), ValueError, "1 sample"),
    "1-D": (_table()[:, 0], ValueError, "Expected 2D array"),
    "scalar": (np.float64(0.5), ValueError, "Expected 2D array"),
    "5-D": (_table(40, 16).reshape(40, 1, 2, 2, 4), ValueError, "2, 3 or 4 dimensions"),
    "strings": (_table().astype(str), ValueError, "strings"),
    "object with text": (np.array([["a", 1.0]] * 10, dtype=object), ValueError, "string"),
    "object with None": (np.array([[None, 1.0]] * 10, dtype=object), ValueError, "NaN"),
    "complex": (_table().astype(complex), ValueError, "Complex data"),
    "sparse CSR": (sp.csr_matrix(_table()), TypeError, "Sparse data"),
    "huge 1e30": (_table() * 1e30, ValueError, "magnitude 9.*e\\+29"),
    "huge -1e30": (-_table() * 1e30, ValueError, "magnitude"),
    "beyond float32 1e39": (_with(_table(), 0, 0, 1e39), ValueError, "magnitude 1e\\+39"),
    "just above 1e9": (_with(_table(), 0, 0, 2e9), ValueError, "up to 1e\\+09"),
}


@pytest.mark.parametrize("case", BAD_TRAINING_DATA)
def test_bad_training_data_is_rejected_before_training(case, table_model, net_never_built):
    X, error, match = BAD_TRAINING_DATA[case]
    est = copy.deepcopy(table_model)  # fitted before: a failed refit must unfit it
    with pytest.raises(error, match=match):
        est.fit(X)
    _assert_unfitted(est)


def test_mismatched_input_shape_is_rejected_before_training(net_never_built):
    est = GradientAnomalyDetector(input_shape=(7, 7), **FAST)
    with pytest.raises(ValueError, match="holds 49 values, but X has 4 features"):
        est.fit(_table())
    _assert_unfitted(est)


# -- fit: bad parameters ----------------------------------------------------------------

BAD_PARAMETERS = [
    (dict(alpha=-1.0), "'alpha' parameter"),
    (dict(reference="gradient"), "'reference' parameter"),
    (dict(max_restarts=-1), "'max_restarts' parameter"),
    (dict(beta=-0.1), "'beta' parameter"),
    (dict(batch_size=0), "'batch_size' parameter"),
    (dict(batch_size=2.5), "'batch_size' parameter"),
    (dict(score_batch_size=0), "'score_batch_size' parameter"),
    (dict(n_threads=0), "'n_threads' parameter"),
    (dict(n_threads=1.5), "'n_threads' parameter"),
    (dict(score_batch_size="large"), "'score_batch_size' parameter"),
    (dict(score_batch_size=65537), "'score_batch_size' parameter.*65536"),
    (dict(score_batch_size=10**9), "'score_batch_size' parameter"),
    (dict(max_epochs=0), "'max_epochs' parameter"),
    (dict(lr=0.0), "'lr' parameter"),
    (dict(lr=-1e-3), "'lr' parameter"),
    (dict(weight_decay=-1.0), "'weight_decay' parameter"),
    (dict(network="transformer"), "'network' parameter"),
    (dict(network=3), "'network' parameter"),
    (dict(network="conv"), "needs images"),
    (dict(contamination=0.7), "'contamination' parameter"),
    (dict(contamination=0.0), "'contamination' parameter"),
    (dict(contamination="high"), "'contamination' parameter"),
    (dict(device="cuda"), "CUDA is not available"),
    (dict(device="cuda:1"), "CUDA is not available"),
    (dict(device="gpu"), "'gpu' is not a torch device"),
    (dict(hidden_sizes=(0,)), "hidden_sizes must be a non-empty tuple of positive integers"),
    (dict(hidden_sizes=(-3, 4)), "hidden_sizes must be"),
    (dict(hidden_sizes=()), "hidden_sizes must be"),
    (dict(hidden_sizes=("8",)), "hidden_sizes must be"),
    (dict(hidden_sizes=(2.5,)), "hidden_sizes must be"),
    (dict(hidden_sizes="big"), "'hidden_sizes' parameter"),
    (dict(conv_channels=(0, 4)), "conv_channels must be a non-empty tuple of positive integers"),
    (dict(conv_channels=()), "conv_channels must be"),
    (dict(input_shape=(2, -2)), "input_shape must be a tuple of positive integers"),
    (dict(input_shape=(1, 1, 2, 2)), "input_shape must be \\(height, width\\)"),
    (dict(input_shape=4), "'input_shape' parameter"),
    (dict(validation_fraction=0.0), "'validation_fraction' parameter"),
    (dict(validation_fraction=1.0), "'validation_fraction' parameter"),
    (dict(validation_fraction=0.99), "validation_fraction=0.99 of 40 samples leaves no training"),
    (dict(n_iter_no_change=0), "'n_iter_no_change' parameter"),
    (dict(tol=-1.0), "'tol' parameter"),
    (dict(early_stopping="yes"), "'early_stopping' parameter"),
    (dict(constrained="encoder"), "'constrained' parameter"),
    (dict(constrained=["encoder.9.weight"]), "are not parameters of MLPAutoencoder"),
    (dict(constrained=[]), "no parameters to constrain"),
    (dict(random_state="seed"), "'random_state' parameter"),
    (dict(callbacks="progress"), "'callbacks' parameter"),
    (dict(net_params=["lr"]), "'net_params' parameter"),
    (
        dict(net_params={"warm_start": True}),
        r"net_params\['warm_start'\] is not supported.*"
        "network=fitted.net_.module_.autoencoder",
    ),
    (dict(net_params={"module": torch.nn.Linear(4, 4)}), "pass the autoencoder as network"),
    (dict(net_params={"callbacks": []}), "pass them as callbacks"),
    (dict(net_params={"train_split": None}), "use early_stopping and validation_fraction"),
    (dict(net_params={"iterator_valid__batch_size": 0}), "must be a positive integer, got 0"),
    (dict(net_params={"iterator_train__batch_size": 1.5}), "must be a positive integer"),
    (dict(callbacks=[("early_stopping", EarlyStopping())]), "a name the detector uses"),
]


@pytest.mark.parametrize("params, match", BAD_PARAMETERS, ids=[str(p) for p, _ in BAD_PARAMETERS])
def test_bad_parameters_are_named_before_training(params, match, net_never_built):
    if str(params.get("device", "")).startswith("cuda") and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    est = GradientAnomalyDetector(**{**FAST, **params})
    with pytest.raises(ValueError, match=match):
        est.fit(_table())
    _assert_unfitted(est)


BAD_CALLBACKS = {
    "a name": (["progress_bar"], r"callbacks\[0\] is 'progress_bar' \(str\)"),
    "a function": ([print], r"callbacks\[0\] is <built-in function print>"),
    "a named string": ([("bar", "progress_bar")], r"callbacks\[0\] is \('bar', 'progress_bar'\)"),
    "a name that is no string": ([(1, Callback())], r"callbacks\[0\] is \(1, "),
    "a class that is no callback": ([Callback(), dict], r"callbacks\[1\] is <class 'dict'>"),
}


@pytest.mark.parametrize("case", BAD_CALLBACKS)
def test_callbacks_that_are_no_skorch_callbacks_are_a_type_error(case, net_never_built):
    callbacks, match = BAD_CALLBACKS[case]
    est = GradientAnomalyDetector(callbacks=callbacks, **FAST)
    with pytest.raises(TypeError, match=match + ".*callbacks must be skorch Callback instances"):
        est.fit(_table())
    _assert_unfitted(est)


def test_callbacks_as_classes_and_named_tuples_work():
    class Count(Callback):
        epochs = 0

        def on_epoch_end(self, net, **kwargs):
            type(self).epochs += 1

    scheduler = LRScheduler(policy="StepLR", step_size=1, gamma=0.5)
    est = GradientAnomalyDetector(callbacks=[Count, ("halve", scheduler)], **FAST).fit(_table())
    assert Count.epochs == 2
    assert est.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5**2)


def test_scoring_chunk_over_a_gibibyte_is_refused_before_training(net_never_built):
    # 65536 padded rows of 8192 float32 values: 2 GiB of input per scoring chunk.
    est = GradientAnomalyDetector(score_batch_size=65536, **FAST)
    with pytest.raises(ValueError, match="2 GiB of float32 input.*at most 32768 for this"):
        est.fit(_table(4, 8192))
    _assert_unfitted(est)


@pytest.mark.parametrize("method", SCORING_METHODS)
@pytest.mark.parametrize(
    "value, match",
    [(10**9, "'score_batch_size' parameter"), ("large", "'score_batch_size' parameter")],
)
def test_score_batch_size_set_after_fit_is_checked_before_scoring(method, value, match):
    est = GradientAnomalyDetector(**FAST).fit(_table())
    est.set_params(score_batch_size=value)
    with pytest.raises(ValueError, match=match):
        _call(est, method, _table(5))
    est.set_params(score_batch_size=8)
    _call(est, method, _table(5))


def test_score_batch_size_set_after_fit_gets_the_memory_check():
    est = GradientAnomalyDetector(**FAST).fit(_table(40, 8192))
    est.set_params(score_batch_size=65536)
    with pytest.raises(ValueError, match="2 GiB of float32 input"):
        est.decision_function(_table(2, 8192))


def test_features_check_score_batch_size_set_after_fit():
    features = gradient_ad.GradientFeatures(GradientAnomalyDetector(**FAST)).fit(_table())
    features.detector_.set_params(score_batch_size=10**9)
    with pytest.raises(ValueError, match="'score_batch_size' parameter"):
        features.transform(_table(5))


def test_network_factory_returning_no_module_is_a_type_error(net_never_built):
    est = GradientAnomalyDetector(network=lambda shape: "not a module", **FAST)
    with pytest.raises(TypeError, match="must return a torch.nn.Module, got str"):
        est.fit(_table())
    _assert_unfitted(est)


# -- scoring: bad data ------------------------------------------------------------------

BAD_TABLES_TO_SCORE = {
    "NaN": (_with(_table(5), 0, 0, np.nan), ValueError, "NaN"),
    "+inf": (_with(_table(5), 0, 0, np.inf), ValueError, "infinity"),
    "-inf": (_with(_table(5), 0, 0, -np.inf), ValueError, "infinity"),
    "empty": (np.empty((0, N_FEATURES)), ValueError, "0 sample"),
    "1-D row": (_table(1)[0], ValueError, "Expected 2D array"),
    "too few features": (_table(5, N_FEATURES - 1), ValueError, "has 3 features.*expecting 4"),
    "too many features": (_table(5, N_FEATURES + 1), ValueError, "has 5 features.*expecting 4"),
    "3-D": (_table(5, 8).reshape(5, 4, 2), ValueError, "fitted on a table of 4 features"),
    "5-D": (_table(5, 16).reshape(5, 4, 1, 2, 2), ValueError, "2, 3 or 4 dimensions"),
    "strings": (_table(5).astype(str), ValueError, "strings"),
    "complex": (_table(5).astype(complex), ValueError, "Complex data"),
    "sparse CSR": (sp.csr_matrix(_table(5)), TypeError, "Sparse data"),
    "huge 1e30": (_table(5) * 1e30, ValueError, "magnitude"),
}


@pytest.mark.parametrize("method", SCORING_METHODS)
@pytest.mark.parametrize("case", BAD_TABLES_TO_SCORE)
def test_bad_tables_are_rejected_when_scoring(table_model, case, method, nothing_scored):
    X, error, match = BAD_TABLES_TO_SCORE[case]
    with pytest.raises(error, match=match):
        _call(table_model, method, X)
    check_is_fitted(table_model)  # a failed call leaves the model as it was


# Every shape error names the fitted images, the accepted layouts and the fix.
_FITTED = "fitted on images of 8 x 8 pixels: it scores X of shape \\(n, 1, 8, 8\\) or \\(n, 8, 8\\)"
BAD_IMAGES_TO_SCORE = {
    "other image size": (_images(5, (1, 6, 6)), f"\\(5, 1, 6, 6\\).*{_FITTED}.*resize or crop"),
    "other size, 3-D": (_images(5, (1, 6, 6))[:, 0], f"\\(5, 6, 6\\).*{_FITTED}.*to 8 x 8"),
    "same pixel count, other shape": (
        _images(5, (1, 4, 16)),
        f"{_FITTED}.*same pixels in that order, pass X.reshape\\(-1, 8, 8\\)",
    ),
    "more channels": (_images(5, (3, 8, 8)), f"{_FITTED}. X has 3 channel\\(s\\); .* on 1"),
    "flat rows": (
        _images(5).reshape(5, -1),
        f"\\(5, 64\\).*{_FITTED}.*X.reshape\\(-1, 8, 8\\).*input_shape=\\(8, 8\\)",
    ),
    "NaN pixel": (_with(_images(5).reshape(5, -1), 0, 0, np.nan).reshape(5, *IMAGE), "NaN"),
}


@pytest.mark.parametrize("method", SCORING_METHODS)
@pytest.mark.parametrize("case", BAD_IMAGES_TO_SCORE)
def test_bad_images_are_rejected_when_scoring(image_model, case, method, nothing_scored):
    X, match = BAD_IMAGES_TO_SCORE[case]
    with pytest.raises(ValueError, match=match):
        _call(image_model, method, X)


@pytest.mark.parametrize("method", SCORING_METHODS)
def test_unfitted_model_refuses_to_score(method):
    with pytest.raises(NotFittedError):
        _call(GradientAnomalyDetector(), method, _table(3))


# -- DataFrames: feature names kept and checked -----------------------------------------


def test_dataframe_keeps_feature_names_and_matches_array_fit(frame_model, table_model):
    np.testing.assert_array_equal(frame_model.feature_names_in_, ["a", "b", "c", "d"])
    frame = pd.DataFrame(_table(8, seed=1), columns=["a", "b", "c", "d"])
    np.testing.assert_array_equal(
        frame_model.score_samples(frame), table_model.score_samples(frame.to_numpy())
    )


@pytest.mark.parametrize("method", SCORING_METHODS)
@pytest.mark.parametrize(
    "columns, match",
    [(["a", "b", "c", "e"], "Feature names unseen at fit time"), (["d", "c", "b", "a"], "order")],
)
def test_dataframe_with_other_columns_is_rejected(
    frame_model, method, columns, match, nothing_scored
):
    with pytest.raises(ValueError, match=match):
        _call(frame_model, method, pd.DataFrame(_table(3), columns=columns))


def test_missing_or_unexpected_feature_names_warn(frame_model, table_model):
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        frame_model.score_samples(_table(3))
    with pytest.warns(UserWarning, match="X has feature names"):
        table_model.score_samples(pd.DataFrame(_table(3), columns=["a", "b", "c", "d"]))


# -- inputs that legitimately work ------------------------------------------------------


def test_one_feature_and_two_samples_work():
    X = _table(n_features=1)
    est = GradientAnomalyDetector(**FAST).fit(X)
    assert est.n_features_in_ == 1 and np.isfinite(est.score_samples(X)).all()
    est = GradientAnomalyDetector(**FAST).fit(_table(2))  # the smallest training set
    assert est.predict(_table(3)).shape == (3,)


def test_constant_features_work():
    X = np.ones((40, N_FEATURES))
    all_constant = GradientAnomalyDetector(**FAST).fit(X)
    assert np.isfinite(all_constant.score_samples(X)).all()
    mixed = np.c_[_table(), np.full(40, 3.0)]
    est = GradientAnomalyDetector(**FAST).fit(mixed)
    scores = est.score_samples(mixed)
    assert np.isfinite(scores).all() and np.isfinite(est.offset_)


def test_read_only_and_non_contiguous_arrays_work_and_are_not_modified(table_model):
    X = _table(10, seed=2)
    expected = table_model.score_samples(X)
    read_only = X.copy()
    read_only.flags.writeable = False
    fortran = np.asfortranarray(X)
    strided = np.repeat(X, 2, axis=0)[::2]
    columns = np.c_[X, X][:, :N_FEATURES]  # every row a strided view
    for variant in (read_only, fortran, strided, columns):
        assert variant is read_only or not variant.flags.c_contiguous
        np.testing.assert_array_equal(table_model.score_samples(variant), expected)
    np.testing.assert_array_equal(read_only, X)
    train = _table()
    train.flags.writeable = False
    est = GradientAnomalyDetector(**FAST).fit(train)
    np.testing.assert_array_equal(
        est.score_samples(X), GradientAnomalyDetector(**FAST).fit(_table()).score_samples(X)
    )


@pytest.mark.parametrize(
    "convert",
    [
        lambda X: X.astype(np.float32),
        lambda X: X.astype(object),
        lambda X: (X * 2).astype(np.int64),  # 0 and 1, the training range
        lambda X: X > 0.5,
    ],
    ids=["float32", "numeric object", "int64", "bool"],
)
def test_numeric_dtypes_are_scored_as_float(table_model, convert):
    X = convert(_table(6, seed=3))
    np.testing.assert_allclose(
        table_model.score_samples(X),
        table_model.score_samples(np.asarray(X, dtype=np.float64)),
        rtol=1e-6,
    )


def test_values_up_to_the_limit_give_finite_scores():
    X = _table() * 1e9  # the largest accepted magnitude
    for data, params in ((X, FAST), (X.reshape(40, 1, 2, 2), SMALL_CONV)):
        est = GradientAnomalyDetector(**params).fit(data)
        assert np.isfinite(est.score_samples(data)).all() and np.isfinite(est.offset_)


def test_one_row_scores_as_in_a_batch(table_model):
    X = _table(5, seed=4)
    batch = table_model.score_samples(X)
    single = [table_model.score_samples(X[i : i + 1])[0] for i in range(5)]
    # Both are small calls, computed in float64: equal to float64 rounding.
    np.testing.assert_allclose(single, batch, rtol=1e-12)


# -- NumPy scalars as parameters --------------------------------------------------------

# What GridSearchCV over np.array([...]) passes: every int and float parameter, also
# inside tuples and net_params. np.float32 values differ from the Python float of the
# same literal, so each fit is compared with a fit on value.item(), bitwise.
NUMPY_PARAMETERS = {
    "max_epochs": np.int64(2),
    "batch_size": np.int64(8),
    "lr": np.float64(1e-2),
    "alpha": np.float32(0.05),
    "beta": np.float32(0.2),
    "weight_decay": np.float64(1e-4),
    "contamination": np.float64(0.1),
    "validation_fraction": np.float64(0.2),
    "n_iter_no_change": np.int32(1),
    "tol": np.float64(0.5),
    "max_restarts": np.int64(1),
    "score_batch_size": np.int64(7),
    "random_state": np.int64(3),
    "verbose": np.int64(0),
    "early_stopping": np.bool_(False),
    "hidden_sizes": (np.int64(8), np.int32(3)),
    "input_shape": (np.int64(2), np.int64(2)),
    "conv_channels": (np.int64(2), np.int64(3)),
    "net_params": {
        "max_epochs": np.int64(3),
        "batch_size": np.int64(8),
        "lr": np.float64(1e-2),
        "optimizer__betas": (np.float64(0.8), np.float64(0.9)),
    },
}


def _as_python(value):
    if isinstance(value, dict):
        return {key: _as_python(v) for key, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_as_python(v) for v in value)
    return value.item() if isinstance(value, np.generic) else value


@pytest.mark.parametrize("name", NUMPY_PARAMETERS)
def test_numpy_scalars_as_parameters_fit_as_python_numbers(name):
    value = NUMPY_PARAMETERS[name]
    X = _table(40)
    if name in ("input_shape", "conv_channels"):
        X = X.reshape(40, 1, 2, 2) if name == "conv_channels" else X
    params = {**FAST, "batch_size": 16, "max_epochs": 1}
    est = GradientAnomalyDetector(**{**params, name: value}).fit(X)
    expected = GradientAnomalyDetector(**{**params, name: _as_python(value)}).fit(X)
    np.testing.assert_array_equal(est.score_samples(X), expected.score_samples(X))
    assert est.offset_ == expected.offset_
    assert est.get_params()[name] is value  # the caller's parameter is left as given


# -- input scale: the rule fitted on is the rule scored with ------------------------------


@pytest.fixture(scope="module")
def uint8_model():
    pixels = (255 * _images()).round().astype(np.uint8)
    return GradientAnomalyDetector(**SMALL_CONV).fit(pixels), pixels


def test_uint8_model_records_its_scale_and_scores_divided_floats_alike(uint8_model):
    est, pixels = uint8_model
    assert est.input_scale_ == 255.0 and est.input_range_ == (0.0, 1.0)
    expected = est.score_samples(pixels)
    for divided in (pixels / 255.0, pixels.astype(np.float32) / 255):
        np.testing.assert_allclose(est.score_samples(divided), expected, rtol=1e-5, atol=1e-6)
    # [0, 1] data that overshoots a little (noise, interpolation) is still on that scale.
    noisy = np.clip(pixels / 255.0 + 0.2, 0, 1.2)
    assert np.isfinite(est.score_samples(noisy)).all()


@pytest.mark.parametrize("method", SCORING_METHODS)
@pytest.mark.parametrize(
    "convert",
    [
        lambda X: X.astype(np.float64),
        lambda X: X.astype(np.float32),
        lambda X: X.astype(np.int64),
        lambda X: X.astype(np.uint16),
        lambda X: X + 0.0,
    ],
    ids=["float64", "float32", "int64", "uint16", "arithmetic"],
)
def test_uint8_model_refuses_undivided_pixels(uint8_model, convert, method, nothing_scored):
    est, pixels = uint8_model
    X = convert(pixels)
    before = X.copy()
    with pytest.raises(ValueError, match="fitted on uint8 images.*not divided.*X.astype"):
        _call(est, method, X)
    np.testing.assert_array_equal(X, before)


@pytest.mark.parametrize("method", SCORING_METHODS)
def test_float_model_refuses_uint8(image_model, method, nothing_scored):
    pixels = (255 * _images(5)).round().astype(np.uint8)
    with pytest.raises(ValueError, match="X is uint8.*values in \\[0.*, 0.9.*\\].*pass X / 255"):
        _call(image_model, method, pixels)


def test_floats_in_any_range_fitted_as_floats_stay_as_they_are():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    raw = 255 * _table()  # pixel-like floats, fitted as floats
    est = GradientAnomalyDetector(**FAST).fit(raw)
    assert est.input_scale_ == 1.0 and est.input_range_[1] > 200
    assert np.isfinite(est.score_samples(raw)).all()
    with pytest.raises(ValueError, match="X is uint8.*X.astype\\(np.float32\\)"):
        est.score_samples(raw.astype(np.uint8))
    for scaler in (StandardScaler(), MinMaxScaler()):
        pipeline = make_pipeline(scaler, GradientAnomalyDetector(**FAST)).fit(raw)
        # New data far outside the training range is scored, not refused: it may be
        # exactly the anomaly looked for (a batch mostly that far out also warns:
        # test_batch_far_outside_the_training_range_warns).
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert np.isfinite(pipeline.score_samples(np.r_[raw, 10 * raw[:5]])).all()


@pytest.fixture(scope="module")
def unit_model(digits):
    X, y = digits  # pixels in [0, 1]
    return GradientAnomalyDetector(**FAST).fit(X[y == 0]), X


@pytest.mark.parametrize("method", SCORING_METHODS[:4])
def test_batch_far_outside_the_training_range_warns(unit_model, method):
    """A model fitted on [0, 1] given 0-16 pixels: a warning naming both ranges, at
    the caller's line; the scores are those of the input as given."""
    est, X = unit_model
    with pytest.warns(UserWarning, match="fitted on values in") as caught:
        result = _call(est, method, X[:40] * 16)
    [warning] = [w for w in caught if "fitted on values in" in str(w.message)]
    assert re.search(
        r"X has values in \[0, 16\], but this GradientAnomalyDetector was fitted on values "
        r"in \[0, 1\]: 40 of 40 rows .* beyond that range by more than its width",
        str(warning.message),
    )
    assert warning.filename == __file__
    assert result is not None


def test_a_few_far_rows_or_data_in_range_do_not_warn(unit_model):
    est, X = unit_model
    mixed = X[:40].copy()
    mixed[:19] *= 16  # 19 of 40 rows far out: anomalies, not another scale
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.score_samples(X[:40])
        est.score_samples(np.clip(X[:40] * 1.9, 0, None))  # within one width of [0, 1]
        est.score_samples(mixed)
    with pytest.warns(UserWarning, match="20 of 40 rows"):
        mixed[19] *= 16
        est.score_samples(mixed)


def test_model_saved_before_the_input_scale_keeps_the_old_rule(uint8_model):
    est, pixels = uint8_model
    state = est.__getstate__()
    del state["_gradient_ad_sha256"], state["input_scale_"], state["input_range_"]
    loaded = GradientAnomalyDetector.__new__(GradientAnomalyDetector)
    loaded.__setstate__(state)
    assert loaded.input_scale_ is None and loaded.input_range_ is None
    np.testing.assert_array_equal(loaded.score_samples(pixels), est.score_samples(pixels))
    loaded.score_samples(pixels.astype(float))  # that version's rule: taken as it is


# -- images with their channels last ---------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 8, 3), (8, 8, 1), (6, 5, 4), (16, 16, 3)])
def test_channels_last_images_are_refused_before_training(shape, net_never_built):
    X = np.random.RandomState(0).rand(10, *shape)
    est = GradientAnomalyDetector(**FAST)
    with pytest.raises(ValueError, match="channels last.*np.moveaxis\\(X, -1, 1\\)"):
        est.fit(X)
    _assert_unfitted(est)


def test_channels_first_and_explicit_input_shape_work():
    X = np.random.RandomState(0).rand(10, 8, 8, 3)
    for images, params in (
        (np.moveaxis(X, -1, 1), {}),  # (n, 3, 8, 8)
        (X, {"input_shape": (8, 8, 3)}),  # really 8 channels of 8 x 3: say so
    ):
        est = GradientAnomalyDetector(**SMALL_CONV, **params).fit(images)
        assert est.input_shape_ == images.shape[1:]


@pytest.fixture(scope="module")
def rgb_model():
    X = _images(20, (3, 8, 8))
    return GradientAnomalyDetector(**SMALL_CONV).fit(X), X


@pytest.mark.parametrize("method", SCORING_METHODS)
def test_channels_last_images_are_refused_when_scoring(rgb_model, method, nothing_scored):
    est, X = rgb_model
    with pytest.raises(ValueError, match="channels last.*np.moveaxis.*fitted on images of shape"):
        _call(est, method, np.moveaxis(X, 1, -1))


# -- equivalent image layouts ---------------------------------------------------------


def _layouts(X):
    """One-channel images as (n, H, W), (n, 1, H, W) and flat rows of H * W."""
    return {"3-D": X[:, 0], "4-D": X, "flat": X.reshape(len(X), -1)}


@pytest.fixture(scope="module")
def models_by_layout():
    X = _images(20)
    layouts = _layouts(X)
    models = {
        name: GradientAnomalyDetector(**SMALL_CONV).fit(layouts[name]) for name in ("3-D", "4-D")
    }
    models["flat, input_shape"] = GradientAnomalyDetector(input_shape=(8, 8), **SMALL_CONV).fit(
        layouts["flat"]
    )
    models["3-D, input_shape"] = GradientAnomalyDetector(input_shape=(8, 8), **SMALL_CONV).fit(
        layouts["3-D"]
    )
    return models


@pytest.mark.parametrize("method", SCORING_METHODS)
def test_equivalent_image_layouts_score_identically(models_by_layout, method):
    """(n, H, W) and (n, 1, H, W) train the same network and are scored the same by
    any model; flat rows too, by a model that has input_shape (fitted with it)."""
    X = _images(6, seed=1)

    def arrays(result):  # anomaly_maps keeps X's layout: compare the values row by row
        result = result.values() if isinstance(result, dict) else np.atleast_1d(result)
        return [np.reshape(a, (len(X), -1)) if np.ndim(a) > 1 else a for a in result]

    reference = arrays(_call(models_by_layout["4-D"], method, X))
    for name, est in models_by_layout.items():
        assert est.n_features_in_ == {"3-D": 8, "4-D": 1, "flat, input_shape": 64}.get(name, 8)
        for layout, Y in _layouts(X).items():
            if layout == "flat" and est.input_shape is None:
                continue  # refused: test_bad_images_are_rejected_when_scoring
            for got, want in zip(arrays(_call(est, method, Y)), reference, strict=True):
                np.testing.assert_array_equal(got, want, err_msg=f"{name} given {layout}")


def test_features_accept_equivalent_image_layouts():
    X = _images(20)
    features = gradient_ad.GradientFeatures(GradientAnomalyDetector(**SMALL_CONV)).fit(X[:, 0])
    np.testing.assert_array_equal(features.transform(X[:4]), features.transform(X[:4, 0]))


# -- DataFrames with columns that are not numbers --------------------------------------

NON_NUMERIC_COLUMNS = {
    "category": pd.Categorical(list("ab") * 20),
    "numeric category": pd.Categorical([1, 2] * 20),
    "string dtype": pd.array(list("ab") * 20, dtype="string"),
    "object strings": np.array(list("ab") * 20, dtype=object),
    "datetime with time zone": pd.date_range("2020-01-01", periods=40, tz="Europe/Paris"),
    "naive datetime": pd.date_range("2020-01-01", periods=40),
    "timedelta": pd.to_timedelta(np.arange(40), unit="s"),
    "period": pd.period_range("2020-01", periods=40, freq="M"),
}


def _frame_with(column, n=40):
    frame = pd.DataFrame(_table(n), columns=["a", "b", "c", "d"])
    frame["when"] = column[:n]
    return frame


@pytest.mark.parametrize("case", NON_NUMERIC_COLUMNS)
def test_non_numeric_columns_are_named_before_training(case, table_model, net_never_built):
    est = copy.deepcopy(table_model)
    frame = _frame_with(NON_NUMERIC_COLUMNS[case])
    with pytest.raises(ValueError, match="non-numeric columns: 'when' \\("):
        est.fit(frame)
    _assert_unfitted(est)


@pytest.mark.parametrize("method", SCORING_METHODS)
def test_non_numeric_columns_are_named_when_scoring(frame_model, method, nothing_scored):
    frame = _frame_with(NON_NUMERIC_COLUMNS["datetime with time zone"], 3).drop(columns="d")
    frame = frame.rename(columns={"when": "d"})
    with pytest.raises(ValueError, match="non-numeric columns: 'd' \\(datetime64"):
        _call(frame_model, method, frame)


def test_numeric_columns_of_any_kind_work(frame_model):
    frame = pd.DataFrame(_table(6, seed=5), columns=["a", "b", "c", "d"])
    expected = frame_model.score_samples(frame)
    variants = frame.astype({"a": object, "b": "Float64", "c": np.float32})
    np.testing.assert_allclose(frame_model.score_samples(variants), expected, rtol=1e-6)
    flags = frame.assign(d=frame["d"] > 0.5)
    assert np.isfinite(frame_model.score_samples(flags.astype({"d": "boolean"}))).all()


# -- a few bad rows: which ones ---------------------------------------------------------


def _bad_rows(X, rows, value):
    X = np.array(X, dtype=float)
    X[rows, 1] = value
    return X


BAD_ROWS = {
    "huge": (2e9, "magnitude 2e\\+09 in 2 of 40 rows \\(rows 3, 17\\)"),
    "NaN": (np.nan, "NaN in 2 of 40 rows \\(rows 3, 17\\)"),
    "infinity": (-np.inf, "infinity in 2 of 40 rows \\(rows 3, 17\\)"),
}


@pytest.mark.parametrize("case", BAD_ROWS)
def test_bad_rows_are_named_in_fit(case, net_never_built):
    value, match = BAD_ROWS[case]
    with pytest.raises(ValueError, match=match):
        GradientAnomalyDetector(**FAST).fit(_bad_rows(_table(), [3, 17], value))


@pytest.mark.parametrize("method", SCORING_METHODS)
@pytest.mark.parametrize("case", BAD_ROWS)
def test_bad_rows_are_named_when_scoring(table_model, case, method, nothing_scored):
    value, match = BAD_ROWS[case]
    X = _bad_rows(_table(), [3, 17], value)
    before = X.copy()
    with pytest.raises(ValueError, match=match):
        _call(table_model, method, X)
    np.testing.assert_array_equal(X, before)


def test_many_bad_rows_show_the_first_few(table_model):
    X = _bad_rows(_table(), [0, 2, 4, 6, 8, 10, 12], 1e12)
    with pytest.raises(ValueError, match="7 of 40 rows \\(rows 0, 2, 4, 6, 8 and 2 more\\)"):
        table_model.predict(X)
    images = _images(6).astype(np.float64)
    images[4, 0, 3, 3] = 5e9
    with pytest.raises(ValueError, match="1 of 6 rows \\(row 4\\)"):
        GradientAnomalyDetector(**SMALL_CONV).fit(images)
