"""Sweeps: spec validation, grid expansion, in-process (debug) and local execution, skip of finished
runs, status with failure reasons. The real-SLURM tests are in test_slurm.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.core.errors import ConfigError
from bench.sweep.command import failure_line, main
from bench.sweep.spec import load_spec

TINY = {"train.epochs": 1, "train.max_steps": 2, "data.train_limit": 128, "data.eval_limit": 64, "train.batch_size": 64}


def write_spec(path: Path, methods=("ls", "palora"), seeds=(0, 1), extra: str = "", settings=None) -> Path:
    lines = [
        "[grid]",
        f"methods = {json.dumps(list(methods))}",
        'datasets = ["multimnist-mini"]',
        f"seeds = {json.dumps(list(seeds))}",
        extra,
        "[set]",
    ]
    lines += [f'"{k}" = {json.dumps(v)}' for k, v in (settings or TINY).items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_minimal_spec_expands_to_the_grid(tmp_path: Path):
    spec = load_spec(write_spec(tmp_path / "s.toml"))
    configs = spec.configs()
    assert [(c.method, c.seed) for c in configs] == [("ls", 0), ("ls", 1), ("palora", 0), ("palora", 1)]
    assert all(c.train.epochs == 1 and c.train.max_steps == 2 for c in configs)
    assert len({c.run_id() for c in configs}) == 4
    assert spec.cluster.time_min == 240 and spec.cluster.runs_per_gpu == 1 and spec.run.device == "auto"


def test_variants_are_a_grid_axis(tmp_path: Path):
    spec = load_spec(
        write_spec(tmp_path / "s.toml", methods=["palora"], seeds=[0], extra='variants = [{}, {"method.rank" = 3}]')
    )
    assert [c.hparams.rank for c in spec.configs()] == [1, 3]


GRID = '[grid]\nmethods=["ls"]\ndatasets=["multimnist-mini"]\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GRID + "[sett]\n", "unknown key(s) sett; valid keys: grid, set"),
        (GRID + "seed=[0]\n", "unknown key(s) seed; valid keys: methods"),
        (GRID + "[cluster]\ngpu=1\n", "unknown key 'cluster.gpu'; valid keys: cluster.partition, cluster.account"),
        (GRID + '[cluster]\ntime_min="1h"\n', "[cluster]: cluster.time_min: expected int, got '1h'"),
        (
            GRID + "[cluster]\nruns_per_gpu=0\n",
            "[cluster]: invalid cluster settings: cluster.runs_per_gpu must be >= 1",
        ),
        (GRID + "[cluster]\nruns_per_gpu=1.5\n", "[cluster]: cluster.runs_per_gpu: expected int, got 1.5"),
        ('[grid]\nmethods="ls"\ndatasets=["multimnist-mini"]\n', "methods must be a non-empty list"),
        (GRID + "seeds=[]\n", "seeds must be a non-empty list"),
        ("[set]\n", "a [grid] table with methods, datasets and seeds is required"),
        (GRID + '[run]\ndevice="tpu"\n', "[run]: unknown device 'tpu'; valid devices: auto, cpu, cuda"),
        (GRID + "[run]\nworkers=-5\n", "run.workers must be >= 0, or -1 for one per CPU of the job; got -5"),
        (GRID + "[cluster]\ntime_min=0\n", "cluster.time_min must be >= 1, got 0"),
        (GRID + "[cluster]\nmem_gb=-1\n", "cluster.mem_gb must be > 0, got -1.0"),
        (GRID + "[cluster]\nmax_requeues=-1\n", "cluster.max_requeues must be >= 0, got -1"),
        (GRID + "[cluster]\ntime_min=1\n", "cluster.signal_delay_s (120) must be shorter than the time limit"),
        ('[grid]\nmethods=["ls","ls"]\ndatasets=["multimnist-mini"]\n', "[grid] methods lists ls more than once"),
        (GRID + "seeds=[0,0]\n", "[grid] seeds lists a seed more than once: [0, 0]"),
    ],
)
def test_bad_specs_say_what_is_valid(tmp_path: Path, text: str, message: str):
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_spec(tmp_path / "bad.toml")


def test_unknown_names_and_settings_fail_before_anything_runs(tmp_path: Path):
    with pytest.raises(ConfigError, match="valid methods"):
        load_spec(write_spec(tmp_path / "a.toml", methods=["palora", "plora"])).configs()
    with pytest.raises(ConfigError, match="train.epoch"):
        load_spec(write_spec(tmp_path / "b.toml", settings={"train.epoch": 1})).configs()


def test_profile_file_is_merged_under_the_spec(tmp_path: Path):
    (tmp_path / "profile.toml").write_text('[cluster]\npartition = "gpu"\ntime_min = 60\nqos = "normal"\n')
    spec = load_spec(write_spec(tmp_path / "s.toml", extra='[cluster]\nprofile = "profile.toml"\ntime_min = 30'))
    assert (spec.cluster.partition, spec.cluster.time_min, spec.cluster.qos) == ("gpu", 30, "normal")


def test_repository_specs_are_valid():
    specs = sorted(Path(__file__).resolve().parents[1].joinpath("slurm").glob("*.toml"))
    assert specs, "slurm/ holds example specs"
    for path in specs:
        assert load_spec(path).configs()


def test_debug_sweep_runs_skips_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    spec = write_spec(tmp_path / "s.toml")
    out = tmp_path / "out"
    assert main([str(spec), "--cluster", "debug", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "0 of 4 runs already completed" in text and "completed 4, failed 0" in text
    jobs = json.loads((out / "_sweep" / "jobs.json").read_text())
    assert len(jobs) == 4 and {j["cluster"] for j in jobs.values()} == {"debug"}
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/summary.json")}
    assert main([str(spec), "--cluster", "debug", "--out", str(out)]) == 0  # again: nothing to do
    assert "4 of 4 runs already completed in" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/summary.json")} == stamps
    assert main(["status", str(spec), "--out", str(out)]) == 0
    assert "pending 0, running 0, completed 4, failed 0" in capsys.readouterr().out


def test_status_names_the_failure_reason(tmp_path: Path, monkeypatch, capsys: pytest.CaptureFixture[str]):
    from methods.palora import PaLoRA

    def broken(self, losses, rays, cnet):
        raise RuntimeError("loss is NaN at step 1")

    monkeypatch.setattr(PaLoRA, "backward", broken)
    spec = write_spec(tmp_path / "s.toml", seeds=[0])
    out = tmp_path / "out"
    assert main([str(spec), "--cluster", "debug", "--out", str(out)]) == 1
    capsys.readouterr()
    assert main(["status", str(spec), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "pending 0, running 0, completed 1, failed 1" in text
    assert "FAILED: RuntimeError: loss is NaN at step 1" in text and "job " in text


def test_dry_run_submits_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    spec = write_spec(tmp_path / "s.toml")
    assert main([str(spec), "--cluster", "local", "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    assert "0 of 4 runs already completed" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


def test_methods_option_runs_a_subset_under_the_whole_grids_run_ids(tmp_path: Path, capsys):
    path = write_spec(tmp_path / "s.toml", methods=("ls", "palora", "mean"))
    whole = {c.run_id(): c.method for c in load_spec(path).configs()}
    subset = load_spec(path).grid.only(["mean", "ls"])
    assert subset.methods == ("ls", "mean")  # the grid's order
    assert {c.run_id(): c.method for c in subset.configs()} == {k: m for k, m in whole.items() if m != "palora"}
    out = tmp_path / "out"
    assert main([str(path), "--cluster", "local", "--out", str(out), "--methods", "mean", "--dry-run"]) == 0
    listed = capsys.readouterr().out
    assert "0 of 2 runs already completed" in listed and "mean on multimnist-mini" in listed and "ls on" not in listed
    assert main([str(path), "--cluster", "local", "--out", str(out), "--methods", "mean,pamal", "--dry-run"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.endswith("no method 'pamal' in this grid; its methods: ls, palora, mean"), line


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    spec = write_spec(tmp_path / "s.toml")
    assert main([str(spec), "--cluster", "kubernetes", "--dry-run"]) == 2
    assert capsys.readouterr().err.strip() == "error: unknown cluster 'kubernetes'; valid clusters: slurm, local, debug"
    bad = write_spec(tmp_path / "bad.toml", extra="[cluster]\nruns_per_gpu = -2")
    assert main([str(bad), "--cluster", "local", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "cluster.runs_per_gpu must be >= 1, got -2" in err
    assert main(["status", str(tmp_path / "missing.toml")]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.slow
def test_local_sweep_runs_in_worker_processes(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch):
    import socket

    from bench.sweep.state import JOBS_FILE

    spec = write_spec(tmp_path / "s.toml", methods=["ls"])
    out = tmp_path / "out"
    monkeypatch.chdir(tmp_path)
    assert main([str(spec), "--cluster", "local", "--out", "out"]) == 0  # a relative --out, as the README's
    assert "completed 2, failed 0" in capsys.readouterr().out
    for entry in json.loads((out / JOBS_FILE).read_text()).values():  # status can find the queue from anywhere
        queue = Path(entry["queue"])
        assert (
            entry["host"] == socket.gethostname() and queue.is_absolute() and queue.parent == out / "_sweep" / "queue"
        )
    assert not list((out / "_sweep" / "queue").iterdir())  # removed once the workers ended
    summaries = [json.loads(p.read_text()) for p in out.glob("*/summary.json")]
    assert sorted(s["seed"] for s in summaries) == [0, 1]
    (log,) = (out / "_sweep" / "submitit").glob("*_log.out")  # the local worker's log: its runs' lines
    for summary in summaries:
        run = summary["run_id"]
        assert f"{run}: epoch 1/1 step 2 train_loss " in log.read_text()
        assert f"{run}: completed in {summary['wall_seconds']:.1f} s, 2 steps, test_hv " in log.read_text()


def test_queue_aware_states_and_no_double_submission(tmp_path: Path, monkeypatch, capsys: pytest.CaptureFixture[str]):
    import bench.sweep.command as sweep
    import bench.sweep.state as state
    from bench.core import atomic
    from bench.train.record import RunRecord

    spec = load_spec(write_spec(tmp_path / "s.toml", methods=["ls"]))
    out = tmp_path / "out"
    first, second = spec.configs()
    RunRecord(out / first.run_id()).set_status("RUNNING")
    atomic.write_json(
        out / state.JOBS_FILE,
        {c.run_id(): {"job_id": f"7_{i}", "cluster": "slurm"} for i, c in enumerate((first, second))},
    )
    monkeypatch.setattr(state, "active_slurm_jobs", lambda: {"7_0", "7_1"})
    assert state.run_state(out, first, "7_0", {"7_0"}) == ("running", "RUNNING")
    assert state.run_state(out, second, "7_1", {"7_1"}) == ("pending", "queued as job 7_1")
    assert sweep.print_plan(spec, [first, second], out) == []  # both still with the scheduler
    assert "2 still queued or running; 0 to run" in capsys.readouterr().out
    monkeypatch.setattr(state, "active_slurm_jobs", lambda: set())  # both jobs have left the queue
    state, detail = state.run_state(out, first, "7_0", set())
    assert state == "failed" and "job 7_0 has left the queue" in detail
    assert [c.run_id() for c in sweep.print_plan(spec, [first, second], out)] == [first.run_id(), second.run_id()]


def test_a_failing_run_does_not_stop_the_rest_of_its_job(tmp_path: Path, monkeypatch):
    from bench.sweep.job import SweepJob
    from bench.train.record import read_status
    from methods.palora import PaLoRA

    def broken(self, losses, rays, cnet):
        raise RuntimeError("boom")

    monkeypatch.setattr(PaLoRA, "backward", broken)
    spec = load_spec(write_spec(tmp_path / "s.toml", methods=["palora", "ls"], seeds=[0]))
    palora, ls = spec.configs()
    with pytest.raises(RuntimeError, match="1 of 2 runs failed: palora_"):
        SweepJob()([palora, ls], str(tmp_path / "out"), "", "cpu", 0)
    assert read_status(tmp_path / "out" / palora.run_id()) == "FAILED: RuntimeError: boom"
    assert read_status(tmp_path / "out" / ls.run_id()) == "COMPLETED"


def test_a_diverged_run_in_a_debug_sweep_is_listed_and_no_debugger_starts(
    tmp_path: Path, monkeypatch, capsys: pytest.CaptureFixture[str]
):
    import pdb

    calls = []
    monkeypatch.setattr(pdb, "post_mortem", lambda *args, **kwargs: calls.append(args))
    spec = write_spec(tmp_path / "s.toml", methods=["palora", "mean"], seeds=[0], settings={**TINY, "train.lr": 1e8})
    out = tmp_path / "out"
    assert main([str(spec), "--cluster", "debug", "--out", str(out)]) == 1
    assert (
        "diverged: non-finite loss at step 2 (epoch 1)" in capsys.readouterr().out
    )  # Adam at lr 1e8: step 1 is finite
    assert not calls  # submitit's debug job would have opened pdb on a terminal
    assert main(["status", str(spec), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "failed 2" in text and text.count("FAILED: diverged: non-finite loss at step 2 (epoch 1)") == 2


def test_a_failed_local_job_line_gives_the_reason_not_only_its_log_paths():
    """submitit's error for a failed local job: a traceback, then the log paths last."""
    error = Exception(
        "Job (task=0) failed during processing with trace:\n----------------------\n"
        "Traceback (most recent call last):\n"
        '  File "bench/sweep/job.py", line 157, in __call__\n'
        "RuntimeError: 1 of 1 runs failed: palora_x: ConfigError: unknown device 'tpu'\n----------------------\n"
        "You can check full logs with 'job.stderr(0)' and 'job.stdout(0)'or at paths:\n"
        "  - /a/1_log.err\n  - /a/1_log.out\n"
    )
    assert failure_line(error) == "1 of 1 runs failed: palora_x: ConfigError: unknown device 'tpu'"
    assert failure_line(Exception("one\nlast line")) == "last line"


