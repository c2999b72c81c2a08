"""What a sweep will cost before it is submitted: ``bench sweep SPEC --plan``.

For each configuration of the grid (its runs differ only by seed) the plan estimates one run's
training step, steps, evaluation, setup and peak memory on the device the runs will get, from the
first of these that exists:

- ``records``: COMPLETED runs of the same configuration (other seeds) under the sweep's folder,
  made on that kind of device: their recorded step time, evaluation and setup seconds, and peak
  memory (means; the peak's maximum: CUDA's allocated peak, or on a CPU the whole process's peak RSS);
- ``profile``: a short profile on this machine (:func:`profile_config`): the run's trial built as
  ``bench run`` builds it, :data:`WARMUP_STEPS` untimed steps, :data:`TIMED_STEPS` timed steps
  (median; the first also measures the memory growth) and one pass of the validation rays; its peak
  memory is the training state plus that growth (no interpreter or library baseline). Large
  inputs on a CPU run at a batch of :data:`CPU_BATCH`, their time and memory growth scaled linearly
  to the run's batch. Where the dataset's files are absent the data are random, shaped like the
  dataset's, and the splits have the sizes the dataset declares (``DatasetSpec.split_sizes``);
- ``stored``: such a profile kept in ``results/profiles.csv`` (:data:`STORED_PROFILES`; written by
  ``python -m bench.benchmarks.performance --real-shape nyuv2``, whose SegNet steps at 288x384 take minutes on
  a CPU), used when its configuration, device kind and torch threads match, and, for a CPU target,
  its machine too (an extrapolation takes the ratio from the row's own CPU times, so any machine's
  row serves it);
- ``extrapolated``: the runs want a GPU this machine lacks. The CPU profile's times are multiplied
  by the ratio of the plain backbone's step time per sample and input value on the GPU of
  ``results/performance-gpu.csv`` to this CPU's (profiled beside the method); the memory is the
  training state, the CPU step's growth and :data:`CUDA_CONTEXT_BYTES`. The method's overhead over
  the plain backbone is the CPU's, which can be smaller than on a GPU (PaLoRA: 1.02x on 2 CPU cores,
  1.3-2.0x on an H200), so an extrapolated time is a rough estimate, not a measurement.

Steps and evaluations follow :func:`bench.train.loop.fit`: ``ceil(samples / batch)`` steps an epoch (up
to ``train.max_steps``), a validation after every ``train.eval_every`` epochs and after the last,
the test grid once at the end. A SLURM job runs ``runs_per_gpu`` runs at once and lasts as long as
its longest (their slowdown when sharing a GPU is not modelled); a job longer than its time limit
less ``signal_delay_s`` is requeued once per further segment.
"""

from __future__ import annotations

import csv
import dataclasses
import heapq
import io
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Sized
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import Dataset

from bench.core import atomic
from bench.core.env import machine
from bench.core.errors import MissingDataError, UserError
from bench.core.registry import DATASETS
from bench.core.spec import DatasetSpec
from bench.data.kit.synthetic import synthetic_split
from bench.sweep.spec import ClusterProfile, SweepSpec
from bench.train.config import RunConfig, identity_of
from bench.train.evaluate import evaluate
from bench.train.memory import step_peak_bytes, training_state_bytes
from bench.train.record import completed_summary
from bench.train.stepper import PlainBackbone, Stepper, rays_per_step, with_train
from bench.train.trial import backbone_factory, build_trial, validation_limit

WARMUP_STEPS = 1
TIMED_STEPS = 3
"""Timed steps (median); the first of them also measures the step's memory growth."""
CPU_BATCH = 4
"""Batch at which a CPU profiles inputs of more than :data:`LARGE_INPUT` values per sample."""
LARGE_INPUT = 4096
PROFILE_VAL_SAMPLES = 256
"""Validation samples of a profile's evaluation pass (its time is taken per sample and ray); two
profile batches' worth for a large input on a CPU."""
CUDA_CONTEXT_BYTES = 512 * 2**20
"""What a CUDA process holds before its first tensor (context and kernels), added to extrapolated
GPU memory."""
GPU_REFERENCE = Path(__file__).resolve().parents[2] / "results" / "performance-gpu.csv"
STORED_PROFILES = Path(__file__).resolve().parents[2] / "results" / "profiles.csv"
MEMORY_HEADROOM = 0.9
"""Share of a GPU's memory that packed runs may fill."""
GIB = 2**30


