"""What a saved detector carries: round trips, other versions, CUDA-saved models,
checksums of damaged weights, models saved by earlier versions (gradient_ad._persistence)."""

import copy
import hashlib
import io
import pickle
import subprocess
import sys
import textwrap
import warnings
from unittest import mock

import joblib
import numpy as np
import pytest
import torch
import torch.serialization
from skorch.exceptions import DeviceWarning

import gradient_ad
from gradient_ad import GradientAnomalyDetector, InconsistentVersionWarning, load
from gradient_ad._persistence import model_digest


def test_joblib_round_trip_gives_identical_scores(saved_model, tmp_path):
    est, X = saved_model
    path = tmp_path / "model.joblib"
    joblib.dump(est, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.decision_function(X), est.decision_function(X))
    assert loaded.offset_ == est.offset_
    reference = loaded.net_.module_.reference_gradients()[0]
    np.testing.assert_array_equal(
        reference.numpy(), est.net_.module_.reference_gradients()[0].numpy()
    )


@pytest.mark.parametrize("dump", ["joblib", "pickle"])
def test_round_trip_in_a_fresh_process(saved_model, tmp_path, dump):
    est, X = saved_model
    path = tmp_path / "model.bin"
    np.save(tmp_path / "X.npy", X)
    if dump == "joblib":
        joblib.dump(est, path)
    else:
        path.write_bytes(pickle.dumps(est))
    loader = "joblib.load(path)" if dump == "joblib" else "pickle.loads(open(path, 'rb').read())"
    code = textwrap.dedent(f"""
        import joblib, pickle, numpy as np
        path = {str(path)!r}
        est = {loader}
        X = np.load({str(tmp_path / "X.npy")!r})
        np.save({str(tmp_path / "scores.npy")!r}, est.decision_function(X))
    """)
    subprocess.run([sys.executable, "-c", code], check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "scores.npy"), est.decision_function(X))


def test_saved_model_records_version_and_warns_on_mismatch(saved_model, monkeypatch):
    est, X = saved_model
    state = est.__getstate__()
    assert state["_gradient_ad_version"] == gradient_ad.__version__
    data = pickle.dumps(est)
    monkeypatch.setattr("gradient_ad._persistence.__version__", "0.0.0-other")
    with pytest.warns(InconsistentVersionWarning, match="saved by gradient-ad"):
        pickle.loads(data)


# -- a model saved on a CUDA device, loaded without CUDA ----------------------------------


def _as_if_saved_on_cuda(est):
    """Pickle ``est`` as a CUDA machine would: device 'cuda', tensors tagged 'cuda:0'.

    torch records each tensor storage's device in the pickle (its location tag); the
    tag is what makes loading fail without CUDA unless skorch maps it to the CPU. The
    module's and the optimizer's tensors live on the GPU in a CUDA fit; the shuffling
    generator stays on the CPU.
    """
    net = est.net_
    tensors = list(net.module_.state_dict().values()) + [
        t for state in net.optimizer_.state.values() for t in state.values() if torch.is_tensor(t)
    ]
    on_gpu = {t.untyped_storage().data_ptr() for t in tensors}
    location_tag = torch.serialization.location_tag

    def tag(storage):
        return "cuda:0" if storage.data_ptr() in on_gpu else location_tag(storage)

    device = net.device
    try:
        net.device = "cuda"
        with mock.patch("torch.serialization.location_tag", tag):
            return pickle.dumps(est)
    finally:
        net.device = device


def test_model_saved_on_cuda_loads_on_a_cpu_only_machine(saved_model):
    est, X = saved_model
    with mock.patch("torch.cuda.is_available", lambda: False):
        data = _as_if_saved_on_cuda(est)
        assert b"cuda:0" in data
        with pytest.warns(DeviceWarning) as caught:
            loaded = pickle.loads(data)
    messages = " ".join(str(w.message) for w in caught)
    assert "no CUDA devices are available" in messages and "Setting self.device = cpu" in messages
    assert torch.device(loaded.net_.device).type == "cpu"
    tensors = [*loaded.net_.module_.parameters(), *loaded.net_.module_.buffers()]
    assert {t.device.type for t in tensors} == {"cpu"}
    assert loaded.net_.module is loaded.net_.module_  # one module, not two copies
    np.testing.assert_array_equal(loaded.decision_function(X), est.decision_function(X))


