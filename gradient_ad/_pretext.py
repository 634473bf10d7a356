"""Where detectors saved before the pretext package (0.5) pickled the rotation head's
class: pickles name classes by module, so the name stays here."""

from ._pretexts.rotation import PretextHead

__all__ = ["PretextHead"]
