"""Run a grid of runs on a SLURM cluster, on this machine's GPUs, or in-process; see their state.

    python -m bench.sweep slurm/<spec>.toml [--cluster slurm|local|debug] [--out DIR] [--dry-run]
    python -m bench.sweep status slurm/<spec>.toml [--out DIR]

``--cluster slurm`` submits one job array through submitit, one task per run, or per
``[cluster] runs_per_gpu`` runs that then share the task's GPU, each in its own process; ``local``
runs ``runs_per_gpu`` worker processes per visible GPU (that many on CPU when there is none), each
pinned to its GPU with its share of the CPU threads, the runs dealt out over them in turn; ``debug``
runs everything in this process. A run that fails, or a worker that is killed, leaves the others
running. Runs already COMPLETED under ``--out`` (same run id)
are skipped, and unfinished ones resume from their checkpoints, so running a sweep again is safe.
State is read from each run's own record, never from the scheduler.
"""

from __future__ import annotations

import contextlib
import os
import pdb
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import submitit
import torch

from bench import atomic
from bench.cli import Parser, help_text
from bench.config import RunConfig
from bench.errors import ConfigError, UserError
from bench.record import read_status
from bench.sweep_job import SweepJob, mark_lost, thread_env, worker_gone
from bench.sweep_spec import SweepSpec, load_spec

CLUSTERS = ("slurm", "local", "debug")
JOBS_FILE = "_sweep/jobs.json"
LOCAL_TIMEOUT_MIN = 60 * 24 * 30


def active_slurm_jobs() -> set[str] | None:
    """Ids of the SLURM jobs (array tasks expanded) still queued or running; None without squeue."""
    if shutil.which("squeue") is None:
        return None
    try:
        probe = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return set(probe.stdout.split()) if probe.returncode == 0 else None


def default_out(spec: SweepSpec) -> Path:
    return Path("runs") / "sweeps" / spec.name


def run_state(out: Path, cfg: RunConfig, job: str | None = None, active: set[str] | None = None) -> tuple[str, str]:
    """(state, detail) from the run's record: pending, running, completed or failed (with reason).
    With the run's SLURM ``job`` and the ``active`` job ids, a RUNNING record whose job has left
    the queue is reported as failed (killed without a word), and a queued run as pending; without
    a SLURM job, a RUNNING record whose worker process on this host is gone is failed too."""
    status = read_status(out / cfg.run_id())
    queued = job is not None and active is not None and job in active
    if status == "COMPLETED":
        return "completed", ""
    if status is None or (status.startswith("FAILED") and queued):
        return "pending", f"queued as job {job}" if queued else ""
    if status == "RUNNING":
        gone = worker_gone(out / cfg.run_id()) if job is None else ""
        if gone:
            return "failed", gone
        if job is not None and active is not None and not queued:
            return "failed", f"RUNNING in its record, but job {job} has left the queue (killed? see its log)"
        return "running", "RUNNING" if active is not None else "RUNNING (or its job died: see the scheduler)"
    return "failed", status


def read_jobs(out: Path) -> dict[str, Any]:
    path = out / JOBS_FILE
    return atomic.read_json(path) if path.is_file() else {}


def describe(cfg: RunConfig) -> str:
    return f"{cfg.method} on {cfg.dataset}, seed {cfg.seed}"


def make_executor(cluster: str, folder: Path, spec: SweepSpec) -> submitit.Executor:
    profile = spec.cluster
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise UserError("--cluster slurm needs sbatch on the PATH (a SLURM login node); use --cluster local here")
    if cluster == "local":  # not through AutoExecutor, which refuses LocalExecutor's visible_gpus
        local = submitit.LocalExecutor(folder=folder)
        # the profile's limit is for a cluster's queue; a local worker runs its runs to the end
        local.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN)
        return local
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster, slurm_max_num_timeout=profile.max_requeues)
    if cluster == "slurm":
        optional = {
            "slurm_partition": profile.partition,
            "slurm_account": profile.account,
            "slurm_qos": profile.qos,
            "slurm_constraint": profile.constraint,
        }
        executor.update_parameters(
            name=f"pfl-{spec.name}",
            timeout_min=profile.time_min,
            gpus_per_node=profile.gpus_per_node,
            cpus_per_task=profile.cpus_per_task,
            mem_gb=profile.mem_gb,
            slurm_array_parallelism=profile.array_parallelism,
            slurm_signal_delay_s=profile.signal_delay_s,
            **{k: v for k, v in optional.items() if v},
        )
    return executor


def local_gpus(runs_per_gpu: int) -> list[int | None]:
    """The GPU of each local worker: ``runs_per_gpu`` per visible GPU, the GPUs taken in turn so
    that a few runs spread over all of them; ``runs_per_gpu`` workers on CPU (None) without one."""
    gpus = torch.cuda.device_count()
    return [gpu for _ in range(runs_per_gpu) for gpu in range(gpus)] if gpus else [None] * runs_per_gpu


