"""Readers and one-class splits of gradient_ad.datasets, on small files in the real formats."""

import gc
import gzip
import pickle
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from gradient_ad import datasets

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def _idx_bytes(array, type_code=0x08, dtype=">u1"):
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.asarray(array, dtype=dtype).tobytes()


def _write_idx_dir(directory, n_train=12, n_test=6, compress=True):
    rng = np.random.RandomState(0)
    arrays = {
        "train-images-idx3-ubyte": rng.randint(0, 256, (n_train, 4, 5)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 3,
        "t10k-images-idx3-ubyte": rng.randint(0, 256, (n_test, 4, 5)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 3,
    }
    for name, array in arrays.items():
        data = _idx_bytes(array)
        if compress:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return arrays


@pytest.mark.parametrize("compress", [True, False])
def test_load_idx_reads_the_four_files(tmp_path, compress):
    arrays = _write_idx_dir(tmp_path, compress=compress)
    X_train, y_train, X_test, y_test = datasets.load_idx(tmp_path)
    assert X_train.dtype == np.uint8 and X_train.shape == (12, 4, 5)
    np.testing.assert_array_equal(X_train, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(y_test, arrays["t10k-labels-idx1-ubyte"])
    assert X_test.shape == (6, 4, 5)


def test_load_idx_file_other_types_in_native_order(tmp_path):
    values = np.array([[1.5, -2.0], [3.25, 1e6]])
    path = tmp_path / "floats-idx2"
    path.write_bytes(_idx_bytes(values, 0x0D, ">f4"))
    array = datasets.load_idx_file(path)
    assert array.dtype == np.float32 and array.dtype.isnative
    np.testing.assert_array_equal(array, values)


def test_load_idx_missing_file_is_named(tmp_path):
    _write_idx_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte"):
        datasets.load_idx(tmp_path)


def test_load_idx_truncated_file_is_named(tmp_path):
    _write_idx_dir(tmp_path, compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*truncated"):
        datasets.load_idx(tmp_path)


def test_load_idx_truncated_gzip_and_wrong_format(tmp_path):
    path = tmp_path / "x-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_bytes(np.arange(50)))[:-10])
    with pytest.raises(ValueError, match="x-idx1-ubyte.gz"):
        datasets.load_idx_file(path)
    path = tmp_path / "not-idx"
    path.write_bytes(b"P5\n28 28\n255\n" + bytes(20))
    with pytest.raises(ValueError, match="not an IDX file"):
        datasets.load_idx_file(path)


def test_load_idx_inconsistent_sizes(tmp_path):
    _write_idx_dir(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(np.arange(5))))
    with pytest.raises(ValueError, match="train images"):
        datasets.load_idx(tmp_path)


def _write_cifar(directory, n=4):
    rng = np.random.RandomState(0)
    expected = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.randint(0, 256, (n, 3072)).astype(np.uint8)
        labels = list(rng.randint(0, 10, n))
        with open(directory / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels}, f)
        expected[name] = (data, labels)
    return expected


def test_load_cifar10_batches(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    expected = _write_cifar(tmp_path / "cifar-10-batches-py")
    X_train, y_train, X_test, y_test = datasets.load_cifar10(tmp_path)
    assert X_train.shape == (20, 3, 32, 32) and X_test.shape == (4, 3, 32, 32)
    data, labels = expected["data_batch_2"]
    # Channel-major rows: the first 1024 values are the red plane.
    np.testing.assert_array_equal(X_train[4, 0].ravel(), data[0, :1024])
    np.testing.assert_array_equal(y_train[4:8], labels)
    np.testing.assert_array_equal(X_test.reshape(4, -1), expected["test_batch"][0])


def test_load_cifar10_errors_name_the_file(tmp_path):
    _write_cifar(tmp_path)
    (tmp_path / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="data_batch_3.*CIFAR-10"):
        datasets.load_cifar10(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(ValueError, match="data_batch_3: no such file"):
        datasets.load_cifar10(tmp_path)


def test_load_table_mat_and_npz(tmp_path):
    X = np.random.RandomState(0).randn(7, 3)
    y = np.array([0, 0, 1, 0, 1, 0, 0])
    savemat(tmp_path / "toy.mat", {"X": X, "y": y[:, None].astype(float)})
    np.savez(tmp_path / "toy.npz", X=X, y=y)
    for name in ("toy.mat", "toy.npz"):
        X_read, y_read = datasets.load_table(tmp_path / name)
        np.testing.assert_array_equal(X_read, X)
        np.testing.assert_array_equal(y_read, y)
        assert y_read.shape == (7,)


def test_load_table_errors(tmp_path):
    with pytest.raises(ValueError, match=r"missing\.mat: no such file"):
        datasets.load_table(tmp_path / "missing.mat")
    # MATLAB v7.3 files are HDF5 with a MATLAB text header.
    (tmp_path / "v73.mat").write_bytes(b"MATLAB 7.3 MAT-file, Platform: GLNXA64" + bytes(200))
    with pytest.raises(ValueError, match=r"v73\.mat.*v7\.3 \(HDF5\)"):
        datasets.load_table(tmp_path / "v73.mat")
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(ValueError, match=r"junk\.mat"):
        datasets.load_table(tmp_path / "junk.mat")
    savemat(tmp_path / "noy.mat", {"X": np.ones((3, 2))})
    with pytest.raises(ValueError, match=r"noy\.mat: missing \['y'\]"):
        datasets.load_table(tmp_path / "noy.mat")
    np.savez(tmp_path / "bad.npz", X=np.ones((3, 2)), y=np.array([0, 2, 1]))
    with pytest.raises(ValueError, match="0 \\(inlier\\) or 1"):
        datasets.load_table(tmp_path / "bad.npz")
    (tmp_path / "cut.npz").write_bytes(b"PK\x03\x04truncated")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(ValueError, match=r"cut\.npz"):
            datasets.load_table(tmp_path / "cut.npz")
        gc.collect()
    assert not [w for w in caught if w.category is ResourceWarning]  # the file was closed
    (tmp_path / "table.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"\.mat \(ODDS\) or \.npz"):
        datasets.load_table(tmp_path / "table.csv")


def _labelled(n_per_class=50, n_classes=10):
    y = np.repeat(np.arange(n_classes), n_per_class)
    return np.arange(len(y))[:, None], y  # X holds each row's index


def test_split_official_protocol():
    X, y = _labelled()
    X_test, y_test = X + 1000, y
    split = datasets.split_official(X, y, X_test, y_test, normal=4, seed=1)
    assert set(y[split.X_train.ravel()]) == {4} and len(split.X_train) == 45
    normal_valid = split.X_valid[split.y_valid == 0].ravel()
    assert len(normal_valid) == 5 and set(y[normal_valid]) == {4}
    assert not set(normal_valid) & set(split.X_train.ravel())
    assert (y[split.X_valid[split.y_valid == 1].ravel()] != 4).all()
    # Test: every test image of the class, plus as many from the other classes.
    test_idx = split.X_test.ravel() - 1000
    assert sorted(test_idx[split.y_test == 0]) == list(np.flatnonzero(y_test == 4))
    anomalies = test_idx[split.y_test == 1]
    assert len(anomalies) == 50 == len(set(anomalies)) and (y_test[anomalies] != 4).all()


def test_split_pooled_folds_protocol():
    X, y = _labelled(n_per_class=70)
    split = datasets.split_pooled_folds(X, y, normal=2, seed=0)
    train = split.X_train.ravel()
    valid = split.X_valid.ravel()
    test = split.X_test.ravel()
    assert len(train) == 42 and set(y[train]) == {2}
    assert (split.y_valid == 1).sum() == (split.y_valid == 0).sum() == 14
    assert (split.y_test == 1).sum() == (split.y_test == 0).sum() == 14
    assert set(y[test[split.y_test == 0]]) == {2} and (y[test[split.y_test == 1]] != 2).all()
    # Disjoint folds: validation anomalies never appear in the test set.
    assert not set(train) & set(valid) and not set(valid) & set(test)


def test_splits_are_seeded():
    X, y = _labelled()
    a, b, c = (datasets.split_pooled_folds(X, y, 0, seed) for seed in (3, 3, 4))
    np.testing.assert_array_equal(a.X_test, b.X_test)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    assert not np.array_equal(a.X_train, c.X_train)
    t1, t2 = (datasets.split_table(X, (y == 0).astype(int), seed=s) for s in (0, 1))
    assert not np.array_equal(t1.X_train, t2.X_train)


def test_split_table_settings():
    X, _ = _labelled(n_per_class=10)
    y = (np.arange(100) % 5 == 0).astype(int)  # 20 outliers
    split = datasets.split_table(X, y, seed=0, setting="one-class", train_fraction=0.6)
    assert len(split.X_train) == 48 and (y[split.X_train.ravel()] == 0).all()
    assert split.y_test.sum() == 20 and len(split.X_test) == 52
    np.testing.assert_array_equal(split.y_test, y[split.X_test.ravel()])
    assert not set(split.X_train.ravel()) & set(split.X_test.ravel())
    full = datasets.split_table(X, y, seed=0, setting="unsupervised")
    assert len(full.X_train) == len(full.X_test) == 100 and full.y_test.sum() == 20
    with pytest.raises(ValueError, match="setting"):
        datasets.split_table(X, y, seed=0, setting="supervised")


def test_digits_images():
    X, y = datasets.load_digits_images()
    assert X.shape == (1797, 8, 8) and 0 <= X.min() and X.max() == 1 and len(y) == 1797


@pytest.mark.skipif(not (SHARED / "fashion_mnist").is_dir(), reason="needs ../shared data")
def test_real_fashion_mnist_files():
    X_train, y_train, X_test, y_test = datasets.load_idx(SHARED / "fashion_mnist")
    assert X_train.shape == (60000, 28, 28) and X_test.shape == (10000, 28, 28)
    assert np.bincount(np.r_[y_train, y_test]).tolist() == [7000] * 10
    split = datasets.split_pooled_folds(np.r_[X_train, X_test], np.r_[y_train, y_test], 0, 0)
    assert len(split.X_train) == 4200 and len(split.X_test) == 2800


@pytest.mark.skipif(not (SHARED / "odds").is_dir(), reason="needs ../shared data")
def test_real_odds_tables():
    X, y = datasets.load_table(SHARED / "odds" / "cardio.mat")
    assert X.shape == (1831, 21) and y.sum() == 176


def test_load_idx_header_declaring_an_overflowing_size_is_named(tmp_path):
    # 2**31 x 2**31 x 4 bytes wraps to 0 in int64: the file must not pass for empty.
    path = tmp_path / "huge-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 2**31, 2**31, 4))
    with pytest.raises(ValueError, match=r"huge-idx3-ubyte: the header declares shape"):
        datasets.load_idx_file(path)


def _write_batch(path, data, labels=None):
    labels = [0] * len(data) if labels is None else labels
    with open(path, "wb") as f:
        pickle.dump({b"data": data, b"labels": labels}, f)


@pytest.mark.parametrize(
    "data, match",
    [
        (np.random.RandomState(0).rand(4, 3072), r"float64 values in \[.*, 1\], expected integers"),
        (np.full((4, 3072), 300), r"whole numbers in \[300, 300\]"),
        (np.full((4, 3072), -1), r"whole numbers in \[-1, -1\]"),
        (np.full((4, 3072), "a"), "<U1 values"),
    ],
    ids=["floats in [0, 1]", "above 255", "negative", "text"],
)
def test_load_cifar10_refuses_pixels_a_cast_would_change(tmp_path, data, match):
    _write_cifar(tmp_path)
    _write_batch(tmp_path / "data_batch_2", data)
    with pytest.raises(ValueError, match="data_batch_2: b'data' holds " + match):
        datasets.load_cifar10(tmp_path)


def test_load_cifar10_accepts_whole_numbers_of_any_dtype(tmp_path):
    expected = _write_cifar(tmp_path)
    data, labels = expected["test_batch"]
    _write_batch(tmp_path / "test_batch", data.astype(np.float64), np.array(labels, float))
    _, _, X_test, y_test = datasets.load_cifar10(tmp_path)
    assert X_test.dtype == np.uint8
    np.testing.assert_array_equal(X_test.reshape(len(data), -1), data)
    np.testing.assert_array_equal(y_test, labels)
    _write_batch(tmp_path / "test_batch", data, [0.5] * len(data))
    with pytest.raises(ValueError, match="test_batch: b'labels' holds float64 values"):
        datasets.load_cifar10(tmp_path)


def test_load_table_reads_sparse_mat_and_names_non_numeric_files(tmp_path):
    import scipy.sparse as sp

    X = np.eye(5)[:, :3]
    savemat(tmp_path / "sparse.mat", {"X": sp.csc_matrix(X), "y": sp.csc_matrix(np.eye(5)[:, :1])})
    X_read, y_read = datasets.load_table(tmp_path / "sparse.mat")
    np.testing.assert_array_equal(X_read, X)
    np.testing.assert_array_equal(y_read, [1, 0, 0, 0, 0])
    np.savez(tmp_path / "text.npz", X=np.full((3, 2), "a"), y=np.zeros(3))
    with pytest.raises(ValueError, match=r"text\.npz: X holds <U1 values"):
        datasets.load_table(tmp_path / "text.npz")
    savemat(tmp_path / "cells.mat", {"X": np.array([["a", 1.0]], dtype=object), "y": [[0]]})
    with pytest.raises(ValueError, match=r"cells\.mat: X holds"):
        datasets.load_table(tmp_path / "cells.mat")
    np.savez(tmp_path / "labels.npz", X=np.ones((3, 2)), y=np.array(["0", "1", "0"]))
    with pytest.raises(ValueError, match=r"labels\.npz: labels y must be 0"):
        datasets.load_table(tmp_path / "labels.npz")