@dataclasses.dataclass(frozen=True)
class Estimate:
    """One run's cost on the target device."""

    step_seconds: float
    steps: int
    eval_seconds: float
    setup_seconds: float
    peak_bytes: int
    source: str

    @property
    def train_seconds(self) -> float:
        return self.step_seconds * self.steps

    @property
    def seconds(self) -> float:
        return self.train_seconds + self.eval_seconds + self.setup_seconds


@dataclasses.dataclass(frozen=True)
class Shape:
    """How much one run does: training steps, and the (sample, ray) pairs it evaluates."""

    steps: int
    evaluations: int
    eval_sample_rays: int
    declared_sizes: bool
    """The split sizes come from ``DatasetSpec.split_sizes``, not from the files."""


def configuration_key(config: dict[str, Any]) -> str:
    """What runs of one configuration share: the run identity without the seed."""
    identity = identity_of(config)
    identity.pop("seed", None)
    return json.dumps(identity, sort_keys=True)


def split_size(spec: DatasetSpec, root: Path, split: str) -> tuple[int, bool]:
    """Samples in ``split``, from the files, else as the dataset declares them: (n, declared)."""
    try:
        data = spec.load(root, split)  # type: ignore[arg-type]
    except MissingDataError:
        if split in spec.split_sizes:
            return spec.split_sizes[split], True
        raise
    return (len(cast(Sized, data)) if isinstance(data, Dataset) else int(data[0].shape[0])), False


def epochs_and_steps(cfg: RunConfig, train_samples: int) -> tuple[int, int]:
    """Epochs begun and steps taken by :func:`bench.train.loop.fit`."""
    used = min(train_samples, cfg.data.train_limit) if cfg.data.train_limit else train_samples
    per_epoch = math.ceil(used / cfg.train.batch_size)
    steps = cfg.train.epochs * per_epoch
    if cfg.train.max_steps:
        steps = min(steps, cfg.train.max_steps)
    return math.ceil(steps / per_epoch), steps


def evaluations(epochs: int, eval_every: int) -> int:
    """Validations of a run of ``epochs`` epochs: every ``eval_every`` epochs and after the last."""
    return sum(1 for e in range(epochs) if (e + 1) % eval_every == 0 or e + 1 == epochs)


def run_shape(cfg: RunConfig, root: Path, val_rays: int, grid_rays: int) -> Shape:
    spec = DATASETS.get(cfg.dataset)
    (train, d1), (val, d2), (test, d3) = (split_size(spec, root, s) for s in ("train", "val", "test"))
    epochs, steps = epochs_and_steps(cfg, train)
    count = evaluations(epochs, cfg.train.eval_every)
    val_used = min(val, validation_limit(cfg) or val)
    test_used = min(test, cfg.data.eval_limit or test)
    return Shape(steps, count, count * val_used * val_rays + test_used * grid_rays, d1 or d2 or d3)


def input_values(spec: DatasetSpec) -> int:
    return math.prod(spec.input_shape)


def large_on_cpu(cfg: RunConfig, device: torch.device) -> bool:
    """Whether ``cfg``'s inputs have more than :data:`LARGE_INPUT` values and the profile runs on a CPU."""
    return device.type == "cpu" and input_values(DATASETS.get(cfg.dataset)) > LARGE_INPUT


def profile_batch(cfg: RunConfig, device: torch.device) -> int:
    """The batch a profile runs: the run's, or :data:`CPU_BATCH` for a large input on a CPU."""
    return min(cfg.train.batch_size, CPU_BATCH) if large_on_cpu(cfg, device) else cfg.train.batch_size


