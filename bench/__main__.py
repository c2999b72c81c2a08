"""One command line over the benchmark: ``pfl-bench COMMAND [options]`` (the same as ``python -m bench``).

Each command is also its own module (``python -m bench.run``, ``python -m bench.sweep``, ...);
``python -m bench COMMAND --help`` shows a command's options. Only the chosen command's module is
imported.
"""

from __future__ import annotations

import importlib
import sys

from bench.core.cli import help_text

COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("bench.train.command", "train one method on one dataset and print its test front and hypervolume"),
    "sweep": (
        "bench.sweep.command",
        "run a grid of runs from a sweep spec (SLURM, local GPUs, or in-process)",
    ),
    "status": (
        "bench.sweep.command",
        "the state of every run of a sweep spec or a runs folder, from its records",
    ),
    "report": ("bench.analysis.report", "regenerate tables and figures from run records"),
    "tune": (
        "bench.analysis.tuning_cli",
        "select each method's settings from a tuning sweep's validation curves; write the tuned grid's spec",
    ),
    "profile": ("bench.benchmarks.profile", "time and memory of a method's training step against the plain backbone"),
    "prepare": ("bench.data.kit.preparation", "put a dataset's files under the data root and check them"),
    "list": ("bench.train.command", "the registered methods, datasets and backbones with their descriptions"),
}
"""command -> (module, what it does)."""

PROG = "python -m bench"


def version_line() -> str:
    """``pfl-bench 0.1.0 (git 1a2b3c4)``: the installed version and the checkout's commit."""
    from importlib import metadata

    from bench.train.record import git_sha

    try:
        version = metadata.version("pfl-bench")
    except metadata.PackageNotFoundError:
        version = "(not installed)"
    sha = git_sha()
    return f"pfl-bench {version} ({f'git {sha[:7]}' if sha else 'no git checkout'})"


def usage() -> str:
    width = max(len(name) for name in COMMANDS) + 2
    lines = [f"usage: {PROG} {{{','.join(COMMANDS)}}} [options] | --version", "", help_text(__doc__), "", "commands:"]
    lines += [f"  {name:<{width}}{what}" for name, (_, what) in COMMANDS.items()]
    return "\n".join(lines)


def list_main(argv: list[str]) -> int:
    """``python -m bench list [methods|datasets|backbones ...]`` or ``python -m bench list METHOD``."""
    from bench.core.errors import did_you_mean
    from bench.core.registry import METHODS
    from bench.train.command import LISTINGS, print_listing

    if argv in (["-h"], ["--help"]):
        print(
            f"usage: {PROG} list [{'|'.join(LISTINGS)} ...]\n       {PROG} list METHOD\n\n"
            f"{COMMANDS['list'][1]} (default: all three); with a method's name, its method.* settings"
        )
        return 0
    if len(argv) == 1 and argv[0] in METHODS.names():
        print_method(argv[0])
        return 0
    unknown = [kind for kind in argv if kind not in LISTINGS]
    if unknown:
        valid = [*LISTINGS, *METHODS.names()]
        hint = did_you_mean(unknown[0], valid)
        print(
            f"error: cannot list {', '.join(unknown)}{hint}; valid: {', '.join(LISTINGS)}, or one method's name",
            file=sys.stderr,
        )
        return 2
    print_listing(argv or None)
    return 0


def print_method(name: str) -> None:
    """A method's description and each of its ``method.*`` settings (imports the method's module)."""
    from bench.core.registry import METHODS
    from bench.train.introspect import format_fields

    description = dict(METHODS.describe())[name]
    print(f"{name}: {description}\n\nsettings (--set method.<name>=<value>; presets per dataset in bench/presets/):")
    print("\n".join(format_fields("method", METHODS.get(name).Hparams)))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-V", "--version"):
        print(version_line())
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        from bench.core.errors import did_you_mean

        hint = did_you_mean(command, list(COMMANDS))
        print(f"error: unknown command {command!r}{hint}; valid commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    if command == "list":
        from bench.core.errors import UserError

        try:
            return list_main(rest)
        except UserError as err:  # e.g. a plug-in registration the catalogue cannot read
            print(f"error: {err}", file=sys.stderr)
            return 2
    module = importlib.import_module(COMMANDS[command][0])
    if command == "status":
        return module.main(["status", *rest], prog=PROG)  # prog: "python -m bench status"
    return module.main(rest, prog=f"{PROG} {command}")


if __name__ == "__main__":
    sys.exit(main())
