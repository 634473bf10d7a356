"""The benchmark command, end to end on digits, and on small files of the real formats."""

import gzip
import json
import os
import re
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gradient_ad import benchmark, datasets
from gradient_ad.benchmark import cli, evaluation, report

ROOT = Path(__file__).resolve().parents[1]

FAST = ["--max-epochs", "3"]  # the pretext detector keeps its default 10 epochs


def test_digits_end_to_end(tmp_path, capsys):
    out = tmp_path / "digits.json"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = benchmark.main(
            ["--classes", "1", "7", "--seeds", "0", "1", *FAST, "--out", str(out)]
        )
    printed = capsys.readouterr().out
    assert "digits 7 seed 1" in printed and "median fit seconds" in printed
    # Three epochs: every network runs out of them; said once, not warned per fit.
    assert "8 of 8 GradCon/autoencoder fits used all max_epochs=3 epochs" in printed
    assert "4 of 4 pretext fits used all --pretext-epochs=10 epochs" in printed
    assert "(--max-epochs and --pretext-epochs train longer)" in printed
    assert not [w for w in caught if "max_epochs" in str(w.message)]
    saved = json.loads(out.read_text())
    assert saved["rows"] == rows and saved["meta"]["detector_params"] == {"max_epochs": 3}
    assert (tmp_path / "digits.png").stat().st_size > 0
    frame = pd.DataFrame(rows)
    # Digits run as images: the table model's combined score is left out.
    image_methods = set(benchmark.METHODS) - set(benchmark.COMBINED_SCORES)
    assert len(frame) == 2 * 2 * len(image_methods)
    assert set(frame["method"]) == image_methods
    # Digits validation folds hold anomalies from outside the test folds.
    assert frame["valid_auroc"].notna().all()
    # The neighbour methods only store 108 rows: their fit may round to 0 ms.
    networks = frame["method"].isin(benchmark.GRADCON_SCORES + benchmark.PRETEXT_SCORES)
    assert (frame.loc[networks, "fit_seconds"] > 0).all()
    assert (frame["fit_seconds"] >= 0).all()
    # Real data: the classic detectors separate digits 1 and 7 from the others well
    # (measured about 0.97-1.0); 0.85 leaves room for seeds and library versions.
    classic = frame[frame["method"].isin(["isolation_forest", "one_class_svm", "knn", "lof"])]
    assert (classic["auroc"] > 0.85).all()
    # Three epochs of GradCon already beat chance clearly.
    assert frame.loc[frame["method"] == "gradcon", "auroc"].mean() > 0.7
    table = benchmark.summarize(rows)
    assert list(table.index) == ["1", "7", "mean"]
    gradcon = frame[frame["method"] == "gradcon"]
    expected = gradcon.groupby("seed")["auroc"].mean()
    assert table.loc["mean", ("gradcon", "mean")] == pytest.approx(expected.mean())
    assert table.loc["mean", ("gradcon", "std")] == pytest.approx(expected.std())


def test_gradcon_scores_come_from_one_network(tmp_path):
    rows = benchmark.run(
        classes=[3], seeds=[0], detector_params={"max_epochs": 2}, log=lambda line: None
    )
    by_method = {r["method"]: r for r in rows}
    fits = {by_method[m]["fit_seconds"] for m in benchmark.GRADCON_SCORES}
    assert len(fits) == 1  # one fit, four scores
    assert by_method["autoencoder"]["fit_seconds"] not in fits


@pytest.mark.parametrize("beta", [None, 0.02, "auto"])
def test_gradcon_columns_are_the_detector_with_that_beta(beta):
    from sklearn.metrics import roc_auc_score

    from gradient_ad import GradientAnomalyDetector

    _, seed, split = next(benchmark.tasks("digits", classes=[8], seeds=[1]))
    params = {"max_epochs": 2} if beta is None else {"max_epochs": 2, "beta": beta}
    results = benchmark.evaluate(split, seed, params, methods=benchmark.GRADCON_SCORES)
    for method, weight in (("gradcon", params.get("beta", 0.12)), ("gradcon_standardized", "auto")):
        detector = GradientAnomalyDetector(random_state=seed, **{**params, "beta": weight})
        scores = -detector.fit(split.X_train).score_samples(split.X_test)
        assert results[method]["auroc"] == pytest.approx(roc_auc_score(split.y_test, scores))
    if beta == "auto":
        assert results["gradcon"] == results["gradcon_standardized"]
    else:
        assert results["gradcon"]["auroc"] != results["gradcon_standardized"]["auroc"]


