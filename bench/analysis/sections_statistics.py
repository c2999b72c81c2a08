"""The report's statistics over seeds (:mod:`bench.analysis.statistics`), per dataset on the test
hypervolume: bootstrap intervals and letter groups, Holm-corrected Welch tests of every pair, the
probability of improvement of the headline pairs, and the findings those support."""

from __future__ import annotations

import pandas as pd

from bench.analysis.context import ReportContext
from bench.analysis.section import Section
from bench.analysis.statistics import findings
from bench.analysis.tables import markdown, write_table
from bench.analysis.tuning import PLATEAU_GAIN


def pairs_display(pairs: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dataset": pairs["dataset"],
            "better mean": pairs["a"],
            "other": pairs["b"],
            "runs": [f"{a} × {b}" for a, b in zip(pairs["n_a"], pairs["n_b"], strict=True)],
            "difference": [f"{d:+.4f}" for d in pairs["difference"]],
            "Welch p": [f"{p:.3g}" for p in pairs["p"]],
            "Holm p": [f"{p:.3g}" for p in pairs["p_holm"]],
            "separated": ["yes" if s else "no" for s in pairs["separated"]],
        }
    )


def statistics_section(ctx: ReportContext) -> Section:
    summaries, all_pairs, all_poi, sentences = [], [], [], []
    gains = ctx.validation_gains
    for dataset, (summary, pairs, poi) in ctx.statistics.items():
        mine = gains[gains["dataset"] == dataset].set_index("label")["gain"]
        summaries.append(summary.assign(dataset=dataset, val_gain=summary["label"].map(mine)))
        all_pairs.append(pairs.assign(dataset=dataset))
        all_poi.append(poi.assign(dataset=dataset))
        found = findings(summary, pairs, poi, "test hypervolume", gains=mine.to_dict(), plateau=PLATEAU_GAIN)
        sentences += [f"{dataset}: {s}" for s in found]
    if not summaries:
        return Section()
    summary, pairs, poi = (pd.concat(parts, ignore_index=True) for parts in (summaries, all_pairs, all_poi))
    display = pd.DataFrame(
        {
            "dataset": summary["dataset"],
            "method": summary["label"],
            "seeds": summary["n"],
            "mean HV": [f"{m:.4f}" for m in summary["mean"]],
            "95% CI": [
                "–" if pd.isna(lo) else f"{lo:.4f}–{hi:.4f}"
                for lo, hi in zip(summary["ci_low"], summary["ci_high"], strict=True)
            ],
            "group": summary["group"],
            "val gain, last 20%": ["–" if pd.isna(g) else f"{g:+.4f}" for g in summary["val_gain"]],
        }
    )
    caption = "Test hypervolume: mean, 95% bootstrap CI, groups; validation gain over the last 20% of training"
    files = write_table(summary, display, ctx.tables_dir, "statistics", caption)
    files += write_table(
        pairs, pairs_display(pairs), ctx.tables_dir, "pairwise", "Welch tests of every pair, Holm-adjusted"
    )
    lines = [
        "## Statistics over seeds",
        "",
        "Seeds are the replicates; methods are not paired across seeds. Mean test hypervolume with a 95% BCa "
        "bootstrap interval (scipy; with 5 seeds or fewer a bootstrap interval is narrower than a t-interval "
        "and under-covers, so read the groups, not the intervals, for a comparison). Groups: a compact letter "
        "display (Piepho 2004) of Welch's t-tests of every pair with Holm's correction over the dataset's "
        "pairs at 0.05; methods sharing a letter are not separated by the tests, which does not make them "
        "equal. Welch, not a rank test: an exact rank test of 5 against 5 runs cannot go below p = 2/252, "
        "which no Holm correction over many pairs passes. Every pair's test: `tables/pairwise.csv`. "
        "Val gain: the validation hypervolume's rise over the last 20% of training, fitted by least squares "
        f"and averaged over seeds; {PLATEAU_GAIN} or more means the method had not plateaued (the tuned "
        "protocol's budget rule), and a finding that it lost marks it †.",
        "",
        markdown(display),
    ]
    if len(poi):
        lines += [
            "Probability of improvement (Agarwal et al. 2021): P(run of A > run of B) + P(equal) / 2 over all "
            "pairs of runs, with a 95% percentile bootstrap interval. The headline pairs were fixed before any "
            "run, so the findings also test them as a planned family: Welch, Holm over the headline pairs "
            "alone, beside Holm over every pair. Match: two one-sided Welch tests (TOST, Schuirmann 1987) of "
            "a difference in mean test hypervolume within the margin, fixed before any run of the tuned "
            "comparison existed; TOST p is unadjusted here, Holm over the headline pairs in the findings. "
            "A large TOST p does not show a match, nor does it show a difference.",
            "",
            markdown(
                pd.DataFrame(
                    {
                        "dataset": poi["dataset"],
                        "A": poi["a"],
                        "B": poi["b"],
                        "runs": [f"{a} × {b}" for a, b in zip(poi["n_a"], poi["n_b"], strict=True)],
                        "P(A > B)": [f"{p:.2f}" for p in poi["poi"]],
                        "95% CI": [
                            "–" if pd.isna(lo) else f"{lo:.2f}–{hi:.2f}"
                            for lo, hi in zip(poi["ci_low"], poi["ci_high"], strict=True)
                        ],
                        "match margin": [f"±{m:g}" for m in poi["margin"]],
                        "TOST p": ["–" if pd.isna(p) else f"{p:.3g}" for p in poi["equivalence_p"]],
                    }
                )
            ),
        ]
        files += write_table(poi, poi, ctx.tables_dir, "improvement", "Probability of improvement, headline pairs")
    described = "per method: mean, bootstrap CI, groups; every pair's Welch test; headline improvements"
    return Section(lines, [(files, described)], sentences)
