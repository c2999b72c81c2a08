"""Dataset preparation through the registry: ``python -m bench prepare NAME [--data-root ROOT] [options]``.

Each dataset module declares, with :func:`prepares`, how its files get under the data root: the
datasets the entry serves, its source options, and a function ``work(args, root)`` that copies,
links or extracts the user's downloads, checks them, builds any cache, and returns the lines to
print. ``datasets/<name>/prepare.py`` is a shim over the same entry (:func:`script`). User errors
print one ``error:`` line and exit 2 (:func:`bench.data.kit.prepare_cli.run`).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

from bench.core.cli import Parser, summary
from bench.core.errors import UserError
from bench.core.registry import DATASETS, Registry
from bench.data.kit import prepare_cli

PROG = "python -m bench prepare"
Work = Callable[[argparse.Namespace, Path], Iterable[str]]


@dataclasses.dataclass(frozen=True)
class Option:
    """A source option of a prepare entry: ``flags[0]`` names it (``args.<name>``), the others are
    aliases kept for the spellings users know (``--source`` and ``--mnist-dir``)."""

    flags: tuple[str, ...]
    help: str
    kind: Literal["path", "paths", "switch"] = "path"
    """``path``: one folder or file; ``paths``: repeatable; ``switch``: a flag without a value."""
    required: bool = False
    group: str = ""
    """Options sharing a group exclude each other; the group is required when its options are."""

    def add_to(self, parser: argparse._ActionsContainer) -> None:
        kwargs: dict = {"help": self.help}
        if self.kind == "switch":
            kwargs["action"] = "store_true"
        else:
            kwargs.update(type=Path, metavar="DIR" if self.kind == "path" else "PATH")
            if self.kind == "paths":
                kwargs["action"] = "append"
        if self.required and not self.group:
            kwargs["required"] = True
        parser.add_argument(*self.flags, **kwargs)


@dataclasses.dataclass(frozen=True)
class Preparation:
    """How to prepare ``datasets``: the source options and the work (see the module docstring)."""

    datasets: tuple[str, ...]
    summary: str
    options: tuple[Option, ...]
    work: Work

    def parser(self, prog: str) -> Parser:
        served = f"Prepares {', '.join(self.datasets)}; see datasets/{self.datasets[0]}/README.md."
        parser = Parser(prog=prog, description=f"{textwrap.fill(self.summary, 100)}\n\n{served}", add_help=False)
        required, others = parser.add_argument_group("required"), parser.add_argument_group("options")
        others.add_argument("-h", "--help", action="help", help="show this help and exit")
        groups: dict[str, argparse._MutuallyExclusiveGroup] = {}
        for option in self.options:
            if option.group and option.group not in groups:
                one_needed = any(o.required for o in self.options if o.group == option.group)
                container = required if one_needed else others
                groups[option.group] = container.add_mutually_exclusive_group(required=one_needed)
            option.add_to(groups[option.group] if option.group else required if option.required else others)
        others.add_argument(
            "--data-root",
            type=Path,
            metavar="ROOT",
            help="data root (default: $PFLBENCH_DATA, else ~/.cache/pfl-bench)",
        )
        return parser

    def run(self, argv: list[str] | None, prog: str) -> int:
        """Parse ``argv``, do the work and print its lines; a user error prints one line and returns 2."""
        return prepare_cli.run(self.parser(prog), argv, self.work)


PREPARATIONS: Registry[Preparation] = Registry("prepared dataset")
"""Dataset name -> its prepare entry (filled when the dataset's module is imported)."""


def prepares(*datasets: str, options: Iterable[Option] = ()) -> Callable[[Work], Work]:
    """Decorator: declare ``work(args, root)`` as the prepare entry of ``datasets``; the first
    paragraph of its docstring is the entry's summary."""

    def decorate(work: Work) -> Work:
        entry = Preparation(tuple(datasets), summary(work.__doc__), tuple(options), work)
        for name in datasets:
            PREPARATIONS.add(name, entry, entry.summary)
        return work

    return decorate


def entry(name: str) -> Preparation:
    """The prepare entry of dataset ``name`` (importing its module); an unknown name lists the valid ones."""
    DATASETS.get(name)
    return PREPARATIONS.get(name)


def link_or_copy(source: Path, target: Path, copy: bool) -> str:
    """Symlink folder ``target`` to ``source`` (or copy its files into ``target``); returns what was done."""
    if target.resolve() == source.resolve():
        return f"{target} already holds the images"
    if target.is_symlink():
        target.unlink()
    elif target.exists() and not copy:
        raise UserError(f"{target} already exists and is not a link; remove it, or rerun with --copy to fill it")
    target.parent.mkdir(parents=True, exist_ok=True)
    if not copy:
        target.symlink_to(source.resolve(), target_is_directory=True)
        return f"linked {target} -> {source.resolve()} (keep that folder, or rerun with --copy)"
    target.mkdir(exist_ok=True)
    copied = 0
    for path in source.iterdir():
        out = target / path.name
        if path.is_file() and not (out.is_file() and out.stat().st_size == path.stat().st_size):
            shutil.copyfile(path, out)
            copied += 1
    return f"copied {copied} files into {target}"


def usage(prog: str = PROG) -> str:
    width = max(len(name) for name in DATASETS.names()) + 2
    lines = [
        f"usage: {prog} NAME [--data-root ROOT] [options of NAME]",
        "",
        "Put dataset NAME's files under the data root (default: $PFLBENCH_DATA, else ~/.cache/pfl-bench)",
        f"and check them; {prog} NAME --help shows where the files come from and the options.",
        "",
        "datasets:",
    ]
    lines += [f"  {name:<{width}}{description}" for name, description in DATASETS.describe()]
    return "\n".join(lines)


def _run(name: str, argv: list[str] | None, prog: str) -> int:
    try:
        found = entry(name)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return found.run(argv, prog)


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    """``python -m bench prepare NAME [options]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(prog), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    return _run(argv[0], argv[1:], f"{prog} {argv[0]}")


def script(name: str, module: str) -> Callable[[list[str] | None], int]:
    """The ``main(argv)`` of ``datasets/<name>/prepare.py``: ``python -m bench prepare name``; the
    command runs at once when ``module`` (the script's ``__name__``) is ``"__main__"``."""

    def script_main(argv: list[str] | None = None) -> int:
        return _run(name, argv, f"python datasets/{name}/prepare.py")

    if module == "__main__":
        sys.exit(script_main())
    return script_main


if __name__ == "__main__":
    sys.exit(main())
