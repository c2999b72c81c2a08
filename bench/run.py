"""``python -m bench.run``: the run command (:mod:`bench.train.command`)."""

import sys

from bench.train.command import main

if __name__ == "__main__":
    sys.exit(main())