def test_pretext_and_neighbour_columns_are_what_they_say():
    from sklearn.metrics import roc_auc_score
    from sklearn.neighbors import LocalOutlierFactor, NearestNeighbors

    from gradient_ad import GradientAnomalyDetector

    _, seed, split = next(benchmark.tasks("digits", classes=[2], seeds=[0]))
    methods = (*benchmark.PRETEXT_SCORES, "knn", "lof")
    results = benchmark.evaluate(
        split, seed, {}, methods=methods, image_shape=(8, 8), pretext_epochs=2
    )
    detector = GradientAnomalyDetector(
        pretext="rotation", max_epochs=2, input_shape=(8, 8), random_state=seed
    ).fit(split.X_train)
    components = detector.score_components(split.X_test)
    expected = {
        "pretext": -detector.score_samples(split.X_test),
        "pretext_reconstruction": components.reconstruction_error,
        "pretext_alignment": -components.alignment,
        "pretext_rotation_loss": components.rotation_loss,
        "pretext_rotation_gradient": components.log_rotation_gradient_norm,
        "pretext_neighbours": components.neighbour_distance,
    }
    distances, _ = NearestNeighbors(n_neighbors=5).fit(split.X_train).kneighbors(split.X_test)
    expected["knn"] = distances.mean(1)
    lof = LocalOutlierFactor(novelty=True).fit(split.X_train)
    expected["lof"] = -lof.score_samples(split.X_test)
    for method, scores in expected.items():
        assert results[method]["auroc"] == pytest.approx(roc_auc_score(split.y_test, scores))
    # The pretext needs images: tables leave its columns out.
    table = datasets.OneClassSplit(split.X_train, None, None, split.X_test, split.y_test)
    assert set(benchmark.evaluate(table, seed, {}, methods=methods)) == {"knn", "lof"}


def test_tables_get_the_combined_score_and_each_of_its_terms():
    from sklearn.metrics import roc_auc_score

    from gradient_ad import GradientAnomalyDetector

    _, seed, split = next(benchmark.tasks("digits", classes=[2], seeds=[0]))
    table = datasets.OneClassSplit(split.X_train, None, None, split.X_test, split.y_test)
    results = benchmark.evaluate(table, seed, {"max_epochs": 2}, methods=benchmark.COMBINED_SCORES)
    detector = GradientAnomalyDetector(score="combined", max_epochs=2, random_state=seed)
    detector.fit(table.X_train)
    components = detector.score_components(table.X_test)
    expected = {
        "combined": -detector.score_samples(table.X_test),
        "combined_reconstruction": components.reconstruction_error,
        "combined_alignment": -components.alignment,
        "combined_neighbours": components.neighbour_distance,
    }
    for method, scores in expected.items():
        assert results[method]["auroc"] == pytest.approx(roc_auc_score(table.y_test, scores))
    # Images take the pretext's combined score instead.
    images = benchmark.evaluate(
        split, seed, {}, methods=benchmark.COMBINED_SCORES, image_shape=(8, 8)
    )
    assert images == {}


def test_csv_output_and_method_subset(tmp_path):
    out = tmp_path / "r.csv"
    benchmark.main(
        ["--classes", "0", *FAST, "--methods", "gradcon", "isolation_forest", "--out", str(out)]
    )
    frame = pd.read_csv(out)
    assert set(frame["method"]) == {"gradcon", "isolation_forest"}
    assert (tmp_path / "r.png").is_file()


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


