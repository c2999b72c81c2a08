"""bench.benchmarks.overhead's split of a run's wall time, from run summaries written by hand."""

from __future__ import annotations

import pytest

from bench.benchmarks.overhead import markdown, row


def summary(train: float, val: float, test: float, wall: float) -> dict:
    return {"train_seconds": train, "eval_seconds": val, "test_eval_seconds": test, "wall_seconds": wall, "front": []}


def test_row_splits_the_wall_time_and_the_table_takes_medians() -> None:
    rows = [
        row("abc", "cosmos", summary(10.0, 0.5, 1.0, 12.0)),  # other 0.5, wall / train 1.2
        row("abc", "cosmos", summary(8.0, 0.4, 0.8, 12.0)),  # 1.5
        row("abc", "cosmos", summary(10.0, 0.2, 0.6, 11.0)),  # 1.1
    ]
    assert rows[0]["other_s"] == pytest.approx(0.5)
    assert [r["wall_over_train"] for r in rows] == pytest.approx([1.2, 1.5, 1.1])
    lines = markdown(rows)
    assert "| abc | cosmos | **1.200** | 0.100 |" in lines  # medians: 1.2; test / train 0.1, 0.1, 0.06
