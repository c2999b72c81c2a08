"""The statistics for comparing methods over seeds: known values, closed forms, and cross-checks against
``scipy.stats`` computed independently of ``bench.analysis.statistics``."""

from __future__ import annotations

import warnings
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.analysis.statistics import (
    EQUIVALENCE_MARGIN,
    equivalence_p,
    findings,
    groups,
    holm,
    improvements,
    mean_interval,
    pairwise,
    probability_of_improvement,
    summary_table,
)

FAST = 2000


def frame(samples: dict[str, list[float]], value: str = "hypervolume") -> pd.DataFrame:
    """A long table: one row per (label, seed)."""
    rows = [{"label": k, "seed": s, value: v} for k, vs in samples.items() for s, v in enumerate(vs)]
    return pd.DataFrame(rows)


SAMPLES = {
    "A": [0.80, 0.81, 0.82, 0.805, 0.815],
    "B": [0.79, 0.80, 0.81, 0.795, 0.805],
    "C": [0.60, 0.61, 0.62, 0.605, 0.615],
}


# mean_interval ---------------------------------------------------------------------------------------------


def test_mean_interval_is_scipy_bca_with_the_same_seed():
    x = np.array([0.3, 0.5, 0.45, 0.7, 0.52, 0.61])
    mean, low, high = mean_interval(x, n_resamples=FAST, seed=3)
    ci = stats.bootstrap((x,), np.mean, n_resamples=FAST, method="BCa", rng=3).confidence_interval
    assert mean == pytest.approx(0.513333333, abs=1e-9)
    assert (low, high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert low < mean < high
    assert mean_interval(x, n_resamples=FAST, seed=3) == (mean, low, high)


def test_mean_interval_is_close_to_the_normal_closed_form_for_many_values():
    x = np.random.default_rng(0).normal(10.0, 2.0, size=400)
    mean, low, high = mean_interval(x, n_resamples=FAST)
    half = 1.959964 * x.std(ddof=1) / np.sqrt(x.size)
    assert mean == pytest.approx(x.mean())
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)


def test_mean_interval_degenerate_cases():
    assert mean_interval([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)
    mean, low, high = mean_interval([3.0])
    assert mean == 3.0 and np.isnan(low) and np.isnan(high)
    for bad in ([], [1.0, float("nan")]):
        with pytest.raises(ValueError, match="finite values"):
            mean_interval(bad)


def test_mean_interval_falls_back_to_percentile_when_bca_is_degenerate():
    x = np.array([1.0, 1.0, 1.0 + 2.2e-16])  # the jackknife acceleration is 0/0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bca = stats.bootstrap((x,), np.mean, n_resamples=FAST, method="BCa", rng=0).confidence_interval
    assert np.isnan(bca.low) or np.isnan(bca.high)
    ci = stats.bootstrap((x,), np.mean, n_resamples=FAST, method="percentile", rng=0).confidence_interval
    assert mean_interval(x, n_resamples=FAST)[1:] == (ci.low, ci.high)


# holm ------------------------------------------------------------------------------------------------------


def test_holm_known_values():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])  # capped
    np.testing.assert_allclose(holm([0.02]), [0.02])


def test_holm_leaves_nan_out_of_the_count():
    adjusted = holm([0.01, float("nan"), 0.04])
    assert np.isnan(adjusted[1])
    np.testing.assert_allclose(adjusted[[0, 2]], [0.02, 0.04])


def test_holm_matches_its_definition_on_random_pvalues():
    p = np.random.default_rng(1).uniform(0, 0.2, size=9)
    order = np.argsort(p)
    step = {i: min(1.0, (len(p) - rank) * p[i]) for rank, i in enumerate(order)}
    expected = [max(step[j] for j in order[: list(order).index(i) + 1]) for i in range(len(p))]
    np.testing.assert_allclose(holm(p), expected)


# pairwise --------------------------------------------------------------------------------------------------


