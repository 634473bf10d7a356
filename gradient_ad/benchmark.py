"""One-class benchmark: GradCon beside its ablations and classic detectors.

``python -m gradient_ad.benchmark`` runs scikit-learn's digits (no download): each
digit in turn is normal, the other nine are anomalies. Other data sets need
``--data-dir``: ``fashion-mnist`` and ``mnist`` an IDX directory, ``cifar10`` the python
batches, ``odds`` a directory of ODDS ``.mat`` / ADBench ``.npz`` tables (``--classes``
then names tables, ``--setting`` picks one-class or unsupervised).

For each normal class (or table) and seed it trains GradCon once (``beta`` weighs
scores, not training, so one network serves every ``beta``) and reports the test
AUROC of

- ``gradcon``: the GradCon score, reconstruction error - beta * gradient alignment;
- ``gradcon_reconstruction``: the reconstruction error alone, same network (the
  paper's ablation);
- ``gradcon_gradient``: the gradient alignment alone, same network;
- ``gradcon_standardized``: the same network scored with ``beta='auto'``, which weighs
  both terms equally (their standard deviations on the detector's held-out slice of
  the training data): a scale-free combination;
- ``autoencoder``: a network trained with ``alpha=0``, scored by reconstruction error;
- ``pretext``: the detector with ``pretext='rotation'`` (images only; digits as 8 x 8
  images), trained for ``--pretext-epochs``, and from the same network each term alone:
  ``pretext_reconstruction``, ``pretext_alignment``, ``pretext_rotation_loss`` and
  ``pretext_rotation_gradient`` (the log norm of the rotation loss's gradient with
  respect to the head's weight);
- ``isolation_forest`` and ``one_class_svm``: scikit-learn's, default settings;
- ``knn``: the mean distance to the 5 nearest training rows
  (:class:`~sklearn.neighbors.NearestNeighbors`);
- ``lof``: :class:`~sklearn.neighbors.LocalOutlierFactor` with ``novelty=True``.

Where the protocol's validation split holds anomalies from outside the test split
(image data sets), the validation AUROC is recorded too, for choosing settings.
"""

import argparse
import ast
import importlib.util
import json
import numbers
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import LocalOutlierFactor
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

from . import datasets
from ._combined import fit_neighbours, neighbour_distance
from ._detector import GradientAnomalyDetector
from ._gradcon import anomaly_score
from ._settings import check_settings

DATASETS = ("digits", "fashion-mnist", "mnist", "cifar10", "odds")
GRADCON_SCORES = (
    "gradcon",
    "gradcon_reconstruction",
    "gradcon_gradient",
    "gradcon_standardized",
)
PRETEXT_SCORES = (
    "pretext",
    "pretext_reconstruction",
    "pretext_alignment",
    "pretext_rotation_loss",
    "pretext_rotation_gradient",
)
METHODS = (
    *GRADCON_SCORES,
    "autoencoder",
    *PRETEXT_SCORES,
    "isolation_forest",
    "one_class_svm",
    "knn",
    "lof",
)
FITTED = ("gradcon", "autoencoder", "pretext", "isolation_forest", "one_class_svm", "knn", "lof")
# Training epochs of the pretext detector: about 2 minutes a Fashion-MNIST class on one
# core (benchmarks/pretext_design.py measured the choice on validation folds).
PRETEXT_EPOCHS = 10
# Column headers of the printed table: README's where README shows the method.
LABELS = {
    "gradcon": "GradCon",
    "gradcon_reconstruction": "recon. same net",
    "gradcon_gradient": "gradient same net",
    "gradcon_standardized": "beta='auto'",
    "autoencoder": "autoencoder",
    "pretext": "pretext",
    "pretext_reconstruction": "recon. pretext net",
    "pretext_alignment": "alignment pretext net",
    "pretext_rotation_loss": "rotation loss",
    "pretext_rotation_gradient": "rotation gradient",
    "isolation_forest": "IForest",
    "one_class_svm": "OC-SVM",
    "knn": "kNN",
    "lof": "LOF",
}
# README's rows are means over three seeds; the command reproduces them by default.
DEFAULT_SEEDS = (0, 1, 2)


# -- tasks ----------------------------------------------------------------------------


def tasks(dataset, data_dir=None, classes=None, seeds=(0,), setting="one-class"):
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
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    seeds = _check_seeds(seeds)
    # Everything is read and checked here, when called, so that a bad class, table or
    # file fails before the first task trains; the tasks themselves come lazily.
    if dataset == "odds":
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
    return ((normal, seed, splitter(normal, seed)) for normal in normals for seed in seeds)


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


