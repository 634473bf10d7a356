"""The registry: the ``pretext`` parameter's values and the members they select."""

from .._combined import register_terms

__all__ = ["get_pretext", "pretext_names", "register_pretext"]

_PRETEXTS = {}


def register_pretext(cls):
    """Class decorator: register a :class:`~gradient_ad._pretexts.base.Pretext` under
    its ``name`` (and its terms in the score's table)."""
    if cls.name in _PRETEXTS:
        raise ValueError(f"a pretext named {cls.name!r} is registered already")
    register_terms(cls.terms)
    _PRETEXTS[cls.name] = cls()
    return cls


def pretext_names():
    """The registered tasks' names (``None`` aside)."""
    return tuple(name for name in _PRETEXTS if name is not None)


def get_pretext(name):
    """The member selected by the ``pretext`` parameter's value ``name``."""
    try:
        return _PRETEXTS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"pretext must be None or one of {pretext_names()}, got {name!r}"
        ) from None
