"""One-class benchmark: GradCon beside its ablations and classic detectors.

``python -m gradient_ad.benchmark`` (or ``gradient-ad-benchmark``) runs it; ``--help``
lists the data sets and methods. The modules, one job each: ``choices`` (data sets,
methods and defaults, by name), ``splits`` (normal classes or tables, seeds, splits),
``methods`` (the scores and detectors compared), ``evaluation`` (one task, a whole
run), ``report`` (summaries, tables, saving, the plot) and ``cli`` (the command line).
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_names

# The names load on first use (PEP 562): the command line parses its arguments, and
# answers --help, before torch and scikit-learn load. Type checkers and the layout test
# read the imports below.
if TYPE_CHECKING:
    from .choices import (
        COMBINED_SCORES,
        DATASETS,
        DEFAULT_SEEDS,
        FITTED,
        GRADCON_SCORES,
        METHOD_GROUPS,
        METHODS,
        PRETEXT_EPOCHS,
        PRETEXT_SCORES,
    )
    from .cli import main
    from .evaluation import evaluate, run
    from .report import LABELS, fit_times, format_table, plot, save, summarize
    from .splits import tasks

_HOMES = {
    **dict.fromkeys(
        (
            "DATASETS",
            "DEFAULT_SEEDS",
            "FITTED",
            "GRADCON_SCORES",
            "METHOD_GROUPS",
            "METHODS",
            "PRETEXT_EPOCHS",
            "PRETEXT_SCORES",
            "COMBINED_SCORES",
        ),
        "choices",
    ),
    "main": "cli",
    **dict.fromkeys(("evaluate", "run"), "evaluation"),
    **dict.fromkeys(("LABELS", "fit_times", "format_table", "plot", "save", "summarize"), "report"),
    "tasks": "splits",
}

__all__ = [
    "COMBINED_SCORES",
    "DATASETS",
    "DEFAULT_SEEDS",
    "FITTED",
    "GRADCON_SCORES",
    "LABELS",
    "METHODS",
    "METHOD_GROUPS",
    "PRETEXT_EPOCHS",
    "PRETEXT_SCORES",
    "evaluate",
    "fit_times",
    "format_table",
    "main",
    "plot",
    "run",
    "save",
    "summarize",
    "tasks",
]


__getattr__, __dir__ = lazy_names(__name__, _HOMES)