def test_cuda_tagged_module_outside_skorchs_mapping_would_not_load(saved_model):
    # Why the detector adds `module` to the net's cuda_dependent_attributes_: without it,
    # the module instance is pickled by plain pickle, which cannot map it to the CPU.
    est, _ = saved_model
    net = est.net_
    mapped = net.cuda_dependent_attributes_
    assert "module" in mapped
    with mock.patch("torch.cuda.is_available", lambda: False):
        try:
            net.cuda_dependent_attributes_ = [a for a in mapped if a != "module"]
            data = _as_if_saved_on_cuda(est)
        finally:
            net.cuda_dependent_attributes_ = mapped
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeviceWarning)
            with pytest.raises(RuntimeError, match="CUDA"):
                pickle.loads(data)


# -- damaged files ----------------------------------------------------------------------


def _flip_inside_weights(data, est):
    """Flip one bit in the stored bytes of a weight tensor of the decoder."""
    weight = est.net_.module_.constrained_parameters()[0].detach().numpy()
    start = data.find(weight.tobytes())
    assert start > 0, "the weights are stored as raw bytes in the file"
    damaged = bytearray(data)
    damaged[start + weight.nbytes // 2] ^= 0x10
    return bytes(damaged)


def test_damaged_weights_are_refused_by_any_loader(saved_model, saved_bytes, tmp_path):
    est, _ = saved_model
    path = tmp_path / "damaged.joblib"
    path.write_bytes(_flip_inside_weights(saved_bytes, est))
    with pytest.raises(ValueError, match="does not match the checksum saved with it"):
        joblib.load(path)
    with pytest.raises(ValueError, match="could not load.*does not match the checksum"):
        load(path)
    with pytest.raises(ValueError, match="checksum"):
        pickle.loads(_flip_inside_weights(pickle.dumps(est), est))


def test_model_saved_without_checksum_still_loads(saved_model):
    est, X = saved_model
    state = est.__getstate__()
    del state["_gradient_ad_sha256"]  # as saved by the first version of the package
    loaded = GradientAnomalyDetector.__new__(GradientAnomalyDetector)
    loaded.__setstate__(state)
    np.testing.assert_array_equal(loaded.decision_function(X), est.decision_function(X))


def test_changed_score_weight_is_refused(saved_model):
    est, _ = saved_model
    state = est.__getstate__()
    state["beta_"] = 2 * state["beta_"]
    loaded = GradientAnomalyDetector.__new__(GradientAnomalyDetector)
    with pytest.raises(ValueError, match="checksum"):
        loaded.__setstate__(state)


def test_model_saved_before_beta_was_fitted_still_loads(saved_model):
    est, X = saved_model
    state = est.__getstate__()
    del state["_gradient_ad_sha256"], state["beta_"]
    loaded = GradientAnomalyDetector.__new__(GradientAnomalyDetector)
    loaded.__setstate__(state)
    assert loaded.beta_ == est.beta
    np.testing.assert_array_equal(loaded.decision_function(X), est.decision_function(X))


def test_model_saved_before_the_reference_rule_and_restarts_still_loads(saved_model):
    est, X = saved_model
    state = est.__getstate__()
    for name in ("reference", "max_restarts", "n_restarts_", "reconstruction_spread_"):
        del state[name]
    loaded = GradientAnomalyDetector.__new__(GradientAnomalyDetector)
    loaded.__setstate__(state)
    # Such a model was trained with the reconstruction-only reference, never restarted.
    assert loaded.get_params()["reference"] == "reconstruction"
    assert loaded.n_restarts_ == 0 and np.isnan(loaded.reconstruction_spread_)
    np.testing.assert_array_equal(loaded.decision_function(X), est.decision_function(X))


# Recorded from pickle.dumps of a fitted detector by the code before the layout of
# docs/layout.rst (05cff58): the globals its pickle names.
EARLIER_GLOBALS = [
    ("gradient_ad._detector", "GradientAnomalyDetector"),
    ("gradient_ad._detector", "_StopOnNonFiniteLoss"),
    ("gradient_ad._detector", "_silent"),
    ("gradient_ad._net", "GradConNet"),
    ("gradient_ad._stopping", "SignSafeEarlyStopping"),
    # A detector with pretext='rotation' up to d0b5e7e: the head's class.
    ("gradient_ad._pretext", "PretextHead"),
]


def test_globals_named_by_pickles_of_earlier_versions_resolve(saved_model):
    from gradient_ad import _training

    est, _ = saved_model
    unpickler = pickle.Unpickler(io.BytesIO(b""))
    found = {name: unpickler.find_class(module, name) for module, name in EARLIER_GLOBALS}
    assert found["_StopOnNonFiniteLoss"] is _training.StopOnNonFiniteLoss
    assert found["_silent"] is _training.silent
    assert found["PretextHead"].__module__ == "gradient_ad._pretexts.rotation"
    # And today's pickles name only what resolves too (a round trip).
    seen = []

    class Recording(pickle.Unpickler):
        def find_class(self, module, name):
            seen.append((module, name))
            return super().find_class(module, name)

    Recording(io.BytesIO(pickle.dumps(est))).load()
    assert ("gradient_ad._training", "StopOnNonFiniteLoss") in seen


def test_model_saved_before_n_threads_leaves_torch_threads_alone(saved_model):
    est, X = saved_model
    state = est.__getstate__()
    del state["n_threads"]
    loaded = GradientAnomalyDetector.__new__(GradientAnomalyDetector)
    loaded.__setstate__(state)
    assert loaded.get_params()["n_threads"] is None
    np.testing.assert_array_equal(loaded.decision_function(X), est.decision_function(X))


def _old_layout(state):
    """``state`` of a pretext detector as the code up to d0b5e7e saved it: the combined
    score's parts as four attributes of the detector, in its checksum in that order."""
    combined = state.pop("combined_")
    state.update(
        rotation_targets_=combined.pretext_calibration["rotation_targets"],
        neighbours_=combined.neighbours_,
        term_means_=combined.means_,
        term_scales_=combined.scales_,
    )
    samples = np.ascontiguousarray(combined.neighbours_._fit_X)
    numbers = [
        state["beta_"],
        state["offset_"],
        *state["rotation_targets_"].ravel(),
        *state["term_means_"],
        *state["term_scales_"],
        int(hashlib.sha256(samples.tobytes()).hexdigest()[:12], 16),
    ]
    state["_gradient_ad_sha256"] = model_digest(state["net_"], *numbers)
    return state


@pytest.mark.filterwarnings("ignore:Training ran all max_epochs")
@pytest.mark.filterwarnings("ignore:The network collapsed")
def test_pretext_model_saved_before_combined_scores_the_same():
    from gradient_ad.datasets import load_digits_images

    X, y = load_digits_images()
    X = X.astype(np.float32)
    est = GradientAnomalyDetector(pretext="rotation", max_epochs=2, random_state=0)
    est.fit(X[y == 3][:120])
    # A model of that time: equal weights, no input-complexity correction.
    old = est.combined_
    old.covariates, old.weights_ = (), np.ones(5)
    old.complexity_coefficients_ = np.zeros_like(old.complexity_coefficients_)
    state = _old_layout(copy.deepcopy(est).__getstate__())
    loaded = GradientAnomalyDetector.__new__(GradientAnomalyDetector)
    loaded.__setstate__(dict(state))
    assert not {"rotation_targets_", "neighbours_", "term_means_", "term_scales_"} & set(
        vars(loaded)
    )
    assert loaded.combined_.names == est.combined_.names
    np.testing.assert_array_equal(loaded.combined_.weights_, np.ones(5))
    np.testing.assert_array_equal(loaded.score_samples(X[:50]), est.score_samples(X[:50]))
    for got, expected in zip(loaded.score_components(X[:50]), est.score_components(X[:50])):
        np.testing.assert_array_equal(got, expected)
    # Saved again, it keeps the new layout and its checksum.
    again = pickle.loads(pickle.dumps(loaded))
    np.testing.assert_array_equal(again.score_samples(X[:50]), est.score_samples(X[:50]))
    # A damaged old file is still caught by its own checksum.
    state["term_means_"] = state["term_means_"] + 0.01
    with pytest.raises(ValueError, match="checksum"):
        GradientAnomalyDetector.__new__(GradientAnomalyDetector).__setstate__(state)


def test_gradcon_model_saved_before_combined_has_none(saved_model):
    est, X = saved_model
    state = est.__getstate__()
    del state["combined_"]  # its checksum does not hold it: the GradCon score has none
    loaded = GradientAnomalyDetector.__new__(GradientAnomalyDetector)
    loaded.__setstate__(state)
    assert loaded.combined_ is None
    np.testing.assert_array_equal(loaded.decision_function(X), est.decision_function(X))
