"""Run a grid of runs on a SLURM cluster, on this machine's GPUs, or in-process; see their state.

    python -m bench.sweep slurm/<spec>.toml [--cluster slurm|local|debug] [--profile FILE] [--out DIR]
                          [--methods A,B] [--dry-run | --plan [--gpu-memory-gb GB]]
    python -m bench.sweep status slurm/<spec>.toml [--out DIR]
    python -m bench.sweep status runs/<folder>

``--profile FILE`` (a TOML ``[cluster]`` table, e.g. ``slurm/profiles/cpu.toml``) replaces the
spec's ``[cluster] profile``; keys in the spec's own ``[cluster]`` table still override it. Before
anything is submitted the sweep checks that every dataset of the runs to do has its files, that
every run's method settings build the method, and that the device can be had; a failure, or
sbatch refusing the request, is one ``error:`` line (exit 2) and nothing is submitted.
``--methods A,B`` runs only those methods of the spec, under the run ids the whole grid gives them
(so a long grid can go method group by method group, and ``status`` and the report see one grid).
``--dry-run`` lists the runs, the scheduler request (partition, GPUs, CPUs, memory, time limit,
array size and parallelism) or the local workers, and runs the checks, submitting nothing.
``--plan`` lists them with the request and what each configuration will cost on the device the runs
get (a GPU when the request asks for one): step time, steps, evaluation, setup and peak memory of one
run, from COMPLETED records of the same configuration under ``--out`` or else a short profile here
(extrapolated, with the ratio used, for a GPU this machine lacks); then run-hours per method and for
the sweep, SLURM job-hours, the jobs that outlast the time limit and the requeues they need against
``max_requeues``, and how many runs fit in one GPU's memory (``--gpu-memory-gb`` where there is no
GPU here). See :mod:`bench.sweep.plan`. It submits nothing.

``--cluster slurm`` submits one job array through submitit, one task per run, or per
``[cluster] runs_per_gpu`` runs that then share the task's GPU, each in its own process; ``local``
runs ``runs_per_gpu`` worker processes per visible GPU (that many on CPU when there is none), each
pinned to its GPU with its share of the CPU threads, each taking the next run that no other worker
has taken from one queue ordered longest first (:mod:`bench.sweep.queue`); ``debug``
runs everything in this process. A run that fails, or a worker that is killed, leaves the others
running. Runs already COMPLETED under ``--out`` (same run id)
are skipped, and unfinished ones resume from their checkpoints, so running a sweep again is safe.
State is read from each run's own record, never from the scheduler. ``status`` lists each run
with its state: a running run's epoch and step (the last row of its ``metrics.jsonl``), a completed
run's test hypervolume (from its front, as ``bench run`` prints it), a failed run's reason; given a
folder instead of a spec, every run directory under it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import pdb
import shutil
import socket
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import submitit
import torch
from submitit.core.utils import FailedJobError, FailedSubmissionError

from bench.core import atomic
from bench.core.cli import Parser, help_text
from bench.core.env import default_data_root, resolve_device
from bench.core.errors import ConfigError, UserError
from bench.core.registry import DATASETS, METHODS
from bench.sweep.job import SweepJob, mark_lost, thread_env, worker_gone
from bench.sweep.queue import longest_first, new_queue, remove_queue
from bench.sweep.spec import ClusterProfile, SweepSpec, load_spec
from bench.sweep.state import (
    JOBS_FILE,
    describe,
    folder_status,
    local_wait,
    queue_for,
    read_jobs,
    run_directories,
    run_state,
    slurm_job,
    status,
)
from bench.train.config import RunConfig
from bench.train.record import check_log_sink, module_sources, recorded_sources
from bench.train.runner import run_modules
from bench.train.trial import backbone_factory

CLUSTERS = ("slurm", "local", "debug")
LOCAL_TIMEOUT_MIN = 60 * 24 * 30
SPLITS = ("train", "val", "test")


def default_out(spec: SweepSpec) -> Path:
    return Path("runs") / "sweeps" / spec.name


def make_executor(cluster: str, folder: Path, spec: SweepSpec) -> submitit.Executor:
    profile = spec.cluster
    if cluster == "slurm" and (shutil.which("sbatch") is None or shutil.which("srun") is None):
        raise UserError(
            "--cluster slurm needs sbatch and srun on the PATH (a SLURM login node); use --cluster local here"
        )
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


def local_workers(todo: list[RunConfig], runs_per_gpu: int) -> tuple[list[int | None], int]:
    """The local workers' GPUs (None on CPU), one worker per slot but no more than there are runs;
    and the CPU threads of each (0: torch's default, for a single worker)."""
    slots = local_gpus(runs_per_gpu)[: len(todo)]
    return slots, max(1, (os.cpu_count() or 1) // len(slots)) if len(slots) > 1 else 0


def submit_local(
    executor: submitit.Executor,
    todo: list[RunConfig],
    args: tuple,
    runs_per_gpu: int,
    options: dict[str, Any] | None = None,
) -> list:
    """One worker process (a submitit local job) per GPU slot, each pinned to its GPU and given its
    share of the CPU threads. Every worker gets all of ``todo`` and one shared queue
    (:mod:`bench.sweep.queue`): each takes the next run no other has claimed. ``options``: keyword
    arguments of every :class:`SweepJob` call (``log``)."""
    slots, threads = local_workers(todo, runs_per_gpu)
    queue = str(new_queue(Path(args[0])))
    assignments = []
    for gpu in slots:
        if gpu is not None:
            executor.update_parameters(gpus_per_node=1, visible_gpus=[gpu])
        with thread_env(threads):  # the worker process starts with these variables
            job = executor.submit(SweepJob(), todo, *args, threads=threads, queue=queue, **(options or {}))
            assignments.append((todo, job))
    return assignments


def submit_groups(
    executor: submitit.Executor,
    todo: list[RunConfig],
    args: tuple,
    runs_per_gpu: int,
    options: dict[str, Any] | None = None,
) -> list:
    """One job (a SLURM array task) per ``runs_per_gpu`` runs, consecutive in the grid and so alike
    in size; a job of several runs starts one worker process per run (see ``SweepJob._run_pack``)."""
    groups = [todo[i : i + runs_per_gpu] for i in range(0, len(todo), runs_per_gpu)]
    with executor.batch():
        extra = options or {}
        jobs = [executor.submit(SweepJob(), group, *args, **pack_option(len(group)), **extra) for group in groups]
    return list(zip(groups, jobs, strict=True))


def pack_option(runs: int) -> dict[str, int]:
    """The ``pack`` option of a job of ``runs`` runs; none for one run, which runs in the job's own process."""
    return {"pack": runs} if runs > 1 else {}


def submit(spec: SweepSpec, todo: list[RunConfig], out: Path, cluster: str) -> list[Any]:
    """Submit ``todo``; returns the jobs. Records run id -> job id in ``<out>/_sweep/jobs.json``."""
    executor = make_executor(cluster, out / "_sweep" / "submitit", spec)
    args = (str(out), spec.run.data_root, spec.run.device, spec.run.workers)
    with sbatch_refusal(spec.cluster, len(todo)) if cluster == "slurm" else contextlib.nullcontext():
        options = {"log": spec.run.log} if spec.run.log else {}  # no sink: no option at all
        assignments = submitted(executor, todo, args, cluster, spec.cluster.runs_per_gpu, options)
    jobs = read_jobs(out)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    ids: dict[str, list[str]] = {}  # local workers share one queue: each run may go to any of them
    for chunk, job in assignments:
        for cfg in chunk:
            ids.setdefault(cfg.run_id(), []).append(str(job.job_id))
    # a local sweep's queue and host: status tells a run its live workers have yet to take (local_wait)
    local = (
        {"host": socket.gethostname(), "queue": str(Path(job_queue(assignments[0][1])).resolve())}
        if cluster == "local" and assignments
        else {}
    )
    for run_id, job_ids in ids.items():
        jobs[run_id] = {"job_id": ", ".join(job_ids), "cluster": cluster, "submitted": now, **local}
    atomic.write_json(out / JOBS_FILE, jobs)
    return [job for _, job in assignments]


@contextlib.contextmanager
def sbatch_refusal(profile: ClusterProfile, runs: int) -> Iterator[None]:
    """sbatch exiting non-zero becomes one UserError quoting it with the request. submitit prints
    sbatch's stderr and then raises it in a ``FailedJobError``: what it prints is held back, and
    passed on only when the submission went through."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stderr(printed):
            yield
    except (FailedJobError, FailedSubmissionError, OSError) as err:
        said = "; ".join(line.strip() for line in str(err).splitlines() if line.strip()) or "no message from sbatch"
        raise UserError(
            f"sbatch refused the request ({profile.request_line(runs)}): {said}; nothing was submitted; "
            "give your cluster's partition and resources in a profile with --profile FILE "
            "(slurm/profiles/cpu.toml asks for no GPU; sinfo lists the partitions)"
        ) from None
    except BaseException:
        sys.stderr.write(printed.getvalue())
        raise
    sys.stderr.write(printed.getvalue())


def submitted(
    executor: submitit.Executor,
    todo: list[RunConfig],
    args: tuple,
    cluster: str,
    per_gpu: int,
    options: dict[str, Any] | None = None,
) -> list:
    """(runs, job) pairs: local workers, SLURM array tasks, or one in-process job per run (debug)."""
    if cluster == "local":
        return submit_local(executor, todo, args, per_gpu, options)
    return submit_groups(executor, todo, args, per_gpu if cluster == "slurm" else 1, options)


def print_plan(spec: SweepSpec, configs: list[RunConfig], out: Path) -> list[RunConfig]:
    """One line per run with its state; returns the runs still to do (not completed, and not
    queued or running as a SLURM job of an earlier submission)."""
    jobs = read_jobs(out)
    active = queue_for(jobs, configs)
    todo, busy, stale = [], 0, []
    for cfg in configs:
        job, waits = slurm_job(jobs, cfg), local_wait(jobs, cfg)
        state, detail = run_state(out, cfg, job, active, waits)
        print(f"  {state:<9}  {cfg.run_id():<48}  {describe(cfg)}" + (f"  [{detail}]" if detail else ""))
        if state == "completed":
            stale += [(cfg, role) for role in changed_sources(out / cfg.run_id(), cfg)]
            continue
        if (job is not None and active is not None and job in active) or waits:
            busy += 1
            continue
        todo.append(cfg)
    done = len(configs) - len(todo) - busy
    print(
        f"{done} of {len(configs)} runs already completed in {out}; {busy} still queued or running; {len(todo)} to run"
    )
    for cfg, role in stale:
        print(
            f"warning: completed run {cfg.run_id()} was made by other source of its {role} module "
            f"({run_modules(cfg)[role]}); it is kept as is: `bench run --force` with its settings trains it again",
            file=sys.stderr,
        )
    return todo


def changed_sources(directory: Path, cfg: RunConfig) -> list[str]:
    """The roles (method, dataset, backbone) whose module's source differs from the one that made the
    completed record in ``directory`` (records that predate source hashes are taken as they are)."""
    recorded = recorded_sources(directory)
    if not recorded:
        return []
    now = module_sources(run_modules(cfg))
    return [role for role, entry in now.items() if role in recorded and recorded[role].get("sha256") != entry["sha256"]]


def print_request(spec: SweepSpec, todo: list[RunConfig], cluster: str) -> None:
    """What the submission asks for: SLURM's resources per job and the array, or the local workers."""
    profile = spec.cluster
    if cluster == "debug":
        print(f"debug: the {len(todo)} runs one after another in this process")
        return
    if cluster == "local":
        slots, threads = local_workers(todo, profile.runs_per_gpu)
        share = f"{threads} CPU threads each" if threads else "torch's default CPU threads"
        gpus = torch.cuda.device_count()
        where = f"on each of {gpus} GPU(s)" if gpus else "on CPU: no GPU visible"
        print(f"local workers: {len(slots)} (runs_per_gpu = {profile.runs_per_gpu}, {where}), {share}")
        places = ("CPU" if gpu is None else f"GPU {gpu}" for gpu in slots)
        print("  " + ", ".join(f"worker {k} on {place}" for k, place in enumerate(places)))
        print(f"  each takes the next of the {len(todo)} runs no other has taken, the longest first")
        return
    for line in spec.request_lines(len(todo)):
        print(line)


def check_runs(spec: SweepSpec, todo: list[RunConfig], cluster: str) -> None:
    """A UserError (one line) for what would make runs fail at once: a device this machine or the
    request lacks, settings a method refuses, a dataset's missing files. Nothing is built but the
    methods, and each dataset is loaded once."""
    device = spec.run.device
    if cluster == "slurm" and device.startswith("cuda") and spec.cluster.gpus_per_node == 0:
        raise UserError(
            f"{spec.path}: [run] device = {device!r}, but the cluster profile asks for no GPU (gpus_per_node = 0); "
            'set device = "auto" or "cpu", or pass a GPU profile with --profile; nothing was submitted'
        )
    if cluster != "slurm":
        try:
            resolve_device(device)
        except UserError as err:
            raise UserError(f"{spec.path}: [run] device: {err}; nothing was submitted") from None
    try:
        check_log_sink(spec.run.log)
    except UserError as err:
        raise UserError(f"{spec.path}: [run] log: {err}; nothing was submitted") from None
    root = Path(spec.run.data_root) if spec.run.data_root else default_data_root()
    check_settings(spec, todo, root)
    check_data(spec, todo, root)


def check_settings(spec: SweepSpec, todo: list[RunConfig], root: Path) -> None:
    """Build each run's method from its resolved settings, as a run does before its record exists
    (the checks in a method's constructor), and look up its backbone and weights file; once per
    distinct setting."""
    seen: set[str] = set()
    for cfg in todo:
        key = repr((cfg.method, cfg.dataset, cfg.hparams, cfg.model))
        if key in seen:
            continue
        seen.add(key)
        dataset = DATASETS.get(cfg.dataset)
        try:
            METHODS.get(cfg.method)(cfg.hparams, dataset)
            backbone_factory(dataset, cfg.model, root)
        except (UserError, ValueError) as err:
            alike = sum(repr((c.method, c.dataset, c.hparams, c.model)) == key for c in todo)
            raise UserError(
                f"{spec.path}: run {cfg.run_id()} ({describe(cfg)}; {alike} run(s) with these settings): "
                f"{one_line(err)}; fix the spec's [set] or [grid] variants; nothing was submitted"
            ) from None


def check_data(spec: SweepSpec, todo: list[RunConfig], root: Path) -> None:
    """Every dataset of ``todo`` has its files under ``root``: the dataset's own ``load``, the check
    ``bench run`` meets first (it names the missing files and the prepare command), once per dataset."""
    needs = Counter(cfg.dataset for cfg in todo)
    failed: list[tuple[str, Exception]] = []
    for name in needs:
        try:
            for split in SPLITS:
                DATASETS.get(name).load(root, split)
        except (UserError, OSError) as err:
            failed.append((name, err))
    if failed:
        first, error = failed[0]
        also = f"; {', '.join(n for n, _ in failed[1:])} fail this check too" if failed[1:] else ""
        raise UserError(
            f"{spec.path}: {one_line(error)} ({needs[first]} runs need {first}; data root {root}, from [run] data_root "
            f"or $PFLBENCH_DATA){also}; nothing was submitted"
        )


def one_line(err: Exception) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def launch(spec: SweepSpec, out: Path, cluster: str, dry_run: bool, plan_gpu_gib: float | None = None) -> int:
    configs = spec.configs()
    own = " (some methods with variants of their own)" if spec.grid.method_variants else ""
    print(
        f"sweep {spec.name}: {len(configs)} runs ({len(spec.methods)} methods x {len(spec.datasets)} datasets x "
        f"{len(spec.variants)} variants x {len(spec.seeds)} seeds{own})"
    )
    todo = print_plan(spec, configs, out)
    if not todo:
        return 0
    if cluster == "local":
        todo = longest_first(todo, run_directories(out) if out.is_dir() else [])
    print_request(spec, todo, cluster)
    if plan_gpu_gib is not None:
        from bench.sweep.plan import plan_sweep  # imports the profiler: only when planning

        root = Path(spec.run.data_root) if spec.run.data_root else default_data_root()
        plan_sweep(spec, todo, run_directories(out) if out.is_dir() else [], cluster, root, plan_gpu_gib)
        print("plan: nothing submitted")
        return 0
    check_runs(spec, todo, cluster)
    if dry_run:
        print(f"checks passed: {len({c.dataset for c in todo})} dataset(s) found, {len(todo)} runs' settings valid")
        print("dry run: nothing submitted")
        return 0
    jobs = submit(spec, todo, out, cluster)
    ids = sorted({str(job.job_id).split("_")[0] for job in jobs})
    print(f"submitted {len(todo)} runs as {len(jobs)} {cluster} job(s): {', '.join(ids)}")
    if cluster == "slurm":
        print(f"follow with: python -m bench.sweep status {spec.path} --out {out}")
        return 0
    failures = sum(not finished(job, cluster, out) for job in jobs)
    for queue in {job_queue(job) for job in jobs if cluster == "local"} - {""}:
        remove_queue(Path(queue))
    return status(spec, out) or (1 if failures else 0)


def finished(job: Any, cluster: str, out: Path) -> bool:
    """Wait for a debug or local job; False, with a line saying why, when some run of it failed.
    A local worker that died without a result (killed) leaves its RUNNING run marked FAILED."""
    if cluster == "local":
        job.wait()
        if not job.paths.result_pickle.exists():
            reason = f"its local worker (job {job.job_id}) ended without a result (killed? see {job.paths.stderr})"
            # its runs are those of the shared queue whose worker process is gone: this job's own
            lost = [
                cfg.run_id()
                for cfg in job_runs(job)
                if worker_gone(out / cfg.run_id()) and mark_lost(out / cfg.run_id(), reason)
            ]
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


def job_queue(job: Any) -> str:
    """The queue folder a local job shared with the others ('' for none), from its submission."""
    return str(job.submission().kwargs.get("queue", ""))


def main(argv: list[str] | None = None, prog: str = "python -m bench.sweep") -> int:
    """``prog [status] SPEC [options]``: launch the sweep, or with ``status`` show its runs' state."""
    argv = list(sys.argv[1:] if argv is None else argv)
    is_status = bool(argv) and argv[0] == "status"
    parser = Parser(prog=prog + (" status" if is_status else ""), description=help_text(__doc__))
    what = "sweep spec, e.g. slurm/multimnist-mini.toml"
    parser.add_argument("spec", type=Path, help=what + (", or a folder of run directories" if is_status else ""))
    parser.add_argument(
        "--out", type=Path, default=None, metavar="DIR", help="folder of run directories (default: runs/sweeps/<spec>)"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="FILE",
        help="cluster profile (TOML [cluster] table) in place of the spec's [cluster] profile; the spec's own "
        "[cluster] keys still apply on top (status reads records only: accepted so a command line can be reused)",
    )
    if not is_status:
        parser.add_argument(
            "--methods",
            default=None,
            metavar="A,B",
            help="run only these methods of the spec (comma-separated; their run ids are the full grid's)",
        )
        parser.add_argument(
            "--cluster",
            default=None,
            help="slurm, local or debug (default: slurm when sbatch is on the PATH, else local)",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="list the runs, the scheduler request (or the local workers) and run the checks; submit nothing",
        )
        parser.add_argument(
            "--plan",
            action="store_true",
            help="estimate each run's time and memory on the target device (from completed records of the "
            "same configuration, else a short profile here) and the sweep's device-hours, requeues and "
            "runs per GPU; submit nothing",
        )
        parser.add_argument(
            "--gpu-memory-gb",
            type=float,
            default=80.0,
            metavar="GB",
            help="GPU memory the plan packs runs into when this machine has no GPU (default 80)",
        )
    args = parser.parse_args(argv[1:] if is_status else argv)
    if is_status and args.spec.is_dir():
        return folder_status(args.spec)
    try:
        spec = load_spec(args.spec, args.profile)
        out = args.out or default_out(spec)
        if is_status:
            return status(spec, out)
        if args.methods is not None:
            chosen = [m.strip() for m in args.methods.split(",") if m.strip()]
            spec = dataclasses.replace(spec, grid=spec.grid.only(chosen))
        if args.cluster is None:
            args.cluster = "slurm" if shutil.which("sbatch") else "local"
        if args.cluster not in CLUSTERS:
            raise ConfigError(f"unknown cluster {args.cluster!r}; valid clusters: {', '.join(CLUSTERS)}")
        return launch(spec, out, args.cluster, args.dry_run, args.gpu_memory_gb if args.plan else None)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
