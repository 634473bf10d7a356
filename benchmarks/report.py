"""Print reStructuredText tables from the JSON files of ``python -m gradient_ad.benchmark``.

Example::

    python benchmarks/report.py benchmarks/results/odds_one_class.json
    python benchmarks/report.py --value valid_auroc benchmarks/results/fashion_mnist_seed0.json
"""

import argparse
import json

from gradient_ad.benchmark import fit_times, summarize

SHORT = {
    "gradcon": "GradCon",
    "gradcon_reconstruction": "recon. (same net)",
    "gradcon_gradient": "gradient only",
    "gradcon_standardized": "standardised",
    "autoencoder": "AE (alpha=0)",
    "isolation_forest": "IForest",
    "one_class_svm": "OC-SVM",
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
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for line in [header, *body]:
        lines.append("   * - " + line[0])
        lines.extend(f"     - {cell}" for cell in line[1:])
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="+")
    parser.add_argument("--value", default="auroc", choices=("auroc", "valid_auroc"))
    args = parser.parse_args(argv)
    for path in args.files:
        with open(path) as f:
            saved = json.load(f)
        rows = saved["rows"]
        print(f"{path}: {saved['meta'].get('command', '')}")
        print(f"total {saved['meta'].get('total_seconds', 'n/a')} s; median fit seconds: ", end="")
        print(", ".join(f"{m} {s:.1f}" for m, s in fit_times(rows).items()))
        print()
        print(rst_table(rows, args.value))
        print()


if __name__ == "__main__":
    main()
