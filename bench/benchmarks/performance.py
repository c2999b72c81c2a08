"""The performance benchmark behind ``results/performance.md``: every method profiled against the
plain backbone, PaLoRA's ratio over separate invocations, and the speed-up of vmapped rays.

    python -m bench.benchmarks.performance --out results/ [--device auto|cpu|cuda] [--dataset D] [--steps N]
                                [--invocations 3] [--threads 2]

1. ``bench.benchmarks.profile.profile`` for every registered method on ``--dataset`` (``multimnist-mini``),
   with ``compare_ray_batching`` so vmappable methods also report vmap's speed-up.
2. ``python -m bench.profile --method palora`` run ``--invocations`` times as separate processes (the
   issue's criterion: the median of their time ratios), and the same with
   ``method.adapter_path=activations`` (Linear adapters on activations, as the official ``PaLinear``).

Writes ``performance.csv`` (every row, every column) and ``performance.md`` (the machine, the tables,
the command) atomically under ``--out``. A benchmark: it measures and reports, it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from bench.analysis.tables import markdown
from bench.benchmarks.performance_quick import ls_lines, ls_rows, run_quick
from bench.benchmarks.performance_real_shape import run_real_shape
from bench.benchmarks.profile import profile
from bench.core import atomic
from bench.core.env import default_data_root, machine, resolve_device
from bench.core.errors import UserError
from bench.core.registry import DATASETS, METHODS, load_all

MIB = 2**20


def invocation_ratios(device: str, dataset: str, steps: int, invocations: int, sets: list[str]) -> list[float]:
    """PaLoRA's time ratio to the plain backbone from ``invocations`` separate profiler processes."""
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(invocations):
            out = Path(tmp) / f"{i}.json"
            command = [sys.executable, "-m", "bench.profile", "--method", "palora", "--device", device]
            command += ["--dataset", dataset, "--steps", str(steps), "--json", str(out)]
            command += [item for s in sets for item in ("--set", s)]
            subprocess.run(command, check=True, capture_output=True, text=True)
            ratios.append(json.loads(out.read_text())[0]["time_ratio_to_plain"])
    return ratios


def method_table(rows: list[dict[str, Any]]) -> str:
    def ratio(value: float, digits: int = 2) -> str:
        return "" if not math.isfinite(value) else f"{value:.{digits}f}"

    frame = pd.DataFrame(
        {
            "method": [r["method"] for r in rows],
            "rays / step": [r["rays_per_step"] for r in rows],
            "ms / step (median)": [f"{r['step_ms_median']:.1f}" for r in rows],
            "p90": [f"{r['step_ms_p90']:.1f}" for r in rows],
            "samples / s": [f"{r['samples_per_s']:.0f}" for r in rows],
            "data wait": [f"{r['data_wait_share']:.1%}" for r in rows],
            "eval s": [f"{r['eval_seconds']:.2f}" for r in rows],
            "trainable params": [f"{r['trainable_params']:,}" for r in rows],
            "× one model": [ratio(r["trainable_params"] / r["plain_trainable_params"], 3) for r in rows],
            "state MiB": [f"{r['training_state_bytes'] / MIB:.2f}" for r in rows],
            "step peak MiB": [f"{r['step_peak_bytes'] / MIB:.1f}" for r in rows],
            "time ÷ plain": [ratio(r["time_ratio_to_plain"], 3) for r in rows],
            "state ÷ plain": [ratio(r["state_ratio_to_plain"]) for r in rows],
            "step peak ÷ plain": [ratio(r["step_peak_ratio_to_plain"]) for r in rows],
            "vmap speed-up": [ratio(r["vmap_speedup"]) for r in rows],
        }
    )
    return markdown(frame).rstrip("\n")


