"""What the package promises its users beyond the API: extras, the console script, the
type-hint marker in the wheel, the citation file and the changelog the docs show."""

import builtins
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import gradient_ad
from gradient_ad.benchmark import cli

ROOT = Path(__file__).resolve().parents[1]
IN_CHECKOUT = (ROOT / "setup.py").is_file()
checkout_only = pytest.mark.skipif(not IN_CHECKOUT, reason="needs the source checkout")
_NOT_SHIPPED = shutil.ignore_patterns("__pycache__", "*.egg-info")


def test_console_script_help_exits_0(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.console(["--help"])
    assert exit_.value.code == 0
    assert "--dataset" in capsys.readouterr().out


def test_console_script_bad_argument_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.console(["--seeds", "x"])
    assert exit_.value.code == 2


def test_console_script_returns_0_after_a_run(capsys):
    # cli.main returns its rows, which sys.exit would turn into status 1.
    assert cli.console(["--classes", "0", "--methods", "isolation_forest"]) == 0
    assert "isolation_forest" in capsys.readouterr().out


def test_installed_console_script_runs():
    script = shutil.which("gradient-ad-benchmark")
    if script is None:
        if os.environ.get("CI"):
            pytest.fail("CI installs the package, so gradient-ad-benchmark must be on PATH")
        pytest.skip("the package is not installed with its console script here")
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--dataset" in result.stdout


@checkout_only
def test_wheel_ships_py_typed_and_the_console_script(tmp_path):
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("building the wheel needs setuptools")
    # Built from a copy: pip builds in the source tree and would leave build/ there.
    source = tmp_path / "source"
    shutil.copytree(ROOT / "gradient_ad", source / "gradient_ad", ignore=_NOT_SHIPPED)
    for name in ("setup.py", "pyproject.toml", "README.rst", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["--no-index", "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("gradient_ad-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt")))
    assert "gradient_ad/py.typed" in names
    assert "gradient-ad-benchmark = gradient_ad.benchmark.cli:console" in entry_points.decode()


def test_plot_without_matplotlib_names_the_extra(monkeypatch):
    from gradient_ad.plotting import plot_anomaly_maps

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    # Refused before any work: the detector is not even looked at.
    with pytest.raises(ImportError, match=re.escape('(the "plot" extra): pip install matplotlib')):
        plot_anomaly_maps(object(), None)


@checkout_only
def test_extras_bring_what_their_modules_need():
    setup = (ROOT / "setup.py").read_text()
    assert 'PLOT = ["matplotlib' in setup and 'DASK = ["dask[array,distributed]' in setup
    extras = setup.split("extras_require={", 1)[1].split("\n    },", 1)[0]
    blocks = dict(re.findall(r'"(\w+)": (\[.*?\]|\w+),', extras, flags=re.S))
    assert blocks["plot"] == "PLOT" and blocks["dask"] == "DASK" and blocks["images"] == "IMAGES"
    assert 'IMAGES = ["pillow' in setup
    for extra in ("test", "docs"):  # the docs import gradient_ad.dask; tests run Dask's
        assert all(f"*{name}" in blocks[extra] for name in ("DASK", "PLOT", "IMAGES")), extra
    assert "*PLOT" in blocks["benchmark"]


def test_dask_tests_run_in_ci():
    # README: the test extra brings Dask, so its tests run rather than skip.
    if os.environ.get("CI"):
        assert importlib.util.find_spec("dask") is not None
        assert importlib.util.find_spec("distributed") is not None
    readme = ROOT / "README.rst"
    if readme.is_file():
        assert "The ``test`` extra brings Dask, so the Dask tests" in readme.read_text()


@checkout_only
def test_citation_file_names_the_paper_and_this_version():
    citation = (ROOT / "CITATION.cff").read_text()
    assert f"\nversion: {gradient_ad.__version__}\n" in citation
    assert "Backpropagated Gradient Representations for Anomaly Detection" in citation
    assert "arXiv:2007.09507" in citation
    for author in ("Kwon", "Prabhushankar", "Temel", "AlRegib"):
        assert f"family-names: {author}" in citation


@checkout_only
def test_docs_changelog_is_the_top_level_file():
    page = (ROOT / "docs" / "changelog.rst").read_text()
    assert ".. include:: ../CHANGELOG.rst" in page
    assert f"\n{gradient_ad.__version__} " in (ROOT / "CHANGELOG.rst").read_text()
