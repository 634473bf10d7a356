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
  respect to the head's weight) and ``pretext_neighbours`` (the distance to the 5
  nearest training images it keeps);
- ``combined`` (tables only): the detector with ``score='combined'``, and from the
  same network each term alone: ``combined_reconstruction``, ``combined_alignment``
  and ``combined_neighbours``;
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
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

# Only names here: torch, scikit-learn and pandas load after the arguments are parsed
# (``--help`` answers at once, a bad option fails at once).
from .choices import DATASETS, DEFAULT_SEEDS, METHODS, PRETEXT_EPOCHS


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


def check_detector_params(params):
    """Build and check the detectors the run will fit, as ``fit`` would before training,
    so that a bad ``--set`` or ``--max-epochs`` fails before the first task."""
    from .._detector import GradientAnomalyDetector
    from .._settings import check_settings

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


def plain(text):
    """reStructuredText as plain text for ``--help``: ``literal`` becomes literal, a
    role such as :class:`~sklearn.neighbors.NearestNeighbors` its name as shown
    (NearestNeighbors), :ref:`title <target>` its title."""

    def shown(match):
        target = match[1]
        if "<" in target:
            return target.split("<")[0].strip()
        return target[1:].rpartition(".")[2] if target.startswith("~") else target

    return re.sub(r":(?:[\w-]+:)+`([^`]+)`", shown, text).replace("``", "")


def main(argv=None):
    # The console script names itself; ``python -m`` would show the file's path.
    console = Path(sys.argv[0]).name == "gradient-ad-benchmark"
    parser = argparse.ArgumentParser(
        prog=None if console else "python -m gradient_ad.benchmark",
        description=plain(__doc__),
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
    parser.add_argument(
        "--contamination-rate",
        type=float,
        default=0.0,
        metavar="Q",
        help="images only: make that share of each training set unlabelled anomalies "
        "(other classes' training images, seeded) and fit the detectors with "
        "contamination=Q (default: 0, clean); tables: use --setting unsupervised",
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
    from .evaluation import run_tasks
    from .report import budget_note, fit_times, format_table, plot, save, title
    from .splits import tasks

    try:
        params = _parse_params(args.set)
        if args.max_epochs is not None:
            params["max_epochs"] = args.max_epochs
        if args.contamination_rate:
            params["contamination"] = args.contamination_rate
        check_detector_params(params)
        if args.pretext_epochs < 1:
            raise ValueError(f"--pretext-epochs must be at least 1, got {args.pretext_epochs}")
        if args.out:
            _check_out(args.out)
        todo = tasks(
            args.dataset,
            args.data_dir,
            args.classes,
            args.seeds,
            args.setting,
            args.contamination_rate,
        )
    except (ValueError, TypeError, OSError) as error:
        parser.error(str(error).replace("\n", " "))
    meta = {"command": " ".join(["python -m gradient_ad.benchmark", *sys.argv[1:]])} | vars(args)
    meta["detector_params"] = params

    def on_task(rows):
        if args.out:
            save(rows, args.out, meta)

    from sklearn.exceptions import ConvergenceWarning

    start = time.perf_counter()
    with warnings.catch_warnings():
        # Counted once in the summary (budget_note) instead of a warning per fit.
        warnings.filterwarnings("ignore", "Training ran all max_epochs", ConvergenceWarning)
        rows = run_tasks(
            args.dataset,
            todo,
            params,
            args.methods,
            log=lambda line: print(line, flush=True),
            on_task=on_task,
            pretext_epochs=args.pretext_epochs,
        )
    meta["total_seconds"] = round(time.perf_counter() - start, 1)
    print("\n" + title(rows, args.dataset, args.setting))
    print(format_table(rows))
    note = budget_note(rows, params, args.pretext_epochs)
    if note:
        print(note)
    print("median fit seconds: " + "  ".join(f"{m} {s:.1f}" for m, s in fit_times(rows).items()))
    print(f"total time {meta['total_seconds']:.1f} s")
    if args.out:
        save(rows, args.out, meta)
        plot(rows, Path(args.out).with_suffix(".png"), f"{args.dataset} test AUROC")
        print(f"wrote {args.out} and {Path(args.out).with_suffix('.png')}")
    return rows


def console(argv=None):
    """The console script ``gradient-ad-benchmark``: :func:`main`, exit status 0.

    :func:`main` returns its result rows, which a console script's ``sys.exit(...)``
    would print and turn into exit status 1; this returns 0 once the run is done. A bad
    command line still exits with status 2 from argparse.
    """
    main(argv)
    return 0
