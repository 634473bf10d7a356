"""Pretext tasks, one file each, behind one contract (:mod:`.base`).

The registry (:mod:`.registry`) maps the ``pretext`` parameter's values to members:
``None`` (:mod:`.none`, the paper's method) and ``'rotation'`` (:mod:`.rotation`).
Importing this package registers them. ``docs/layout.rst`` says how to add one.
"""

from . import none, rotation  # noqa: F401  (registers the members)
from .base import Pretext
from .registry import get_pretext, pretext_names, register_pretext

__all__ = ["Pretext", "get_pretext", "pretext_names", "register_pretext"]
