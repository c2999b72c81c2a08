"""Known values of the front-aware metrics (bench/analysis/hv_variants.py, bench/analysis/preference.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bench.analysis import hv_variants as hv
from bench.analysis import preference as pref

ENDS = np.array([[0.1, 0.5], [0.4, 0.2]])


def test_single_task_box_and_data_driven_reference():
    ideal, nadir = hv.single_task_box(ENDS)
    assert ideal.tolist() == [0.1, 0.2] and nadir.tolist() == [0.4, 0.5]
    assert hv.data_driven_reference(ideal, nadir, 0.1) == pytest.approx([0.43, 0.53])
    with pytest.raises(ValueError, match="non-empty"):
        hv.single_task_box(np.zeros((0, 2)))


def test_normalised_hypervolume_known_values():
    ideal, nadir = hv.single_task_box(ENDS)
    reference = hv.data_driven_reference(ideal, nadir, 0.1)
    assert hv.normalised_hypervolume(ideal[None, :], ideal, reference) == pytest.approx(1.0)
    # the two ends: 0.33 x 0.03 twice, less their 0.03 x 0.03 overlap, over the 0.33 x 0.33 box
    assert hv.normalised_hypervolume(ENDS, ideal, reference) == pytest.approx(0.0189 / 0.1089)
    assert hv.normalised_hypervolume(np.array([[0.5, 0.6]]), ideal, reference) == 0.0
    assert math.isnan(hv.normalised_hypervolume(ENDS, ideal, ideal))


def test_normalised_hypervolume_agrees_with_moocore_and_is_at_most_one_inside_the_box():
    moocore = pytest.importorskip("moocore")
    rng = np.random.default_rng(0)
    for _ in range(20):
        points = rng.uniform(0.0, 1.0, size=(7, 2))
        ideal, nadir = hv.single_task_box(points)  # every point in the box: at most 1
        reference = hv.data_driven_reference(ideal, nadir)
        value = hv.normalised_hypervolume(points, ideal, reference)
        inside = points[(points < reference).all(axis=1)]
        expected = moocore.hypervolume(inside, ref=reference) if len(inside) else 0.0
        box = np.prod(reference - ideal)
        assert box > 0 and value == pytest.approx(expected / box, abs=1e-12) and 0.0 <= value <= 1.0


def test_loss_hypervolume_at_two_two():
    assert hv.loss_hypervolume(np.array([[0.5, 1.0]])) == pytest.approx(1.5)
    assert hv.loss_hypervolume(np.array([[0.5, 1.0], [2.5, 0.1]])) == pytest.approx(1.5)


def test_hv_gain_over_the_best_point_is_zero_for_a_collapsed_front():
    reference = np.array([1.0, 1.0])
    front = np.array([[0.2, 0.6], [0.6, 0.2]])
    # each point alone 0.8 x 0.4 = 0.32; together 0.32 + 0.32 - 0.4 x 0.4 = 0.48
    assert hv.hv_gain_over_best_point(front, reference) == pytest.approx(0.16)
    assert hv.hv_gain_over_best_point(np.array([[0.3, 0.3]] * 5), reference) == pytest.approx(0.0)


LAMBDA_1 = np.linspace(0.0, 1.0, 5)
RAYS = np.stack([LAMBDA_1, 1.0 - LAMBDA_1], axis=1)


def test_controllability_of_an_ideal_mapping_and_of_one_inversion():
    ideal = np.stack([1.0 - LAMBDA_1, LAMBDA_1], axis=1) * 0.5  # error k falls as lambda_k rises
    out = pref.controllability(RAYS, ideal)
    assert out == pytest.approx({"rho_1": -1.0, "violations_1": 0.0, "rho_2": -1.0, "violations_2": 0.0})
    errors = np.stack([[0.5, 0.4, 0.45, 0.3, 0.2], [0.1, 0.2, 0.3, 0.4, 0.5]], axis=1)
    out = pref.controllability(RAYS, errors)
    # ranks of task 1's error [5, 3, 4, 2, 1] against [1..5]: sum d^2 = 38, rho = 1 - 6 * 38 / 120
    assert out["rho_1"] == pytest.approx(-0.9) and out["violations_1"] == pytest.approx(0.25)
    assert out["rho_2"] == pytest.approx(-1.0) and out["violations_2"] == 0.0


def test_a_collapsed_front_has_no_rank_correlation():
    out = pref.controllability(RAYS, np.full((5, 2), 0.3))
    assert math.isnan(out["rho_1"]) and out["violations_1"] == 0.0
    with pytest.raises(ValueError, match=r"\[K, T\]"):
        pref.controllability(RAYS, np.zeros((4, 2)))


def test_preference_direction_pbi_and_angle_known_values():
    assert pref.preference_direction(np.array([0.5, 0.5])) == pytest.approx([1 / math.sqrt(2)] * 2)
    direction = pref.preference_direction(np.array([0.2, 0.8]))  # 1 / lambda = (5, 1.25)
    assert direction == pytest.approx(np.array([5.0, 1.25]) / math.hypot(5.0, 1.25))
    assert np.isnan(pref.preference_direction(np.array([1.0, 0.0]))).all()
    diagonal = np.array([1.0, 1.0]) / math.sqrt(2)
    assert pref.pbi(np.array([1.0, 1.0]), diagonal) == pytest.approx(math.sqrt(2))
    # d1 = 1/sqrt(2), d2 = |(0.5, -0.5)| = 1/sqrt(2): PBI = 6 / sqrt(2) at theta 5
    assert pref.pbi(np.array([1.0, 0.0]), diagonal) == pytest.approx(6 / math.sqrt(2))
    assert pref.angle_degrees(np.array([1.0, 0.0]), diagonal) == pytest.approx(45.0)


def test_alignment_skips_rays_without_a_direction():
    points = np.array([[0.4, 0.1], [0.3, 0.1], [0.2, 0.2], [0.1, 0.3], [0.1, 0.4]])
    out = pref.alignment(RAYS, points)
    # only the three interior rays count; (0.2, 0.2) lies on the direction of (0.5, 0.5): PBI = |f|, angle 0
    assert pref.pbi(points[2], pref.preference_direction(RAYS[2])) == pytest.approx(math.hypot(0.2, 0.2))
    inner = [pref.pbi(p, pref.preference_direction(r)) for p, r in zip(points[1:4], RAYS[1:4], strict=True)]
    angles = [pref.angle_degrees(p, pref.preference_direction(r)) for p, r in zip(points[1:4], RAYS[1:4], strict=True)]
    assert out == pytest.approx({"pbi": np.mean(inner), "angle": np.mean(angles)})
    assert angles[1] == pytest.approx(0.0, abs=1e-6)
    assert all(math.isnan(v) for v in pref.alignment(RAYS[[0, 4]], np.ones((2, 2))).values())


def test_delta_p_signs_and_known_values():
    accuracy = pref.delta_p(np.array([[0.9, 0.8]]), np.array([0.95, 0.8]), np.array([True, True]))
    assert accuracy == pytest.approx([100 * (0.9 - 0.95) / 0.95 / 2])
    errors = pref.delta_p(np.array([[0.1, 0.2], [0.05, 0.1]]), np.array([0.05, 0.2]), np.array([False, False]))
    assert errors == pytest.approx([-50.0, 25.0])


def test_per_run_front_aware_table_from_run_records(tmp_path: Path):
    """LS gives the single-task ends (its one-hot members); every metric of a PaLoRA run by hand."""
    from bench.analysis.front_aware import front_aware_table
    from bench.analysis.records import scan
    from bench.core.registry import DATASETS
    from tests.fake_runs import write_run

    # accuracies; rays (0, 1), (0.5, 0.5), (1, 0); the fake losses are 1 - accuracy
    write_run(tmp_path, "ls", 0, [(0.60, 0.95), (0.80, 0.85), (0.95, 0.60)])
    write_run(tmp_path, "palora", 0, [(0.90, 0.93), (0.92, 0.92), (0.93, 0.90)])
    write_run(tmp_path, "mgda", 0, [(0.91, 0.91)])
    table, note = front_aware_table(scan(tmp_path), DATASETS.get("multimnist-mini"))
    assert "2 one-hot ls members" in note and "[0.05, 0.05]" in note and "[0.435, 0.435]" in note
    palora = table[table["label"] == "palora"].iloc[0]
    # errors (0.10, 0.07), (0.08, 0.08), (0.07, 0.10); staircase HV sorted by the first error
    assert palora["hv"] == pytest.approx(0.93 * 0.90 + 0.92 * 0.02 + 0.90 * 0.01)
    assert palora["hv_gain"] == pytest.approx(0.93 * 0.90 + 0.92 * 0.02 + 0.90 * 0.01 - 0.92 * 0.92)
    assert palora["hv_loss"] == pytest.approx(1.93 * 1.90 + 1.92 * 0.02 + 1.90 * 0.01)
    box = 0.385**2
    assert palora["hv_normalised"] == pytest.approx((0.365 * 0.335 + 0.355 * 0.02 + 0.335 * 0.01) / box)
    # single-task errors 0.05 and 0.05: delta-p per ray -70, -60, -70
    assert palora["delta_p_best"] == pytest.approx(-60.0) and palora["delta_p_mean"] == pytest.approx(-200 / 3)
    assert palora["rho_1"] == pytest.approx(-1.0) and palora["violations_2"] == 0.0
    mgda = table[table["label"] == "mgda"].iloc[0]
    assert mgda["kind"] == "point" and math.isnan(mgda["rho_1"]) and mgda["hv_gain"] == 0.0


def test_without_single_task_runs_the_box_metrics_are_missing(tmp_path: Path):
    from bench.analysis.front_aware import front_aware_table
    from bench.analysis.records import scan
    from bench.core.registry import DATASETS
    from tests.fake_runs import write_run

    write_run(tmp_path, "palora", 0, [(0.90, 0.93), (0.92, 0.92), (0.93, 0.90)])
    table, note = front_aware_table(scan(tmp_path), DATASETS.get("multimnist-mini"))
    assert "no ls run with one-hot rays" in note
    assert math.isnan(table["hv_normalised"].iloc[0]) and math.isnan(table["delta_p_best"].iloc[0])
