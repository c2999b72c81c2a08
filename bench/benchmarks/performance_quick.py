"""The short GPU benchmark behind ``results/performance-gpu.md`` (``python -m bench.benchmarks.performance --quick``).

Within a few minutes on one GPU it measures, each by :func:`bench.benchmarks.profile.profile` (the method and
the plain backbone stepping alternately, the device synchronised before every clock read):

1. PaLoRA ÷ plain on MultiLeNet (batch 256), ResNet-18 on CelebA-shaped 64x64 input (batch 256) and
   SegNet on Cityscapes-shaped input (batch 8, ``inner_method=ls``), the last two on random data of
   the datasets' shapes; in float32, bf16 autocast and, where the time allows, ``torch.compile``.
2. vmapped against sequential rays for every front method whose model can vmap its rays.
3. LS's K members as one vmapped ensemble against K models one after another.
4. The default ``multimnist-mini`` run of every method through ``bench sweep --cluster local``: one
   run at a time, then ``--runs-per-gpu`` runs packed on the GPU; runs per hour from the runs that
   completed within each half of the time left (a sweep still going then is stopped).

Each measurement that fails is reported with its error and the rest go on. A benchmark: it
measures and reports, it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from bench.analysis.tables import markdown
from bench.benchmarks.profile import profile
from bench.core import atomic
from bench.core.registry import METHODS

BACKBONE_CASES = (
    # label, dataset, batch size, settings, synthetic samples (0: the real embedded data)
    ("MultiLeNet, multimnist-mini", "multimnist-mini", 256, (), 0),
    ("ResNet-18, CelebA-shaped 64x64", "celeba", 256, (), 512),
    ("SegNet, Cityscapes-shaped 128x256", "cityscapes", 8, ("method.inner_method=ls",), 32),
)
VARIANTS = (("float32", ()), ("bf16 autocast", ("train.amp=bf16",)))
COMPILED = (("torch.compile", ("train.compile=true",)),)
COMPILE_SECONDS = 60
"""A compiled case starts only with this much of the budget left; they run last, after the sweeps."""
PACKING_SHARE = 0.75
"""Of the budget left when the sweeps start, the share they get (one at a time 55%, packed 45%);
the rest is for the compiled cases."""
VMAP_METHODS = ("palora", "pamal", "phn-ls", "phn-epo", "cosmos")
PACK_SETTINGS: dict[str, Any] = {}
"""``[set]`` of the packed sweeps (none: the default run; the tests shorten it)."""


class Clock:
    """Seconds left of the benchmark's budget."""

    def __init__(self, budget_s: float) -> None:
        self.end = time.perf_counter() + budget_s

    def left(self) -> float:
        return self.end - time.perf_counter()


