"""A sweep checks before it submits (issue 26): a missing dataset, settings a method refuses, a device
that cannot be had, or sbatch refusing the request is one ``error:`` line with exit status 2 and
nothing submitted; ``--dry-run`` lists the scheduler request or the local workers; ``--profile``
replaces the spec's cluster profile. SLURM is a fake ``sbatch`` on the PATH here."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

import bench.sweep.command as sweep
from bench.core.registry import DATASETS
from bench.sweep.command import main
from bench.sweep.spec import load_spec
from bench.sweep.state import JOBS_FILE
from tests.test_sweep import write_spec

ROOT = Path(__file__).resolve().parents[1]
REFUSAL = "sbatch: error: Batch job submission failed: Invalid partition name specified"
GPU_PROFILE = '[cluster]\npartition = "gpu"\ngpus_per_node = 1\ncpus_per_task = 8\nmem_gb = 32\ntime_min = 720\n'


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err.strip()


def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refuse: bool) -> Path:
    """``sbatch`` and ``srun`` scripts first on the PATH; each sbatch call is logged in the returned file.
    With ``refuse``, sbatch says what a real one says of an unknown partition and exits 1."""
    bin_dir, log = tmp_path / "bin", tmp_path / "sbatch-calls.log"
    bin_dir.mkdir()
    said = f'echo "{REFUSAL}" >&2; exit 1' if refuse else 'echo "Submitted batch job 4242"'
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\necho "$@" >> "{log}"\n{said}\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    for script in bin_dir.iterdir():
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path('/usr/bin')}:{Path('/bin')}")
    return log


def nothing_submitted(out: Path, log: Path | None = None) -> None:
    """No jobs file, no run record, and (with the fake sbatch's ``log``) no sbatch call."""
    assert not (out / JOBS_FILE).exists() and not list(out.glob("*/status"))
    assert log is None or not log.exists()


@pytest.mark.parametrize("cluster", ["slurm", "local", "debug"])
def test_a_missing_dataset_is_one_line_and_nothing_is_submitted(
    cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    log = fake_slurm(tmp_path, monkeypatch, refuse=False)
    spec = write_spec(tmp_path / "s.toml").read_text().replace('"multimnist-mini"', '"multimnist"')
    (tmp_path / "s.toml").write_text(spec)
    out = tmp_path / "out"
    assert main([str(tmp_path / "s.toml"), "--cluster", cluster, "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: {tmp_path / 's.toml'}: dataset 'multimnist' needs")
    assert "python datasets/multimnist/prepare.py" in line and "(4 runs need multimnist; data root " in line
    assert line.endswith("; nothing was submitted")
    nothing_submitted(out, log)


def test_each_dataset_is_checked_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    calls: list[tuple[str, str]] = []
    real = DATASETS.get("multimnist-mini")

    def counted(root: Path, split: str) -> Any:
        calls.append((real.name, split))
        return real.load(root, split)

    class Datasets:
        def get(self, name: str) -> Any:
            return dataclasses.replace(DATASETS.get(name), load=counted)

    monkeypatch.setattr(sweep, "DATASETS", Datasets())
    spec = write_spec(tmp_path / "s.toml", seeds=[0, 1, 2])  # 6 runs of one dataset
    assert main([str(spec), "--cluster", "local", "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    assert calls == [("multimnist-mini", "train"), ("multimnist-mini", "val"), ("multimnist-mini", "test")]
    assert "checks passed: 1 dataset(s) found, 6 runs' settings valid" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("methods", "settings", "message"),
    [
        (["ls"], {"method.rays": [[0.5, 0.3, 0.2]]}, "method.rays: each ray needs 2 weights"),
        (["palora"], {"method.eps": 0.9}, "method.eps (the smallest ray weight) must be in [0, 1/2)"),
        (["ls"], {"model.weights": "/nowhere/encoder.pt"}, "model.weights: file /nowhere/encoder.pt does not exist"),
    ],
)
def test_settings_a_method_refuses_fail_before_anything_is_submitted(
    methods: list[str], settings: dict, message: str, tmp_path: Path, monkeypatch, capsys
):
    log = fake_slurm(tmp_path, monkeypatch, refuse=False)
    spec = write_spec(tmp_path / "s.toml", methods=methods, settings=settings)
    out = tmp_path / "out"
    assert main([str(spec), "--cluster", "slurm", "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert re.match(rf"error: {re.escape(str(spec))}: run {methods[0]}_multimnist-mini_s0_\w+ \(", line), line
    assert "seed 0; 2 run(s) with these settings): " + message in line
    assert line.endswith("fix the spec's [set] or [grid] variants; nothing was submitted")
    nothing_submitted(out, log)


def test_an_unknown_setting_is_one_line_before_anything_is_submitted(tmp_path: Path, monkeypatch, capsys):
    log = fake_slurm(tmp_path, monkeypatch, refuse=False)
    spec = write_spec(tmp_path / "s.toml", settings={"method.rnak": 2})
    assert main([str(spec), "--cluster", "slurm", "--out", str(tmp_path / "out")]) == 2
    assert "ls on multimnist-mini: unknown key 'method.rnak'" in one_error_line(capsys)
    nothing_submitted(tmp_path / "out", log)


def test_a_gpu_device_without_a_gpu_is_one_line(tmp_path: Path, monkeypatch, capsys):
    spec = write_spec(tmp_path / "s.toml", extra='[run]\ndevice = "cuda"')
    cpu = str(ROOT / "slurm" / "profiles" / "cpu.toml")
    assert main([str(spec), "--cluster", "slurm", "--profile", cpu, "--dry-run"]) == 2
    line = one_error_line(capsys)
    assert "[run] device = 'cuda', but the cluster profile asks for no GPU (gpus_per_node = 0)" in line
    monkeypatch.setattr(sweep.torch.cuda, "is_available", lambda: False)
    assert main([str(spec), "--cluster", "local", "--out", str(tmp_path / "out")]) == 2
    assert "[run] device: --device cuda: CUDA is not available here" in one_error_line(capsys)
    nothing_submitted(tmp_path / "out")


def test_sbatch_refusal_is_one_line_with_its_message_and_the_request(tmp_path: Path, monkeypatch, capsys):
    log = fake_slurm(tmp_path, monkeypatch, refuse=True)
    (tmp_path / "gpu.toml").write_text(GPU_PROFILE)
    spec = write_spec(tmp_path / "s.toml", seeds=[0, 1, 2], extra="[cluster]\nruns_per_gpu = 2")  # 6 runs
    out = tmp_path / "out"
    assert main([str(spec), "--cluster", "slurm", "--profile", str(tmp_path / "gpu.toml"), "--out", str(out)]) == 2
    line = one_error_line(capsys)  # submitit's own print of sbatch's stderr is not passed on
    assert line.startswith(
        "error: sbatch refused the request (partition=gpu gpus_per_node=1 cpus_per_task=8 mem_gb=32 time_min=720 "
        f"array=3 array_parallelism=3): {REFUSAL}; nothing was submitted; "
    )
    assert "--profile FILE" in line and "slurm/profiles/cpu.toml" in line
    assert len(log.read_text().splitlines()) == 1  # one sbatch call: the array
    assert not (out / JOBS_FILE).exists()


def test_an_accepted_submission_records_its_jobs(tmp_path: Path, monkeypatch, capsys):
    """The same fake sbatch, accepting: the sweep records the array's job ids (and squeue is not asked)."""
    log = fake_slurm(tmp_path, monkeypatch, refuse=False)
    spec = write_spec(tmp_path / "s.toml")
    out = tmp_path / "out"
    assert main([str(spec), "--cluster", "slurm", "--out", str(out)]) == 0
    assert "submitted 4 runs as 4 slurm job(s): 4242" in capsys.readouterr().out
    assert sorted(j["job_id"] for j in json.loads((out / JOBS_FILE).read_text()).values()) == [
        f"4242_{k}" for k in range(4)
    ]
    assert "--array=0-3%4" in (out / "_sweep" / "submitit").joinpath("4242_submission.sh").read_text()
    assert len(log.read_text().splitlines()) == 1


def test_dry_run_lists_the_slurm_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    (tmp_path / "p.toml").write_text(GPU_PROFILE + 'account = "proj"\narray_parallelism = 2\n')
    spec = write_spec(tmp_path / "s.toml", seeds=[0, 1, 2], extra='[cluster]\nprofile = "p.toml"\nruns_per_gpu = 2')
    out = tmp_path / "out"
    assert main([str(spec), "--cluster", "slurm", "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    request = text[text.index("slurm request") :].splitlines()
    assert request == [
        f"slurm request (profile {tmp_path / 'p.toml'}):",
        "  partition          gpu",
        "  account            proj",
        "  GPUs per node      1",
        "  CPUs per task      8",
        "  memory (GB)        32",
        "  time limit (min)   720",
        "  array size         3 jobs (6 runs, 2 per job)",
        "  array parallelism  2",
        "  on time-out        signalled 120 s early, requeued up to 3 times",
        "  the spec's own [cluster] keys override the profile's: runs_per_gpu",
        "checks passed: 1 dataset(s) found, 6 runs' settings valid",
        "dry run: nothing submitted",
    ]
    assert not out.exists()


def test_dry_run_lists_the_local_workers(tmp_path: Path, monkeypatch, capsys: pytest.CaptureFixture[str]):
    monkeypatch.setattr(sweep.torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(sweep.os, "cpu_count", lambda: 8)
    spec = write_spec(tmp_path / "s.toml", seeds=[0, 1, 2], extra="[cluster]\nruns_per_gpu = 4")  # 6 runs
    assert main([str(spec), "--cluster", "local", "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "local workers: 4 (runs_per_gpu = 4, on CPU: no GPU visible), 2 CPU threads each\n" in text
    assert "  worker 0 on CPU, worker 1 on CPU, worker 2 on CPU, worker 3 on CPU\n" in text
    assert "  each takes the next of the 6 runs no other has taken, the longest first\n" in text
    assert "slurm request" not in text and not (tmp_path / "out").exists()
    monkeypatch.setattr(sweep.torch.cuda, "device_count", lambda: 2)
    (tmp_path / "s.toml").write_text((tmp_path / "s.toml").read_text().replace("runs_per_gpu = 4", "runs_per_gpu = 1"))
    assert main([str(spec), "--cluster", "local", "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "local workers: 2 (runs_per_gpu = 1, on each of 2 GPU(s)), 4 CPU threads each\n" in text
    assert "  worker 0 on GPU 0, worker 1 on GPU 1\n" in text


def test_profile_option_replaces_the_spec_profile_under_its_own_keys(tmp_path: Path, capsys):
    (tmp_path / "named.toml").write_text('[cluster]\npartition = "gpu"\nqos = "high"\nmem_gb = 64\n')
    (tmp_path / "given.toml").write_text('[cluster]\npartition = "cpu"\nmem_gb = 4\ntime_min = 90\n')
    spec = write_spec(tmp_path / "s.toml", extra='[cluster]\nprofile = "named.toml"\ntime_min = 30')
    named = load_spec(spec)
    assert (named.cluster.partition, named.cluster.qos, named.cluster.mem_gb, named.cluster.time_min) == (
        "gpu",
        "high",
        64,
        30,
    )
    given = load_spec(spec, tmp_path / "given.toml")
    assert (given.cluster.partition, given.cluster.qos, given.cluster.mem_gb, given.cluster.time_min) == (
        "cpu",
        "",  # the named profile no longer applies
        4,
        30,  # the spec's own key still does
    )
    assert given.profile == tmp_path / "given.toml" and given.own_cluster == ("time_min",)
    assert main([str(spec), "--profile", str(tmp_path / "missing.toml"), "--dry-run"]) == 2
    assert "--profile " in one_error_line(capsys)
    (tmp_path / "bad.toml").write_text("[cluster]\ngpus_per_node = -1\n")
    assert main([str(spec), "--profile", str(tmp_path / "bad.toml"), "--dry-run"]) == 2
    assert f"(profile {tmp_path / 'bad.toml'}) [cluster]" in one_error_line(capsys)
    assert main(["status", str(spec), "--profile", str(tmp_path / "given.toml"), "--out", str(tmp_path / "o")]) == 0
    assert "pending 4, running 0, completed 0, failed 0" in capsys.readouterr().out


def test_shipped_profiles_and_the_minimal_spec_submit_anywhere():
    profiles = ROOT / "slurm" / "profiles"
    minimal = load_spec(ROOT / "slurm" / "minimal.toml").cluster
    assert (minimal.partition, minimal.gpus_per_node, minimal.cpus_per_task) == ("", 0, 1) and minimal.mem_gb <= 2
    cpu = load_spec(ROOT / "slurm" / "celeba.toml", profiles / "cpu.toml").cluster
    assert (cpu.partition, cpu.gpus_per_node) == ("", 0)
    script = (ROOT / "slurm" / "local_cluster.sh").read_text()
    (partition,) = re.findall(r"^PartitionName=(\S+) ", script, re.M)
    assert "Gres" not in script  # the local node has no GPUs to give
    local = load_spec(ROOT / "slurm" / "multifashion.toml", profiles / "local.toml").cluster
    assert (local.partition, local.gpus_per_node, local.cpus_per_task) == (partition, 0, 1)
    for spec in sorted((ROOT / "slurm").glob("*.toml")):  # no spec pins a GPU that --profile cannot undo
        assert "gpus_per_node" not in load_spec(spec).own_cluster or spec.name == "minimal.toml", spec
