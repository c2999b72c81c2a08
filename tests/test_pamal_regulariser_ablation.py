"""The regulariser ablation's statistics (tools/pamal_regulariser_ablation.py): Holm's adjustment and
the paired test, against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tools.pamal_regulariser_ablation import holm, report


def test_holm_adjusts_in_step_down_order_and_stays_monotone() -> None:
    # sorted: 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04 -> raised to 0.06 (monotone)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1


def _row(hv: float) -> dict[str, object]:
    return {"run_id": "r", "hv": hv, "span": np.array([0.1, 0.1]), "best": np.array([0.2, 0.2]), "commits": ["abc1234"]}


def test_report_pairs_by_seed_with_the_paired_t_statistic() -> None:
    # paper - official = 0.01, 0.02, 0.03: mean 0.02, sd 0.01, t = 0.02 / (0.01 / sqrt 3) = 3.464, df 2
    results = {
        "paper": {0: _row(0.61), 1: _row(0.62), 2: _row(0.63)},
        "none": {0: _row(0.60), 1: _row(0.60), 2: _row(0.60)},
        "official": {0: _row(0.60), 1: _row(0.60), 2: _row(0.60)},
    }
    text = report(results)
    line = next(row for row in text.splitlines() if row.startswith("| `paper` − `official`"))
    # two-sided p for t = 2 sqrt 3 with 2 degrees of freedom: 1 - t / sqrt(t^2 + 2) (Student t, df 2)
    t = 2 * math.sqrt(3)
    p = 1 - t / math.sqrt(t * t + 2)
    assert f"| {p:.3g} |" in line
    assert "s0 +0.0100, s1 +0.0200, s2 +0.0300 | +0.0200" in line
    assert "| `official` | 3 | 0.6000 ± 0.0000 |" in text
