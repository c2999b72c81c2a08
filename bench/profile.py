"""``python -m bench.profile``: the profiler (:mod:`bench.benchmarks.profile`)."""

import sys

from bench.benchmarks.profile import main

if __name__ == "__main__":
    sys.exit(main())
