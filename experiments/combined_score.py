"""The combined score's design study: how to weigh its terms without labels.

Two stages. ``fit`` trains the detector once per task (the held-out checks' settings:
``pretext='rotation', max_epochs=10`` on images, the defaults on tables) and saves
every per-sample term of the held-out normal slice, the validation and test sets and
synthetic outliers made from the held-out slice; ``report`` reads them and scores
every rule measured, beside each term alone, with the same fits. Rules (all
standardised on the held-out normal slice):

- ``equal``: means and standard deviations, equal weights (the score before);
- ``robust``: medians and interquartile ranges, equal weights;
- ``reliability`` (images): the rotation terms weighted by the head's certainty on
  the held-out images (``1 - mean rotation loss / log 4``);
- ``synthetic``: each term weighted by its AUROC against synthetic outliers made from
  the held-out samples, above 0.5 (images: noise, blur, blends, shuffled quarters,
  pasted patches; tables: permuted columns, uniform draws, noise, rows pulled to or
  pushed from the mean);
- ``complexity`` (images): the reconstruction error and the pixel distance corrected
  for input complexity (Serra et al., ICLR 2020), equal weights;
- ``package``: the package's rule, ``complexity`` with ``reliability``'s weights for
  images, ``synthetic`` for tables;
- ``pkg coreset`` (images): ``package`` with the neighbour term measured against a
  2048-sample greedy k-centre coreset, as ``max_neighbours=2048`` does.

All but ``robust`` standardise by means and standard deviations.

Commands (2-core CPU, ``OMP_NUM_THREADS=1``; about 2 minutes a Fashion-MNIST fit)::

    python experiments/combined_score.py fit fmnist --seeds 0,1,2 --data-dir $DATA
    python experiments/combined_score.py fit cifar --seeds 0,1,2 --data-dir $DATA
    python experiments/combined_score.py fit digits --seeds 0,1,2
    python experiments/combined_score.py fit odds --seeds 0,1,2 --data-dir $DATA
    python experiments/combined_score.py report fmnist cifar digits odds

``$DATA`` holds ``fashion_mnist/``, ``cifar10_dev/`` and ``odds/`` (see
docs/benchmarks.rst); the terms go to ``--out`` (default ``combined_score_terms/``).
"""

import argparse
import glob
import re
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

from gradient_ad import GradientAnomalyDetector, datasets
from gradient_ad._combined.coreset import k_centre_coreset
from gradient_ad._combined.synthetic import synthetic_rows
from gradient_ad._combined.weighting import (
    complexity,
    fit_complexity_correction,
    fit_standardisation,
    separation_weights,
)

IMAGE_FAMILIES = ("noise", "blur", "mix", "shuffle", "cutpaste")
K = 5


# -- the fit stage -------------------------------------------------------------------


class Capturing(GradientAnomalyDetector):
    """The detector, keeping the rows it calibrated on (the held-out slice)."""

    def _calibrate(self, net, X, valid, train_rows, *args, **kwargs):
        self.rows_ = (X, valid, train_rows)
        return super()._calibrate(net, X, valid, train_rows, *args, **kwargs)