@dataclasses.dataclass(frozen=True)
class Profile:
    """A short profile of one configuration on this machine, scaled to the run's batch."""

    step_seconds: float
    eval_seconds_per_sample_ray: float
    setup_seconds: float
    state_bytes: int
    step_growth_bytes: int
    plain_step_seconds: float
    """The plain backbone's step (as many forwards as the method's rays) at the same batch; 0 unless asked."""
    rays: int
    val_rays: int
    grid_rays: int
    batch: int
    synthetic: bool


def profile_config(
    cfg: RunConfig, root: Path, device: torch.device, with_plain: bool, timed_steps: int = TIMED_STEPS
) -> Profile:
    """Time and memory of ``cfg``'s run on ``device`` (module docstring, ``profile``), from the
    median of ``timed_steps`` steps (each of the method and of the plain backbone)."""
    spec = DATASETS.get(cfg.dataset)
    batch = profile_batch(cfg, device)
    val_samples = min(PROFILE_VAL_SAMPLES, 2 * batch) if large_on_cpu(cfg, device) else PROFILE_VAL_SAMPLES
    small = with_train(cfg, batch_size=batch, val_samples=val_samples, checkpoint_every=0)
    data = None
    try:
        spec.load(root, "train")
    except MissingDataError:
        if not spec.split_sizes:
            raise
        samples = max(batch * (WARMUP_STEPS + timed_steps), val_samples)
        with torch.random.fork_rng(devices=[]):
            data = synthetic_split(spec, backbone_factory(spec, cfg.model, root)(), samples, cfg.seed)
    started = time.perf_counter()
    stepper = Stepper(build_trial(small, root, device, workers=0, data=data), synthetic=data is not None)
    setup = time.perf_counter() - started
    for _ in range(WARMUP_STEPS):
        stepper.step()
    timed: list[float] = []
    growth = max(0, step_peak_bytes(device, lambda: timed.append(stepper.step()[0]))[0])
    timed += [stepper.step()[0] for _ in range(timed_steps - 1)]
    step = float(np.median(timed))
    trial = stepper.trial
    eval_started = time.perf_counter()
    evaluate(trial.cnet, trial.val, trial.val_rays, trial.spec)
    evaluated = trial.val.num_samples * trial.val_rays.shape[0]  # type: ignore[attr-defined]
    eval_per = (time.perf_counter() - eval_started) / evaluated
    rays = rays_per_step(trial.method)
    plain = 0.0
    if with_plain:
        plain_stepper = Stepper(
            build_trial(small, root, device, workers=0, method=PlainBackbone(spec, rays, device=device), data=data)
        )
        for _ in range(WARMUP_STEPS):
            plain_stepper.step()
        plain = float(np.median([plain_stepper.step()[0] for _ in range(timed_steps)]))
    scale = cfg.train.batch_size / batch
    return Profile(
        step_seconds=step * scale,
        eval_seconds_per_sample_ray=eval_per,
        setup_seconds=setup,
        state_bytes=training_state_bytes(trial.cnet, trial.optimizer)["total"],
        step_growth_bytes=int(growth * scale),
        plain_step_seconds=plain * scale,
        rays=rays,
        val_rays=int(trial.val_rays.shape[0]),
        grid_rays=int(trial.eval_rays.shape[0]),
        batch=batch,
        synthetic=data is not None,
    )


CONVERTERS: dict[str, Callable[[str], Any]] = {"float": float, "int": int, "bool": lambda text: text == "True"}
"""A stored profile's text back into each :class:`Profile` field's type."""
PROFILE_KEYS = ("configuration", "method", "dataset", "device", "threads", "machine", "measured", "commit")


