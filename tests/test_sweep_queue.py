"""The local workers' shared queue (bench.sweep.queue): a run is claimed by exactly one worker, even
under concurrent claims; a worker that finishes early takes the next unclaimed run; and the runs are
ordered longest first from the records of their configuration's other seeds."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

from bench.sweep.job import SweepJob
from bench.sweep.queue import claim, longest_first, new_queue
from bench.sweep.spec import load_spec
from bench.sweep.state import run_directories
from tests.test_plan import fake_completed
from tests.test_sweep import write_spec

RUN_IDS = [f"run{k:02d}" for k in range(40)]


def claim_all(queue: str) -> list[str]:
    return [run_id for run_id in RUN_IDS if claim(Path(queue), run_id)]


def test_concurrent_workers_claim_each_run_exactly_once(tmp_path: Path):
    queue = new_queue(tmp_path)
    assert queue.parent == tmp_path / "_sweep" / "queue" and not any(queue.iterdir())
    with multiprocessing.get_context("fork").Pool(4) as pool:
        taken = pool.map(claim_all, [str(queue)] * 4)
    assert sorted(run_id for mine in taken for run_id in mine) == RUN_IDS  # each once, none lost
    assert not claim(queue, "run00") and claim(new_queue(tmp_path), "run00")  # a new submission starts empty


def test_a_worker_runs_only_the_runs_it_claims(tmp_path: Path, monkeypatch):
    """Two workers walk the same list: the one that is slow on its first run finds the rest taken
    by the other, which took them one after another as it finished each."""
    configs = load_spec(write_spec(tmp_path / "s.toml", seeds=[0, 1])).configs()  # 4 runs
    ran: dict[str, list[str]] = {"a": [], "b": []}

    def run_one(self: SweepJob, cfg: Any, *args: Any) -> dict[str, Any]:
        ran[self.log].append(cfg.run_id())
        if self.log == "a":  # worker a, on its first run, is overtaken by worker b's whole walk
            b = SweepJob()
            b.log = "b"
            b.run_each(configs, str(tmp_path), "", "cpu", 0, queue)
        return {"run_id": cfg.run_id()}

    monkeypatch.setattr(SweepJob, "_run_one", run_one)
    queue = str(new_queue(tmp_path))
    a = SweepJob()
    a.log = "a"
    results, failures = a.run_each(configs, str(tmp_path), "", "cpu", 0, queue)
    ids = [c.run_id() for c in configs]
    assert ran == {"a": ids[:1], "b": ids[1:]} and [r["run_id"] for r in results] == ids[:1] and not failures


def test_runs_are_ordered_longest_first(tmp_path: Path):
    """By the records of their configuration's other seeds, else by their method's step cost times
    their epochs (in seconds at the records' ratio), else first."""
    spec = load_spec(write_spec(tmp_path / "s.toml", methods=["ls", "palora", "cosmos"], seeds=[0, 1]))
    by = {(c.method, c.seed): c for c in spec.configs()}
    out = tmp_path / "out"
    fake_completed(out, by["ls", 0], seconds_per_step=2.0, steps=10, peak=1)  # ls: 26.5 s a run
    fake_completed(out, by["palora", 0], seconds_per_step=5.0, steps=10, peak=1)  # palora: 56.5 s
    todo = [by[m, 1] for m in ("ls", "palora", "cosmos")]  # cosmos: no record of its configuration
    directories = run_directories(out)
    assert [c.method for c in longest_first(todo, directories, costs={})] == ["cosmos", "palora", "ls"]
    # step costs: ls 26.5 s / (2 ms x 1 epoch), palora 56.5 / 5: the median ratio 13.25 puts cosmos at 13.25 s
    costs = {"ls": 2.0, "palora": 5.0, "cosmos": 1.0}
    assert [c.method for c in longest_first(todo, directories, costs)] == ["palora", "ls", "cosmos"]
    assert [c.method for c in longest_first(todo, directories, {**costs, "cosmos": 3.0})] == ["palora", "cosmos", "ls"]
    # no records: ranked by step cost alone; a method without one leads
    assert [c.method for c in longest_first(todo, [], costs)] == ["palora", "ls", "cosmos"]
    assert [c.method for c in longest_first(todo, [], {"ls": 2.0})] == ["palora", "cosmos", "ls"]
    assert longest_first(todo, [], costs={}) == todo  # nothing known: the grid's order


def test_the_committed_step_costs_cover_every_registered_method():
    from bench.core.registry import METHODS, load_all
    from bench.sweep.queue import step_costs

    load_all()
    costs = step_costs()
    assert set(METHODS.names()) <= set(costs) and all(v > 0 for v in costs.values())
    assert step_costs(Path("/nonexistent.csv")) == {}