def render(
    rows: list[dict[str, Any]],
    merged: list[float],
    activations: list[float],
    args: argparse.Namespace,
    words: str,
    ls: Sequence[dict[str, Any]] = (),
    not_measured: Sequence[str] = (),
) -> str:
    device, dataset = rows[0]["device"], rows[0]["dataset"]
    command = f"python -m bench.benchmarks.performance --out {args.out} --device {args.device} --dataset {dataset}"
    command += f" --steps {args.steps} --invocations {args.invocations} --threads {args.threads}"
    overhead = {r["method"]: r["trainable_params"] / r["plain_trainable_params"] - 1 for r in rows}
    lines = [
        f"# Performance: {dataset} on {device}",
        "",
        f"Machine: {words}. Measured {time.strftime('%Y-%m-%d')} by `{command}`",
        "(it rewrites this file and `performance.csv`).",
        "Start-up of the command line (`--help`, `list`, a mistyped method): `startup.md`",
        "(`python -m bench.benchmarks.startup`).",
        "A run's time beyond training (validation, test grid, the rest): `overhead.md`",
        "(`python -m bench.benchmarks.overhead`).",
        "",
        "Each method and the plain backbone (one unconditioned model, as many forwards per step as the",
        "method has rays, the same batches) take their timed steps alternately; the ratios are method ÷ plain.",
        f"Batch {rows[0]['batch_size']}, {rows[0]['steps']} timed steps after warm-up; the device is synchronised",
        "before each clock read. `state` is parameters + gradients + Adam state; `step peak` is what one",
        f"training step adds to memory at its peak ({rows[0]['step_peak_kind']}); `vmap speed-up` is the",
        "sequential step time ÷ the vmapped one (`train.ray_batching`), for models that can vmap their rays.",
        "",
        "## PaLoRA's overhead over separate invocations",
        "",
        f"`python -m bench.profile --method palora --device {device}` run {len(merged)} times:",
        "",
        "| adapter path | time ÷ plain per invocation | median |",
        "|---|---|---|",
        f"| merged weights (default) | {', '.join(f'{v:.3f}' for v in merged)} | **{np.median(merged):.3f}** |",
        f"| Linear adapters on activations (as the official PaLinear, vectorised over tasks), convs merged | "
        f"{', '.join(f'{v:.3f}' for v in activations)} | {np.median(activations):.3f} |",
        "",
        "## Every method",
        "",
        method_table(rows),
        "",
        *ls_lines(list(ls)),
        *[f"Not measured: {line}" for line in not_measured],
        *([""] if not_measured else []),
        "## Parameter overhead (trainable ÷ one plain model − 1)",
        "",
        "| method | overhead | PaMaL's ÷ this | PHN-LS's ÷ this |",
        "|---|---|---|---|",
    ]
    for name in ("palora", "pamal", "phn-ls", "cosmos"):
        if name in overhead and overhead[name] > 0:
            lines.append(
                f"| {name} | {overhead[name]:.3f} | {overhead.get('pamal', math.nan) / overhead[name]:.3g} | "
                f"{overhead.get('phn-ls', math.nan) / overhead[name]:.3g} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.benchmarks.performance",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="directory for performance.{md,csv}")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dataset", default="multimnist-mini")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--invocations", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads on CPU (the issue's setting: 2)")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the short GPU benchmark instead (bench.benchmarks.performance_quick): performance-gpu.{md,csv}",
    )
    parser.add_argument(
        "--real-shape",
        metavar="DATASET",
        help="instead: PaLoRA, PaMaL and LS at DATASET's real input shape (bench.benchmarks.performance_real_shape): "
        "performance-DATASET.md and results/profiles.csv",
    )
    parser.add_argument("--budget-s", type=float, default=420, help="--quick: seconds for everything")
    parser.add_argument(
        "--runs-per-gpu", type=int, default=8, help="--quick: runs packed on the GPU against one at a time (0: skip)"
    )
    args = parser.parse_args(argv)
    try:
        load_all()
        device = resolve_device(args.device)
        if args.quick:
            return run_quick(args, device, args.data_root or default_data_root(), machine(device))
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # for the separate invocations
        root = args.data_root or default_data_root()
        if args.real_shape:
            DATASETS.get(args.real_shape)  # an unknown name fails here, listing the valid ones
            command = "python -m bench.benchmarks.performance " + " ".join(argv if argv is not None else sys.argv[1:])
            return run_real_shape(args.real_shape, root, device, args.out, machine(device), command)
        rows = []
        for name in METHODS.names():
            rows.append(profile(name, args.dataset, device, args.steps, 0, [], root, compare_ray_batching=True))
            print(f"{name}: {rows[-1]['step_ms_median']:.1f} ms, x{rows[-1]['time_ratio_to_plain']:.3f}", flush=True)
        errors: list[str] = []
        ls = ls_rows(device, args.steps, root, errors) if args.dataset == "multimnist-mini" else []
        merged = invocation_ratios(str(device), args.dataset, args.steps, args.invocations, [])
        activations = invocation_ratios(
            str(device), args.dataset, args.steps, args.invocations, ["method.adapter_path=activations"]
        )
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    words = machine(device)
    frame = pd.DataFrame(rows).assign(machine=words)
    atomic.write_text(args.out / "performance.csv", frame.to_csv(index=False))
    atomic.write_text(args.out / "performance.md", render(rows, merged, activations, args, words, ls, errors))
    print(f"wrote {args.out / 'performance.md'} and performance.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
