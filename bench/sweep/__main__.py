"""``python -m bench.sweep``: the sweep command (:mod:`bench.sweep.command`)."""

import sys

from bench.sweep.command import main

if __name__ == "__main__":
    sys.exit(main())
