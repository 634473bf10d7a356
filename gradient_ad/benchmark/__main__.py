"""``python -m gradient_ad.benchmark``: the benchmark command (:mod:`.cli`)."""

from .cli import main

if __name__ == "__main__":
    main()
