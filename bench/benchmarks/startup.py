"""Start-up cost of the command line: the wall time of commands that train nothing (``--help``,
``list``, a mistyped method) in fresh interpreters, and how many modules each imports, which heavy
packages among them. A benchmark, not a test: nothing here asserts a time.

    python -m bench.benchmarks.startup [--repeats 5] [--before REV] [--out results]

``--before REV`` measures that commit too, in a temporary ``git worktree``: the commands run with
the checkout as working directory, so ``python -m`` imports its ``bench`` (same interpreter and
packages). A command the older checkout does not have shows its exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.core.atomic import write_text

COMMANDS: dict[str, list[str]] = {
    "python -c 'import torch'": ["-c", "import torch"],
    "python -m bench --help": ["-m", "bench", "--help"],
    "python -m bench list": ["-m", "bench", "list"],
    "python -m bench.run --help": ["-m", "bench.run", "--help"],
    "python -m bench.run --list": ["-m", "bench.run", "--list"],
    "python -m bench.run --method palor": ["-m", "bench.run", "--method", "palor"],
}
"""What a user types before training anything; ``import torch`` alone is the floor for comparison."""

HEAVY = ("torch", "torchvision", "torchjd", "cvxpy", "pymoo", "pandas", "matplotlib", "seaborn", "scipy")


def imported_modules(importtime_log: str) -> list[str]:
    """The module names of a ``python -X importtime`` log (one ``import time:`` line per import)."""
    names = []
    for line in importtime_log.splitlines():
        if line.startswith("import time:") and not line.rstrip().endswith("imported package"):
            names.append(line.rsplit("|", 1)[1].strip())
    return names


def time_command(args: list[str], repo: Path, repeats: int) -> tuple[list[float], int]:
    """Wall seconds of ``repeats`` fresh runs of ``python args`` in ``repo``, and the exit status."""
    seconds, status = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, *args], cwd=repo, capture_output=True, text=True, timeout=600)
        seconds.append(time.perf_counter() - started)
        status = done.returncode
    return seconds, status


def census(args: list[str], repo: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args], cwd=repo, capture_output=True, text=True, timeout=600
    )
    return imported_modules(done.stderr)


def module_file(repo: Path, args: list[str]) -> Path | None:
    """The file ``python -m`` would run from ``repo`` (None for ``-c``)."""
    if args[0] != "-m":
        return None
    path = repo.joinpath(*args[1].split("."))
    return path / "__main__.py" if path.is_dir() else path.with_suffix(".py")


def measure(repo: Path, repeats: int) -> list[dict[str, object]]:
    """One row per command; a command whose module this checkout lacks is marked absent (the
    editable install would otherwise run HEAD's file in its place)."""
    rows: list[dict[str, object]] = []
    for label, args in COMMANDS.items():
        module = module_file(repo, args)
        if module is not None and not module.is_file():
            rows.append({"command": label, "absent": True})
            continue
        seconds, status = time_command(args, repo, repeats)
        modules = census(args, repo)
        heavy = [h for h in HEAVY if h in modules]
        rows.append(
            {
                "command": label,
                "exit": status,
                "median_s": statistics.median(seconds),
                "min_s": min(seconds),
                "modules": len(modules),
                "heavy": ", ".join(heavy) or "none",
            }
        )
    return rows


def markdown(rows: list[dict[str, object]]) -> list[str]:
    lines = [
        "| command | exit | median s | min s | modules imported | heavy packages imported |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get("absent"):
            lines.append(f"| `{r['command']}` | – | – | – | – | not in this commit |")
            continue
        times = f"{r['median_s']:.2f} | {r['min_s']:.2f}"
        lines.append(f"| `{r['command']}` | {r['exit']} | {times} | {r['modules']} | {r['heavy']} |")
    return lines


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


@contextlib.contextmanager
def worktree(repo: Path, rev: str) -> Iterator[Path]:
    """A temporary detached checkout of ``rev``, removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkout"
        git(repo, "worktree", "add", "--detach", str(path), rev)
        try:
            yield path
        finally:
            git(repo, "worktree", "remove", "--force", str(path))


def publish(lines: list[str], out: Path | None, name: str) -> None:
    """Print a benchmark's markdown and, given ``out``, write it there as ``name`` (atomically)."""
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / name, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="fresh runs per command (default 5)")
    parser.add_argument("--before", metavar="REV", help="also measure this commit, for a before/after table")
    parser.add_argument("--out", type=Path, help="write startup.md here (default: print only)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        print(f"error: --repeats must be >= 1, got {args.repeats}", file=sys.stderr)
        return 2
    repo = Path(__file__).resolve().parents[2]
    command = "python -m bench.benchmarks.startup " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "# Start-up of the command line",
        "",
        f"Fresh interpreters, {args.repeats} runs per command; modules counted from one `python -X importtime` run.",
        f"Written {time.strftime('%Y-%m-%d')} by `{command.strip()}`.",
        "",
        f"## At {git(repo, 'rev-parse', '--short', 'HEAD')}",
        "",
        *markdown(measure(repo, args.repeats)),
    ]
    if args.before:
        with worktree(repo, args.before) as old:
            lines += ["", f"## Before: {git(repo, 'rev-parse', '--short', args.before)}", ""]
            lines += markdown(measure(old, args.repeats))
    publish(lines, args.out, "startup.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