def stored_profile(
    cfg: RunConfig, here: torch.device, any_machine: bool, path: Path = STORED_PROFILES
) -> tuple[Profile, str] | None:
    """The newest stored profile of ``cfg``'s configuration on ``here``'s kind of device with this
    process's torch threads (and this machine unless ``any_machine``), and where it comes from."""
    if not path.is_file():
        return None
    key, threads = configuration_key(cfg.to_dict()), str(torch.get_num_threads())
    with path.open() as f:
        rows = [
            r
            for r in csv.DictReader(f)
            if r["configuration"] == key
            and r["device"] == here.type
            and r["threads"] == threads
            and (any_machine or r["machine"] == machine(here))
        ]
    if not rows:
        return None
    row = max(rows, key=lambda r: r["measured"])
    values = {field.name: CONVERTERS[str(field.type)](row[field.name]) for field in dataclasses.fields(Profile)}
    return Profile(**values), f"stored profile ({path.name}, measured {row['measured']} at {row['commit']})"


def store_profiles(
    entries: list[tuple[RunConfig, torch.device, Profile]], commit: str, path: Path = STORED_PROFILES
) -> None:
    """Add ``entries`` to the stored profiles, replacing any of the same configuration, device kind,
    threads and machine."""
    fields = [*PROFILE_KEYS, *(f.name for f in dataclasses.fields(Profile))]
    rows: list[dict[str, Any]] = []
    if path.is_file():
        with path.open() as f:
            rows = list(csv.DictReader(f))
    measured = time.strftime("%Y-%m-%d")
    for cfg, device, prof in entries:
        new = {
            "configuration": configuration_key(cfg.to_dict()),
            "method": cfg.method,
            "dataset": cfg.dataset,
            "device": device.type,
            "threads": str(torch.get_num_threads()),
            "machine": machine(device),
            "measured": measured,
            "commit": commit,
            **{k: str(v) for k, v in dataclasses.asdict(prof).items()},
        }
        same = ("configuration", "device", "threads", "machine")
        rows = [r for r in rows if any(r[k] != new[k] for k in same)] + [new]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(path, buffer.getvalue())


def gpu_reference(backbone: str, path: Path = GPU_REFERENCE) -> dict[str, Any]:
    """The plain backbone's float32 step on the GPU of ``results/performance-gpu.csv`` (its PaLoRA
    section): seconds per sample, per forward and per input value, and the GPU's name."""
    if path.is_file():
        with path.open() as f:
            for row in csv.DictReader(f):
                if row["section"] != "palora" or row["variant"] != "float32":
                    continue
                spec = DATASETS.get(row["dataset"])
                if spec.backbone != backbone:
                    continue
                per = int(row["batch_size"]) * int(row["rays_per_step"]) * input_values(spec)
                return {
                    "seconds_per_value": float(row["plain_step_ms_median"]) / 1000 / per,
                    "device": row["machine"].split(";")[0],
                    "dataset": row["dataset"],
                }
    raise UserError(
        f"no GPU measurement of the {backbone} backbone in {path}: plan on a machine with a GPU, or run "
        "`python -m bench.benchmarks.performance --quick --device cuda --out results/` there first"
    )


def cpu_to_gpu_ratio(profile: Profile, spec: DatasetSpec, reference: dict[str, Any], batch: int) -> float:
    """GPU / CPU time of the plain backbone per sample, forward and input value."""
    cpu = profile.plain_step_seconds / (batch * profile.rays * input_values(spec))
    return reference["seconds_per_value"] / cpu