def attempt(label: str, errors: list[str], fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, or None with ``label: error`` noted (a failed measurement never stops
    the others)."""
    try:
        return fn(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - reported in the results, the benchmark goes on
        errors.append(f"{label}: {type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}")
        traceback.print_exc()
        return None


def palora_rows(
    device: torch.device, steps: int, root: Path, variants: tuple, errors: list[str], clock: Clock | None = None
) -> list[dict[str, Any]]:
    """PaLoRA ÷ plain on each backbone case in each variant; with ``clock``, a case starts only while
    :data:`COMPILE_SECONDS` are left (compiling cannot be cut short)."""
    rows = []
    for variant, extra in variants:
        for label, dataset, batch, sets, synthetic in BACKBONE_CASES:
            if clock is not None and clock.left() < COMPILE_SECONDS:
                errors.append(f"PaLoRA {label} {variant}: skipped, {clock.left():.0f} s of the budget left")
                continue
            row = attempt(
                f"PaLoRA {label} {variant}",
                errors,
                profile,
                "palora",
                dataset,
                device,
                steps,
                batch,
                [*sets, *extra],
                root,
                synthetic=synthetic,
            )
            if row is not None:
                rows.append({"backbone": label, "variant": variant, **row})
                print(f"palora {label} {variant}: x{row['time_ratio_to_plain']:.3f}", flush=True)
    return rows


def vmap_rows(device: torch.device, steps: int, root: Path, errors: list[str]) -> list[dict[str, Any]]:
    rows = []
    for name in VMAP_METHODS:
        row = attempt(
            f"{name} vmap",
            errors,
            profile,
            name,
            "multimnist-mini",
            device,
            steps,
            256,
            [],
            root,
            compare_ray_batching=True,
        )
        if row is not None:
            rows.append(row)
    return rows


def ls_rows(device: torch.device, steps: int, root: Path, errors: list[str]) -> list[dict[str, Any]]:
    rows = []
    for stacking in ("loop", "vmap"):
        row = attempt(
            f"ls {stacking}",
            errors,
            profile,
            "ls",
            "multimnist-mini",
            device,
            steps,
            256,
            [f"method.stacking={stacking}"],
            root,
        )
        if row is not None:
            rows.append({"stacking": stacking, **row})
    return rows


def sweep_spec(folder: Path, runs_per_gpu: int) -> Path:
    methods = ", ".join(f'"{m}"' for m in METHODS.names())
    path = folder / f"pack{runs_per_gpu}.toml"
    settings = "".join(f'"{key}" = {json.dumps(value)}\n' for key, value in PACK_SETTINGS.items())
    path.write_text(
        f'[grid]\nmethods = [{methods}]\ndatasets = ["multimnist-mini"]\nseeds = [0]\n\n'
        f"[set]\n{settings}\n[cluster]\nruns_per_gpu = {runs_per_gpu}\n"
    )
    return path


def timed_sweep(spec: Path, out: Path, limit_s: float) -> dict[str, Any]:
    """``bench sweep SPEC --cluster local`` stopped after ``limit_s``; its completed runs and their walls."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.sweep", str(spec), "--cluster", "local", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=max(1.0, limit_s))
        stopped = False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        stopped = True
    elapsed = time.perf_counter() - started
    walls = {}
    for summary in out.glob("*/summary.json"):
        record = json.loads(summary.read_text())
        if (summary.parent / "status").read_text().strip() == "COMPLETED":
            walls[record["method"]] = record["wall_seconds"]
    return {"elapsed_s": elapsed, "stopped": stopped, "walls": walls, "tail": output[-2000:]}


def packing(runs_per_gpu: int, seconds: float, errors: list[str]) -> dict[int, dict[str, Any]]:
    """The default runs one at a time, then ``runs_per_gpu`` at once, in ``seconds`` together."""
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for n, share in ((1, 0.55), (runs_per_gpu, 0.45)):
            spec = sweep_spec(folder, n)
            result = attempt(f"sweep runs_per_gpu={n}", errors, timed_sweep, spec, folder / f"out{n}", seconds * share)
            if result is not None:
                results[n] = result
                print(f"sweep runs_per_gpu={n}: {len(result['walls'])} runs in {result['elapsed_s']:.0f} s", flush=True)
    return results


