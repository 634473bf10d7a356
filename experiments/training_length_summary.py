"""Summarise ``training_length.py`` result files: validation AUROC against epochs.

Prints, for every score, one row per checkpoint epoch with each task's AUROC and the
mean over the tasks (only at epochs that every task reached), and the median training
seconds per epoch where the files recorded them. A task that appears in several files
(a longer rerun of the same class and seed) is taken from the file that trained it
longest; on a tie, from the first file given.

Example::

    python experiments/training_length_summary.py \
        experiments/results/training_length_fmnist_total.json \
        experiments/results/training_length_fmnist_200_class0.json --scores gradcon reconstruction
"""

import argparse
import json
import statistics


def load_curves(paths):
    """``{(task, seed): records}``, keeping the longest curve of each task."""
    curves = {}
    for path in paths:
        with open(path) as f:
            for result in json.load(f)["results"]:
                key = (str(result["task"]), result["seed"])
                records = result["records"]
                if records and len(records) > len(curves.get(key, ())):
                    curves[key] = records
    return dict(sorted(curves.items(), key=lambda item: (item[0][1], int(item[0][0]))))


def epoch_table(curves, score):
    """Rows ``(epoch, {task: auroc}, mean)``; the mean is ``None`` unless every task
    reached that epoch, so that means of different sets of tasks are not compared."""
    by_epoch = {}
    for (task, _seed), records in curves.items():
        for record in records:
            by_epoch.setdefault(record["epoch"], {})[task] = record[score]
    return [
        (epoch, values, statistics.fmean(values.values()) if len(values) == len(curves) else None)
        for epoch, values in sorted(by_epoch.items())
    ]


def seconds_per_epoch(curves):
    """Median over tasks of training seconds per epoch, or ``None`` if not recorded."""
    rates = [
        records[-1]["training_seconds"] / records[-1]["epoch"]
        for records in curves.values()
        if "training_seconds" in records[-1]
    ]
    return statistics.median(rates) if rates else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="+")
    parser.add_argument("--scores", nargs="+", default=["gradcon", "reconstruction", "gradient"])
    args = parser.parse_args(argv)

    curves = load_curves(args.files)
    if not curves:
        parser.error("no curve in the given files")
    tasks = [task for task, _seed in curves]
    for score in args.scores:
        if any(score not in records[0] for records in curves.values()):
            parser.error(f"score {score!r} is not in every file")
        print(f"\n{score}")
        print("epoch  " + "  ".join(f"{t:>5}" for t in tasks) + "   mean")
        for epoch, values, mean in epoch_table(curves, score):
            cells = "  ".join(f"{values[t]:.3f}" if t in values else "    -" for t in tasks)
            print(f"{epoch:>5}  {cells}  " + ("    -" if mean is None else f"{mean:.3f}"))
    rate = seconds_per_epoch(curves)
    if rate is not None:
        print(f"\nmedian training seconds per epoch: {rate:.1f}")


if __name__ == "__main__":
    main()