def test_a_completed_run_made_by_other_source_is_named_and_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    spec = write_spec(tmp_path / "s.toml", methods=["ls"], seeds=[0])
    out = tmp_path / "out"
    assert main([str(spec), "--cluster", "debug", "--out", str(out)]) == 0
    [config] = out.glob("*/config.json")
    record = json.loads(config.read_text())
    assert record["source"]["method"]["module"] == "methods.ls"
    capsys.readouterr()
    assert main([str(spec), "--cluster", "debug", "--out", str(out), "--dry-run"]) == 0
    assert "warning" not in capsys.readouterr().err  # the same source: nothing to say
    record["source"]["method"]["sha256"] = "0" * 64  # as if methods/ls.py had been edited since
    config.write_text(json.dumps(record))
    stamp = (config.parent / "summary.json").stat().st_mtime_ns
    assert main([str(spec), "--cluster", "debug", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "1 of 1 runs already completed" in captured.out
    assert captured.err == (
        f"warning: completed run {config.parent.name} was made by other source of its method module (methods.ls); "
        "it is kept as is: `bench run --force` with its settings trains it again\n"
    )
    assert (config.parent / "summary.json").stat().st_mtime_ns == stamp


def test_a_spec_log_sink_reaches_every_run_and_a_bad_one_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture):
    pytest.importorskip("torch.utils.tensorboard", reason="needs the tensorboard package (the test extra)")
    spec = write_spec(tmp_path / "s.toml", methods=["ls"], seeds=[0, 1], extra='[run]\nlog = "tensorboard"')
    out = tmp_path / "out"
    assert main([str(spec), "--cluster", "debug", "--out", str(out)]) == 0
    runs = sorted(p for p in out.iterdir() if p.is_dir() and p.name != "_sweep")
    assert len(runs) == 2 and all(any((run / "tensorboard").glob("events.out.tfevents.*")) for run in runs)
    bad = write_spec(tmp_path / "bad.toml", methods=["ls"], seeds=[0], extra='[run]\nlog = "wandb"')
    assert main([str(bad), "--cluster", "debug", "--out", str(tmp_path / "bad")]) == 2
    assert "run.log must be 'tensorboard' or empty, got 'wandb'" in capsys.readouterr().err
