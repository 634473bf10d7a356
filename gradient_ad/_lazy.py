"""Public names of a package loaded on first use (PEP 562), so that importing the
package does not import torch: the benchmark command answers ``--help`` before it
loads anything heavy."""

import importlib
import sys

__all__ = ["lazy_names"]


def lazy_names(package, homes):
    """The ``__getattr__`` and ``__dir__`` of ``package`` whose public names live in
    the submodules ``homes`` maps them to (name -> submodule)."""

    def __getattr__(name):
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{homes[name]}", package), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    def __dir__():
        module = sys.modules[package]
        return sorted({*vars(module), *module.__all__})

    return __getattr__, __dir__
