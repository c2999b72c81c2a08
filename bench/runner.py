"""Run one (method, dataset, seed): build everything from a resolved config, train, evaluate, record."""

from __future__ import annotations

import dataclasses
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from bench.analysis.hypervolume import front_hypervolume
from bench.backbones import create_backbone, resolve_weights
from bench.config import ModelConfig, RunConfig
from bench.data.batches import Batches, make_batches
from bench.errors import ConfigError
from bench.evaluate import evaluate, front
from bench.loop import fit
from bench.memory import peak_kind, read_peak_bytes, reset_peak, training_state_bytes
from bench.record import RunRecord
from bench.registry import BACKBONES, DATASETS, METHODS, load_all
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


def run_experiment(
    cfg: RunConfig,
    out: Path,
    data_root: Path | None = None,
    device: str = "auto",
    show_progress: bool = True,
    workers: int | None = None,
) -> RunResult:
    """Train and evaluate one run; writes its record under ``out/<run_id>`` and returns the summary.
    ``workers``: DataLoader processes for image datasets (default :func:`default_workers`)."""
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
    val = load_split(spec, root, "val", cfg.train.eval_batch_size, cfg.data.eval_limit, torch_device, None, workers)
    make_backbone = backbone_factory(spec, cfg.model, root)

    record = RunRecord(Path(out) / cfg.run_id())
    record.write_config(cfg.to_dict(), str(torch_device))
    record.set_status("RUNNING")
    try:
        return _train_and_record(
            cfg, spec, method, make_backbone, torch_device, root, train, val, workers, record, show_progress, started
        )
    except BaseException as err:
        reason = "interrupted" if isinstance(err, KeyboardInterrupt) else f"{type(err).__name__}: {err}"
        record.set_status(f"FAILED: {reason}")
        (record.directory / "error.log").write_text(traceback.format_exc())
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
) -> RunResult:
    torch.manual_seed(cfg.seed)
    cnet = method.build(make_backbone).to(device)
    optimizer = torch.optim.Adam(
        method.param_groups(cnet, cfg.train.lr), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay
    )
    scheduler = None
    if cfg.train.lr_step:
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, cfg.train.lr_step, cfg.train.lr_gamma)
    ray_generator = torch.Generator().manual_seed(cfg.seed + 1)
    eval_rays = method.eval_rays().to(device)
    eval_seconds = 0.0
    peaks = {"train": 0, "eval": 0}

    def on_epoch_end(epoch: int, step: int, train_seconds: float) -> None:
        nonlocal eval_seconds
        t0 = time.perf_counter()
        peaks["train"] = max(peaks["train"], read_peak_bytes(device))  # the training phase just ended
        reset_peak(device)
        rows = evaluate(cnet, val, eval_rays, spec)
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
    )
    peaks["train"] = max(peaks["train"], read_peak_bytes(device))

    test = load_split(spec, root, "test", cfg.train.eval_batch_size, cfg.data.eval_limit, device, None, workers)
    test_rows = evaluate(cnet, test, eval_rays, spec)
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
        "wall_seconds": round(time.perf_counter() - started, 3),
        "peak_memory_bytes": {**peaks, "kind": peak_kind(device)},
        "train_ray_histogram": {
            "bins": len(stats.ray_histogram[0]),
            "counts": dict(zip(spec.objective_names, stats.ray_histogram, strict=True)),
        },
    }
    record.write_summary(summary)
    record.set_status("COMPLETED")
    return RunResult(record.directory, summary)
