"""A dataset's methods at its real input shape (``python -m bench.benchmarks.performance --real-shape nyuv2``):
the planner's profile (:func:`bench.sweep.plan.profile_config`) of PaLoRA, PaMaL and one LS member on
random data shaped like the dataset, stored in ``results/profiles.csv`` for ``bench sweep --plan``
and written as ``results/performance-<dataset>.md``.

Each profile builds the run as ``bench run`` does (the dataset's protocol and the method's preset),
times :data:`TIMED_STEPS` step after :data:`bench.sweep.plan.WARMUP_STEPS` and the same of the plain
backbone (one unconditioned SegNet, as many forwards as the method has rays), and one
evaluation pass of the validation rays over a few samples, whose time per (sample, ray) gives the
test grid's: every ray of the evaluation grid over the whole test split. LS trains one model per ray
of the grid (66 on NYUv2), each as costly as the one profiled here; its runs are split over jobs by
``method.rays``. A benchmark: it measures and reports, it asserts nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from bench.benchmarks.startup import git
from bench.core import atomic
from bench.core.registry import DATASETS
from bench.sweep.plan import Profile, profile_config, store_profiles
from bench.train.config import resolve

METHODS: dict[str, tuple[str, ...]] = {
    "palora": (),
    "pamal": (),
    "ls": ("method.rays=0.4,0.3,0.3",),
}
"""The methods measured, with their settings over the preset (LS: one member)."""
TIMED_STEPS = 1
"""One timed step each, after one warm-up: a PaLoRA step on NYUv2 (6 rays, gradient balancing)
takes minutes on a 2-core CPU."""
MIB = 2**20


def measure(dataset: str, root: Path, device: torch.device) -> list[tuple[str, Profile]]:
    """Each method's profile at ``dataset``'s shape, stored for the planner as it completes."""
    repo = Path(__file__).resolve().parents[2]
    commit = git(repo, "rev-parse", "--short", "HEAD")
    if git(repo, "status", "--porcelain", "--", "bench", "methods"):
        commit += "+uncommitted"  # the code measured is not exactly the commit's
    out = []
    for method, sets in METHODS.items():
        cfg = resolve(method, dataset, 0, assignments=sets)
        started = time.perf_counter()
        prof = profile_config(cfg, root, device, with_plain=True, timed_steps=TIMED_STEPS)
        print(
            f"{method} on {dataset}: {prof.step_seconds:.2f} s/step ({time.perf_counter() - started:.0f} s)", flush=True
        )
        store_profiles([(cfg, device, prof)], commit)
        out.append((method, prof))
    return out


def render(dataset: str, profiles: list[tuple[str, Profile]], words: str, command: str) -> str:
    spec = DATASETS.get(dataset)
    test = spec.split_sizes.get("test", 0)
    shape = "x".join(str(v) for v in spec.input_shape)
    lines = [
        f"# {dataset} at its real shape: {spec.backbone} on {shape} inputs",
        "",
        f"Machine: {words}. Measured {time.strftime('%Y-%m-%d')} by `{command}` (it rewrites this file and",
        "adds the profiles to `profiles.csv`, which `bench sweep SPEC --plan` reads).",
        "",
        "Random data of the dataset's shape; the dataset's protocol and each method's preset. `step` is",
        f"the median of {TIMED_STEPS} timed step(s) after a warm-up, at the run's batch; `plain` the",
        "unconditioned backbone with as many forwards per step. `test grid` = the time per (sample, ray)",
        "of one validation pass times every ray of the evaluation grid times the",
        f"{test} test samples (an extrapolation, not a timed pass).",
        "`peak` = training state (parameters, gradients, Adam) + the memory one step adds (RSS growth on CPU).",
        "LS is one member: the front trains one such model per grid ray. `÷ plain` includes each preset's",
        "inner method: PaLoRA and PaMaL balance the task gradients (`gb`: one backward per task and ray),",
        "the plain backbone and LS take one backward of the weighted loss.",
        "",
        "| method | rays / step | batch | step s | plain s | ÷ plain | eval ms per sample-ray "
        "| test grid (rays) | state MiB | step adds MiB | peak MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, p in profiles:
        grid = p.eval_seconds_per_sample_ray * p.grid_rays * test
        ratio = p.step_seconds / p.plain_step_seconds if p.plain_step_seconds else float("nan")
        lines.append(
            f"| {method} | {p.rays} | {p.batch} | {p.step_seconds:.2f} | {p.plain_step_seconds:.2f} | {ratio:.3f} "
            f"| {p.eval_seconds_per_sample_ray * 1000:.0f} | {grid / 60:.0f} min ({p.grid_rays}) "
            f"| {p.state_bytes / MIB:.0f} | {p.step_growth_bytes / MIB:.0f} "
            f"| {(p.state_bytes + p.step_growth_bytes) / MIB:.0f} |"
        )
    return "\n".join(lines) + "\n"


def run_real_shape(dataset: str, root: Path, device: torch.device, out: Path, words: str, command: str) -> int:
    profiles = measure(dataset, root, device)
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out / f"performance-{dataset}.md", render(dataset, profiles, words, command))
    print(f"wrote {out / f'performance-{dataset}.md'}")
    return 0