# -- one task -------------------------------------------------------------------------


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
                score = _gradcon_scorer(method, betas.get(method))
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
        detector, seconds = _timed_fit(GradientAnomalyDetector(**pretext_params), split.X_train)
        test = _pretext_scores(detector, split.X_test)
        valid = None if split.y_valid is None else _pretext_scores(detector, split.X_valid)
        for method in PRETEXT_SCORES:
            if method in methods:
                valid_score = None if valid is None else valid[method]
                results[method] = _record(split, test[method], valid_score, seconds)
                results[method] |= _training_record(detector)
    flat = _flat(split)
    for method, model in (
        ("isolation_forest", IsolationForest(random_state=seed)),
        ("one_class_svm", OneClassSVM()),
        ("knn", _KNN()),
        ("lof", LocalOutlierFactor(novelty=True)),
    ):
        if method in methods:
            model, seconds = _timed_fit(model, flat.X_train)
            valid = None if split.y_valid is None else -model.score_samples(flat.X_valid)
            results[method] = _record(split, -model.score_samples(flat.X_test), valid, seconds)
    return results


def _pretext_scores(detector, X):
    """Anomaly scores (higher = more anomalous) of the pretext detector and its terms."""
    components = detector.score_components(X)
    return {
        # score_samples, from the components computed once.
        "pretext": detector.combined_.score(components),
        "pretext_reconstruction": components.reconstruction_error,
        "pretext_alignment": -components.alignment,
        "pretext_rotation_loss": components.rotation_loss,
        "pretext_rotation_gradient": components.log_rotation_gradient_norm,
    }


class _KNN:
    """The mean distance to the ``N_NEIGHBOURS`` (5) nearest training rows, as
    ``score_samples`` (higher = more normal, as scikit-learn's detectors): the pretext
    detector's neighbour term on its own."""

    def fit(self, X):
        self.neighbours_ = fit_neighbours(X)
        return self

    def score_samples(self, X):
        return -neighbour_distance(self.neighbours_, X)


def _training_record(detector):
    """How training went: epochs, restarts after a collapse, and the final spread."""
    return {
        "epochs": detector.n_iter_,
        "restarts": detector.n_restarts_,
        "spread": _finite_or_none(round(float(detector.reconstruction_spread_), 4)),
    }


def _finite_or_none(value):
    return value if np.isfinite(value) else None  # JSON has no NaN


def _gradcon_scorer(method, beta):
    """Anomaly score (higher = more anomalous) from ``(error, alignment)``."""
    if method == "gradcon_reconstruction":
        return lambda error, alignment: error
    if method == "gradcon_gradient":
        return lambda error, alignment: -alignment
    return lambda error, alignment: anomaly_score(error, alignment, beta)


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


# -- a whole run ----------------------------------------------------------------------


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
    return _run_tasks(
        dataset,
        tasks(dataset, data_dir, classes, seeds, setting),
        detector_params,
        methods,
        log,
        on_task,
        pretext_epochs,
    )


# Image data sets whose tasks hold flat rows: the pretext rotates them as these images.
_FLAT_IMAGES = {"digits": (8, 8)}


