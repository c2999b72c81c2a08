"""Where a run's wall time goes beyond training: ``wall_seconds / train_seconds`` of short default
runs, split into validation, the test grid and the rest, and whether every invocation gave the same
front. A benchmark, not a test: nothing here asserts a time.

    python -m bench.benchmarks.overhead [--methods cosmos palora] [--epochs 3] [--repeats 3]
        [--before REV] [--out results]

Each invocation is a fresh ``python -m bench.run --method M --device cpu --set train.epochs=E``
(the embedded default dataset) into a temporary folder; the numbers are the run record's own
(``train_seconds``, ``eval_seconds``, ``test_eval_seconds``, ``wall_seconds``). ``--before REV`` runs
that commit too, from a temporary ``git worktree``, its invocations alternating with this checkout's
so a slow spell of the machine hits both.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.benchmarks.startup import git, publish, worktree


@contextlib.contextmanager
def optional_worktree(repo: Path, rev: str | None) -> Iterator[Path | None]:
    """:func:`bench.benchmarks.startup.worktree` of ``rev``, or None without one."""
    if rev is None:
        yield None
        return
    with worktree(repo, rev) as path:
        yield path


def invoke(repo: Path, method: str, epochs: int, out: Path) -> dict[str, Any]:
    """One fresh run of ``method`` from checkout ``repo``; its summary."""
    args = ["-m", "bench.run", "--method", method, "--device", "cpu", "--set", f"train.epochs={epochs}"]
    done = subprocess.run(
        [sys.executable, *args, "--out", str(out), "--no-progress"], cwd=repo, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"{method} from {repo} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    (summary,) = out.glob("*/summary.json")
    return json.loads(summary.read_text())


def row(label: str, method: str, summary: dict[str, Any]) -> dict[str, Any]:
    train, val, test, wall = (
        summary[k] for k in ("train_seconds", "eval_seconds", "test_eval_seconds", "wall_seconds")
    )
    return {
        "checkout": label,
        "method": method,
        "train_s": train,
        "val_eval_s": val,
        "test_eval_s": test,
        "other_s": wall - train - val - test,
        "wall_over_train": wall / train,
        "front": summary["front"],
    }


def markdown(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| checkout | method | train s | validation s | test grid s | other s | wall / train |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [r["train_s"], r["val_eval_s"], r["test_eval_s"], r["other_s"]]
        numbers = " | ".join(f"{v:.2f}" for v in cells)
        lines.append(f"| {r['checkout']} | {r['method']} | {numbers} | {r['wall_over_train']:.3f} |")
    lines += ["", "| checkout | method | median wall / train | median test grid ÷ train |", "|---|---|---|---|"]
    for checkout in dict.fromkeys(r["checkout"] for r in rows):
        for method in dict.fromkeys(r["method"] for r in rows):
            mine = [r for r in rows if r["checkout"] == checkout and r["method"] == method]
            ratio = statistics.median(r["wall_over_train"] for r in mine)
            test = statistics.median(r["test_eval_s"] / r["train_s"] for r in mine)
            lines.append(f"| {checkout} | {method} | **{ratio:.3f}** | {test:.3f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["cosmos", "palora"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="fresh invocations per method and checkout")
    parser.add_argument("--before", metavar="REV", help="also run this commit, alternating with this checkout")
    parser.add_argument("--out", type=Path, help="write overhead.md here (default: print only)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.epochs < 1:
        print("error: --repeats and --epochs must be >= 1", file=sys.stderr)
        return 2
    repo = Path(__file__).resolve().parents[2]
    head = git(repo, "rev-parse", "--short", "HEAD")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, optional_worktree(repo, args.before) as old:
        checkouts = [(head, repo)] + ([(git(repo, "rev-parse", "--short", args.before), old)] if old else [])
        for i in range(args.repeats):
            for label, path in checkouts:
                for method in args.methods:
                    out = Path(tmp) / f"{label}-{method}-{i}"
                    rows.append(row(label, method, invoke(path, method, args.epochs, out)))
    distinct = {m: len({json.dumps(r["front"]) for r in rows if r["method"] == m}) for m in args.methods}
    fronts = (
        "every invocation of a method, in every checkout, gave the same front, value for value"
        if set(distinct.values()) == {1}
        else "NOT the same in every invocation: distinct fronts per method " + json.dumps(distinct)
    )
    command = "python -m bench.benchmarks.overhead " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "# A run's time beyond training",
        "",
        f"`python -m bench.run --method M --device cpu --set train.epochs={args.epochs}` on the embedded default",
        f"dataset, {args.repeats} fresh invocations per method and checkout, alternating. Written",
        f"{time.strftime('%Y-%m-%d')} by `{command.strip()}`. Validation: the coarse rays after every epoch;",
        "test grid: the 11 evaluation rays on the test split, once; other: the rest of the run's wall time",
        "(building the trial, records, the summary). The wall clock starts once the libraries are imported;",
        "before e6633c7 it started before torch._dynamo's import (about 1.1 s here, made by torch.optim on",
        "the first optimizer), which then fell in other.",
        "",
        *markdown(rows),
        "",
        f"Fronts: {fronts}.",
    ]
    publish(lines, args.out, "overhead.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