# One epoch on 60 synthetic images may collapse; the readers and the tasks are under test.
@pytest.mark.filterwarnings("ignore:The network collapsed:sklearn.exceptions.ConvergenceWarning")
def test_image_dataset_from_idx_files(tmp_path):
    # Ten classes of 28 x 28 images, each class a brighter square: the conv route.
    rng = np.random.RandomState(0)
    labels = np.repeat(np.arange(10), 12)
    images = rng.randint(0, 40, (len(labels), 28, 28))
    for i, label in enumerate(labels):
        images[i, 2 * label : 2 * label + 8, 4:12] = 255
    for part, idx in (("train", slice(0, None, 2)), ("t10k", slice(1, None, 2))):
        _write_idx(tmp_path / f"{part}-images-idx3-ubyte.gz", images[idx])
        _write_idx(tmp_path / f"{part}-labels-idx1-ubyte.gz", labels[idx])
    rows = benchmark.run(
        "fashion-mnist",
        tmp_path,
        classes=[2],
        detector_params={"max_epochs": 1, "batch_size": 16},
        methods=("gradcon", "isolation_forest"),
        log=lambda line: None,
    )
    # Pooled folds: 12 images per class -> folds of 2; test = 2 normal + 2 others.
    assert {r["method"] for r in rows} == {"gradcon", "isolation_forest"}
    assert all(0 <= r["auroc"] <= 1 for r in rows)
    mnist = benchmark.run(
        "mnist", tmp_path, classes=[5], methods=("isolation_forest",), log=lambda line: None
    )
    assert mnist[0]["task"] == 5 and mnist[0]["valid_auroc"] is not None


def test_tables_in_both_settings(tmp_path):
    rng = np.random.RandomState(0)
    X = np.r_[rng.randn(150, 4), rng.randn(15, 4) * 0.5 + 6]
    y = np.r_[np.zeros(150, int), np.ones(15, int)]
    np.savez(tmp_path / "blobs.npz", X=X, y=y)
    for setting in ("one-class", "unsupervised"):
        rows = benchmark.run(
            "odds",
            tmp_path,
            setting=setting,
            detector_params={"max_epochs": 3},
            methods=("gradcon", "isolation_forest", "one_class_svm"),
            log=lambda line: None,
        )
        assert {r["task"] for r in rows} == {"blobs"}
        # Far-away outliers: every method ranks them first.
        assert all(r["auroc"] > 0.9 for r in rows if r["method"] != "gradcon")
        assert all(r["valid_auroc"] is None for r in rows)


def test_bad_arguments_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="needs --data-dir"):
        list(benchmark.tasks("odds"))
    with pytest.raises(ValueError, match="needs --data-dir"):
        list(benchmark.tasks("fashion-mnist"))
    with pytest.raises(ValueError, match="no table named 'cardio'"):
        list(benchmark.tasks("odds", tmp_path, classes=["cardio"]))
    with pytest.raises(ValueError, match="no .mat or .npz tables"):
        list(benchmark.tasks("odds", tmp_path))
    with pytest.raises(ValueError, match="missing train-images-idx3-ubyte"):
        list(benchmark.tasks("mnist", tmp_path))
    with pytest.raises(SystemExit):
        benchmark.main(["--set", "beta"])


def test_scores_match_the_detector():
    # The benchmark's GradCon column is the detector's own score; the reconstruction
    # column is its first component, from the same fit.
    from sklearn.metrics import roc_auc_score

    from gradient_ad import GradientAnomalyDetector

    _, _, split = next(benchmark.tasks("digits", classes=[8]))
    results = benchmark.evaluate(
        split, 0, {"max_epochs": 2}, methods=("gradcon", "gradcon_reconstruction")
    )
    detector = GradientAnomalyDetector(max_epochs=2, random_state=0).fit(split.X_train)
    expected = roc_auc_score(split.y_test, -detector.score_samples(split.X_test))
    assert results["gradcon"]["auroc"] == pytest.approx(expected)
    error, _ = detector.score_components(split.X_test)
    assert results["gradcon_reconstruction"]["auroc"] == pytest.approx(
        roc_auc_score(split.y_test, error)
    )


