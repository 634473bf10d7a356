"""The benchmark's tasks: for each data set, its normal classes (or tables) and
seeds, each with its one-class split, read and checked before any training."""

import dataclasses
import numbers
from pathlib import Path

import numpy as np
from sklearn.preprocessing import StandardScaler

from .. import datasets
from .choices import DATASETS


def tasks(
    dataset, data_dir=None, classes=None, seeds=(0,), setting="one-class", contamination_rate=0.0
):
    """Yield ``(task, seed, split)`` for every normal class (or table) and seed.

    Parameters
    ----------
    dataset : {'digits', 'fashion-mnist', 'mnist', 'cifar10', 'odds'}
    data_dir : str or path-like, default=None
        Where the files are; not needed for digits.
    classes : list, default=None
        Normal classes (ints) or, for ``'odds'``, table names (file stems); ``None``
        takes them all.
    seeds : sequence of int, default=(0,)
    setting : {'one-class', 'unsupervised'}, default='one-class'
        For tables only.
    contamination_rate : float, default=0.0
        Images only: the share of each training set made of unlabelled anomalies,
        images of the other classes drawn (seeded) from their training side (never
        from the validation or test sets); the test set is unchanged.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    seeds = _check_seeds(seeds)
    # Everything is read and checked here, when called, so that a bad class, table or
    # file fails before the first task trains; the tasks themselves come lazily.
    if not 0.0 <= contamination_rate < 0.5:
        raise ValueError(f"--contamination-rate must be in [0, 0.5), got {contamination_rate}")
    if dataset == "odds":
        if contamination_rate:
            raise ValueError(
                "--contamination-rate mixes other classes into image training sets; for "
                "tables use --setting unsupervised (training on all rows, anomalies included)"
            )
        return _table_tasks(_read_tables(data_dir, classes), seeds, setting)
    if setting not in ("one-class", "unsupervised"):
        raise ValueError(f"setting must be 'one-class' or 'unsupervised', got {setting!r}")
    if dataset != "digits" and data_dir is None:
        raise ValueError(f"--dataset {dataset} needs --data-dir")
    if dataset != "digits" and not Path(data_dir).is_dir():
        raise ValueError(f"--data-dir {data_dir}: no such directory")
    if dataset == "digits":
        # Flat rows (64 pixels, MLP), five pooled folds per class: 108 to train.
        X, y = datasets.load_digits_images()
        X = X.reshape(len(X), -1)
        labels, splitter = y, _pooled(X, y)
    elif dataset == "fashion-mnist":
        X_train, y_train, X_test, y_test = datasets.load_idx(data_dir)
        labels = np.r_[y_train, y_test]
        splitter = _pooled(np.concatenate([X_train, X_test]), labels)
    else:
        load = datasets.load_idx if dataset == "mnist" else datasets.load_cifar10
        data = load(data_dir)
        labels = data[1]

        def splitter(normal, seed):
            return datasets.split_official(*data, normal, seed)

    normals = _check_classes(dataset, classes, np.unique(labels))
    if contamination_rate:
        splitter = _contaminated(splitter, np.unique(labels), contamination_rate)
    return ((normal, seed, splitter(normal, seed)) for normal in normals for seed in seeds)


def _contaminated(splitter, labels, rate):
    """``splitter`` whose training sets hold ``rate`` of other classes' training images:
    those each other class trains on in its own split of the same seed (for pooled
    folds, their training folds; for an official split, their training images outside
    the drawn validation slice)."""

    def split(normal, seed):
        clean = splitter(normal, seed)
        pool = np.concatenate([splitter(o, seed).X_train for o in labels if o != normal])
        rng = np.random.RandomState(seed + 7919)  # apart from the split's own draws
        n_mixed = int(round(rate * len(clean.X_train) / (1 - rate)))
        mixed = np.concatenate([clean.X_train, pool[rng.choice(len(pool), n_mixed, replace=False)]])
        return dataclasses.replace(clean, X_train=mixed[rng.permutation(len(mixed))])

    return split


def _check_seeds(seeds):
    seeds = list(seeds)
    bad = [s for s in seeds if not isinstance(s, numbers.Integral) or not 0 <= s < 2**32]
    if not seeds or bad:
        raise ValueError(f"seeds must be integers from 0 to 2**32 - 1, got {seeds}")
    return [int(s) for s in seeds]


def _check_classes(dataset, classes, present):
    present = [int(c) for c in present]
    if classes is None:
        return present
    normals = []
    for c in classes:
        normal = None
        if isinstance(c, str) and c.strip().isdigit():
            normal = int(c)
        elif isinstance(c, numbers.Integral) and not isinstance(c, bool):
            normal = int(c)
        if normal not in present:
            raise ValueError(
                f"no class {c!r} in {dataset}: its classes are {present[0]} to {present[-1]}"
            )
        normals.append(normal)
    return normals


def _pooled(X, y):
    def splitter(normal, seed):
        return datasets.split_pooled_folds(X, y, normal, seed)

    return splitter


def _read_tables(data_dir, classes):
    if data_dir is None:
        raise ValueError("--dataset odds needs --data-dir, a directory of .mat or .npz tables")
    directory = Path(data_dir)
    if not directory.is_dir():
        raise ValueError(f"--data-dir {data_dir}: no such directory")
    if classes is None:
        paths = sorted([*directory.glob("*.mat"), *directory.glob("*.npz")])
        if not paths:
            raise ValueError(f"{directory}: no .mat or .npz tables found")
    else:
        paths = [_table_path(directory, name) for name in classes]
    return [(path.stem, *datasets.load_table(path)) for path in paths]


def _table_tasks(tables, seeds, setting):
    if setting not in ("one-class", "unsupervised"):
        raise ValueError(f"setting must be 'one-class' or 'unsupervised', got {setting!r}")
    return (_table_task(name, X, y, seed, setting) for name, X, y in tables for seed in seeds)


def _table_task(name, X, y, seed, setting):
    split = datasets.split_table(X, y, seed, setting)
    # Standardise features on the training rows: the MLP and the SVM need it.
    scaler = StandardScaler().fit(split.X_train)
    split.X_train = scaler.transform(split.X_train)
    split.X_test = scaler.transform(split.X_test)
    return name, seed, split


def _table_path(directory, name):
    for suffix in ("", ".mat", ".npz"):
        path = directory / f"{name}{suffix}"
        if path.parent != directory:  # e.g. "../secret": a name, not a path
            break
        if path.is_file():
            return path
    raise ValueError(f"{directory}: no table named {name!r} (.mat or .npz)")
