"""Front metrics on hand-made fronts with known values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.analysis.front_metrics import front_metrics, igd_plus, non_dominated, reference_front, spacing, spread

LINE = np.array([[0.0, 1.0], [0.25, 0.75], [0.5, 0.5], [0.75, 0.25], [1.0, 0.0]])


def test_non_dominated_drops_dominated_and_repeated_points():
    points = np.array([[0.5, 0.5], [0.6, 0.6], [0.5, 0.5], [0.2, 0.9], [0.2, 1.0]])
    assert non_dominated(points).tolist() == [[0.2, 0.9], [0.5, 0.5]]


def test_reference_front_is_the_non_dominated_union():
    a = np.array([[0.1, 0.9], [0.6, 0.6]])
    b = np.array([[0.5, 0.5], [0.9, 0.1]])
    assert reference_front([a, b]).tolist() == [[0.1, 0.9], [0.5, 0.5], [0.9, 0.1]]


def test_igd_plus_known_values():
    assert igd_plus(LINE, LINE) == 0.0
    reference = np.array([[0.0, 1.0], [1.0, 0.0]])
    # from (0, 1): the front point (0.5, 0.5) is worse by 0.5 in f1 only -> 0.5; the same from (1, 0)
    assert igd_plus(np.array([[0.5, 0.5]]), reference) == pytest.approx(0.5)
    # a point better than the reference everywhere contributes nothing
    assert igd_plus(np.array([[-1.0, -1.0]]), reference) == 0.0


def test_spacing_is_zero_when_even_and_matches_schott_otherwise():
    assert spacing(LINE) == pytest.approx(0.0, abs=1e-12)
    uneven = np.array([[0.0, 1.0], [0.1, 0.9], [1.0, 0.0]])
    # city-block nearest-neighbour distances: 0.2, 0.2, 1.8 -> mean 0.7333, std (population)
    d = np.array([0.2, 0.2, 1.8])
    assert spacing(uneven) == pytest.approx(math.sqrt(np.mean((d - d.mean()) ** 2)))
    assert math.isnan(spacing(np.array([[0.3, 0.3]])))


def test_spread_zero_for_an_even_front_at_the_extremes_and_deb_formula_otherwise():
    assert spread(LINE, LINE) == pytest.approx(0.0, abs=1e-12)
    inner = LINE[1:4]  # misses both extremes by sqrt(2) / 4 each; gaps all equal
    d = math.sqrt(2) / 4
    assert spread(inner, LINE) == pytest.approx((2 * d) / (2 * d + 2 * d))
    assert spread(np.array([[0.5, 0.5]]), LINE) == pytest.approx(1.0)


def test_front_metrics_spans_and_counts():
    out = front_metrics(np.vstack([LINE, [[0.9, 0.9]]]), LINE)
    assert out["non_dominated"] == 5 and out["span_1"] == 1.0 and out["span_2"] == 1.0
    assert out["igd_plus"] == 0.0


def test_tables_per_run_and_over_seeds():
    import pandas as pd

    from bench.analysis.front_metrics import front_metric_summary, front_metric_tables

    rows = []
    for seed, shift in ((0, 0.0), (1, 0.1)):
        for k, (a, b) in enumerate(LINE):
            rows.append({"label": "front", "kind": "front", "seed": seed, "ray_index": k, "e1": a + shift, "e2": b})
        rows.append({"label": "point", "kind": "point", "seed": seed, "ray_index": 0, "e1": 0.5, "e2": 0.5 + shift})
    per_run, reference = front_metric_tables(pd.DataFrame(rows), ["e1", "e2"])
    assert reference.tolist() == LINE.tolist()  # seed 0 of the front dominates everything else
    first = per_run[(per_run.label == "front") & (per_run.seed == 0)].iloc[0]
    assert first.igd_plus == 0.0 and first.non_dominated == 5 and first.span_e1 == 1.0
    shifted = per_run[(per_run.label == "front") & (per_run.seed == 1)].iloc[0]
    assert shifted.igd_plus == pytest.approx(0.1)  # worse by 0.1 in e1 at every reference point
    summary = front_metric_summary(per_run).set_index("label")
    assert summary.loc["front", "igd_plus_mean"] == pytest.approx(0.05)
    assert summary.loc["front", "igd_plus_std"] == pytest.approx(0.1 / math.sqrt(2))
    assert summary.loc["point", "n_seeds"] == 2 and math.isnan(summary.loc["point", "spacing_mean"])