def _run_tasks(
    dataset, todo, detector_params, methods, log, on_task, pretext_epochs=PRETEXT_EPOCHS
):
    rows = []
    for task, seed, split in todo:
        start = time.perf_counter()
        results = evaluate(
            split,
            seed,
            detector_params,
            methods,
            image_shape=_FLAT_IMAGES.get(dataset),
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


def summarize(rows, value="auroc"):
    """Per task and method: mean and standard deviation over seeds, plus the mean row.

    Returns
    -------
    table : pandas.DataFrame
        Index: tasks then ``'mean'``; columns: ``(method, 'mean'|'std')``. The mean
        row averages over tasks within each seed, then over seeds (``std`` is the
        spread of that average over seeds).
    """
    import pandas as pd

    frame = pd.DataFrame(rows).dropna(subset=[value])
    methods = [m for m in METHODS if m in set(frame["method"])]
    by_task = frame.groupby(["task", "method"])[value].agg(["mean", "std"]).unstack("method")
    by_seed = frame.groupby(["seed", "method"])[value].mean().unstack("method")
    table = {}
    for m in methods:
        means = by_task[("mean", m)].tolist() + [by_seed[m].mean()]
        stds = by_task[("std", m)].fillna(0).tolist() + [np.nan_to_num(by_seed[m].std())]
        table[(m, "mean")] = means
        table[(m, "std")] = stds
    index = [*map(str, by_task.index), "mean"]
    return pd.DataFrame(table, index=index)


def format_table(rows, value="auroc"):
    """:func:`summarize` as text, columns headed as in README's table.

    A cell is the mean over seeds, ``mean +/- std`` with two seeds or more (one seed
    has no spread to show).
    """
    table = summarize(rows, value)
    methods = list(dict.fromkeys(m for m, _ in table.columns))
    spread = len({row["seed"] for row in rows}) > 1
    labels = [LABELS.get(m, m) for m in methods]
    width = max(15 if spread else 7, *(len(label) for label in labels))
    lines = ["task".ljust(12) + "".join(label.rjust(width + 2) for label in labels)]
    for task, row in table.iterrows():
        cells = [
            f"{row[(m, 'mean')]:.3f}" + (f" +/- {row[(m, 'std')]:.3f}" if spread else "")
            for m in methods
        ]
        lines.append(str(task)[:12].ljust(12) + "".join(c.rjust(width + 2) for c in cells))
    return "\n".join(lines)


def _title(rows, dataset, setting):
    """The table's first line: data, protocol, tasks and seeds, as README's rows say."""
    n_tasks = len({row["task"] for row in rows})
    n_seeds = len({row["seed"] for row in rows})
    unit = "tables" if dataset == "odds" else "classes"
    protocol = setting if dataset == "odds" else "one-class"
    seeds = f"{n_seeds} seeds, mean +/- std over seeds" if n_seeds > 1 else "1 seed"
    return f"Test AUROC, {dataset} ({protocol}), {n_tasks} {unit}, {seeds}"


def _budget_note(rows, params):
    """How many network fits ran all ``max_epochs`` with early stopping on: what the
    detector's "Training ran all max_epochs" warning says, once for the run. The pretext
    detector's fits are not counted: their budget is ``--pretext-epochs``."""
    defaults = GradientAnomalyDetector()
    if not params.get("early_stopping", defaults.early_stopping):
        return ""
    max_epochs = params.get("max_epochs", defaults.max_epochs)
    fits = [
        row
        for row in rows
        if row["method"] in FITTED and row["method"] != "pretext" and row.get("epochs") is not None
    ]
    full = sum(row["epochs"] >= max_epochs for row in fits)
    if not full:
        return ""
    return (
        f"{full} of {len(fits)} network fits ran all max_epochs={max_epochs} epochs before "
        "early stopping stopped them (--max-epochs trains longer)"
    )


def fit_times(rows):
    """Median fit time in seconds of each fitted method."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    return frame[frame["method"].isin(FITTED)].groupby("method")["fit_seconds"].median().to_dict()


def save(rows, path, meta=None):
    """Write rows to ``.json`` (with ``meta``) or ``.csv``."""
    import pandas as pd

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        pd.DataFrame(rows).to_csv(path, index=False)
    else:
        path.write_text(json.dumps({"meta": meta or {}, "rows": rows}, indent=1) + "\n")


def plot(rows, path, title=""):
    """Bar chart of the mean test AUROC per task and method (error bars: std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = summarize(rows)
    methods = list(dict.fromkeys(m for m, _ in table.columns))
    width = 0.8 / len(methods)
    x = np.arange(len(table))
    fig, ax = plt.subplots(figsize=(max(7, 0.9 * len(table) + 4), 4))
    for i, m in enumerate(methods):
        ax.bar(
            x + (i - (len(methods) - 1) / 2) * width,
            table[(m, "mean")],
            width,
            yerr=table[(m, "std")],
            label=m,
        )
    ax.set_xticks(x, table.index, rotation=45, ha="right")
    ax.set_ylabel("test AUROC")
    lowest = np.nanmin(table[[(m, "mean") for m in methods]].to_numpy())
    ax.set_ylim(max(0.0, np.floor(10 * lowest - 1) / 10), 1)
    ax.set_title(title)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _parse_params(items):
    """``--set KEY=VALUE`` items as detector parameters (values read as Python literals,
    else kept as strings); a ``ValueError`` names a malformed item."""
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            params[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            params[key.strip()] = value
    return params


def _check_detector_params(params):
    """Build and check the detectors the run will fit, as ``fit`` would before training,
    so that a bad ``--set`` or ``--max-epochs`` fails before the first task."""
    for extra in ({"beta": "auto"}, {"alpha": 0}, {"pretext": "rotation"}):
        try:
            detector = GradientAnomalyDetector(**{"random_state": 0, **params, **extra})
        except TypeError as error:  # an unknown parameter name
            raise ValueError(f"--set: {error}") from None
        detector._validate_params()
        check_settings(detector)


def _check_out(out):
    path = Path(out)
    if path.suffix not in (".json", ".csv"):
        raise ValueError(f"--out {out}: expected a .json or .csv file")
    if path.is_dir():
        raise ValueError(f"--out {out}: is a directory")
    try:  # as save will: create the directory, then write in it (a probe file)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as error:
        raise ValueError(f"--out {out}: cannot write there ({error})") from None


def _plain(text):
    """A docstring as plain text for ``--help``: no reST literal markup."""
    return text.replace("``", "")


def main(argv=None):
    # The console script names itself; ``python -m`` would show the file's path.
    console = Path(sys.argv[0]).name == "gradient-ad-benchmark"
    parser = argparse.ArgumentParser(
        prog=None if console else "python -m gradient_ad.benchmark",
        description=_plain(__doc__),
        epilog="Where to get each data set, and the file names the readers expect: the\n"
        "'Data' section of the benchmarks page in the documentation (docs/benchmarks.rst).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--dataset", choices=DATASETS, default="digits", help="data set (default: digits)"
    )
    parser.add_argument(
        "--data-dir", help="directory of the data set's files (all but digits need it)"
    )
    parser.add_argument(
        "--classes", nargs="+", help="normal classes, or table names for odds (default: all)"
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=list(DEFAULT_SEEDS),
        help="seeds of the splits and the networks (default: 0 1 2, as README's table; "
        "one seed takes a third of the time)",
    )
    parser.add_argument(
        "--setting",
        choices=("one-class", "unsupervised"),
        default="one-class",
        help="odds only: train on normal rows (one-class) or on all rows (unsupervised)",
    )
    parser.add_argument("--max-epochs", type=int, help="GradCon's max_epochs (default: 100)")
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="further GradientAnomalyDetector parameters, e.g. beta=0.5 constrained=all",
    )
    parser.add_argument(
        "--pretext-epochs",
        type=int,
        default=PRETEXT_EPOCHS,
        help=f"max_epochs of the pretext detector (default: {PRETEXT_EPOCHS})",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS,
        default=list(METHODS),
        metavar="METHOD",
        help=f"methods to run (default: all): {', '.join(METHODS)}",
    )
    parser.add_argument("--out", help="results file, .json or .csv; a .png plot goes beside it")
    args = parser.parse_args(argv)
    for module in ("pandas", "matplotlib") if args.out else ("pandas",):
        if importlib.util.find_spec(module) is None:
            # gradient-ad is not on a package index yet: name the extra as a clone uses it.
            parser.error(
                f"the benchmark needs {module}: pip install {module}, or "
                'pip install ".[benchmark]" in a clone of gradient-ad'
            )

    # Every argument is checked, and the data read, before anything trains: a bad
    # command line ends in a one-line message and exit status 2, not a traceback.
    try:
        params = _parse_params(args.set)
        if args.max_epochs is not None:
            params["max_epochs"] = args.max_epochs
        _check_detector_params(params)
        if args.pretext_epochs < 1:
            raise ValueError(f"--pretext-epochs must be at least 1, got {args.pretext_epochs}")
        if args.out:
            _check_out(args.out)
        todo = tasks(args.dataset, args.data_dir, args.classes, args.seeds, args.setting)
    except (ValueError, TypeError, OSError) as error:
        parser.error(str(error).replace("\n", " "))
    meta = {"command": " ".join(["python -m gradient_ad.benchmark", *sys.argv[1:]])} | vars(args)
    meta["detector_params"] = params

    def on_task(rows):
        if args.out:
            save(rows, args.out, meta)

    start = time.perf_counter()
    with warnings.catch_warnings():
        # Counted once in the summary (_budget_note) instead of a warning per fit.
        warnings.filterwarnings("ignore", "Training ran all max_epochs", ConvergenceWarning)
        rows = _run_tasks(
            args.dataset,
            todo,
            params,
            args.methods,
            log=lambda line: print(line, flush=True),
            on_task=on_task,
            pretext_epochs=args.pretext_epochs,
        )
    meta["total_seconds"] = round(time.perf_counter() - start, 1)
    print("\n" + _title(rows, args.dataset, args.setting))
    print(format_table(rows))
    note = _budget_note(rows, params)
    if note:
        print(note)
    print("median fit seconds: " + "  ".join(f"{m} {s:.1f}" for m, s in fit_times(rows).items()))
    print(f"total time {meta['total_seconds']:.1f} s")
    if args.out:
        save(rows, args.out, meta)
        plot(rows, Path(args.out).with_suffix(".png"), f"{args.dataset} test AUROC")
        print(f"wrote {args.out} and {Path(args.out).with_suffix('.png')}")
    return rows


if __name__ == "__main__":
    main()
