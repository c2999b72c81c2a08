"""What every command line shares: help text without reST markup, and a parser whose usage errors
are one line with exit status 2."""

from __future__ import annotations

import argparse
import inspect
import re
import textwrap
from typing import NoReturn

from bench.core.errors import ConfigError

_ROLE = re.compile(r":[a-z]+:`(~?)([^`]*)`")
_LITERAL = re.compile(r"``(.*?)``", re.DOTALL)


def plain(text: str) -> str:
    """``text`` as a terminal shows it: reST roles (``:func:`x```) and literals (````x````) become
    their bare text; a role's ``~`` target keeps its last dotted component."""

    def role(match: re.Match[str]) -> str:
        return match.group(2).rsplit(".", 1)[-1] if match.group(1) else match.group(2)

    return _LITERAL.sub(r"\1", _ROLE.sub(role, text))


def summary(doc: str | None) -> str:
    """The first paragraph of a docstring on one line, without reST markup."""
    paragraphs = inspect.cleandoc(doc or "").split("\n\n")
    return plain(" ".join(paragraphs[0].split()))


def help_text(doc: str | None) -> str:
    """A module docstring as a parser's description (kept line for line, without reST markup)."""
    return plain(inspect.cleandoc(doc or ""))


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions kept line for line; option help wrapped at spaces only, so a path such as
    ``~/.cache/pfl-bench`` is never cut at its hyphen."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line naming ``--help``, with exit status 2."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def parse_seeds(text: str) -> list[int]:
    """``--seeds``: integers and ranges separated by commas or spaces (``0-4``, ``0,1,2``, ``0-2,5``),
    in the order given, each once."""
    seeds: list[int] = []
    try:
        for item in text.replace(",", " ").split():
            low, _, high = item.partition("-")
            seeds += range(int(low), int(high) + 1) if high else [int(low)]
    except ValueError:
        seeds = []
    if not seeds:
        raise ConfigError(f"--seeds {text!r}: give seeds such as 0-4, 0,1,2 or 0-2,5")
    return list(dict.fromkeys(seeds))