def profile_estimate(cfg: RunConfig, root: Path, target: torch.device, here: torch.device) -> Estimate:
    """An estimate from a profile on ``here`` (module docstring, ``profile`` and ``extrapolated``)."""
    spec = DATASETS.get(cfg.dataset)
    extrapolate = target.type == "cuda" and here.type != "cuda"
    reference = gpu_reference(spec.backbone) if extrapolate else None
    stored = stored_profile(cfg, here, any_machine=extrapolate)
    if stored is not None and extrapolate and not stored[0].plain_step_seconds:
        stored = None  # no plain step to extrapolate from
    if stored is None:
        where = f"this machine's {here.type}"
        print(f"  profiling {cfg.method} on {cfg.dataset} on {where} ...", file=sys.stderr, flush=True)
    prof = stored[0] if stored is not None else profile_config(cfg, root, here, with_plain=extrapolate)
    shape = run_shape(cfg, root, prof.val_rays, prof.grid_rays)
    what = "random data, declared split sizes" if prof.synthetic else "its data"
    kept = f"; {stored[1]}" if stored is not None else ""
    scaled = f", batch {prof.batch} scaled to {cfg.train.batch_size}" if prof.batch != cfg.train.batch_size else ""
    ratio = 1.0
    if reference is not None:
        ratio = cpu_to_gpu_ratio(prof, spec, reference, cfg.train.batch_size)
        via = f"plain {spec.backbone} on {reference['device']} / this CPU"
        source = f"extrapolated: CPU profile x {ratio:.4g} ({via}{kept}){scaled}"
        peak = prof.state_bytes + prof.step_growth_bytes + CUDA_CONTEXT_BYTES
    else:
        source = f"profile on this machine's {here.type} ({torch.get_num_threads()} threads, {what}{kept}{scaled})"
        peak = prof.state_bytes + prof.step_growth_bytes
    return Estimate(
        step_seconds=prof.step_seconds * ratio,
        steps=shape.steps,
        eval_seconds=shape.eval_sample_rays * prof.eval_seconds_per_sample_ray * ratio,
        setup_seconds=prof.setup_seconds,
        peak_bytes=peak,
        source=source,
    )


def record_estimate(summaries: list[dict[str, Any]]) -> Estimate:
    """The mean of COMPLETED runs' recorded costs (the peak: their largest)."""

    def mean(key: str) -> float:
        return float(np.mean([s[key] for s in summaries]))

    train, wall = mean("train_seconds"), mean("wall_seconds")
    evaluation = mean("eval_seconds") + mean("test_eval_seconds")
    peaks = [max(s["peak_memory_bytes"].get("train", 0), s["peak_memory_bytes"].get("eval", 0)) for s in summaries]
    return Estimate(
        step_seconds=mean("seconds_per_step"),
        steps=round(mean("steps")),
        eval_seconds=evaluation,
        setup_seconds=max(0.0, wall - train - evaluation),
        peak_bytes=int(max(peaks)),
        source=f"records: {len(summaries)} completed run(s) on {summaries[0]['device']}",
    )


def completed_by_configuration(directories: Iterable[Path]) -> dict[str, list[dict[str, Any]]]:
    """COMPLETED runs' summaries, grouped by :func:`configuration_key` of their config."""
    found: dict[str, list[dict[str, Any]]] = {}
    for directory in directories:
        summary = completed_summary(directory)
        if summary is None:
            continue
        try:
            config = json.loads((directory / "config.json").read_text())["config"]
        except (OSError, ValueError, KeyError):
            continue
        found.setdefault(configuration_key(config), []).append(summary)
    return found


@dataclasses.dataclass(frozen=True)
class JobPlan:
    """The SLURM side: jobs, their length against the time limit, and the requeues they need."""

    jobs: int
    total_seconds: float
    """Job-hours' seconds: every job's length, summed (each holds its device that long)."""
    longest_seconds: float
    usable_seconds: float
    over_limit: int
    most_requeues: int
    beyond_max: int


def requeues_needed(seconds: float, usable: float) -> int:
    """Requeues of a job of ``seconds`` whose every segment may last ``usable`` seconds."""
    return max(0, math.ceil(seconds / usable) - 1)


