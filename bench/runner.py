"""Run one (method, dataset, seed): build everything from a resolved config, train, evaluate, record."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from bench import checkpoint
from bench.analysis.hypervolume import front_hypervolume
from bench.backbones import create_backbone, resolve_weights
from bench.conditioning import ray_batching_problem
from bench.config import ModelConfig, RunConfig
from bench.data.batches import Batches, LoaderBatches, make_batches
from bench.errors import ConfigError, Diverged, RunFailed
from bench.evaluate import evaluate, front, validation_rays
from bench.loop import StepOptions, fit
from bench.memory import peak_kind, read_peak_bytes, reset_peak, training_state_bytes
from bench.record import RunRecord, read_status
from bench.registry import BACKBONES, DATASETS, METHODS, load_all
from bench.run_lock import run_lock
from bench.spec import ConditionedNet, DatasetSpec, Split


def default_data_root() -> Path:
    """``$PFLBENCH_DATA``, else ``$XDG_CACHE_HOME/pfl-bench`` (``~/.cache/pfl-bench``)."""
    if os.environ.get("PFLBENCH_DATA"):
        return Path(os.environ["PFLBENCH_DATA"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "pfl-bench"


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:I``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: CUDA is not available here; use --device cpu or auto")
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) visible")
        return device
    raise ConfigError(f"unknown device {name!r}; valid devices: auto, cpu, cuda, cuda:<index>")


def default_workers() -> int:
    """DataLoader worker processes for image datasets: one per core, at most 8, one core left free."""
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def load_split(
    spec: DatasetSpec,
    root: Path,
    split: Split,
    batch_size: int,
    limit: int,
    device: torch.device,
    generator: torch.Generator | None,
    workers: int,
) -> Batches:
    return make_batches(spec.load(root, split), batch_size, device, generator, limit, workers)


def single_model_parameters(make_backbone: Callable[..., Any]) -> int:
    """Parameters of one plain backbone with its heads: the unit of the memory-overhead ratios
    (PaLoRA paper, Sec. 5). Built under a forked RNG so counting leaves the run's seeding untouched."""
    with torch.random.fork_rng(devices=[]):
        return sum(p.numel() for p in make_backbone().parameters())


def count_parameters(cnet: ConditionedNet, single_model: int) -> dict[str, int]:
    return {
        "total": sum(p.numel() for p in cnet.parameters()),
        "trainable": sum(p.numel() for p in cnet.parameters() if p.requires_grad),
        "inference": cnet.inference_parameters(),
        "single_model": single_model,
    }


def hv_metric_descriptions(spec: DatasetSpec) -> dict[str, str]:
    """Which metric stands for each objective in the hypervolume, and how it is minimised."""
    out = {}
    for o in spec.hypervolume_objectives:
        metric = o.metric(o.hv_metric)
        out[o.name] = f"{metric.best} - {metric.name}" if metric.higher_is_better else metric.name
    return out


def make_optimizer(cfg: RunConfig, method: Any, cnet: ConditionedNet) -> torch.optim.Optimizer:
    """Adam over the method's parameter groups (the protocol of every dataset here)."""
    return torch.optim.Adam(
        method.param_groups(cnet, cfg.train.lr), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay
    )


def step_options(cfg: RunConfig, cnet: ConditionedNet) -> StepOptions:
    """The step's ray batching and autocast dtype from ``cfg.train``; compiles ``cnet`` in place
    when ``train.compile`` (its parameter names, and so its checkpoints, are unchanged)."""
    if cfg.train.ray_batching == "vmap" and (problem := ray_batching_problem(cnet)):
        raise ConfigError(
            f"train.ray_batching=vmap cannot run {cfg.method} on {cfg.dataset}: {problem}; "
            "use train.ray_batching=sequential"
        )
    if cfg.train.compile:
        cnet.compile()
    return StepOptions.from_names(cfg.train.ray_batching, cfg.train.amp)