def _cli_error(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        benchmark.main(argv)
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_.value.code == 2 and message.startswith("python -m gradient_ad.benchmark: error:")
    return message


BAD_COMMAND_LINES = [
    (["--classes", "42"], "no class '42' in digits"),
    (["--classes", "seven"], "no class 'seven'"),
    (["--classes", "-1"], "no class '-1'"),
    (["--seeds", "-1"], "seeds must be integers from 0"),
    (["--max-epochs", "0"], "'max_epochs' parameter"),
    (["--set", "beta"], "--set expects KEY=VALUE, got 'beta'"),
    (["--set", "=3"], "--set expects KEY=VALUE"),
    (["--set", "betta=0.1"], "unexpected keyword argument 'betta'"),
    (["--set", "beta=high"], "'beta' parameter"),
    (["--set", "hidden_sizes=(0,)"], "hidden_sizes must be"),
    (["--set", "net_params={'max_epochs': 0}"], "net_params\\['max_epochs'\\]"),
    (["--set", "device=gpu"], "not a torch device"),
    (["--out", "results.txt"], "expected a .json or .csv file"),
    (["--dataset", "mnist"], "needs --data-dir"),
    (["--dataset", "odds"], "needs --data-dir"),
    (["--dataset", "cifar10", "--data-dir", "{missing}"], "no such directory"),
    (["--dataset", "fashion-mnist", "--data-dir", "{tmp}"], "missing train-images"),
    (["--dataset", "odds", "--data-dir", "{tmp}"], "no .mat or .npz tables"),
    (["--dataset", "odds", "--data-dir", "{tmp}", "--classes", "cardio"], "no table named"),
]


@pytest.mark.parametrize(
    "argv, match", BAD_COMMAND_LINES, ids=[" ".join(a) for a, _ in BAD_COMMAND_LINES]
)
def test_bad_command_lines_end_in_one_line_and_status_2(argv, match, tmp_path, capsys, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("a task ran before the error")

    monkeypatch.setattr(evaluation, "evaluate", no_training)
    paths = {"{tmp}": str(tmp_path), "{missing}": str(tmp_path / "absent")}
    argv = [paths.get(a, a) for a in argv]
    assert re.search(match, _cli_error(capsys, argv))


def test_unwritable_out_and_broken_table_fail_before_any_task(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(evaluation, "evaluate", lambda *a, **k: pytest.fail("a task ran"))
    (tmp_path / "file").write_text("")
    assert "cannot write there" in _cli_error(capsys, ["--out", str(tmp_path / "file" / "r.json")])
    # The second table is broken: the first must not train before that is found.
    X, y = np.random.RandomState(0).randn(20, 3), np.r_[np.zeros(18, int), 1, 1]
    np.savez(tmp_path / "a.npz", X=X, y=y)
    np.savez(tmp_path / "b.npz", X=np.full((20, 3), "x"), y=y)
    message = _cli_error(capsys, ["--dataset", "odds", "--data-dir", str(tmp_path)])
    assert "b.npz: X holds <U1 values" in message


def _rows(seeds, methods=("gradcon", "gradcon_reconstruction", "isolation_forest")):
    rng = np.random.RandomState(0)
    return [
        {"task": task, "seed": seed, "method": m, "auroc": rng.rand()}
        for task in ("0", "1")
        for seed in seeds
        for m in methods
    ]


def test_table_headers_are_readmes_and_one_seed_shows_no_spread():
    one = benchmark.format_table(_rows([0])).split("\n\n")
    # One table per group of methods: the GradCon network's, the classic detectors.
    assert [block.splitlines()[0].split() for block in one] == [
        ["task", "GradCon", "recon.", "same", "net"],
        ["task", "IForest"],
    ]
    assert "+/-" not in "\n".join(one) and one[0].splitlines()[-1].split()[0] == "mean"
    three = benchmark.format_table(_rows([0, 1, 2])).split("\n\n")
    assert all(line.count("+/-") == 2 for line in three[0].splitlines()[1:])
    assert report.title(_rows([0]), "digits", "one-class") == (
        "Test AUROC, digits (one-class), 2 classes, 1 seed"
    )
    assert "3 seeds, mean +/- std over seeds" in report.title(_rows([0, 1, 2]), "odds", "x")


def test_the_full_table_fits_100_characters_and_keeps_every_number():
    rows = _rows([0, 1, 2], benchmark.METHODS)
    rows += [{**row, "task": "a_long_table_name"} for row in rows]
    text = benchmark.format_table(rows)
    assert max(map(len, text.splitlines())) <= 100
    table = benchmark.summarize(rows)
    blocks = text.split("\n\n")
    assert len(blocks) == len(benchmark.METHOD_GROUPS)
    for block, group in zip(blocks, benchmark.METHOD_GROUPS):
        header, *lines = block.splitlines()
        assert re.split(r"\s{2,}", header.strip())[1:] == [benchmark.LABELS[m] for m in group]
        assert [line[:12].strip() for line in lines] == ["0", "1", "a_long_table", "mean"]
        for line, (_, row) in zip(lines, table.iterrows()):
            expected = [f"{row[(m, 'mean')]:.3f} +/- {row[(m, 'std')]:.3f}" for m in group]
            assert re.findall(r"\d\.\d{3} \+/- \d\.\d{3}", line) == expected


def _fit_rows(method, epochs, task):
    return {"task": task, "seed": 0, "method": method, "auroc": 0.5, "epochs": epochs}


def test_budget_note_counts_each_network_fit_once_and_says_what_happened():
    rows = []
    for task, gradcon, autoencoder, pretext in ((0, 100, 100, 10), (1, 40, 100, 7)):
        rows += [_fit_rows(m, gradcon, task) for m in benchmark.GRADCON_SCORES]
        rows.append(_fit_rows("autoencoder", autoencoder, task))
        rows += [_fit_rows(m, pretext, task) for m in benchmark.PRETEXT_SCORES]
        rows.append(_fit_rows("isolation_forest", None, task))
    assert report.budget_note(rows, {}, 10).splitlines() == [
        "3 of 4 GradCon/autoencoder fits used all max_epochs=100 epochs; "
        "early stopping never triggered",
        "1 of 2 pretext fits used all --pretext-epochs=10 epochs; early stopping never triggered",
        "(--max-epochs and --pretext-epochs train longer)",
    ]
    assert report.budget_note(rows, {}, 20).splitlines()[1:] == ["(--max-epochs trains longer)"]
    # A fit is counted whichever of its scores were asked for.
    alone = [row for row in rows if row["method"] == "gradcon_gradient"]
    assert report.budget_note(alone, {}, 10).startswith("1 of 2 GradCon/autoencoder fits")
    assert report.budget_note(rows, {"max_epochs": 200}, 20) == ""
    assert report.budget_note(rows, {"early_stopping": False}, 10) == ""


def test_readme_row_is_the_default_command():
    """README's digits row says three seeds: the command's default."""
    readme = (Path(__file__).parents[1] / "README.rst").read_text()
    assert re.search(r"^digits, 10 classes, 3 seeds ", readme, re.M)
    assert benchmark.DEFAULT_SEEDS == (0, 1, 2)
    header = next(line for line in readme.splitlines() if line.startswith("data (protocol)"))
    for method in ("gradcon", "gradcon_reconstruction", "gradcon_standardized"):
        assert benchmark.LABELS[method] in header
    # "combined": the combined score, the pretext method's column for images.
    for method in ("isolation_forest", "one_class_svm", "combined", "knn"):
        assert benchmark.LABELS[method] in header


def _command(*argv):
    """``python -X importtime -m gradient_ad.benchmark *argv`` from the checkout:
    its output and the modules it imported."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "gradient_ad.benchmark", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    return done, imported


@pytest.mark.parametrize("argv", [["--help"], ["--seeds", "x"]])
def test_the_command_answers_before_importing_torch(argv):
    done, imported = _command(*argv)
    assert done.returncode == (0 if argv == ["--help"] else 2)
    assert "gradient_ad.benchmark.cli" in imported  # the check sees the imports
    heavy = {name.split(".")[0] for name in imported} & {"torch", "sklearn", "pandas", "skorch"}
    assert not heavy


def test_help_is_plain_text_with_help_for_every_option():
    done, _ = _command("--help")
    text = done.stdout
    assert done.returncode == 0 and "--dataset" in text
    # No reST markup: no literals, no roles such as :class:`...`.
    assert "`" not in text and not re.search(r":[a-z]+:", text)
    assert "(NearestNeighbors)" in text and "LocalOutlierFactor with novelty=True" in text
    options = text[text.index("options:") :]
    # Every option's line (or the next, when the option is long) carries help text.
    lines = options.splitlines()[1:]
    for i, line in enumerate(lines):
        if line.startswith("  --"):
            own = re.split(r"\s{2,}", line.strip(), maxsplit=1)
            assert len(own) == 2 or lines[i + 1].startswith(" " * 10), line


@pytest.mark.parametrize(
    "text, plain",
    [
        ("``beta='auto'``", "beta='auto'"),
        (":class:`~sklearn.neighbors.NearestNeighbors`", "NearestNeighbors"),
        (":func:`gradient_ad.load`", "gradient_ad.load"),
        (":ref:`the data section <data>` and :py:meth:`~a.B.fit`", "the data section and fit"),
    ],
)
def test_plain_turns_rest_into_what_a_reader_sees(text, plain):
    assert cli.plain(text) == plain


def test_missing_pandas_names_the_extra_as_a_clone_installs_it(monkeypatch, capsys):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "pandas" else real_find_spec(name, *args),
    )
    message = _cli_error(capsys, ["--classes", "0"])
    assert 'needs pandas: pip install pandas, or pip install ".[benchmark]"' in message


def test_contamination_rate_mixes_other_classes_into_image_training_sets():
    clean = {seed: split for _, seed, split in benchmark.tasks("digits", classes=[3], seeds=[0])}
    _, seed, mixed = next(benchmark.tasks("digits", classes=[3], seeds=[0], contamination_rate=0.2))
    X, y = datasets.load_digits_images()
    X = X.reshape(len(X), -1)
    labels = {row.tobytes(): label for row, label in zip(X, y)}
    mixed_labels = np.array([labels[row.tobytes()] for row in mixed.X_train])
    assert np.mean(mixed_labels != 3) == pytest.approx(0.2, abs=0.01)
    # The normal training images, the validation and test sets are the clean split's.
    normal = np.sort([row.tobytes() for row in mixed.X_train[mixed_labels == 3]])
    np.testing.assert_array_equal(normal, np.sort([r.tobytes() for r in clean[0].X_train]))
    np.testing.assert_array_equal(mixed.X_test, clean[0].X_test)
    # Never an image of another class's test or validation folds.
    held = {r.tobytes() for r in np.concatenate([mixed.X_test, mixed.X_valid])}
    assert not held & {r.tobytes() for r in mixed.X_train}
    with pytest.raises(ValueError, match="unsupervised"):
        benchmark.tasks("odds", data_dir=".", contamination_rate=0.1)
    with pytest.raises(ValueError, match="contamination-rate"):
        benchmark.tasks("digits", contamination_rate=0.5)


def test_contamination_rate_reaches_the_detectors(monkeypatch):
    class Reached(Exception):
        pass

    def fake_run_tasks(dataset, todo, detector_params, *args, **kwargs):
        raise Reached(detector_params)

    monkeypatch.setattr(evaluation, "run_tasks", fake_run_tasks)
    with pytest.raises(Reached) as reached:
        benchmark.main(["--classes", "0", "--seeds", "0", "--contamination-rate", "0.1"])
    assert reached.value.args[0]["contamination"] == 0.1