def submit_local(executor: submitit.Executor, todo: list[RunConfig], args: tuple, runs_per_gpu: int) -> list:
    """One worker process (a submitit local job) per GPU slot, each pinned to its GPU and given its
    share of the CPU threads; the runs are dealt out over the workers in turn."""
    slots = local_gpus(runs_per_gpu)
    chunks = [(gpu, todo[k :: len(slots)]) for k, gpu in enumerate(slots) if todo[k :: len(slots)]]
    threads = max(1, (os.cpu_count() or 1) // len(chunks)) if len(chunks) > 1 else 0
    assignments = []
    for gpu, chunk in chunks:
        if gpu is not None:
            executor.update_parameters(gpus_per_node=1, visible_gpus=[gpu])
        with thread_env(threads):  # the worker process starts with these variables
            assignments.append((chunk, executor.submit(SweepJob(), chunk, *args, threads=threads)))
    return assignments


def submit_groups(executor: submitit.Executor, todo: list[RunConfig], args: tuple, runs_per_gpu: int) -> list:
    """One job (a SLURM array task) per ``runs_per_gpu`` runs, consecutive in the grid and so alike
    in size; a job of several runs starts one worker process per run (see ``SweepJob._run_pack``)."""
    groups = [todo[i : i + runs_per_gpu] for i in range(0, len(todo), runs_per_gpu)]
    with executor.batch():
        jobs = [executor.submit(SweepJob(), group, *args, **pack_option(len(group))) for group in groups]
    return list(zip(groups, jobs, strict=True))


def pack_option(runs: int) -> dict[str, int]:
    """No option for a job of one run, so it is submitted exactly as before packing existed."""
    return {"pack": runs} if runs > 1 else {}


def submit(spec: SweepSpec, todo: list[RunConfig], out: Path, cluster: str) -> list[Any]:
    """Submit ``todo``; returns the jobs. Records run id -> job id in ``<out>/_sweep/jobs.json``."""
    executor = make_executor(cluster, out / "_sweep" / "submitit", spec)
    args = (str(out), spec.run.data_root, spec.run.device, spec.run.workers)
    assignments = submitted(executor, todo, args, cluster, spec.cluster.runs_per_gpu)
    jobs = read_jobs(out)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for chunk, job in assignments:
        for cfg in chunk:
            jobs[cfg.run_id()] = {"job_id": str(job.job_id), "cluster": cluster, "submitted": now}
    atomic.write_json(out / JOBS_FILE, jobs)
    return [job for _, job in assignments]


def submitted(executor: submitit.Executor, todo: list[RunConfig], args: tuple, cluster: str, per_gpu: int) -> list:
    """(runs, job) pairs: local workers, SLURM array tasks, or one in-process job per run (debug)."""
    if cluster == "local":
        return submit_local(executor, todo, args, per_gpu)
    return submit_groups(executor, todo, args, per_gpu if cluster == "slurm" else 1)


def slurm_job(jobs: dict[str, Any], cfg: RunConfig) -> str | None:
    entry = jobs.get(cfg.run_id(), {})
    return entry.get("job_id") if entry.get("cluster") == "slurm" else None


def queue_for(jobs: dict[str, Any], configs: list[RunConfig]) -> set[str] | None:
    """Ask squeue only when some run was submitted to SLURM (squeue takes ~10 s to fail without a
    controller)."""
    return active_slurm_jobs() if any(slurm_job(jobs, cfg) for cfg in configs) else None


def print_plan(spec: SweepSpec, configs: list[RunConfig], out: Path) -> list[RunConfig]:
    """One line per run with its state; returns the runs still to do (not completed, and not
    queued or running as a SLURM job of an earlier submission)."""
    jobs = read_jobs(out)
    active = queue_for(jobs, configs)
    todo, busy = [], 0
    for cfg in configs:
        job = slurm_job(jobs, cfg)
        state, detail = run_state(out, cfg, job, active)
        print(f"  {state:<9}  {cfg.run_id():<48}  {describe(cfg)}" + (f"  [{detail}]" if detail else ""))
        if state == "completed":
            continue
        if job is not None and active is not None and job in active:
            busy += 1
            continue
        todo.append(cfg)
    done = len(configs) - len(todo) - busy
    print(
        f"{done} of {len(configs)} runs already completed in {out}; {busy} still queued or running; {len(todo)} to run"
    )
    return todo


def status(spec: SweepSpec, out: Path) -> int:
    configs = spec.configs()
    jobs = read_jobs(out)
    active = queue_for(jobs, configs)
    states = [(cfg, *run_state(out, cfg, slurm_job(jobs, cfg), active)) for cfg in configs]
    counts = Counter(state for _, state, _ in states)
    print(f"sweep {spec.name}: {len(configs)} runs in {out}")
    print("  " + ", ".join(f"{name} {counts.get(name, 0)}" for name in ("pending", "running", "completed", "failed")))
    for wanted in ("failed", "running"):
        rows = [(cfg, detail) for cfg, state, detail in states if state == wanted]
        if rows:
            print(f"{wanted}:")
        for cfg, detail in rows:
            job = jobs.get(cfg.run_id(), {}).get("job_id", "not submitted by this sweep")
            print(f"  {cfg.run_id()} ({describe(cfg)}; job {job}): {detail}")
    return 0


def launch(spec: SweepSpec, out: Path, cluster: str, dry_run: bool) -> int:
    configs = spec.configs()
    print(
        f"sweep {spec.name}: {len(configs)} runs ({len(spec.methods)} methods x {len(spec.datasets)} datasets x "
        f"{len(spec.variants)} variants x {len(spec.seeds)} seeds)"
    )
    todo = print_plan(spec, configs, out)
    if dry_run or not todo:
        return 0
    jobs = submit(spec, todo, out, cluster)
    ids = sorted({str(job.job_id).split("_")[0] for job in jobs})
    print(f"submitted {len(todo)} runs as {len(jobs)} {cluster} job(s): {', '.join(ids)}")
    if cluster == "slurm":
        print(f"follow with: python -m bench.sweep status {spec.path} --out {out}")
        return 0
    failures = sum(not finished(job, cluster, out) for job in jobs)
    return status(spec, out) or (1 if failures else 0)


def finished(job: Any, cluster: str, out: Path) -> bool:
    """Wait for a debug or local job; False, with a line saying why, when some run of it failed.
    A local worker that died without a result (killed) leaves its RUNNING run marked FAILED."""
    if cluster == "local":
        job.wait()
        if not job.paths.result_pickle.exists():
            reason = f"its local worker (job {job.job_id}) ended without a result (killed? see {job.paths.stderr})"
            lost = [cfg.run_id() for cfg in job_runs(job) if mark_lost(out / cfg.run_id(), reason)]
            print(f"job {job.job_id} died without a result; unfinished: {', '.join(lost) or 'none'}")
            return False
    try:
        with no_post_mortem():
            job.result()
    except Exception as err:  # a failed run: its record says why; the others go on
        print(f"job {job.job_id} failed: {failure_line(err)}")
        return False
    return True


def failure_line(err: Exception) -> str:
    """The reason in a failed job's error: the job's own ``N of M runs failed: ...`` line, which
    submitit's error for a local job buries in a traceback followed by log paths; else its last line."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if " runs failed: " in line:
            return line.split("Error: ", 1)[-1] if line.startswith(("RuntimeError", "Exception")) else line
    return lines[-1] if lines else repr(err)


@contextlib.contextmanager
def no_post_mortem() -> Iterator[None]:
    """submitit's debug jobs call ``pdb.post_mortem()`` on any exception, which on a terminal stops
    the sweep at a prompt; a sweep records the failure and goes on instead."""
    original = pdb.post_mortem
    pdb.post_mortem = lambda *args, **kwargs: None
    try:
        yield
    finally:
        pdb.post_mortem = original


def job_runs(job: Any) -> list[RunConfig]:
    """The runs a job was submitted with (from its pickled submission)."""
    return list(job.submission().args[0])


def main(argv: list[str] | None = None, prog: str = "python -m bench.sweep") -> int:
    """``prog [status] SPEC [options]``: launch the sweep, or with ``status`` show its runs' state."""
    argv = list(sys.argv[1:] if argv is None else argv)
    is_status = bool(argv) and argv[0] == "status"
    parser = Parser(prog=prog + (" status" if is_status else ""), description=help_text(__doc__))
    parser.add_argument("spec", type=Path, help="sweep spec, e.g. slurm/multimnist-mini.toml")
    parser.add_argument(
        "--out", type=Path, default=None, metavar="DIR", help="folder of run directories (default: runs/sweeps/<spec>)"
    )
    if not is_status:
        parser.add_argument(
            "--cluster",
            default=None,
            help="slurm, local or debug (default: slurm when sbatch is on the PATH, else local)",
        )
        parser.add_argument("--dry-run", action="store_true", help="list the runs and their state; submit nothing")
    args = parser.parse_args(argv[1:] if is_status else argv)
    try:
        spec = load_spec(args.spec)
        out = args.out or default_out(spec)
        if is_status:
            return status(spec, out)
        if args.cluster is None:
            args.cluster = "slurm" if shutil.which("sbatch") else "local"
        if args.cluster not in CLUSTERS:
            raise ConfigError(f"unknown cluster {args.cluster!r}; valid clusters: {', '.join(CLUSTERS)}")
        return launch(spec, out, args.cluster, args.dry_run)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