def test_pairwise_is_welch_with_holm_over_all_pairs():
    pairs = pairwise(frame(SAMPLES), "hypervolume")
    assert list(zip(pairs["a"], pairs["b"], strict=True)) == [("A", "B"), ("A", "C"), ("B", "C")]
    for row in pairs.itertuples():
        x, y = np.array(SAMPLES[row.a]), np.array(SAMPLES[row.b])
        se2 = x.var(ddof=1) / 5 + y.var(ddof=1) / 5
        df = se2**2 / ((x.var(ddof=1) / 5) ** 2 / 4 + (y.var(ddof=1) / 5) ** 2 / 4)
        t = (x.mean() - y.mean()) / np.sqrt(se2)
        assert row.p == pytest.approx(2 * stats.t.sf(abs(t), df))
        assert row.difference == pytest.approx(x.mean() - y.mean())
        assert (row.n_a, row.n_b) == (5, 5)
    np.testing.assert_allclose(pairs["p_holm"], holm(pairs["p"]))
    assert list(pairs["separated"]) == [False, True, True]
    assert pairs["p"].iloc[0] == pytest.approx(0.0805162, abs=1e-6)  # A = B + 0.01: t = 2 on 8 degrees of freedom


def test_pairwise_with_one_seed_is_never_separated():
    pairs = pairwise(frame({"A": [1.0, 1.1, 1.2], "B": [5.0]}), "hypervolume")
    assert np.isnan(pairs["p"].iloc[0]) and np.isnan(pairs["p_holm"].iloc[0])
    assert not pairs["separated"].iloc[0]


def test_pairwise_lower_is_better_puts_the_lower_mean_first():
    pairs = pairwise(frame(SAMPLES), "hypervolume", higher_is_better=False)
    assert list(pairs["a"]) == ["C", "C", "B"] and (pairs["difference"] < 0).all()


def test_why_welch_an_exact_rank_test_of_five_against_five_cannot_pass_holm():
    p = stats.mannwhitneyu([6, 7, 8, 9, 10], [1, 2, 3, 4, 5], method="exact").pvalue
    assert p == pytest.approx(2 / 252)
    assert holm([p] * 10).min() > 0.05


# groups ----------------------------------------------------------------------------------------------------


def test_groups_hand_made_cases():
    means = {"A": 3.0, "B": 2.0, "C": 1.0}
    assert groups(means, [("A", "C")]) == {"A": "a", "B": "ab", "C": "b"}
    assert groups(means, []) == {"A": "a", "B": "a", "C": "a"}
    assert groups(means, [("A", "B"), ("A", "C"), ("B", "C")]) == {"A": "a", "B": "b", "C": "c"}
    four = {"A": 4.0, "B": 3.0, "C": 2.0, "D": 1.0}
    assert groups(four, [("A", "C"), ("A", "D"), ("B", "D")]) == {"A": "a", "B": "ab", "C": "bc", "D": "c"}


def test_groups_letter_a_goes_to_the_best_mean_either_direction():
    means = {"A": 3.0, "B": 2.0, "C": 1.0}
    assert groups(means, [("A", "C")], higher_is_better=False) == {"C": "a", "B": "ab", "A": "b"}


@pytest.mark.parametrize("seed", range(6))
def test_groups_share_a_letter_exactly_when_not_separated(seed: int):
    rng = np.random.default_rng(seed)
    labels = [f"m{i}" for i in range(6)]
    means = dict(zip(labels, rng.normal(size=6), strict=True))
    separated = {pair for pair in combinations(labels, 2) if rng.random() < 0.5}
    letters = groups(means, separated)
    for i, j in combinations(labels, 2):
        assert bool(set(letters[i]) & set(letters[j])) == ((i, j) not in separated)
    best = max(means, key=means.__getitem__)
    assert "a" in letters[best]


# probability of improvement --------------------------------------------------------------------------------


def test_probability_of_improvement_known_values():
    assert probability_of_improvement([3, 4], [1, 2], n_resamples=FAST) == (1.0, 1.0, 1.0)
    assert probability_of_improvement([1, 3], [2, 2], n_resamples=FAST)[0] == 0.5
    assert probability_of_improvement([1, 2, 3], [2], n_resamples=FAST)[0] == pytest.approx(0.5)
    assert np.isnan(probability_of_improvement([1, 2, 3], [2])[1])


def test_probability_of_improvement_is_mann_whitney_u_over_nm():
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 6, size=7).astype(float), rng.integers(0, 6, size=5).astype(float)  # with ties
    poi = probability_of_improvement(a, b, n_resamples=FAST)[0]
    assert poi == pytest.approx(stats.mannwhitneyu(a, b).statistic / (7 * 5))
    assert poi + probability_of_improvement(b, a, n_resamples=FAST)[0] == pytest.approx(1.0)


