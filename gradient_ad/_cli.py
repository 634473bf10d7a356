"""Console scripts installed with the package (``gradient-ad-benchmark``)."""

from . import benchmark as _benchmark


def benchmark(argv=None):
    """Run ``python -m gradient_ad.benchmark`` as ``gradient-ad-benchmark``.

    ``benchmark.main`` returns its result rows, which a console script's
    ``sys.exit(...)`` would print and turn into exit status 1; this returns 0 once the
    run is done. A bad command line still exits with status 2 from argparse.
    """
    _benchmark.main(argv)
    return 0
