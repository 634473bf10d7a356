"""What a benchmark run reports: summaries over seeds, the printed tables and notes,
the saved rows and the plot."""

import json
from pathlib import Path

import numpy as np

from .._detector import GradientAnomalyDetector
from .choices import FITTED, GRADCON_SCORES, METHOD_GROUPS, METHODS, PRETEXT_SCORES

# Column headers of the printed tables: README's where README shows the method, else
# at most 15 characters, so that a table of five methods fits in 100 characters.
LABELS = {
    "gradcon": "GradCon",
    "gradcon_reconstruction": "recon. same net",
    "gradcon_gradient": "grad. same net",
    "gradcon_standardized": "beta='auto'",
    "autoencoder": "autoencoder",
    "pretext": "pretext",
    "pretext_reconstruction": "pretext recon.",
    "pretext_alignment": "pretext align.",
    "pretext_rotation_loss": "rotation loss",
    "pretext_rotation_gradient": "rotation grad.",
    "pretext_neighbours": "pretext nbrs",
    "combined": "combined",
    "combined_reconstruction": "comb. recon.",
    "combined_alignment": "comb. align.",
    "combined_neighbours": "comb. nbrs",
    "isolation_forest": "IForest",
    "one_class_svm": "OC-SVM",
    "knn": "kNN",
    "lof": "LOF",
}


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
    """:func:`summarize` as text: one table per group of methods (the GradCon network's
    scores and the autoencoder, the pretext network's, the classic detectors), columns
    headed as in README's table, each line at most 100 characters.

    A cell is the mean over seeds, ``mean +/- std`` with two seeds or more (one seed
    has no spread to show).
    """
    table = summarize(rows, value)
    present = {m for m, _ in table.columns}
    spread = len({row["seed"] for row in rows}) > 1
    blocks = []
    for group in METHOD_GROUPS:
        methods = [m for m in group if m in present]
        if not methods:
            continue
        labels = [LABELS[m] for m in methods]
        width = max(15 if spread else 7, *(len(label) for label in labels))
        lines = ["task".ljust(12) + "".join(label.rjust(width + 2) for label in labels)]
        for task, row in table.iterrows():
            cells = [
                f"{row[(m, 'mean')]:.3f}" + (f" +/- {row[(m, 'std')]:.3f}" if spread else "")
                for m in methods
            ]
            lines.append(str(task)[:12].ljust(12) + "".join(c.rjust(width + 2) for c in cells))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def title(rows, dataset, setting):
    """The tables' first line: data, protocol, tasks and seeds, as README's rows say."""
    n_tasks = len({row["task"] for row in rows})
    n_seeds = len({row["seed"] for row in rows})
    unit = "tables" if dataset == "odds" else "classes"
    protocol = setting if dataset == "odds" else "one-class"
    seeds = f"{n_seeds} seeds, mean +/- std over seeds" if n_seeds > 1 else "1 seed"
    return f"Test AUROC, {dataset} ({protocol}), {n_tasks} {unit}, {seeds}"


def _fits(rows, family):
    """One row per network fit behind ``family``'s methods (its scores share the fit)."""
    fits = {}
    for row in rows:
        if row["method"] in family and row.get("epochs") is not None:
            fits.setdefault((row["task"], row["seed"]), row)
    return list(fits.values())


def budget_note(rows, params, pretext_epochs):
    """How many network fits used every epoch they were allowed, with early stopping
    on: what the detector's "Training ran all max_epochs" warning says, once for the
    run. The GradCon and autoencoder fits have ``max_epochs``, the pretext fits
    ``--pretext-epochs``; a line for each kind of fit that ran out of epochs."""
    defaults = GradientAnomalyDetector()
    if not params.get("early_stopping", defaults.early_stopping):
        return ""  # every fit runs all its epochs, as asked
    max_epochs = params.get("max_epochs", defaults.max_epochs)
    lines, longer = [], []
    for kind, fits, budget, option in (
        (
            "GradCon/autoencoder",
            _fits(rows, GRADCON_SCORES) + _fits(rows, ("autoencoder",)),
            max_epochs,
            "--max-epochs",
        ),
        ("pretext", _fits(rows, PRETEXT_SCORES), pretext_epochs, "--pretext-epochs"),
    ):
        full = sum(row["epochs"] >= budget for row in fits)
        if full:
            name = "max_epochs" if option == "--max-epochs" else option
            lines.append(
                f"{full} of {len(fits)} {kind} fits used all {name}={budget} epochs; "
                "early stopping never triggered"
            )
            longer.append(option)
    if longer:
        lines.append(f"({' and '.join(longer)} train{'s' if len(longer) == 1 else ''} longer)")
    return "\n".join(lines)


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
