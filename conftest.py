"""Collection settings for the doctests of the package (tests/ has its own conftest), and
the one warning filter of the whole test run (below)."""

import importlib.util

import pytest

# Optional extras: their modules' doctests run only where the extra is installed.
collect_ignore = []
if importlib.util.find_spec("dask") is None:
    collect_ignore.append("gradient_ad/dask.py")
if importlib.util.find_spec("PIL") is None:
    collect_ignore.append("gradient_ad/_images.py")


@pytest.fixture(autouse=True)
def _no_exported_thread_counts(request, monkeypatch):
    """gradient_ad.dask's examples run as on a machine without exported thread counts:
    with OMP_NUM_THREADS=1 exported (as this suite is often run), torch_threads_config
    rightly warns that the count would take precedence."""
    if request.node.name.startswith("gradient_ad.dask."):
        for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            monkeypatch.delenv(variable, raising=False)


# The fits of the test suite and of the docstring examples are deliberately short (a
# few epochs, to keep the run in minutes), so nearly all of them run out of max_epochs
# before early stopping would stop them: that ConvergenceWarning is the expected
# outcome there, not news. Only this one message is filtered, as a mark on each test
# (a mark also holds under ``-W default``); tests of the warning itself use
# pytest.warns, which records it whatever the filters.
_SHORT_FITS = pytest.mark.filterwarnings(
    "ignore:Training ran all max_epochs:sklearn.exceptions.ConvergenceWarning"
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        item.add_marker(_SHORT_FITS, append=False)
