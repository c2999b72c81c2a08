"""The sweep planner (``bench sweep SPEC --plan``, :mod:`bench.sweep.plan`): its arithmetic on known values,
its use of completed records, and its estimate against the times of a real local sweep."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import pytest
import torch

from bench.core.registry import DATASETS
from bench.sweep import plan
from bench.sweep.command import main
from bench.sweep.spec import ClusterProfile
from bench.train.config import resolve
from tests.test_sweep import write_spec


def test_steps_and_validations_follow_the_training_loop():
    cfg = resolve("ls", "multimnist-mini", 0, assignments=["train.epochs=10", "train.eval_every=3"])
    assert plan.epochs_and_steps(cfg, 20000) == (10, 10 * math.ceil(20000 / 256))  # 79 steps an epoch
    assert plan.evaluations(10, 3) == 4  # after epochs 3, 6, 9 and the last
    assert plan.evaluations(10, 1) == 10 and plan.evaluations(1, 20) == 1
    capped = resolve("ls", "multimnist-mini", 0, assignments=["train.max_steps=100", "data.train_limit=2560"])
    assert plan.epochs_and_steps(capped, 20000) == (10, 100)  # 10 steps an epoch over the first 2,560 samples


def test_requeues_and_jobs_against_the_time_limit():
    profile = ClusterProfile(time_min=60, signal_delay_s=120, max_requeues=1, runs_per_gpu=2)
    usable = 3600 - 120
    assert plan.requeues_needed(usable, usable) == 0 and plan.requeues_needed(usable + 1, usable) == 1
    assert plan.requeues_needed(3 * usable, usable) == 2
    jobs = plan.plan_jobs([100.0, 5000.0, 9000.0, 50.0, 10.0], profile)  # jobs: (100, 5000), (9000, 50), (10,)
    assert (jobs.jobs, jobs.total_seconds, jobs.longest_seconds) == (3, 5000 + 9000 + 10, 9000)
    assert (jobs.usable_seconds, jobs.over_limit, jobs.most_requeues, jobs.beyond_max) == (usable, 2, 2, 1)


def test_runs_that_fit_in_a_gpu():
    assert plan.runs_fitting(4 * plan.GIB, 80 * plan.GIB) == 18  # 90% of 80 GiB
    assert plan.runs_fitting(100 * plan.GIB, 80 * plan.GIB) == 0


def test_the_gpu_ratio_is_per_sample_forward_and_input_value(tmp_path: Path):
    """GPU plain step 10 ms at batch 256, 2 forwards, 1x28x28 input; this CPU's plain step 0.1 s at
    batch 64, 2 forwards on the same input: the ratio is (0.01 / 256) / (0.1 / 64) = 1/40."""
    csv = tmp_path / "gpu.csv"
    csv.write_text(
        "section,variant,dataset,batch_size,rays_per_step,plain_step_ms_median,machine\n"
        "palora,bf16 autocast,multimnist-mini,256,2,99,NVIDIA X; host\n"
        "palora,float32,multimnist-mini,256,2,10,NVIDIA X; host\n"
    )
    reference = plan.gpu_reference("multilenet", csv)
    assert reference["device"] == "NVIDIA X" and reference["seconds_per_value"] == pytest.approx(0.01 / (256 * 2 * 784))
    profile = plan.Profile(
        0.2, 0.0, 0.0, 0, 0, plain_step_seconds=0.1, rays=2, val_rays=3, grid_rays=11, batch=64, synthetic=False
    )
    spec = DATASETS.get("multimnist-mini")
    assert plan.cpu_to_gpu_ratio(profile, spec, reference, 64) == pytest.approx(1 / 40)
    with pytest.raises(plan.UserError, match="no GPU measurement of the mlp backbone"):
        plan.gpu_reference("mlp", csv)


def seconds(text: str) -> float:
    """A duration as the plan prints it (``42s``, ``12.5m``, ``3.21h``)."""
    return float(text[:-1]) * {"s": 1, "m": 60, "h": 3600}[text[-1]]


def test_durations_are_printed_in_a_readable_unit():
    assert [plan.duration(s) for s in (41.6, 750, 11556)] == ["42s", "12.5m", "3.21h"]
    assert [seconds(plan.duration(s)) for s in (41.6, 750, 11556)] == [42, 750, 11556]


def fake_completed(out: Path, cfg, seconds_per_step: float, steps: int, peak: int) -> None:
    """A COMPLETED run directory as bench run leaves it (config, status, summary)."""
    directory = out / cfg.run_id()
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps({"schema_version": 1, "config": cfg.to_dict()}))
    (directory / "status").write_text("COMPLETED\n")
    train = seconds_per_step * steps
    summary = {
        "device": "cpu",
        "steps": steps,
        "seconds_per_step": seconds_per_step,
        "train_seconds": train,
        "eval_seconds": 2.0,
        "test_eval_seconds": 3.0,
        "wall_seconds": train + 2.0 + 3.0 + 1.5,
        "peak_memory_bytes": {"train": peak, "eval": peak // 2, "kind": "process_peak_rss"},
    }
    (directory / "summary.json").write_text(json.dumps(summary))


def test_a_configuration_with_completed_seeds_is_planned_from_their_records(tmp_path: Path, capsys, monkeypatch):
    """Seeds 0 and 1 completed: seed 2 is planned from their means (no profile is taken), and a
    configuration that differs in a setting is not matched."""
    spec_path = write_spec(tmp_path / "s.toml", methods=["ls"], seeds=[0, 1, 2], settings={"train.epochs": 1})
    out = tmp_path / "out"
    seeds = [resolve("ls", "multimnist-mini", s, overrides={"train.epochs": 1}) for s in (0, 1)]
    fake_completed(out, seeds[0], 0.5, 79, 300 * 2**20)
    fake_completed(out, seeds[1], 0.7, 79, 500 * 2**20)
    other = resolve("ls", "multimnist-mini", 2, overrides={"train.epochs": 1, "train.lr": 0.1})
    fake_completed(out, other, 9.0, 79, 9 * 2**30)
    monkeypatch.setattr(plan, "profile_estimate", lambda *a: pytest.fail("profiled a configuration with records"))
    assert main([str(spec_path), "--cluster", "local", "--out", str(out), "--plan"]) == 0
    text = capsys.readouterr().out
    row = next(line for line in text.splitlines() if line.strip().startswith("ls on multimnist-mini"))
    cells = row.split()
    # runs 1, steps 79, s/step 0.6, train 0.6 * 79 s, eval 5 s, setup 1.5 s, peak 500 MiB
    assert cells[3:10] == ["1", "79", "0.6000", "47s", "5s", "2s", "54s"]
    assert float(cells[10]) == pytest.approx(500 / 1024, abs=0.005)
    assert "records: 2 completed run(s) on cpu" in row
    planned_run = resolve("ls", "multimnist-mini", 2, overrides={"train.epochs": 1}).run_id()
    assert "local: 1 worker(s) taking the runs longest first, about 54s of wall time (54s if" in text
    assert "plan: nothing submitted" in text and not (out / planned_run).exists()


def test_local_wall_time_is_the_longest_first_queue_makespan():
    assert plan.queue_makespan([80, 80, 80], 2) == 160  # the third run alone: not the even split's 120
    assert plan.queue_makespan([10, 10, 10, 10], 2) == 20
    # 50 | 30 -> 30 joins the 30 (60) -> 20 joins the 50 (70) -> 20 joins the 60 (80)
    assert plan.queue_makespan([20, 30, 50, 20, 30], 2) == 80
    assert plan.queue_makespan([5.0], 4) == 5.0 and plan.queue_makespan([], 2) == 0.0


def test_declared_split_sizes_let_a_dataset_without_files_be_planned(tmp_path: Path):
    """UTKFace (no files here) is planned with its declared 16,593 training samples."""
    cfg = resolve("ls", "utkface", 0)
    shape = plan.run_shape(cfg, tmp_path, val_rays=3, grid_rays=66)
    per_epoch = math.ceil(16593 / cfg.train.batch_size)
    assert shape.declared_sizes and shape.steps == cfg.train.epochs * per_epoch


def _profile(step: float, plain: float = 0.0) -> plan.Profile:
    return plan.Profile(
        step_seconds=step,
        eval_seconds_per_sample_ray=0.25,
        setup_seconds=2.0,
        state_bytes=3 * 2**20,
        step_growth_bytes=5 * 2**20,
        plain_step_seconds=plain,
        rays=6,
        val_rays=6,
        grid_rays=66,
        batch=2,
        synthetic=True,
    )


def test_a_stored_profile_is_read_back_for_its_configuration_threads_and_machine(tmp_path: Path, monkeypatch):
    """``results/profiles.csv`` round trip: a profile comes back field for field for the same
    configuration on the same kind of device; a newer one of the same key replaces it; another
    setting, another thread count or (for a CPU target) another machine does not match."""
    path = tmp_path / "profiles.csv"
    cfg = resolve("palora", "nyuv2", 0)
    cpu = torch.device("cpu")
    plan.store_profiles([(cfg, cpu, _profile(9.0))], "abc1234", path)
    plan.store_profiles([(cfg, cpu, _profile(7.5, plain=6.0))], "def5678", path)  # replaces the first
    assert path.read_text().count("\n") == 2  # header and one row
    found = plan.stored_profile(resolve("palora", "nyuv2", 3), cpu, any_machine=False, path=path)  # another seed
    assert found is not None and found[0] == _profile(7.5, plain=6.0) and "at def5678" in found[1]
    other = resolve("palora", "nyuv2", 0, assignments=["method.rank=2"])
    assert plan.stored_profile(other, cpu, any_machine=False, path=path) is None
    assert plan.stored_profile(cfg, torch.device("cuda"), any_machine=True, path=path) is None
    monkeypatch.setattr(plan, "machine", lambda device: "another machine")
    assert plan.stored_profile(cfg, cpu, any_machine=False, path=path) is None
    assert plan.stored_profile(cfg, cpu, any_machine=True, path=path) is not None  # extrapolation takes any
    monkeypatch.setattr(torch, "get_num_threads", lambda: 7)
    assert plan.stored_profile(cfg, cpu, any_machine=True, path=path) is None


def test_a_plan_uses_a_stored_profile_instead_of_profiling(tmp_path: Path, monkeypatch):
    path = tmp_path / "profiles.csv"
    cfg = resolve("pamal", "nyuv2", 0)
    plan.store_profiles([(cfg, torch.device("cpu"), _profile(4.0))], "abc1234", path)
    monkeypatch.setattr(plan, "STORED_PROFILES", path)
    monkeypatch.setattr(plan, "stored_profile", functools.partial(plan.stored_profile, path=path))
    monkeypatch.setattr(plan, "profile_config", lambda *a, **k: pytest.fail("profiled a stored configuration"))
    estimate = plan.profile_estimate(cfg, tmp_path, torch.device("cpu"), torch.device("cpu"))
    assert estimate.step_seconds == 4.0 and estimate.setup_seconds == 2.0
    assert "stored profile (profiles.csv, measured" in estimate.source
    steps = cfg.train.epochs * math.ceil(700 / cfg.train.batch_size)  # NYUv2's declared 700 training samples
    assert estimate.steps == steps


@pytest.mark.slow
def test_the_plan_is_within_a_factor_of_the_times_of_the_sweep_it_plans(tmp_path: Path, capsys):
    """A profile-based plan of a small local sweep against the wall time each run then records:
    within a factor of 3 either way (a 3-step profile against a whole run, on a shared machine)."""
    settings = {"train.epochs": 2, "data.train_limit": 2560, "data.eval_limit": 1000}
    spec_path = write_spec(tmp_path / "s.toml", methods=["palora", "cosmos"], seeds=[0], settings=settings)
    out = tmp_path / "out"
    assert main([str(spec_path), "--cluster", "debug", "--out", str(out), "--plan"]) == 0
    planned = {}
    for line in capsys.readouterr().out.splitlines():
        cells = line.split()
        if len(cells) > 9 and cells[1:3] == ["on", "multimnist-mini"]:
            planned[cells[0]] = (int(cells[4]), seconds(cells[9]))
    assert set(planned) == {"palora", "cosmos"}
    torch.set_num_threads(min(2, torch.get_num_threads()))
    assert main([str(spec_path), "--cluster", "debug", "--out", str(out)]) == 0
    for directory in out.glob("*_multimnist-mini_s0_*"):
        summary = json.loads((directory / "summary.json").read_text())
        steps, estimate = planned[summary["method"]]
        assert steps == summary["steps"] == 20
        assert 1 / 3 <= estimate / summary["wall_seconds"] <= 3, (summary["method"], estimate, summary["wall_seconds"])
