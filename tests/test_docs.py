"""The documentation covers the public API and every example draws a figure."""

from pathlib import Path

import pytest

import gradient_ad

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

pytestmark = pytest.mark.skipif(not DOCS.is_dir(), reason="docs/ is not in this checkout")


def test_every_public_name_is_in_the_api_reference():
    api = (DOCS / "api.rst").read_text()
    listed = {line.strip() for line in api.splitlines() if line.startswith("   ")}
    missing = [name for name in gradient_ad.__all__ if name != "__version__" and name not in listed]
    assert not missing, f"add {missing} to docs/api.rst"


def test_every_page_in_the_toctree_exists():
    index = (DOCS / "index.rst").read_text()
    pages = []
    for line in index.split(".. toctree::", 1)[1].splitlines()[1:]:
        if line.strip() and not line.startswith(" "):
            break  # the end of the directive
        if line.strip() and not line.strip().startswith(":"):
            pages.append(line.strip())
    assert "user_guide" in pages and "api" in pages
    for page in pages:
        if page.startswith("auto_examples/"):
            continue  # written by sphinx-gallery at build time
        assert (DOCS / f"{page}.rst").is_file(), page


def test_every_example_draws_a_figure():
    examples = sorted((ROOT / "examples").glob("plot_*.py"))
    assert len(examples) >= 5
    for example in examples:
        source = example.read_text()
        assert source.startswith('"""\n='), f"{example.name} needs a gallery title"
        assert "plt.show()" in source or "plot_anomaly_maps(" in source, example.name