def backbone_factory(spec: DatasetSpec, model: ModelConfig, root: Path) -> Callable[..., Any]:
    """``make_backbone(**kw)`` for :meth:`bench.spec.Method.build`: a fresh backbone (the dataset's
    unless ``model.backbone`` names another), its encoder initialised from ``model.weights`` when
    set (resolved now, so a missing file fails before training)."""
    name = model.backbone or spec.backbone
    options = dict(spec.backbone_options) if name == spec.backbone else {}
    BACKBONES.get(name)
    weights_path = resolve_weights(model.weights, name, root) if model.weights else None

    def make_backbone(**kwargs: Any) -> Any:
        if weights_path is not None:
            kwargs["weights"] = weights_path
        return create_backbone(name, spec, **options, **kwargs)

    return make_backbone


@dataclasses.dataclass
class RunResult:
    directory: Path
    summary: dict[str, Any]
    skipped: bool = False
    """True when ``resume`` found the run already COMPLETED and did nothing."""


def train_generator(batches: Batches) -> torch.Generator:
    """The generator that shuffles the training batches."""
    generator = batches.sampler.generator if isinstance(batches, LoaderBatches) else batches.generator
    if generator is None:
        raise ValueError("training batches must be shuffled by a generator")
    return generator


def clear_attempt(directory: Path, keep_damaged: bool = False) -> None:
    """Remove what an earlier attempt left (checkpoints, summary, metrics, error log)."""
    names = ["summary.json", "metrics.jsonl", "error.log"]
    if not keep_damaged:
        names += [checkpoint.FILENAME, checkpoint.PREVIOUS]
    for name in names:
        (directory / name).unlink(missing_ok=True)


def set_aside_damaged(directory: Path, names: list[str]) -> None:
    """Rename each damaged checkpoint to ``<name>.damaged``, so a later save never keeps it as the
    previous one (and it stays there to look at)."""
    for name in names:
        os.replace(directory / name, directory / f"{name}.damaged")


def check_backbone_runs(cfg: RunConfig, spec: DatasetSpec, method: Any, make_backbone: Any, val: Batches) -> None:
    """ConfigError unless another backbone (``model.backbone``) builds and runs on two of the
    dataset's samples: found before a run directory exists, not after training started. Under a
    forked RNG, on CPU, so the run's own seeding is untouched."""
    x, _ = next(iter(val))
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            cnet = method.build(make_backbone).eval()
            cnet(x[:2].cpu(), method.eval_rays()[0])
    except Exception as err:  # noqa: BLE001 - any failure here means the backbone does not fit the data
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(
            f"model.backbone={cfg.model.backbone} cannot run on {spec.name} ({first}); "
            f"{spec.name}'s own backbone is {spec.backbone}"
        ) from None


def check_finite(rows: list[dict[str, Any]], split: str, step: int, epoch: int) -> None:
    """Raise :class:`Diverged` when an evaluation metric is not finite (NaN logits give a NaN loss)."""
    for row in rows:
        if not math.isfinite(row["value"]):
            raise Diverged(
                f"diverged: non-finite {split} {row['metric']} of {row['objective']} at ray {row['ray']} "
                f"after step {step} (epoch {epoch})"
            )