def plan_jobs(run_seconds: list[float], profile: ClusterProfile) -> JobPlan:
    """Jobs of ``runs_per_gpu`` runs each (in order), each as long as its longest run."""
    per = profile.runs_per_gpu
    jobs = [max(run_seconds[k : k + per]) for k in range(0, len(run_seconds), per)]
    usable = 60.0 * profile.time_min - profile.signal_delay_s
    requeues = [requeues_needed(s, usable) for s in jobs]
    return JobPlan(
        jobs=len(jobs),
        total_seconds=sum(jobs),
        longest_seconds=max(jobs, default=0.0),
        usable_seconds=usable,
        over_limit=sum(r > 0 for r in requeues),
        most_requeues=max(requeues, default=0),
        beyond_max=sum(r > profile.max_requeues for r in requeues),
    )


def queue_makespan(run_seconds: list[float], workers: int) -> float:
    """Wall time of ``workers`` local workers sharing one queue ordered longest first
    (:mod:`bench.sweep.queue`): each run goes to the worker free first."""
    free = [0.0] * max(1, workers)
    for seconds in sorted(run_seconds, reverse=True):
        heapq.heapreplace(free, free[0] + seconds)
    return max(free)


def runs_fitting(peak_bytes: int, gpu_bytes: int) -> int:
    """Runs of ``peak_bytes`` each that fit at once in :data:`MEMORY_HEADROOM` of ``gpu_bytes``."""
    return max(0, int(MEMORY_HEADROOM * gpu_bytes // max(1, peak_bytes)))


def target_device(run_device: str, cluster: str, gpus_per_node: int) -> torch.device:
    """The device the runs will get: the spec's ``[run] device``, else a GPU when the SLURM request
    asks for one, or when this machine has one for local workers."""
    if run_device != "auto":
        return torch.device(run_device.split(":")[0])
    if cluster == "slurm":
        return torch.device("cuda" if gpus_per_node > 0 else "cpu")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f}"


def duration(seconds: float) -> str:
    """``42s``, ``12.5m`` or ``3.21h``."""
    if seconds < 60:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.1f}m" if seconds < 3600 else f"{seconds / 3600:.2f}h"


def label(cfg: RunConfig, variant: dict[str, Any]) -> str:
    settings = ", ".join(f"{k.removeprefix('method.')}={v}" for k, v in variant.items())
    return f"{cfg.method} on {cfg.dataset}" + (f" [{settings}]" if settings else "")


def estimate_all(
    groups: list[tuple[str, list[RunConfig]]],
    completed: dict[str, list[dict[str, Any]]],
    target: torch.device,
    root: Path,
) -> list[tuple[str, list[RunConfig], Estimate]]:
    """One estimate per configuration: from its records on ``target``'s kind of device, else a profile."""
    here = torch.device("cuda") if target.type == "cuda" and torch.cuda.is_available() else torch.device("cpu")
    out = []
    for name, configs in groups:
        summaries = [
            s
            for s in completed.get(configuration_key(configs[0].to_dict()), [])
            if str(s.get("device", "")).split(":")[0] == target.type
        ]
        try:
            estimate = record_estimate(summaries) if summaries else profile_estimate(configs[0], root, target, here)
        except MissingDataError as err:
            raise UserError(f"{name}: cannot plan without the data or declared split sizes: {err}") from None
        out.append((name, configs, estimate))
    return out