def image_outliers(H, rng):
    """Synthetic outliers made from held-out images ``(n, C, h, w)`` in [0, 1]."""
    n, _, h, w = H.shape
    out = {"noise": np.clip(H + rng.normal(0, 0.1, H.shape), 0, 1)}
    t = torch.as_tensor(H)
    out["blur"] = F.avg_pool2d(F.pad(t, (1, 1, 1, 1), mode="replicate"), 3, 1).numpy()
    perm = rng.permutation(n)
    out["mix"] = 0.5 * (H + H[perm])
    th, tw = h // 2, w // 2
    shuffled = H.copy()
    for i in range(n):
        tiles = [
            H[i, :, a * th : (a + 1) * th, b * tw : (b + 1) * tw] for a in (0, 1) for b in (0, 1)
        ]
        order = rng.permutation(4)
        while (order == np.arange(4)).all():
            order = rng.permutation(4)
        for k, o in enumerate(order):
            a, b = divmod(k, 2)
            shuffled[i, :, a * th : (a + 1) * th, b * tw : (b + 1) * tw] = tiles[o]
    out["shuffle"] = shuffled
    pasted = H.copy()
    for i in range(n):
        ph, pw = rng.randint(h // 4, h // 2 + 1), rng.randint(w // 4, w // 2 + 1)
        y0, x0 = rng.randint(0, h - ph + 1), rng.randint(0, w - pw + 1)
        y1, x1 = rng.randint(0, h - ph + 1), rng.randint(0, w - pw + 1)
        pasted[i, :, y1 : y1 + ph, x1 : x1 + pw] = H[perm[i], :, y0 : y0 + ph, x0 : x0 + pw]
    out["cutpaste"] = pasted
    return {k: v.astype(H.dtype) for k, v in out.items()}


def tasks(name, data_dir, seeds):
    """``(task name, seed, split)`` of one development set."""
    data_dir = Path(data_dir) if data_dir else None
    if name == "odds":
        for path in sorted(glob.glob(str(data_dir / "odds" / "*.mat"))):
            X, y = datasets.load_table(path)
            for seed in seeds:
                yield f"odds_{Path(path).stem}", seed, datasets.split_table(X, y, seed)
        return
    if name == "fmnist":
        Xtr, ytr, Xte, yte = datasets.load_idx(data_dir / "fashion_mnist")
        X, y = np.concatenate([Xtr, Xte]), np.r_[ytr, yte]
        classes, split = range(10), lambda c, s: datasets.split_pooled_folds(X, y, c, s)
    elif name == "cifar":
        data = datasets.load_cifar10(data_dir / "cifar10_dev")
        classes, split = (0, 2, 4, 9), lambda c, s: datasets.split_official(*data, c, s)
    else:
        X, y = datasets.load_digits_images()
        classes, split = range(10), lambda c, s: datasets.split_pooled_folds(X, y, c, s)
    for c in classes:
        for seed in seeds:
            yield f"{name}_c{c}", seed, split(c, seed)


def fit_task(task, seed, split, out):
    path = out / f"{task}_s{seed}.npz"
    if path.exists():
        return
    image = split.X_train.ndim >= 3
    params = {"pretext": "rotation", "max_epochs": 10} if image else {}
    detector = Capturing(random_state=seed, **params)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detector.fit(split.X_train)
    seconds = time.perf_counter() - start
    X, valid, train_rows = detector.rows_
    held = valid if valid is not None and len(valid) >= 100 else X
    rng = np.random.RandomState(1000 + seed)
    made = image_outliers(held[:500], rng) if image else synthetic_rows(held, rng)
    sets = {"held": held, "test": split.X_test, **{f"syn_{k}": v for k, v in made.items()}}
    if split.X_valid is not None:
        sets["valid"] = split.X_valid
    saved = {"fit_seconds": seconds, "y_test": split.y_test}
    if split.y_valid is not None:
        saved["y_valid"] = split.y_valid
    bank = train_rows if held is not X else X
    nn = NearestNeighbors(n_neighbors=K + 1).fit(np.asarray(bank).reshape(len(bank), -1))
    for key, rows in sets.items():
        user = rows if key in ("test", "valid") else np.asarray(rows, np.float32)
        parts = detector.score_components(user)
        saved[f"{key}_terms"] = np.stack(
            [np.asarray(p, np.float64) for p in parts[: 4 if image else 2]], 1
        )
        flat = _as_net(detector, user)
        d = nn.kneighbors(flat.reshape(len(flat), -1))[0]
        # Rows of the bank itself (no held-out slice) leave themselves out.
        saved[f"{key}_knn"] = (d[:, 1:] if key == "held" and held is X else d[:, :K]).mean(1)
        if image:
            saved[f"{key}_complexity"] = complexity(flat)
    if image:
        # The same fits with the neighbour term measured against a 2048-sample coreset
        # (equal to the whole bank below that size).
        kept = np.sort(k_centre_coreset(np.asarray(bank), 2048, np.random.RandomState(seed)))
        core = NearestNeighbors(n_neighbors=K + 1).fit(
            np.asarray(bank)[kept].reshape(len(kept), -1)
        )
        for key in ("held", "test"):
            flat = _as_net(detector, sets[key])
            d = core.kneighbors(flat.reshape(len(flat), -1))[0]
            saved[f"{key}_knn_core"] = (d[:, 1:] if key == "held" and held is X else d[:, :K]).mean(
                1
            )
    np.savez_compressed(path, **saved)
    print(f"{task} seed {seed}: fit {seconds:.0f} s", flush=True)


def _as_net(detector, rows):
    """Rows as the network sees them (uint8 divided by 255, images with a channel)."""
    rows = np.asarray(rows)
    rows = rows.astype(np.float32) / 255 if rows.dtype == np.uint8 else rows.astype(np.float32)
    return rows[:, None] if rows.ndim == 3 else rows


# -- the report stage ----------------------------------------------------------------


def _terms(d, key, image):
    """Each term of a set, signed to grow with abnormality."""
    t = d[f"{key}_terms"]
    terms = {"reconstruction": np.log(np.maximum(t[:, 0], 1e-300)), "alignment": -t[:, 1]}
    if image:
        terms |= {"rotation loss": t[:, 2], "rotation gradient": t[:, 3]}
    terms["neighbours"] = d[f"{key}_knn"]
    return terms


def _robust(held):
    q1, median, q3 = np.percentile(held, [25, 50, 75], axis=0)
    return median, np.maximum((q3 - q1) / 1.349, 1e-12)


def _corrected(T, d, keys, knn="knn"):
    """The pixel-space terms less their linear fit on the input complexity (held-out)."""
    corrected = {k: dict(T[k]) for k in keys}
    for k in keys:
        corrected[k]["neighbours"] = d[f"{k}_{knn}"]
    c_held = d["held_complexity"]
    for name in ("reconstruction", "neighbours"):
        coef = fit_complexity_correction(corrected["held"][name], c_held)
        for k in keys:
            corrected[k][name] = corrected[k][name] - (coef[0] + coef[1] * d[f"{k}_complexity"])
    return corrected


def _rules(d, image):
    keys = [k[: -len("_terms")] for k in d.files if k.endswith("_terms")]
    T = {k: _terms(d, k, image) for k in keys}
    names = list(T["held"])

    def column(key, source=None):
        return np.stack([(source or T)[key][n] for n in names], 1)

    def score(weights, robust=False, source=None):
        held = column("held", source)
        centre, scale = _robust(held) if robust else fit_standardisation(held)
        return lambda key: ((column(key, source) - centre) / scale) @ weights

    ones = np.ones(len(names))
    rules = {"equal": score(ones), "robust": score(ones, robust=True)}
    reliability = ones.copy()
    if image:
        certainty = max(0.0, 1 - d["held_terms"][:, 2].mean() / np.log(4))
        reliability[[names.index("rotation loss"), names.index("rotation gradient")]] = certainty
        rules["reliability"] = score(reliability)
    families = IMAGE_FAMILIES if image else ("permute", "uniform", "noise", "shrink", "expand")
    centre, scale = fit_standardisation(column("held"))
    synthetic = [(column(f"syn_{f}") - centre) / scale for f in families]
    weights, _ = separation_weights((column("held") - centre) / scale, synthetic)
    rules["synthetic"] = score(weights * len(names))
    if image:
        corrected = _corrected(T, d, keys)
        rules["complexity"] = score(ones, source=corrected)
        rules["package"] = score(reliability, source=corrected)
        rules["pkg coreset"] = score(
            reliability, source=_corrected(T, d, ["held", "test"], "knn_core")
        )
    else:
        rules["package"] = rules["synthetic"]
    return T, names, rules


def report(names, out, split):
    for name in names:
        paths = sorted(glob.glob(str(out / f"{name}_*.npz")))
        if not paths:
            continue
        rows = []
        for path in paths:
            d = np.load(path)
            if f"y_{split}" not in d.files:
                continue
            image = "held_complexity" in d.files
            T, terms, rules = _rules(d, image)
            y = d[f"y_{split}"]
            alone = {t: roc_auc_score(y, T[split][t]) for t in terms}
            combined = {
                r: roc_auc_score(y, f(split))
                for r, f in rules.items()
                if r != "pkg coreset" or split == "test"
            }
            task = re.sub(r"_s\d+\.npz$", "", Path(path).name)
            rows.append((task, alone, combined))
        _print(name, rows, split)


def _print(name, rows, split):
    tasks = sorted({t for t, _, _ in rows})
    terms = list(rows[0][1])
    rules = list(rows[0][2])
    print(f"\n{name} ({split} AUROC, mean over seeds; best term: the task's best term alone)")
    header = ["task", *terms, "best term", *rules]
    print("  ".join(f"{h[:11]:>11}" for h in header))
    gaps = {r: [] for r in rules}
    means = {h: [] for h in header[1:]}
    for task in tasks:
        mine = [r for r in rows if r[0] == task]
        alone = {t: np.mean([r[1][t] for r in mine]) for t in terms}
        best = max(alone.values())
        combined = {r: np.mean([m[2][r] for m in mine]) for r in rules}
        for r in rules:
            gaps[r].append(combined[r] - best)
        values = [*alone.values(), best, *combined.values()]
        for h, v in zip(header[1:], values):
            means[h].append(v)
        print("  ".join([f"{task[-11:]:>11}", *(f"{v:11.3f}" for v in values)]))
    print("  ".join([f"{'mean':>11}", *(f"{np.mean(means[h]):11.3f}" for h in header[1:])]))
    print(
        "  ".join(
            [
                f"{'worst gap':>11}",
                *(" " * 11 for _ in terms),
                " " * 11,
                *(f"{min(gaps[r]):+11.3f}" for r in rules),
            ]
        )
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="stage", required=True)
    fit = sub.add_parser("fit")
    fit.add_argument("dataset", choices=["fmnist", "cifar", "digits", "odds"])
    fit.add_argument("--seeds", default="0")
    fit.add_argument("--data-dir", default="../shared/data")
    fit.add_argument("--out", default="combined_score_terms")
    rep = sub.add_parser("report")
    rep.add_argument("datasets", nargs="+")
    rep.add_argument("--split", default="test", choices=["test", "valid"])
    rep.add_argument("--out", default="combined_score_terms")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.stage == "fit":
        out.mkdir(exist_ok=True)
        torch.set_num_threads(1)
        seeds = [int(s) for s in args.seeds.split(",")]
        for task, seed, split in tasks(args.dataset, args.data_dir, seeds):
            fit_task(task, seed, split, out)
    else:
        report(args.datasets, out, args.split)


if __name__ == "__main__":
    main()