def resume_note(step: int) -> dict[str, Any]:
    """How and where a run resumed: by hand, or as a requeued SLURM job (restart count, job id)."""
    note: dict[str, Any] = {"from_step": step, "at": datetime.now(UTC).isoformat(timespec="seconds")}
    if os.environ.get("SLURM_JOB_ID"):
        note["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
        note["slurm_restart_count"] = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
    return note


def run_experiment(
    cfg: RunConfig,
    out: Path,
    data_root: Path | None = None,
    device: str = "auto",
    show_progress: bool = True,
    workers: int | None = None,
    resume: bool = False,
) -> RunResult:
    """Train and evaluate one run; writes its record under ``out/<run_id>`` and returns the summary.
    ``workers``: DataLoader processes for image datasets (default :func:`default_workers`).
    ``resume``: a COMPLETED run is returned as recorded; an unfinished one continues from its last
    checkpoint (or starts over when it has none). Without it the run always starts over."""
    started = time.perf_counter()
    load_all()
    spec: DatasetSpec = DATASETS.get(cfg.dataset)
    method = METHODS.get(cfg.method)(cfg.hparams, spec)
    torch_device = resolve_device(device)
    root = Path(data_root) if data_root is not None else default_data_root()

    # Data first: a missing dataset must fail before a run directory exists.
    data_generator = torch.Generator().manual_seed(cfg.seed)
    workers = default_workers() if workers is None else workers
    train = load_split(
        spec, root, "train", cfg.train.batch_size, cfg.data.train_limit, torch_device, data_generator, workers
    )
    val_limit = min((n for n in (cfg.data.eval_limit, cfg.train.val_samples) if n > 0), default=0)
    val = load_split(spec, root, "val", cfg.train.eval_batch_size, val_limit, torch_device, None, workers)
    make_backbone = backbone_factory(spec, cfg.model, root)
    if cfg.model.backbone and cfg.model.backbone != spec.backbone:
        check_backbone_runs(cfg, spec, method, make_backbone, val)

    directory = Path(out) / cfg.run_id()
    if resume and read_status(directory) == "COMPLETED" and (directory / "summary.json").is_file():
        return RunResult(directory, json.loads((directory / "summary.json").read_text()), skipped=True)
    with run_lock(directory):  # a second process on the same run stops here (RunLocked), touching nothing
        resume = resume and checkpoint.exists(directory)
        if not resume:  # a fresh start: nothing of an earlier attempt may be mistaken for this one's
            clear_attempt(directory)
        record = RunRecord(directory)
        record.write_config(cfg.to_dict(), str(torch_device))
        record.set_status("RUNNING")
        try:
            return _train_and_record(
                cfg,
                spec,
                method,
                make_backbone,
                torch_device,
                root,
                train,
                val,
                workers,
                record,
                show_progress,
                started,
                resume,
            )
        except BaseException as err:
            if isinstance(err, KeyboardInterrupt):
                reason = "interrupted"
            elif isinstance(err, RunFailed):
                reason = str(err)
            else:
                reason = f"{type(err).__name__}: {err}"
            try:
                record.set_status(f"FAILED: {reason}")
                (record.directory / "error.log").write_text(traceback.format_exc())
            except OSError:  # a full or read-only disk takes the status too: the error still reaches the user
                pass
            raise


def _train_and_record(
    cfg: RunConfig,
    spec: DatasetSpec,
    method: Any,
    make_backbone: Callable[..., Any],
    device: torch.device,
    root: Path,
    train: Batches,
    val: Batches,
    workers: int,
    record: RunRecord,
    show_progress: bool,
    started: float,
    resume: bool,
) -> RunResult:
    torch.manual_seed(cfg.seed)
    method.device = device
    cnet = method.build(make_backbone).to(device)
    options = step_options(cfg, cnet)
    optimizer = make_optimizer(cfg, method, cnet)
    scheduler = None
    if cfg.train.lr_step:
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, cfg.train.lr_step, cfg.train.lr_gamma)
    ray_generator = torch.Generator().manual_seed(cfg.seed + 1)
    eval_rays = method.eval_rays().to(device)
    val_rays = validation_rays(eval_rays, spec.num_tasks, cfg.train.val_points_per_edge)
    eval_seconds = 0.0
    peaks = {"train": 0, "eval": 0}
    resumes: list[dict[str, Any]] = []
    parts = checkpoint.Trainables(cnet, optimizer, scheduler, method, ray_generator, train_generator(train), device)
    loop_state = None
    saved, damaged = checkpoint.load(record.directory, parts) if resume else (None, {})
    passed_over = [f"{name} is damaged: {why}" for name, why in damaged.items()]
    if saved is not None:
        loop_state, runner_state = checkpoint.restore(saved, parts)
        eval_seconds, peaks = runner_state["eval_seconds"], runner_state["peaks"]
        resumes = [*runner_state["resumes"], {**resume_note(loop_state.steps), "passed_over": passed_over}]
        started -= runner_state["elapsed"]  # wall time counts every attempt up to its checkpoint
        record.keep_metrics(runner_state["metric_lines"])
    elif passed_over:  # every checkpoint was damaged: start over, and say so
        clear_attempt(record.directory, keep_damaged=True)
        record.keep_metrics(0)
        resumes = [{**resume_note(0), "passed_over": passed_over, "started_over": True}]
    if passed_over:
        where = f"resumed from step {loop_state.steps}" if loop_state is not None else "started over"
        print(f"warning: run {record.directory.name}: {'; '.join(passed_over)}; {where}", file=sys.stderr)
        set_aside_damaged(record.directory, list(damaged))

    def on_checkpoint(state: Any) -> None:
        runner_state = {
            "eval_seconds": eval_seconds,
            "peaks": dict(peaks),
            "elapsed": time.perf_counter() - started,
            "metric_lines": record.metric_count,
            "resumes": resumes,
        }
        checkpoint.save(record.directory, parts, state, runner_state)

    def on_epoch_end(epoch: int, step: int, train_seconds: float) -> None:
        nonlocal eval_seconds
        t0 = time.perf_counter()
        peaks["train"] = max(peaks["train"], read_peak_bytes(device))  # the training phase just ended
        reset_peak(device)
        rows = evaluate(cnet, val, val_rays, spec)
        check_finite(rows, "validation", step, epoch + 1)
        peaks["eval"] = max(peaks["eval"], read_peak_bytes(device))
        reset_peak(device)
        eval_seconds += time.perf_counter() - t0
        elapsed = round(time.perf_counter() - started, 3)
        record.add_metrics(
            rows, step=step, epoch=epoch + 1, split="val", time=elapsed, train_time=round(train_seconds, 3)
        )
        if show_progress:
            hv = front_hypervolume(front(rows, spec), spec)
            tqdm.write(
                f"epoch {epoch + 1}/{cfg.train.epochs}  step {step}  val hypervolume={hv:.4f}  ({elapsed:.0f} s)"
            )

    reset_peak(device)
    stats = fit(
        cnet,
        method,
        optimizer,
        train,
        spec.objectives,
        cfg.train.epochs,
        ray_generator,
        on_epoch_end,
        eval_every=cfg.train.eval_every,
        max_steps=cfg.train.max_steps,
        show_progress=show_progress,
        scheduler=scheduler,
        data_generator=parts.data_generator,
        state=loop_state,
        checkpoint_every=cfg.train.checkpoint_every,
        on_checkpoint=on_checkpoint,
        options=options,
    )
    peaks["train"] = max(peaks["train"], read_peak_bytes(device))

    test = load_split(spec, root, "test", cfg.train.eval_batch_size, cfg.data.eval_limit, device, None, workers)
    test_started = time.perf_counter()
    test_rows = evaluate(cnet, test, eval_rays, spec)
    test_eval_seconds = time.perf_counter() - test_started
    check_finite(test_rows, "test", stats.steps, cfg.train.epochs)
    record.add_metrics(
        test_rows,
        step=stats.steps,
        epoch=cfg.train.epochs,
        split="test",
        time=round(time.perf_counter() - started, 3),
        train_time=round(stats.train_seconds, 3),
    )
    test_front = front(test_rows, spec)
    summary = {
        "run_id": record.directory.name,
        "method": cfg.method,
        "dataset": cfg.dataset,
        "seed": cfg.seed,
        "kind": method.kind,
        "conditioning": cnet.path,
        "method_info": method.describe(),
        "backbone": cfg.model.backbone or spec.backbone,
        "device": str(device),
        "front": test_front,
        "hypervolume": front_hypervolume(test_front, spec),
        "hv_reference": list(spec.hv_reference),
        "hv_metrics": hv_metric_descriptions(spec),
        "parameters": count_parameters(cnet, single_model_parameters(make_backbone)),
        "training_state_bytes": training_state_bytes(cnet, optimizer),
        "steps": stats.steps,
        "train_seconds": round(stats.train_seconds, 3),
        "seconds_per_step": round(stats.train_seconds / max(stats.steps, 1), 6),
        "eval_seconds": round(eval_seconds, 3),
        "test_eval_seconds": round(test_eval_seconds, 3),
        "val_rays": int(val_rays.shape[0]),
        "wall_seconds": round(time.perf_counter() - started, 3),
        "peak_memory_bytes": {**peaks, "kind": peak_kind(device)},
        "resumed": resumes,
        "train_ray_histogram": {
            "bins": len(stats.ray_histogram[0]),
            "counts": dict(zip(spec.objective_names, stats.ray_histogram, strict=True)),
        },
    }
    record.write_summary(summary)
    record.set_status("COMPLETED")
    return RunResult(record.directory, summary)