def ls_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The LS section: each stacking path's step and evaluation time, and the ensemble's speed-up."""
    lines = ["## LS: 11 models as one vmapped ensemble against one after another (MultiLeNet, batch 256)", ""]
    ls = {r["stacking"]: r for r in rows}
    for stacking, row in ls.items():
        ms, evaluation = row["step_ms_median"], row["eval_seconds"]
        lines.append(f"- `method.stacking={stacking}`: {ms:.2f} ms / step, evaluation {evaluation:.2f} s")
    if {"loop", "vmap"} <= ls.keys():
        speedup = ls["loop"]["step_ms_median"] / ls["vmap"]["step_ms_median"]
        lines.append(f"- speed-up of the ensemble: **{speedup:.2f}x**")
    return [*lines, ""] if ls else lines


def ratio(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) and np.isfinite(value) else ""


def render(sections: dict[str, Any], words: str, command: str, errors: list[str]) -> str:
    lines = [
        "# Performance on a GPU",
        "",
        f"Machine: {words}. Measured {time.strftime('%Y-%m-%d')} by `{command}` (it rewrites this file",
        "and `performance-gpu.csv`). Step times are medians over the timed steps; ratios are method ÷ plain",
        "backbone (one unconditioned model, as many forwards per step as the method has rays, the same batches).",
        "",
        "## PaLoRA ÷ plain",
        "",
    ]
    palora = sections["palora"]
    if palora:
        frame = pd.DataFrame(
            {
                "backbone": [r["backbone"] for r in palora],
                "variant": [r["variant"] for r in palora],
                "batch": [r["batch_size"] for r in palora],
                "ms / step": [f"{r['step_ms_median']:.2f}" for r in palora],
                "plain ms / step": [f"{r['step_ms_median'] / r['time_ratio_to_plain']:.2f}" for r in palora],
                "time ÷ plain": [ratio(r["time_ratio_to_plain"]) for r in palora],
                "step peak ÷ plain": [ratio(r["step_peak_ratio_to_plain"], 2) for r in palora],
                "eval s (ray grid)": [f"{r['eval_seconds']:.2f}" for r in palora],
            }
        )
        lines += [markdown(frame).rstrip("\n"), ""]
    lines += ["## Rays vmapped against one forward per ray (MultiLeNet, batch 256)", ""]
    vmap = sections["vmap"]
    if vmap:
        frame = pd.DataFrame(
            {
                "method": [r["method"] for r in vmap],
                "rays / step": [r["rays_per_step"] for r in vmap],
                "sequential ms / step": [f"{r['step_ms_median']:.2f}" for r in vmap],
                "vmap speed-up (sequential ÷ vmap)": [ratio(r.get("vmap_speedup", float("nan")), 2) for r in vmap],
            }
        )
        lines += [markdown(frame).rstrip("\n"), ""]
    lines += ls_lines(sections["ls"])
    lines += ["## Default multimnist-mini runs, one at a time and packed on the GPU", ""]
    packed = sections["packing"]
    if packed:
        lines += [
            "| runs at once | runs completed | elapsed s | runs / hour | stopped at the time limit |",
            "|---|---|---|---|---|",
        ]
        for n, result in packed.items():
            done = len(result["walls"])
            lines.append(
                f"| {n} | {done} of {len(METHODS.names())} | {result['elapsed_s']:.0f} | "
                f"{3600 * done / result['elapsed_s']:.0f} | {'yes' if result['stopped'] else 'no'} |"
            )
        header = "| method | " + " | ".join(f"{n} at once" for n in packed) + " |"
        lines += ["", "Wall seconds of each run (its own record):", "", header]
        lines.append("|---|" + "---|" * len(packed))
        for name in METHODS.names():
            cells = [f"{packed[n]['walls'][name]:.1f}" if name in packed[n]["walls"] else "" for n in packed]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    if errors:
        lines += ["## Not measured", "", *[f"- {e}" for e in errors], ""]
    return "\n".join(lines)


def run_quick(args: argparse.Namespace, device: torch.device, root: Path, words: str) -> int:
    """Every section in turn, the files rewritten after each, so a run stopped from outside keeps
    what it measured."""
    clock = Clock(args.budget_s)
    errors: list[str] = []
    sections: dict[str, Any] = {"palora": [], "vmap": [], "ls": [], "packing": {}}
    command = (
        f"python -m bench.benchmarks.performance --quick --device {args.device} --out {args.out} --steps {args.steps}"
    )
    command += f" --budget-s {args.budget_s:.0f} --runs-per-gpu {args.runs_per_gpu}"
    args.out.mkdir(parents=True, exist_ok=True)

    def write() -> None:
        rows = [{"section": s, **r} for s in ("palora", "vmap", "ls") for r in sections[s]]
        frame = pd.DataFrame(rows).assign(machine=words)
        atomic.write_text(args.out / "performance-gpu.csv", frame.to_csv(index=False))
        atomic.write_text(args.out / "performance-gpu.md", render(sections, words, command, errors))

    sections["palora"] += palora_rows(device, args.steps, root, VARIANTS, errors)
    write()
    sections["vmap"] = vmap_rows(device, args.steps, root, errors)
    sections["ls"] = ls_rows(device, args.steps, root, errors)
    write()
    if args.runs_per_gpu:
        sections["packing"] = packing(args.runs_per_gpu, max(clock.left(), 0.0) * PACKING_SHARE, errors)
        write()
    sections["palora"] += palora_rows(device, args.steps, root, COMPILED, errors, clock)
    write()
    print(f"wrote {args.out / 'performance-gpu.md'} and performance-gpu.csv ({len(errors)} not measured)")
    return 0
