"""What every preparation's command line shares: the data root it works in, the lines it reports,
and user errors as one ``error:`` line with exit status 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from bench.core.env import default_data_root
from bench.core.errors import UserError


def run(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    work: Callable[[argparse.Namespace, Path], Iterable[str]],
) -> int:
    """Parse ``argv``, run ``work(args, root)`` and print the lines it reports; a user error prints
    one line and returns 2."""
    args = parser.parse_args(argv)
    root: Path = (args.data_root or default_data_root()).expanduser()
    try:
        lines = list(work(args, root))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


def cache_line(name: str, path: Path, existed: bool) -> str:
    return f"{name} cache ({'already there, kept; delete it to regenerate' if existed else 'generated'}): {path}"