def print_cost_plan(
    estimates: list[tuple[str, list[RunConfig], Estimate]],
    target: torch.device,
    cluster: str,
    profile: ClusterProfile,
    gpu_bytes: int | None,
) -> None:
    """The plan as the sweep prints it (module docstring)."""
    print(f"cost plan on {target.type}, one run of each configuration (s, m, h: seconds, minutes, hours):")
    head = f"  {'configuration':<44} {'runs':>4} {'steps':>7} {'s/step':>8} {'train':>7} {'eval':>7} "
    print(head + f"{'setup':>7} {'run':>7} {'peak GiB':>8}  source")
    per_method: dict[str, float] = {}
    run_seconds: list[float] = []
    for name, configs, e in estimates:
        print(
            f"  {name:<44} {len(configs):>4} {e.steps:>7} {e.step_seconds:>8.4f} {duration(e.train_seconds):>7} "
            f"{duration(e.eval_seconds):>7} {duration(e.setup_seconds):>7} {duration(e.seconds):>7} "
            f"{e.peak_bytes / GIB:>8.2f}  {e.source}"
        )
        method = configs[0].method
        per_method[method] = per_method.get(method, 0.0) + e.seconds * len(configs)
        run_seconds += [e.seconds] * len(configs)
    print("run time per method: " + ", ".join(f"{m} {duration(s)}" for m, s in per_method.items()))
    print(f"sweep: {len(run_seconds)} runs, {hours(sum(run_seconds))} run-hours")
    if cluster == "slurm":
        jobs = plan_jobs(run_seconds, profile)
        device = "GPU" if target.type == "cuda" else f"{profile.cpus_per_task}-CPU"
        print(
            f"slurm: {jobs.jobs} jobs of {profile.runs_per_gpu} run(s), {hours(jobs.total_seconds)} {device} "
            f"job-hours; the longest job {hours(jobs.longest_seconds)} h against a usable "
            f"{hours(jobs.usable_seconds)} h "
            f"(time_min {profile.time_min} less signal_delay_s {profile.signal_delay_s})"
        )
        if jobs.over_limit:
            limit = f"max_requeues = {profile.max_requeues}"
            verdict = f"{jobs.beyond_max} need more than {limit}" if jobs.beyond_max else f"within {limit}"
            print(f"  {jobs.over_limit} job(s) outlast it, requeued up to {jobs.most_requeues} time(s): {verdict}")
        else:
            print("  every job fits in its time limit")
    elif cluster == "local":
        workers = min(len(run_seconds), profile.runs_per_gpu * max(1, torch.cuda.device_count()))
        print(
            f"local: {workers} worker(s) taking the runs longest first, about "
            f"{duration(queue_makespan(run_seconds, workers))} of wall time "
            f"({duration(sum(run_seconds) / max(1, workers))} if the runs split evenly)"
        )
    if target.type == "cuda" and estimates:
        peak = max(e.peak_bytes for _, _, e in estimates)
        assumed = "" if torch.cuda.is_available() else " (no GPU here: --gpu-memory-gb)"
        total = gpu_bytes or 0
        fits = runs_fitting(peak, total)
        print(
            f"memory: the largest run peaks at {peak / GIB:.2f} GiB; {fits} such runs fit at once in "
            f"{MEMORY_HEADROOM:.0%} of a {total / GIB:.0f} GiB GPU{assumed}; the spec packs "
            f"runs_per_gpu = {profile.runs_per_gpu}"
        )
        if profile.runs_per_gpu > fits:
            print(f"warning: runs_per_gpu = {profile.runs_per_gpu} does not fit in memory; at most {fits}")


def configurations(spec: SweepSpec, runs: list[RunConfig]) -> list[tuple[str, list[RunConfig]]]:
    """``runs`` grouped by configuration (their seeds), in the spec's order, each with its label."""
    wanted = {cfg.run_id() for cfg in runs}
    groups: dict[str, tuple[str, list[RunConfig]]] = {}
    for variant, cfg in spec.grid.entries():
        if cfg.run_id() in wanted:
            groups.setdefault(configuration_key(cfg.to_dict()), (label(cfg, dict(variant)), []))[1].append(cfg)
    return list(groups.values())


def plan_sweep(
    spec: SweepSpec, runs: list[RunConfig], directories: list[Path], cluster: str, root: Path, gpu_gib: float
) -> None:
    """Print the cost plan of ``runs`` (the runs still to do); ``directories``: the sweep's run folders."""
    target = target_device(spec.run.device, cluster, spec.cluster.gpus_per_node)
    gpu_bytes = torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else int(gpu_gib * GIB)
    estimates = estimate_all(configurations(spec, runs), completed_by_configuration(directories), target, root)
    print_cost_plan(estimates, target, cluster, spec.cluster, gpu_bytes)
