"""The scripts in ``benchmarks/`` (speed) and ``experiments/`` (design studies) are not
part of the package, and nothing else runs them: importing each one (without running
its main) fails when a name it imports from ``gradient_ad`` disappears, and a parse of
its source finds the names it reaches as attributes (``chunks.CONV_CHUNK_ROWS``,
``gradient_ad.datasets.load_idx``) that an import would not check."""

import ast
import importlib
import importlib.util
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted([*ROOT.glob("benchmarks/*.py"), *ROOT.glob("experiments/*.py")])
pytestmark = pytest.mark.skipif(not SCRIPTS, reason="needs the source checkout")


def _aliases(tree):
    """Local name -> the dotted ``gradient_ad`` path it was imported as."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "gradient_ad":
                    local = alias.asname or alias.name.split(".")[0]
                    aliases[local] = alias.name if alias.asname else "gradient_ad"
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            if node.module.split(".")[0] == "gradient_ad":
                for alias in node.names:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def _chain(node):
    """``a.b.c`` of an attribute node as ``["a", "b", "c"]``, or None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return [node.id, *reversed(parts)] if isinstance(node, ast.Name) else None


def _resolve(dotted):
    """Follow ``gradient_ad.x.y``: modules are imported, other names looked up on
    modules and classes; past an instance or function the check stops. Returns the
    first part that is missing, or None."""
    parts = dotted.split(".")
    value = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        if not isinstance(value, types.ModuleType | type):
            return None
        if isinstance(value, types.ModuleType) and not hasattr(value, part):
            try:
                importlib.import_module(".".join(parts[: i + 1]))
            except ModuleNotFoundError:
                return ".".join(parts[: i + 1])
        if not hasattr(value, part):
            return ".".join(parts[: i + 1])
        value = getattr(value, part)
    return None


def missing_names(source):
    """Every ``gradient_ad`` name ``source`` uses that does not exist."""
    tree = ast.parse(source)
    aliases = _aliases(tree)
    used = set(aliases.values())
    for node in ast.walk(tree):
        chain = _chain(node) if isinstance(node, ast.Attribute) else None
        if chain and chain[0] in aliases:
            used.add(".".join([aliases[chain[0]], *chain[1:]]))
    return sorted({found for found in map(_resolve, used) if found})


def test_the_check_finds_missing_names_however_they_are_used():
    source = (
        "import gradient_ad\n"
        "from gradient_ad import _chunks as chunks, datasets\n"
        "from gradient_ad.benchmark import tasks, gone\n"
        "chunks.CONV_CHUNK_ROWS, chunks.NO_SUCH_RULE\n"
        "datasets.load_idx, gradient_ad.datasets.no_such_loader\n"
        "gradient_ad.GradientAnomalyDetector.fit, gradient_ad.GradientAnomalyDetector.nope\n"
        "gradient_ad.no_such_module.x\n"
    )
    assert missing_names(source) == [
        "gradient_ad.GradientAnomalyDetector.nope",
        "gradient_ad._chunks.NO_SUCH_RULE",
        "gradient_ad.benchmark.gone",
        "gradient_ad.datasets.no_such_loader",
        "gradient_ad.no_such_module",
    ]


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_script_imports_and_every_gradient_ad_name_it_uses_exists(path, monkeypatch):
    source = path.read_text()
    assert 'if __name__ == "__main__":' in source, "the script runs on import"
    assert missing_names(source) == []
    # The speed benchmarks import their shared helpers (bench_scoring) by file name.
    monkeypatch.syspath_prepend(str(path.parent))
    spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    assert callable(getattr(module, "main", None)), "no main() to run"
