"""Comparing methods over seeds: bootstrap intervals, corrected pairwise tests, letter groups and the
probability of improvement, and the plain findings that follow from them (spec/evaluation.md, Statistics).

Seeds are the unit of replication and methods are not paired across seeds, so every comparison treats
two methods' runs as independent samples. A frame holds one dataset: columns ``label``, ``seed`` and a
value column; higher is better unless ``higher_is_better=False``. Only ``scipy.stats`` is used.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations
from string import ascii_letters

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
EQUIVALENCE_MARGIN = 0.01
"""The largest difference in test hypervolume that counts as a match (the headline claim "PaLoRA
matches PaMaL"): fixed before any run of the tuned comparison (its five seeds) existed, at about
one seed-to-seed standard deviation of a front method (multimnist-mini: 0.006-0.016)."""
PAIR_COLUMNS = ["a", "b", "n_a", "n_b", "difference", "p", "p_holm", "separated"]


def mean_interval(
    values: Sequence[float] | np.ndarray, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0
) -> tuple[float, float, float]:
    """The mean and its bootstrap interval (BCa, Efron 1987; the percentile method where BCa is
    degenerate). Identical values give ``(x, x, x)``; a single value gives ``(x, nan, nan)``."""
    x = np.asarray(values, dtype=float)
    if x.size == 0 or not np.isfinite(x).all():
        raise ValueError(f"expected one or more finite values, found {x.tolist()}: drop missing runs first")
    mean = float(x.mean())
    if x.size == 1:
        return mean, float("nan"), float("nan")
    if np.all(x == x[0]):
        return mean, mean, mean
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)  # near-identical values: 0/0 in BCa
            warnings.simplefilter("ignore", RuntimeWarning)
            ci = stats.bootstrap(
                (x,), np.mean, confidence_level=confidence, n_resamples=n_resamples, method=method, rng=seed
            ).confidence_interval
        if np.isfinite([ci.low, ci.high]).all():
            break
    return mean, float(ci.low), float(ci.high)


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (Holm 1979): the i-th smallest of m is multiplied by m - i + 1,
    made monotone by a running maximum and capped at 1. NaN entries stay NaN and do not count in m."""
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full_like(p, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    scaled = p[order] * (m - np.arange(m))
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


def _best_first(means: Mapping[str, float], higher_is_better: bool) -> list[str]:
    """Labels by mean, best first; equal means by label."""
    return sorted(means, key=lambda k: (-means[k] if higher_is_better else means[k], k))


def _by_label(table: pd.DataFrame, value: str, higher_is_better: bool) -> dict[str, np.ndarray]:
    """Each label's finite values, best mean first."""
    clean = table.dropna(subset=[value])
    samples = {str(k): g[value].to_numpy(dtype=float) for k, g in clean.groupby("label")}
    means = {label: float(x.mean()) for label, x in samples.items()}
    return {label: samples[label] for label in _best_first(means, higher_is_better)}


def pairwise(table: pd.DataFrame, value: str, higher_is_better: bool = True, alpha: float = ALPHA) -> pd.DataFrame:
    """Every unordered pair of labels, the better mean as ``a``: sizes, ``mean_a - mean_b``, Welch's
    two-sided t-test p (Welch 1947), its Holm adjustment over all pairs, and ``separated`` (adjusted p
    below ``alpha``). A side with fewer than 2 seeds gives NaN p and is never separated.

    Welch and not a rank test: with 5 against 5 seeds an exact rank or permutation test cannot go below
    p = 2/252 ≈ 0.008, which no Holm correction over many pairs can pass; Welch also allows unequal
    variances. Two constant samples give p = 0 when their values differ and NaN when they agree."""
    samples = _by_label(table, value, higher_is_better)
    rows = []
    for a, b in combinations(samples, 2):
        x, y = samples[a], samples[b]
        p = float("nan")
        if len(x) >= 2 and len(y) >= 2:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                p = float(stats.ttest_ind(x, y, equal_var=False).pvalue)
        rows.append({"a": a, "b": b, "n_a": len(x), "n_b": len(y), "difference": x.mean() - y.mean(), "p": p})
    pairs = pd.DataFrame(rows, columns=PAIR_COLUMNS[:-2])
    pairs["p_holm"] = holm(pairs["p"].to_numpy(dtype=float))
    pairs["separated"] = pairs["p_holm"] < alpha
    return pairs


def groups(
    means: Mapping[str, float], separated_pairs: Iterable[tuple[str, str]], higher_is_better: bool = True
) -> dict[str, str]:
    """A compact letter display by insert-absorb (Piepho 2004, J. Comp. Graph. Stat. 13(2)): labels that
    share a letter are not separated; ``a`` is the group of the best mean, later letters follow the means."""
    rank = {label: i for i, label in enumerate(_best_first(means, higher_is_better))}
    columns: list[frozenset[str]] = [frozenset(rank)]
    for i, j in separated_pairs:
        split = [c for c in columns if i in c and j in c]
        kept = [c for c in columns if not (i in c and j in c)]
        for c in split:
            kept += [c - {i}, c - {j}]
        columns = [
            c for n, c in enumerate(kept) if c and not any(c < d or (c == d and m < n) for m, d in enumerate(kept))
        ]
    columns.sort(key=lambda c: sorted(rank[label] for label in c))
    if len(columns) > len(ascii_letters):
        raise ValueError(f"{len(columns)} letter groups needed, at most {len(ascii_letters)} can be written")
    return {label: "".join(ascii_letters[n] for n, c in enumerate(columns) if label in c) for label in rank}


def _poi(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    diff = np.moveaxis(x, axis, -1)[..., :, None] - np.moveaxis(y, axis, -1)[..., None, :]
    return np.asarray((diff > 0).mean(axis=(-2, -1)) + 0.5 * (diff == 0).mean(axis=(-2, -1)))


def probability_of_improvement(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """P(X_a > X_b) + P(X_a = X_b) / 2 over all pairs of runs, i.e. the Mann-Whitney U of ``a`` over
    ``n_a n_b`` (Agarwal et al., NeurIPS 2021, rliable), with a percentile bootstrap interval that
    resamples the two samples independently; ``(p, nan, nan)`` when a side has a single run."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size == 0 or y.size == 0:
        raise ValueError(f"expected runs on both sides, found {x.size} and {y.size}")
    point = float(_poi(x, y))
    if x.size < 2 or y.size < 2:
        return point, float("nan"), float("nan")
    ci = stats.bootstrap(
        (x, y), _poi, confidence_level=confidence, n_resamples=n_resamples, method="percentile", rng=seed
    ).confidence_interval
    return point, float(ci.low), float(ci.high)


def equivalence_p(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, margin: float) -> float:
    """Two one-sided Welch t-tests (TOST, Schuirmann 1987) of |mean(a) - mean(b)| < ``margin``: the larger
    of the p-values of H0 "difference <= -margin" and H0 "difference >= margin". Small p shows the two
    equivalent within the margin; a large one shows nothing (too few runs, or a real difference). NaN
    with fewer than 2 runs a side or no spread."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size < 2 or y.size < 2:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        above = stats.ttest_ind(x + margin, y, equal_var=False, alternative="greater").pvalue
        below = stats.ttest_ind(x - margin, y, equal_var=False, alternative="less").pvalue
    return float(max(above, below))


def improvements(
    table: pd.DataFrame,
    value: str,
    headline: Iterable[tuple[str, str]],
    higher_is_better: bool = True,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
    margin: float = EQUIVALENCE_MARGIN,
) -> pd.DataFrame:
    """The probability that ``a`` improves on ``b`` (:func:`probability_of_improvement`) for each headline
    pair, and the TOST p-value of their equivalence within ``margin`` (:func:`equivalence_p`); with
    ``higher_is_better=False`` an improvement is a lower value."""
    samples = _by_label(table, value, higher_is_better)
    sign = 1.0 if higher_is_better else -1.0
    rows = []
    for a, b in headline:
        missing = [label for label in (a, b) if label not in samples]
        if missing:
            raise ValueError(f"no {value} runs for {missing}; labels with runs: {sorted(samples)}")
        poi, low, high = probability_of_improvement(sign * samples[a], sign * samples[b], confidence, n_resamples, seed)
        rows.append(
            {"a": a, "b": b, "n_a": len(samples[a]), "n_b": len(samples[b])}
            | {"poi": poi, "ci_low": low, "ci_high": high, "margin": margin}
            | {"equivalence_p": equivalence_p(samples[a], samples[b], margin)}
        )
    columns = ["a", "b", "n_a", "n_b", "poi", "ci_low", "ci_high", "margin", "equivalence_p"]
    return pd.DataFrame(rows, columns=columns)


def summary_table(
    table: pd.DataFrame,
    value: str,
    higher_is_better: bool = True,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
    pairs: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per label, best mean first: runs, mean, bootstrap interval (:func:`mean_interval`) and the letter
    groups of the corrected pairwise tests (:func:`pairwise`, :func:`groups`; ``pairs`` when the caller
    has them already)."""
    samples = _by_label(table, value, higher_is_better)
    if pairs is None:
        pairs = pairwise(table, value, higher_is_better)
    means = {label: float(x.mean()) for label, x in samples.items()}
    letters = groups(
        means, zip(pairs["a"][pairs["separated"]], pairs["b"][pairs["separated"]], strict=True), higher_is_better
    )
    rows = [
        dict(zip(["mean", "ci_low", "ci_high"], mean_interval(x, confidence, n_resamples, seed), strict=True))
        | {"label": label, "n": len(x), "group": letters[label]}
        for label, x in samples.items()
    ]
    return pd.DataFrame(rows, columns=["label", "n", "mean", "ci_low", "ci_high", "group"])


def _p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3g}"


def _pair_row(tested: pd.DataFrame, a: str, b: str) -> pd.Series | None:
    """The test of the pair ``a``, ``b`` (either order) in ``tested``; None when it was not tested."""
    match = tested[((tested["a"] == a) & (tested["b"] == b)) | ((tested["a"] == b) & (tested["b"] == a))]
    return None if match.empty else match.iloc[0]


def _pair_verdict(row: pd.Series | None, p_planned: float, planned: int, everything: int, alpha: float) -> str:
    """What Welch's test of a headline pair concluded, Holm-adjusted over the ``planned`` headline pairs
    (a family fixed before the runs) and over ``everything`` pairs of the table; '' when untested."""
    if row is None or not np.isfinite(p_planned):
        return ""

    def verdict(p: float) -> str:
        return f"{row['a']} is better ({_p_text(p)})" if p < alpha else f"not separated ({_p_text(p)})"

    return (
        f"; Welch, Holm over the {planned} headline pair{'s' if planned != 1 else ''}: {verdict(p_planned)}; "
        f"over all {everything} pairs: {verdict(row['p_holm'])}"
    )


def _match_verdict(p: float, margin: float, alpha: float) -> str:
    """Whether a headline pair's TOST (Holm over the headline pairs) shows a match within ``margin``."""
    if not np.isfinite(p):
        return ""
    shown = "shown" if p < alpha else "not shown"
    test = "two one-sided Welch tests, Holm over the headline pairs"
    return f"; a match within ±{margin:g} ({test}): {shown} ({_p_text(p)})"


def findings(
    summary: pd.DataFrame,
    pairs: pd.DataFrame,
    improvement_rows: pd.DataFrame,
    value_name: str,
    higher_is_better: bool = True,
    confidence: float = 0.95,
    gains: Mapping[str, float] | None = None,
    plateau: float = 0.003,
    alpha: float = ALPHA,
) -> list[str]:
    """Plain sentences that state what :func:`summary_table`, :func:`pairwise` and :func:`improvements`
    found, and nothing more: methods the corrected tests do not separate are never called tied.
    ``gains``: each label's validation gain over its last 20% of training; a method whose gain is
    ``plateau`` or more had not converged, and a win over it marks it †. One sentence per winner lists
    every method it beats. Each headline pair (``improvement_rows``) also gets its Welch test,
    Holm-adjusted over the headline pairs alone (a family named before any run: planned comparisons)
    and over all pairs."""
    if summary.empty:
        return [f"No runs report {value_name}: nothing to compare."]
    level, best = f"{confidence:.0%}", summary.iloc[0]
    extreme = "highest" if higher_is_better else "lowest"
    spread = f"{level} CI {best['ci_low']:.4g}–{best['ci_high']:.4g}, " if best["n"] >= 2 else ""
    seeds = f"{best['n']} seed" + ("s" if best["n"] != 1 else "")
    lead = f"{best['label']} has the {extreme} mean {value_name} ({best['mean']:.4g}, {spread}{seeds})"
    mine = pairs[(pairs["a"] == best["label"]) & pairs["p"].notna()]
    close = list(mine["b"][~mine["separated"]])
    if close:
        lead += f"; the corrected tests do not separate it from {', '.join(close)}"
    elif len(mine):
        lead += "; the corrected tests separate it from every other method tested"
    sentences = [lead + "."]
    tested = pairs[pairs["p"].notna()]
    rising = {label: gain for label, gain in (gains or {}).items() if gain >= plateau}
    for winner, won in tested[tested["separated"]].groupby("a", sort=False):  # one sentence per winner
        beaten = ", ".join(
            f"{row.b}{'†' if row.b in rising else ''} ({row.difference:+.4g}, {_p_text(row.p_holm)})"
            for row in won.itertuples()
        )
        caveat = (
            "; † had not plateaued, so a longer budget may narrow that gap"
            if any(b in rising for b in won["b"])
            else ""
        )
        sentences.append(
            f"{winner} beats {beaten} on {value_name} (mean difference, Welch's test with Holm-adjusted p{caveat})."
        )
    if len(tested) and not tested["separated"].any():
        count = f"{len(tested)} pair" + ("s" if len(tested) != 1 else "")
        sentences.append(f"The corrected tests (Welch, Holm over {count}) separate no two methods.")
    relation = ">" if higher_is_better else "<"
    headline = [_pair_row(tested, row.a, row.b) for row in improvement_rows.itertuples()]
    p_headline = holm([float("nan") if pair is None else pair["p"] for pair in headline])
    counted = int(np.isfinite(p_headline).sum())
    p_match = holm(improvement_rows["equivalence_p"].to_numpy(dtype=float))
    for row, pair, p_planned, p_equal in zip(improvement_rows.itertuples(), headline, p_headline, p_match, strict=True):
        interval = f"{level} CI {row.ci_low:.2f}–{row.ci_high:.2f}" if np.isfinite(row.ci_low) else "no interval"
        sentences.append(
            f"P({row.a} {relation} {row.b}) = {row.poi:.2f} ({interval}; {row.n_a} × {row.n_b} runs)"
            f"{_pair_verdict(pair, p_planned, counted, len(tested), alpha)}"
            f"{_match_verdict(p_equal, row.margin, alpha)}."
        )
    for row in summary[summary["n"] < 2].itertuples():
        sentences.append(f"No test is possible for {row.label}: it has {row.n} seed, a test needs at least 2.")
    if rising:
        listed = ", ".join(f"{label} ({gain:+.3g})" for label, gain in sorted(rising.items(), key=lambda x: -x[1]))
        sentences.append(
            f"Not plateaued at the end of training (validation hypervolume still rising by {plateau} or more over "
            f"the last 20%, mean over seeds): {listed}; a longer budget may raise their numbers."
        )
    elif gains:
        sentences.append(
            f"Every method had plateaued (validation hypervolume rising by less than {plateau} over the last 20% "
            "of training, mean over seeds)."
        )
    return sentences
