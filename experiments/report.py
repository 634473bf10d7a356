"""Print reStructuredText tables from the JSON files of ``python -m gradient_ad.benchmark``.

Example::

    python experiments/report.py experiments/results/odds_one_class.json
    python experiments/report.py --value valid_auroc experiments/results/fashion_mnist_seed0.json
    python experiments/report.py --merge experiments/results/fashion_mnist_seed*.json \
        experiments/results/fashion_mnist_class5_autoencoder.json
"""

import argparse
import json

from gradient_ad.benchmark import fit_times, summarize

SHORT = {
    "gradcon": "GradCon",
    "gradcon_reconstruction": "recon. (same net)",
    "gradcon_gradient": "gradient only",
    "gradcon_standardized": "beta='auto'",
    "autoencoder": "AE (alpha=0)",
    "isolation_forest": "IForest",
    "one_class_svm": "OC-SVM",
    "pretext": "pretext",
    "pretext_reconstruction": "recon. (pretext net)",
    "pretext_alignment": "alignment (pretext net)",
    "pretext_rotation_loss": "rotation loss",
    "pretext_rotation_gradient": "rotation gradient",
    "knn": "kNN",
    "lof": "LOF",
}


def rst_table(rows, value="auroc"):
    table = summarize(rows, value)
    methods = list(dict.fromkeys(m for m, _ in table.columns))
    n_seeds = len({r["seed"] for r in rows})
    header = ["task", *(SHORT.get(m, m) for m in methods)]
    body = []
    for task, row in table.iterrows():
        cells = [
            f"{row[(m, 'mean')]:.3f}" + (f" ± {row[(m, 'std')]:.3f}" if n_seeds > 1 else "")
            for m in methods
        ]
        body.append([f"**{task}**" if task == "mean" else str(task), *cells])
    lines = [".. csv-table::", "   :header: " + ", ".join(f'"{h}"' for h in header), ""]
    lines.extend("   " + ", ".join(f'"{cell}"' for cell in line) for line in body)
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="+")
    parser.add_argument("--value", default="auroc", choices=("auroc", "valid_auroc"))
    parser.add_argument(
        "--merge",
        action="store_true",
        help="one table from all files; a row of a later file replaces the row of an "
        "earlier one for the same task, seed and method (a rerun)",
    )
    args = parser.parse_args(argv)
    files = [_read(path) for path in args.files]
    if args.merge:
        rows = list({_key(row): row for saved in files for row in saved["rows"]}.values())
        files = [{"rows": rows, "meta": {"command": " + ".join(args.files)}}]
    for path, saved in zip(args.files, files):
        rows = saved["rows"]
        print(f"{path}: {saved['meta'].get('command', '')}")
        print(f"total {saved['meta'].get('total_seconds', 'n/a')} s; median fit seconds: ", end="")
        print(", ".join(f"{m} {s:.1f}" for m, s in fit_times(rows).items()))
        print()
        print(rst_table(rows, args.value))
        print()


def _key(row):
    return row["dataset"], row["task"], row["seed"], row["method"]


def _read(path):
    with open(path) as f:
        return json.load(f)


if __name__ == "__main__":
    main()
