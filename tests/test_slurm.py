"""A real sweep on a real SLURM cluster started on this machine (slurm/local_cluster.sh): submit
2 methods x 2 seeds, requeue one job mid-run with ``scontrol requeue``, and check that it resumed
from its checkpoint and ended exactly as a run never interrupted.

Skipped, with the reason, when slurmctld is not installed or we are not root; `.ci/run` installs
slurm-wlm and munge so CI runs them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from bench.config import resolve
from bench.record import read_status
from bench.runner import run_experiment
from bench.sweep import main

pytestmark = pytest.mark.slurm

SCRIPT = Path(__file__).resolve().parents[1] / "slurm" / "local_cluster.sh"
SETTINGS = {
    "train.epochs": 2,
    "data.train_limit": 4096,
    "data.eval_limit": 512,
    "train.batch_size": 64,
    "train.checkpoint_every": 10,
}


def cluster_is_up() -> bool:
    probe = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    return probe.returncode == 0 and "idle" in probe.stdout or "mix" in probe.stdout or "alloc" in probe.stdout


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[None]:
    if shutil.which("slurmctld") is None or shutil.which("sbatch") is None:
        pytest.skip("slurmctld is not installed: run `slurm/local_cluster.sh install` (root) for the real-SLURM tests")
    if os.geteuid() != 0:
        pytest.skip("the local SLURM cluster runs its daemons as root; run the slurm tests as root")
    started = False
    if not cluster_is_up():
        subprocess.run([str(SCRIPT), "start"], check=True, timeout=60)
        started = True
    yield
    if started:
        subprocess.run([str(SCRIPT), "stop"], check=False, timeout=60)


def wait_for(condition, timeout: float, what: str, logs: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    tails = [f"--- {p}\n{p.read_text()[-2000:]}" for p in sorted(logs.rglob("*.err"))[-4:]]
    pytest.fail(f"timed out after {timeout} s waiting for {what}\n" + "\n".join(tails))


def test_sweep_survives_a_requeue_and_matches_an_uninterrupted_run(slurm_cluster, tmp_path: Path, capsys):
    spec = tmp_path / "sweep.toml"
    lines = ["[grid]", 'methods = ["ls", "palora"]', 'datasets = ["multimnist-mini"]', "seeds = [0, 1]", "[set]"]
    lines += [f'"{k}" = {json.dumps(v)}' for k, v in SETTINGS.items()]
    lines += [
        "[cluster]",
        'partition = "debug"',
        "gpus_per_node = 0",
        "cpus_per_task = 1",
        "mem_gb = 1",
        "time_min = 60",
        "[run]",
        'device = "cpu"',
        f'data_root = "{os.environ["PFLBENCH_DATA"]}"',
    ]
    spec.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert main([str(spec), "--cluster", "slurm", "--out", str(out)]) == 0
    assert "submitted 4 runs as 4 slurm job(s)" in capsys.readouterr().out

    target = resolve("ls", "multimnist-mini", 0, overrides=SETTINGS)
    run_dir = out / target.run_id()
    job_id = json.loads((out / "_sweep" / "jobs.json").read_text())[target.run_id()]["job_id"]
    assert "_" in job_id  # an array task
    wait_for(
        lambda: (run_dir / "checkpoint.pt").is_file() and read_status(run_dir) == "RUNNING",
        180,
        "the first checkpoint of the ls run",
        out,
    )
    subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=30)

    runs = [
        out / resolve(m, "multimnist-mini", s, overrides=SETTINGS).run_id() for m in ("ls", "palora") for s in (0, 1)
    ]
    wait_for(lambda: all(read_status(r) == "COMPLETED" for r in runs), 400, "all 4 runs to complete", out)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert len(summary["resumed"]) == 1, summary["resumed"]
    resumed = summary["resumed"][0]
    assert resumed["from_step"] > 0 and resumed["slurm_restart_count"] >= 1 and resumed["slurm_job_id"]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the job, which uses its one CPU
    try:
        straight = run_experiment(target, tmp_path / "straight", device="cpu", show_progress=False)
    finally:
        torch.set_num_threads(threads)
    assert summary["front"] == straight.summary["front"]
    assert summary["steps"] == straight.summary["steps"]

    assert main(["status", str(spec), "--out", str(out)]) == 0
    assert "pending 0, running 0, completed 4, failed 0" in capsys.readouterr().out
