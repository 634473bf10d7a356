"""Collection settings for the doctests of the package (tests/ has its own conftest)."""

import importlib.util

# Optional extras: their modules' doctests run only where the extra is installed.
collect_ignore = []
if importlib.util.find_spec("dask") is None:
    collect_ignore.append("gradient_ad/dask.py")