def test_probability_of_improvement_interval_is_an_independent_two_sample_percentile_bootstrap():
    a, b = [0.81, 0.79, 0.84, 0.80, 0.83], [0.80, 0.78, 0.79, 0.82, 0.77]

    def u_over_nm(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return stats.mannwhitneyu(x, y, axis=axis).statistic / (len(a) * len(b))

    ci = stats.bootstrap((a, b), u_over_nm, n_resamples=FAST, method="percentile", rng=5).confidence_interval
    poi, low, high = probability_of_improvement(a, b, n_resamples=FAST, seed=5)
    assert poi == pytest.approx(20 / 25)  # 4 + 2.5 + 5 + 3.5 + 5 wins (a tie counts one half)
    assert (low, high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert 0 <= low <= poi <= high <= 1


def test_improvements_lower_is_better_counts_lower_values():
    table = frame({"A": [1.0, 2.0, 3.0], "B": [2.5, 3.5, 4.5]})
    rows = improvements(table, "hypervolume", [("A", "B")], higher_is_better=False, n_resamples=FAST)
    assert rows["poi"].iloc[0] == pytest.approx(np.mean([[x < y for y in [2.5, 3.5, 4.5]] for x in [1, 2, 3]]))
    with pytest.raises(ValueError, match=r"labels with runs: \['A', 'B'\]"):
        improvements(table, "hypervolume", [("A", "Z")])


# summary and findings --------------------------------------------------------------------------------------


def test_summary_table_orders_best_first_and_drops_missing_runs():
    table = frame(SAMPLES | {"D": [0.70]})
    table.loc[len(table)] = {"label": "D", "seed": 1, "hypervolume": float("nan")}
    summary = summary_table(table, "hypervolume", n_resamples=FAST)
    assert list(summary["label"]) == ["A", "B", "D", "C"]
    assert list(summary["n"]) == [5, 5, 1, 5]
    assert list(summary["group"]) == ["a", "a", "ab", "b"]
    for row in summary.itertuples():
        expected = mean_interval(table[table["label"] == row.label]["hypervolume"].dropna(), n_resamples=FAST)
        np.testing.assert_allclose([row.mean, row.ci_low, row.ci_high], expected)
    lowest = summary_table(frame(SAMPLES), "hypervolume", higher_is_better=False, n_resamples=FAST)
    assert list(lowest["label"]) == ["C", "B", "A"] and list(lowest["group"]) == ["a", "b", "b"]


def test_findings_state_the_tests_and_nothing_more():
    table = frame(SAMPLES | {"D": [0.70]})
    summary = summary_table(table, "hypervolume", n_resamples=FAST)
    pairs = pairwise(table, "hypervolume")
    poi = improvements(table, "hypervolume", [("A", "B")], n_resamples=FAST)
    lines = findings(summary, pairs, poi, "hypervolume")
    a = summary.iloc[0]
    assert lines[0] == (
        f"A has the highest mean hypervolume (0.81, 95% CI {a['ci_low']:.4g}–{a['ci_high']:.4g}, 5 seeds); "
        "the corrected tests do not separate it from B."
    )
    assert (
        lines[1] == "A beats C (+0.2, p < 0.001) on hypervolume (mean difference, Welch's test with Holm-adjusted p)."
    )
    assert (
        lines[2] == "B beats C (+0.19, p < 0.001) on hypervolume (mean difference, Welch's test with Holm-adjusted p)."
    )
    row = poi.iloc[0]
    # A = B + 0.01: 19 wins and 3 ties of 25 pairs of runs
    ab = pairs[(pairs["a"] == "A") & (pairs["b"] == "B")].iloc[0]
    assert not ab["separated"] and ab["p_holm"] > 0.05
    raw = stats.ttest_ind(SAMPLES["A"], SAMPLES["B"], equal_var=False).pvalue  # the largest of 3: Holm x1
    assert ab["p_holm"] == pytest.approx(raw)
    assert lines[3] == (
        f"P(A > B) = 0.82 (95% CI {row.ci_low:.2f}–{row.ci_high:.2f}; 5 × 5 runs); Welch, Holm over the 1 headline "
        f"pair: not separated (p = {raw:.3g}); over all 3 pairs: not separated (p = {raw:.3g}); a match within "
        f"±0.01 (two one-sided Welch tests, Holm over the headline pairs): not shown (p = {poi.equivalence_p[0]:.3g})."
    )
    assert lines[4] == "No test is possible for D: it has 1 seed, a test needs at least 2."
    assert len(lines) == 5
    assert not any(word in line.lower() for line in lines for word in ("tied", "tie ", "equal"))


def test_headline_pairs_are_tested_as_a_planned_family_and_among_all_pairs():
    """Holm over the headline pairs alone (planned) and over every pair, by hand from scipy's Welch p."""
    a = np.array(SAMPLES["A"])
    table = frame({"A": list(a), "B": list(a - 0.01), "G": list(a - 0.02)})
    summary = summary_table(table, "hypervolume", n_resamples=FAST)
    pairs = pairwise(table, "hypervolume")
    p = {
        (x, y): stats.ttest_ind(
            table[table.label == x].hypervolume, table[table.label == y].hypervolume, equal_var=False
        ).pvalue
        for x, y in (("A", "G"), ("A", "B"), ("B", "G"))
    }
    assert p["A", "G"] < 0.05 / 3 and p["A", "B"] > 0.05  # the planned family separates A, G; A, B stays apart
    headline = improvements(table, "hypervolume", [("G", "A"), ("A", "B")], n_resamples=FAST)
    lines = findings(summary, pairs, headline, "hypervolume")
    every_ab = max(2 * p["A", "B"], 2 * p["B", "G"], 3 * p["A", "G"])  # Holm over 3, made monotone
    assert lines[-2].startswith("P(G > A) = 0.00") and (
        f"; Welch, Holm over the 2 headline pairs: A is better (p = {2 * p['A', 'G']:.3g}); over all 3 pairs: "
        f"A is better (p = {3 * p['A', 'G']:.3g}); a match" in lines[-2]
    )
    assert (
        f"; Welch, Holm over the 2 headline pairs: not separated (p = {p['A', 'B']:.3g}); over all 3 pairs: "
        f"not separated (p = {min(every_ab, 1):.3g}); a match" in lines[-1]
    )


def welch_one_sided(x: np.ndarray, y: np.ndarray, shift: float) -> float:
    """P(T >= t) for Welch's t of mean(x) - mean(y) + shift, by the textbook formulas."""
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    t = (x.mean() - y.mean() + shift) / np.sqrt(vx + vy)
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    return float(stats.t.sf(t, df))


def test_equivalence_is_two_one_sided_welch_tests_and_a_match_needs_evidence():
    rng = np.random.default_rng(4)
    x, y = 0.70 + 0.002 * rng.standard_normal(20), 0.701 + 0.002 * rng.standard_normal(20)
    lower, upper = welch_one_sided(x, y, 0.01), 1 - welch_one_sided(x, y, -0.01)  # H0 d <= -m, H0 d >= m
    assert equivalence_p(x, y, 0.01) == pytest.approx(max(lower, upper), rel=1e-9)
    assert equivalence_p(x, y, 0.01) < 1e-6 and equivalence_p(y, x, 0.01) == pytest.approx(equivalence_p(x, y, 0.01))
    assert equivalence_p(x, y + 0.02, 0.01) > 0.5  # a real difference beyond the margin: no match
    wide = (np.array([0.60, 0.70, 0.80]), np.array([0.61, 0.71, 0.81]))  # close means, too noisy to tell
    assert equivalence_p(*wide, 0.01) > 0.4 and np.isnan(equivalence_p([0.7], [0.7, 0.71], 0.01))

    table = frame({"A": list(x), "B": list(y)})
    summary, pairs = summary_table(table, "hypervolume", n_resamples=FAST), pairwise(table, "hypervolume")
    rows = improvements(table, "hypervolume", [("A", "B")], n_resamples=FAST)
    assert rows.margin[0] == EQUIVALENCE_MARGIN and rows.equivalence_p[0] == pytest.approx(equivalence_p(x, y, 0.01))
    last = findings(summary, pairs, rows, "hypervolume")[-1]
    assert last.endswith(
        "; a match within ±0.01 (two one-sided Welch tests, Holm over the headline pairs): shown (p < 0.001)."
    )


def test_a_win_over_a_method_still_improving_says_so_and_the_unconverged_are_listed():
    table = frame(SAMPLES)
    summary = summary_table(table, "hypervolume", n_resamples=FAST)
    pairs = pairwise(table, "hypervolume")
    none = improvements(table, "hypervolume", [])
    lines = findings(summary, pairs, none, "hypervolume", gains={"A": 0.001, "B": 0.0, "C": 0.0123}, plateau=0.003)
    assert lines[1] == (
        "A beats C† (+0.2, p < 0.001) on hypervolume (mean difference, Welch's test with Holm-adjusted p; "
        "† had not plateaued, so a longer budget may narrow that gap)."
    )
    assert lines[2].startswith("B beats C† (+0.19, p < 0.001)")
    assert lines[-1] == (
        "Not plateaued at the end of training (validation hypervolume still rising by 0.003 or more over the "
        "last 20%, mean over seeds): C (+0.0123); a longer budget may raise their numbers."
    )
    lower = frame(SAMPLES | {"E": [0.40, 0.41, 0.42, 0.405, 0.415]})  # A beats two: one sentence lists both
    wide = findings(
        summary_table(lower, "hypervolume", n_resamples=FAST),
        pairwise(lower, "hypervolume"),
        none,
        "hypervolume",
        gains={"E": 0.004},
    )
    assert wide[1] == (
        "A beats C (+0.2, p < 0.001), E† (+0.4, p < 0.001) on hypervolume (mean difference, Welch's test with "
        "Holm-adjusted p; † had not plateaued, so a longer budget may narrow that gap)."
    )
    assert wide[2].startswith("B beats C (+0.19, p < 0.001), E† (+0.39") and wide[3].startswith("C beats E†")
    calm = findings(summary, pairs, none, "hypervolume", gains={"A": 0.002, "C": -0.01}, plateau=0.003)
    assert (
        calm[1].endswith("Holm-adjusted p).")
        and "†" not in calm[1]
        and calm[-1].startswith("Every method had plateaued")
    )
    assert findings(summary, pairs, none, "hypervolume") == findings(summary, pairs, none, "hypervolume", gains={})


def test_findings_when_nothing_is_separated_or_testable():
    table = frame({"A": [1.0, 2.0, 3.0], "B": [1.5, 2.5, 1.5]})
    pairs = pairwise(table, "hypervolume", higher_is_better=False)
    summary = summary_table(table, "hypervolume", higher_is_better=False, n_resamples=FAST)
    lines = findings(summary, pairs, improvements(table, "hypervolume", []), "loss", higher_is_better=False)
    assert lines[0].startswith("B has the lowest mean loss (1.833, 95% CI ")
    assert lines[0].endswith("; the corrected tests do not separate it from A.")
    assert lines[1] == "The corrected tests (Welch, Holm over 1 pair) separate no two methods."
    single = frame({"A": [1.0], "B": [2.0]})
    summary, pairs = summary_table(single, "hypervolume"), pairwise(single, "hypervolume")
    lines = findings(summary, pairs, improvements(single, "hypervolume", []), "hv")
    assert lines == [
        "B has the highest mean hv (2, 1 seed).",
        "No test is possible for B: it has 1 seed, a test needs at least 2.",
        "No test is possible for A: it has 1 seed, a test needs at least 2.",
    ]


def test_validation_gains_average_each_counted_runs_fitted_rise():
    from bench.analysis.seed_statistics import validation_gains

    steps = np.arange(10, 101, 10)

    def curve(run_id: str, label: str, slope: float, evaluations: int = 10) -> pd.DataFrame:
        return pd.DataFrame(
            {"dataset": "d", "label": label, "run_id": run_id, "step": steps[:evaluations], "hypervolume": 0.5}
        ).assign(hypervolume=lambda f: 0.5 + slope * f["step"])

    curves = pd.concat(
        [
            curve("x0", "X", 0.001),  # rises 0.001 a step over steps 80-100: +0.02
            curve("x1", "X", 0.0),
            curve("x2", "X", 0.5),  # not counted (a duplicate seed, say)
            curve("y0", "Y", 0.001, evaluations=8),  # steps 70-80: only 2 evaluations in its last 20%
        ]
    )
    counted = pd.DataFrame({"run_id": ["x0", "x1", "y0"]})
    gains = validation_gains(curves, counted)
    assert gains.to_dict("records") == [{"dataset": "d", "label": "X", "gain": pytest.approx(0.01), "runs": 2}]
