"""The table of the PaMaL order-regulariser ablation (issue 25): test HV and front span per
``method.regulariser`` and seed, and a paired comparison of the three settings over seeds.

    python tools/pamal_regulariser_ablation.py runs/ablations/pamal-regulariser \
        --out results/ablations/pamal-regulariser.md

Reads the COMPLETED records of ``results/ablations/pamal-regulariser.toml``'s sweep (a record of a
superseded configuration, same regulariser and seed, is skipped in favour of the spec's). The
comparison pairs the settings by seed (same initial weights and batches) and applies a two-sided
paired t-test to the HV differences, Holm-corrected over the three pairs (shared/spec/evaluation.md,
"Statistics"). With three seeds a t-test is the only test that can reach p < 0.05, and it leans on
the differences being roughly normal; the table says so.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.analysis.records import scan  # noqa: E402
from bench.core import atomic  # noqa: E402
from bench.core.hypervolume import front_hypervolume, minimization_points  # noqa: E402
from bench.core.registry import DATASETS, load_all  # noqa: E402
from bench.sweep.spec import load_spec  # noqa: E402

SPEC = ROOT / "results" / "ablations" / "pamal-regulariser.toml"
MADE_WITH = (
    "    python -m bench prepare multifashion",
    "    python -m bench.sweep results/ablations/pamal-regulariser.toml --cluster local \\",
    "        --out runs/ablations/pamal-regulariser",
    "    python tools/pamal_regulariser_ablation.py runs/ablations/pamal-regulariser \\",
    "        --out results/ablations/pamal-regulariser.md",
)
SETTINGS = {
    "paper": "`paper` (relu(-diff), Sec. 3.2)",
    "none": "`none` (nik-dim/palora's trainer)",
    "official": "`official` (relu(diff), nik-dim/pamal)",
}


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979), in the input order."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted = [0.0] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def collect(runs_dir: Path) -> dict[str, dict[int, dict[str, object]]]:
    """Per regulariser and seed: test HV, per-task span and best error, and the run id."""
    spec_ids = {cfg.run_id() for cfg in load_spec(SPEC).configs()}
    out: dict[str, dict[int, dict[str, object]]] = {}
    for run in scan(runs_dir):
        if not run.usable or run.run_id not in spec_ids:
            continue
        dataset = DATASETS.get(run.dataset)
        points = minimization_points(run.summary["front"], dataset)
        out.setdefault(run.config["method_hparams"]["regulariser"], {})[run.seed] = {
            "run_id": run.run_id,
            "hv": front_hypervolume(run.summary["front"], dataset),
            "span": points.max(axis=0) - points.min(axis=0),
            "best": points.min(axis=0),
            "commits": [run.config.get("git_sha", "")[:7]]
            + [str(r.get("git_sha", ""))[:7] for r in run.summary.get("resumed", [])],
        }
    return out


def report(results: dict[str, dict[int, dict[str, object]]]) -> str:
    lines = [
        "# PaMaL's order regulariser on MultiFashion: official, paper, none",
        "",
        "PaMaL with its order regulariser switched on (`method.reg_coefficient = 1`; the MultiFashion preset",
        'has 0) under each value of `method.regulariser` (FIDELITY.md, "PaMaL order regulariser (sign)").',
        "Everything else is the MultiFashion protocol and the PaMaL preset: window 4, annealing sampler, inner",
        "`ls`, 10 epochs, Adam 1e-3, batch 256. Test split, 11 evaluation rays, hypervolume of the errors at",
        "reference (1, 1). Span: the largest minus the smallest test error of that task over the 11 rays.",
        "",
        "| `method.regulariser` | seed | test HV | span top-left | span bottom-right | best error top-left"
        " | best error bottom-right |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, label in SETTINGS.items():
        for seed, row in sorted(results.get(name, {}).items()):
            cells = [row["hv"], *row["span"], *row["best"]]  # type: ignore[misc]
            lines.append(f"| {label} | {seed} | " + " | ".join(f"{v:.4f}" for v in cells) + " |")
    lines += ["", "| `method.regulariser` | seeds | test HV, mean ± sd | mean span top-left | mean span bottom-right |"]
    lines.append("|---|---|---|---|---|")
    for name in SETTINGS:
        rows = list(results.get(name, {}).values())
        if not rows:
            continue
        hvs = [float(r["hv"]) for r in rows]
        sd = statistics.stdev(hvs) if len(hvs) > 1 else float("nan")
        spans = np.mean([r["span"] for r in rows], axis=0)
        hv = f"{statistics.mean(hvs):.4f} ± {sd:.4f}"
        lines.append(f"| `{name}` | {len(hvs)} | {hv} | {spans[0]:.4f} | {spans[1]:.4f} |")

    pairs = list(itertools.combinations(SETTINGS, 2))
    tests = []
    for a, b in pairs:
        seeds = sorted(set(results.get(a, {})) & set(results.get(b, {})))
        diffs = [float(results[a][s]["hv"]) - float(results[b][s]["hv"]) for s in seeds]
        p = float(stats.ttest_rel([results[a][s]["hv"] for s in seeds], [results[b][s]["hv"] for s in seeds]).pvalue)
        tests.append((a, b, seeds, diffs, p))
    adjusted = holm([t[4] for t in tests])
    lines += [
        "",
        "Paired over seeds (same initial weights and batches): HV difference per seed, two-sided paired",
        "t-test, Holm-corrected over the three pairs.",
        "",
        "| pair | HV difference per seed | mean | p | p (Holm) |",
        "|---|---|---|---|---|",
    ]
    for (a, b, seeds, diffs, p), p_holm in zip(tests, adjusted, strict=True):
        per_seed = ", ".join(f"s{s} {d:+.4f}" for s, d in zip(seeds, diffs, strict=True))
        lines.append(f"| `{a}` − `{b}` | {per_seed} | {statistics.mean(diffs):+.4f} | {p:.3g} | {p_holm:.3g} |")
    lines += [
        "",
        "With three seeds only a parametric test can separate settings (no rank test reaches p < 0.05 for",
        "3 against 3), so the p-values assume roughly normal per-seed differences. A pair whose corrected",
        "p is above 0.05 is not shown to differ; that does not make it a tie.",
        "",
        "Made with (runs under `runs/`, not committed):",
        "",
        *MADE_WITH,
        "",
        "Runs: " + ", ".join(str(r["run_id"]) for name in SETTINGS for _, r in sorted(results.get(name, {}).items())),
        "(their records name commits "
        + ", ".join(sorted({c for rows in results.values() for r in rows.values() for c in r["commits"] if c}))  # type: ignore[attr-defined]
        + "; the regulariser code they ran is de72ff0's, which the first runs had in their working tree",
        "before it was committed).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, help="the sweep's --out folder")
    parser.add_argument("--out", type=Path, help="write the markdown here (default: print it)")
    args = parser.parse_args(argv)
    load_all()
    text = report(collect(args.runs))
    if args.out:
        atomic.write_text(args.out, text)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
