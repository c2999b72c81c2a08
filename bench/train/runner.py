"""Run one (method, dataset, seed): assemble it (:func:`bench.train.trial.build_trial`), train, evaluate, record.

Progress: with ``show_progress`` on a terminal, tqdm's bar and one line per evaluation; elsewhere (a
sweep worker's or SLURM job's log, ``--no-progress``, output to a file) one plain, flushed line per
evaluation, ``<run id>: epoch 3/10 step 588 train_loss 0.4120 val_hv 0.6123 (12.3 s)``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from bench.core.errors import Diverged, RunFailed, UserError
from bench.core.hypervolume import front_hypervolume
from bench.core.registry import BACKBONES, DATASETS, METHODS
from bench.core.spec import DatasetSpec
from bench.train import checkpoint
from bench.train.config import RunConfig
from bench.train.evaluate import evaluate, front
from bench.train.extend import continue_from_shorter
from bench.train.lock import LOCK_NAME, run_lock
from bench.train.loop import LoopHooks, LoopState, fit
from bench.train.memory import out_of_memory, peak_kind, read_peak_bytes, reset_peak, training_state_bytes
from bench.train.record import (
    TENSORBOARD,
    RunRecord,
    TensorBoardSink,
    check_log_sink,
    completed_summary,
    git_sha,
    keep_completed_attempt,
    module_sources,
)
from bench.train.trial import Trial, build_trial, load_test_batches, parameter_counts, trial_trainables


def hv_metric_descriptions(spec: DatasetSpec) -> dict[str, str]:
    """Which metric stands for each objective in the hypervolume, and how it is minimised."""
    out = {}
    for o in spec.hypervolume_objectives:
        metric = o.metric(o.hv_metric)
        out[o.name] = f"{metric.best} - {metric.name}" if metric.higher_is_better else metric.name
    return out


@dataclasses.dataclass
class RunResult:
    directory: Path
    summary: dict[str, Any]
    skipped: bool = False
    """True when ``resume`` found the run already COMPLETED and did nothing."""
    kept: Path | None = None
    """Where ``force`` moved the COMPLETED record it trained over."""


def run_modules(cfg: RunConfig) -> dict[str, str]:
    """The modules that register the run's method, dataset and backbone (imports only the dataset's)."""
    backbone = cfg.model.backbone or DATASETS.get(cfg.dataset).backbone
    return {
        "method": METHODS.module(cfg.method),
        "dataset": DATASETS.module(cfg.dataset),
        "backbone": BACKBONES.module(backbone),
    }


def clear_attempt(directory: Path, keep_damaged: bool = False) -> None:
    """Remove what an earlier attempt left (checkpoints, summary, metrics, error log, TensorBoard events)."""
    names = ["summary.json", "metrics.jsonl", "error.log"]
    if not keep_damaged:
        names += [checkpoint.FILENAME, checkpoint.PREVIOUS]
    for name in names:
        (directory / name).unlink(missing_ok=True)
    shutil.rmtree(directory / TENSORBOARD, ignore_errors=True)


def summary_hypervolume(summary: dict[str, Any]) -> float:
    """The test hypervolume of a run's summary, computed from its front as ``bench run`` prints it
    (the dataset's current reference point); NaN for a dataset not registered here."""
    if summary.get("dataset") not in DATASETS:
        return math.nan
    return front_hypervolume(summary["front"], DATASETS.get(summary["dataset"]))


def val_scalars(rows: list[dict[str, Any]], hypervolume: float) -> dict[str, float]:
    """TensorBoard tags of an evaluation's rows: ``val/<objective>/<metric>/ray_<r1>_<r2>...``."""
    out = {"val/hypervolume": hypervolume}
    for row in rows:
        ray = "_".join(f"{v:.2f}" for v in row["ray"])
        out[f"val/{row['objective']}/{row['metric']}/ray_{ray}"] = row["value"]
    return out


def set_aside_damaged(directory: Path, names: list[str]) -> None:
    """Rename each damaged checkpoint to ``<name>.damaged``, so a later save never keeps it as the
    previous one (and it stays there to look at)."""
    for name in names:
        os.replace(directory / name, directory / f"{name}.damaged")


def check_finite(rows: list[dict[str, Any]], split: str, step: int, epoch: int) -> None:
    """Raise :class:`Diverged` when an evaluation metric is not finite (NaN logits give a NaN loss)."""
    for row in rows:
        if not math.isfinite(row["value"]):
            raise Diverged(
                f"diverged: non-finite {split} {row['metric']} of {row['objective']} at ray {row['ray']} "
                f"after step {step} (epoch {epoch})"
            )


def attempt_note() -> dict[str, Any]:
    """What code and how many threads an attempt ran with: a run resumed on other code is then seen
    to be a mix (``summary.json["first_attempt"]`` and each ``resumed`` entry)."""
    return {"git_sha": git_sha(), "torch_threads": torch.get_num_threads()}


def resume_note(step: int) -> dict[str, Any]:
    """How and where a run resumed: by hand, or as a requeued SLURM job (restart count, job id), and
    the code and threads of the attempt (:func:`attempt_note`)."""
    note: dict[str, Any] = {"from_step": step, "at": datetime.now(UTC).isoformat(timespec="seconds")}
    note.update(attempt_note())
    if os.environ.get("SLURM_JOB_ID"):
        note["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
        note["slurm_restart_count"] = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
    return note


class Recorder(LoopHooks):
    """The run's side of the loop: each evaluation (validation metrics, peak memory per phase, the
    progress line) and each checkpoint, with the accumulators a checkpoint keeps and restores."""

    def __init__(self, trial: Trial, record: RunRecord, started: float, show_progress: bool) -> None:
        self.trial, self.record = trial, record
        self.interactive = show_progress and sys.stderr.isatty()
        """tqdm's bar and line (on a terminal), else a plain line per evaluation (see the module docstring)."""
        self.sink: TensorBoardSink | None = None
        self.started = started
        """``time.perf_counter()`` at the start, moved back by the time earlier attempts took."""
        self.eval_seconds = 0.0
        self.peaks = {"train": 0, "eval": 0}
        self.resumes: list[dict[str, Any]] = []
        self.first_attempt = attempt_note()
        """The code and threads of the attempt that took step 0 (kept in checkpoints)."""
        self.parts = trial_trainables(trial)

    def resume(self) -> LoopState | None:
        """Restore the newest sound checkpoint and this recorder's accumulators; the loop state to
        continue from, or None to start over (every checkpoint damaged, or none)."""
        directory = self.record.directory
        saved, damaged = checkpoint.load(directory, self.parts)
        passed_over = [f"{name} is damaged: {why}" for name, why in damaged.items()]
        loop_state = None
        if saved is not None:
            loop_state, state = checkpoint.restore(saved, self.parts)
            self.eval_seconds, self.peaks = state["eval_seconds"], state["peaks"]
            self.resumes = [*state["resumes"], {**resume_note(loop_state.steps), "passed_over": passed_over}]
            self.first_attempt = state.get("first_attempt", {"git_sha": None, "torch_threads": None})
            self.started -= state["elapsed"]  # wall time counts every attempt up to its checkpoint
            self.record.keep_metrics(state["metric_lines"])
        elif passed_over:  # every checkpoint was damaged: start over, and say so
            clear_attempt(directory, keep_damaged=True)
            self.record.keep_metrics(0)
            self.resumes = [{**resume_note(0), "passed_over": passed_over, "started_over": True}]
        if passed_over:
            where = f"resumed from step {loop_state.steps}" if loop_state is not None else "started over"
            print(f"warning: run {directory.name}: {'; '.join(passed_over)}; {where}", file=sys.stderr)
            set_aside_damaged(directory, list(damaged))
        return loop_state

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def line(self, text: str) -> None:
        """One plain, flushed line of the run's progress for a log (not on a terminal)."""
        if not self.interactive:
            print(f"{self.record.directory.name}: {text}", flush=True)

    def log_train(self, step: int, epoch: int, losses: dict[str, float]) -> None:
        rows = [{"metric": "loss", "objective": name, "value": value} for name, value in losses.items()]
        # written with the next evaluation, checkpoint or failure: a resume takes back only rows a checkpoint covers
        self.record.add_metrics(rows, defer=True, step=step, epoch=epoch, split="train", time=round(self.elapsed(), 3))
        if self.sink is not None:
            self.sink.scalars({f"train/loss/{name}": value for name, value in losses.items()}, step)

    def checkpoint(self, state: LoopState) -> None:
        self.record.flush()
        accumulators = {
            "eval_seconds": self.eval_seconds,
            "peaks": dict(self.peaks),
            "elapsed": self.elapsed(),
            "metric_lines": self.record.metric_count,
            "resumes": self.resumes,
            "first_attempt": self.first_attempt,
        }
        checkpoint.save(self.record.directory, self.parts, state, accumulators)

    def evaluate(self, epoch: int, step: int, train_seconds: float, train_loss: float = math.nan) -> None:
        trial, device, peaks = self.trial, self.trial.device, self.peaks
        t0 = time.perf_counter()
        peaks["train"] = max(peaks["train"], read_peak_bytes(device))  # the training phase just ended
        reset_peak(device)
        rows = evaluate(trial.cnet, trial.val, trial.val_rays, trial.spec)
        check_finite(rows, "validation", step, epoch + 1)
        peaks["eval"] = max(peaks["eval"], read_peak_bytes(device))
        reset_peak(device)
        self.eval_seconds += time.perf_counter() - t0
        elapsed = round(self.elapsed(), 3)
        self.record.add_metrics(
            rows, step=step, epoch=epoch + 1, split="val", time=elapsed, train_time=round(train_seconds, 3)
        )
        hv = front_hypervolume(front(rows, trial.spec), trial.spec)
        if self.sink is not None:
            self.sink.scalars(val_scalars(rows, hv), step)
        epochs = trial.schedule.epochs
        if self.interactive:
            tqdm.write(f"epoch {epoch + 1}/{epochs}  step {step}  val hypervolume={hv:.4f}  ({elapsed:.0f} s)")
        loss = f"train_loss {train_loss:.4f}"
        self.line(f"epoch {epoch + 1}/{epochs} step {step} {loss} val_hv {hv:.4f} ({elapsed:.1f} s)")


def run_experiment(
    cfg: RunConfig,
    out: Path,
    data_root: Path | None = None,
    device: str = "auto",
    show_progress: bool = True,
    workers: int | None = None,
    resume: bool = False,
    force: bool = False,
    log: str = "",
) -> RunResult:
    """Train and evaluate one run; writes its record under ``out/<run_id>`` and returns the summary.
    ``workers``: DataLoader processes for image datasets (default :func:`bench.core.env.default_workers`).
    ``resume``: a COMPLETED run is returned as recorded (nothing is loaded or built); an unfinished
    one continues from its last checkpoint (or starts over when it has none). Without it the run
    always starts over. ``force``: a COMPLETED record is first moved whole into ``attempts/<n>/``
    of the run directory (:func:`bench.train.record.keep_completed_attempt`). ``log``: ``tensorboard`` also
    writes the scalars under ``<run>/tensorboard/`` (:class:`bench.train.record.TensorBoardSink`).

    The wall time (``wall_seconds``) starts once the libraries are imported, ``torch._dynamo``
    included: torch imports it lazily on the first optimizer (about 1 s on 2 CPU cores), so only the
    first run of a process would pay it otherwise."""
    import torch._dynamo  # noqa: F401 - see above; a no-op after the first run of a process

    started = time.perf_counter()
    check_log_sink(log)
    directory = Path(out) / cfg.run_id()
    if resume and (summary := completed_summary(directory)) is not None:
        return RunResult(directory, summary, skipped=True)
    # Assembled first: a missing dataset or a setting that cannot run fails before a run directory exists.
    try:
        trial = build_trial(cfg, data_root, device, workers)
    except (MemoryError, RuntimeError) as err:
        if (why := out_of_memory(err)) is None:
            raise
        raise UserError(
            f"{why} building {cfg.method} on {cfg.dataset}: a size setting is too large for this machine "
            "(a method's rank or hidden size, train.batch_size); lower it"
        ) from None
    with run_lock(directory):  # a second process on the same run stops here (RunLocked), touching nothing
        kept = keep_completed_attempt(directory, keep=(LOCK_NAME,)) if force and completed_summary(directory) else None
        continued, said = None, ""
        if resume and cfg.train.extend_shorter and not checkpoint.exists(directory):
            continued, said = continue_from_shorter(directory, cfg, trial.spec)
        resume = resume and checkpoint.exists(directory)
        if not resume:  # a fresh start: nothing of an earlier attempt may be mistaken for this one's
            clear_attempt(directory)
        record = RunRecord(directory)
        record.write_config(cfg.to_dict(), str(trial.device), module_sources(run_modules(cfg)))
        record.set_status("RUNNING")
        recorder: Recorder | None = None
        try:
            recorder = Recorder(trial, record, started, show_progress)
            if said:
                print(f"{directory.name}: {said}", flush=True)
            result = _train_and_record(trial, recorder, resume, show_progress, log, continued)
            return dataclasses.replace(result, kept=kept)
        except BaseException as err:
            oom = out_of_memory(err)
            if isinstance(err, KeyboardInterrupt):
                reason = "interrupted"
            elif isinstance(err, RunFailed):
                reason = str(err)
            elif oom:
                reason = f"{oom} during the run; lower train.batch_size or the model's size"
            else:
                reason = f"{type(err).__name__}: {err}"
            try:
                record.flush()  # the training losses up to the failure
                record.set_status(f"FAILED: {reason}")
                (record.directory / "error.log").write_text(traceback.format_exc())
            except OSError:  # a full or read-only disk takes the status too: the error still reaches the user
                pass
            if oom:
                raise RunFailed(reason) from err
            raise
        finally:
            if recorder is not None and recorder.sink is not None:
                recorder.sink.close()


def _train_and_record(
    trial: Trial, recorder: Recorder, resume: bool, show_progress: bool, log: str, continued: dict[str, Any] | None
) -> RunResult:
    """``continued``: the note of a run continued from a shorter one (:mod:`bench.train.extend`), added
    to the ``resumed`` entry its checkpoint gives."""
    cfg, spec, device, record = trial.cfg, trial.spec, trial.device, recorder.record
    loop_state = recorder.resume() if resume else None
    if loop_state is not None:
        recorder.line(f"resumed from step {loop_state.steps}")
        if continued is not None:
            recorder.resumes[-1].update(continued)
    if log:
        recorder.sink = TensorBoardSink(record.directory, loop_state.steps + 1 if loop_state is not None else None)
    reset_peak(device)
    stats = fit(trial.learner, trial.train, trial.schedule, recorder, loop_state, show_progress)
    recorder.peaks["train"] = max(recorder.peaks["train"], read_peak_bytes(device))

    test = load_test_batches(trial)
    test_started = time.perf_counter()
    test_rows = evaluate(trial.cnet, test, trial.eval_rays, spec)
    test_eval_seconds = time.perf_counter() - test_started
    check_finite(test_rows, "test", stats.steps, cfg.train.epochs)
    record.add_metrics(
        test_rows,
        step=stats.steps,
        epoch=cfg.train.epochs,
        split="test",
        time=round(recorder.elapsed(), 3),
        train_time=round(stats.train_seconds, 3),
    )
    test_front = front(test_rows, spec)
    summary: dict[str, Any] = {
        "run_id": record.directory.name,
        "method": cfg.method,
        "dataset": cfg.dataset,
        "seed": cfg.seed,
        "kind": trial.method.kind,
        "conditioning": trial.cnet.conditioning,
        "method_info": trial.method.describe(),
        "backbone": cfg.model.backbone or spec.backbone,
        "device": str(device),
        "front": test_front,
        "hv_reference": list(spec.hv_reference),
        "hv_metrics": hv_metric_descriptions(spec),
        "parameters": parameter_counts(trial),
        "training_state_bytes": training_state_bytes(trial.cnet, trial.optimizer),
        "steps": stats.steps,
        "train_seconds": round(stats.train_seconds, 3),
        "seconds_per_step": round(stats.train_seconds / max(stats.steps, 1), 6),
        "eval_seconds": round(recorder.eval_seconds, 3),
        "test_eval_seconds": round(test_eval_seconds, 3),
        "val_rays": int(trial.val_rays.shape[0]),
        "wall_seconds": round(recorder.elapsed(), 3),
        "peak_memory_bytes": {**recorder.peaks, "kind": peak_kind(device)},
        "first_attempt": recorder.first_attempt,
        "resumed": recorder.resumes,
        "train_ray_histogram": {
            "bins": len(stats.ray_histogram[0]),
            "counts": dict(zip(spec.objective_names, stats.ray_histogram, strict=True)),
        },
    }
    if recorder.sink is not None:
        recorder.sink.scalars({"test/hypervolume": front_hypervolume(test_front, spec)}, stats.steps)
    record.write_summary(summary)
    record.set_status("COMPLETED")
    return RunResult(record.directory, summary)
