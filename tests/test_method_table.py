"""The method table reads real run records (two tiny runs: a front and a single point)."""

from pathlib import Path

import pytest

from bench.analysis.method_table import load_summaries, main, markdown_table, row
from bench.train.config import resolve
from bench.train.runner import run_experiment
from tests.support import tiny_settings

TINY = tiny_settings(train_limit=128, eval_limit=64)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    out = tmp_path_factory.mktemp("runs")
    for method in ("palora", "mgda"):
        run_experiment(resolve(method, "multimnist-mini", 0, assignments=TINY), out, data_root, "cpu", False)
    return out


def test_rows_take_each_task_at_its_own_end_of_the_front(runs: Path):
    summaries = {s["method"]: s for s in load_summaries(runs)}
    palora = row(summaries["palora"])
    by_ray = {tuple(e["ray"]): e["metrics"] for e in summaries["palora"]["front"]}
    assert palora["ends"]["top-left"] == by_ray[(1.0, 0.0)]["top-left"]["accuracy"]
    assert palora["ends"]["bottom-right"] == by_ray[(0.0, 1.0)]["bottom-right"]["accuracy"]
    assert palora["seconds_per_epoch"] == pytest.approx(summaries["palora"]["train_seconds"] / 2)
    mgda = row(summaries["mgda"])
    point = summaries["mgda"]["front"][0]["metrics"]
    assert mgda["kind"] == "point" and mgda["ends"]["top-left"] == point["top-left"]["accuracy"]


def test_markdown_table_has_one_line_per_run(runs: Path, tmp_path: Path):
    table = markdown_table(load_summaries(runs))
    lines = table.strip().splitlines()
    assert (
        len(lines) == 4
        and lines[2].startswith("| `mgda` | point | 0 |")
        and lines[3].startswith("| `palora` | front | 0 |")
    )
    main([str(runs), "--out", str(tmp_path / "t.md")])
    assert (tmp_path / "t.md").read_text() == table


def test_hypervolume_is_recomputed_from_the_front_not_read_back(runs: Path):
    """One source: the table's HV comes from the stored per-ray metrics, whatever summary says."""
    from bench.core.hypervolume import front_hypervolume
    from bench.core.registry import DATASETS

    summary = next(s for s in load_summaries(runs) if s["method"] == "palora")
    expected = front_hypervolume(summary["front"], DATASETS.get("multimnist-mini"))
    assert row({**summary, "hypervolume": -1.0})["hypervolume"] == expected
