"""Regenerate tables and figures from run records alone: ``python -m bench.report --runs runs/ --out results/``.

Without ``--out`` the report goes to a fresh folder, ``reports/<UTC time>/``: an existing report (the
committed ``results/`` among them) is rewritten only when named. Writes ``<out>/tables/`` (CSV,
markdown and LaTeX), ``<out>/figures/<dataset>/`` (PNG and PDF) and ``<out>/REPORT.md`` (the main
tables, every failed or missing run, and how each file was made). Published numbers are read from
``--paper`` (default: the repository's ``results/paper``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis import figures
from bench.analysis.aggregate import cells, mean_pm_std, run_table, seed_summary
from bench.analysis.convergence import convergence_table, time_to_fraction_table
from bench.analysis.footprint import footprint_table
from bench.analysis.front_aware import front_aware_section
from bench.analysis.front_metrics import front_metric_summary, front_metric_tables
from bench.analysis.paper import DEFAULT_DIRECTORY, load_paper, paper_dataset, paper_hypervolumes, paper_points
from bench.analysis.records import Run, scan, variant_labels
from bench.analysis.tables import markdown, write_table
from bench.core.atomic import write_text
from bench.core.cli import Parser, help_text
from bench.core.errors import ConfigError
from bench.core.hypervolume import minimization_points
from bench.core.registry import DATASETS, load_all
from bench.core.spec import DatasetSpec, HypervolumeDefinition
from bench.train.record import git_sha

MIB = 2**20
Alternative = tuple[str, HypervolumeDefinition, pd.DataFrame, pd.DataFrame]
"""A dataset, one of its alternative hypervolume definitions, and the raw and display tables."""


def parse_seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(s) for s in text.replace(",", " ").split()]
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: expected integers such as 0,1,2") from None


def hypervolume_display(summary: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Raw and display forms of the method x dataset table of test hypervolume, mean ± std (seeds)."""
    raw = summary[["dataset", "label", "kind", "hv_mean", "hv_std", "n_seeds", "seeds", "failed", "missing_seeds"]]
    cells = summary.assign(
        cell=[mean_pm_std(m, s, n) for m, s, n in zip(summary.hv_mean, summary.hv_std, summary.n_seeds, strict=True)]
    )
    display = cells.pivot(index="label", columns="dataset", values="cell").fillna("–")
    first = summary.pivot(index="label", columns="dataset", values="hv_mean").iloc[:, 0]
    display = display.loc[first.sort_values(ascending=False, na_position="last").index]
    kinds = summary.drop_duplicates("label").set_index("label")["kind"]
    display.insert(0, "kind", [kinds.get(label, "–") for label in display.index])
    display = display.reset_index().rename(columns={"label": "method"})
    return raw, display


def front_metrics_display(runs: list[Run], datasets: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Per dataset: IGD+ against the non-dominated union of every usable run's test front, spacing,
    spread, non-dominated points and spans (:mod:`bench.analysis.front_metrics`), mean ± std over seeds.
    Returns the per-run table, the display table and one line per dataset describing its reference front."""
    per_run, displays, notes = [], [], []
    for dataset in datasets:
        if dataset not in DATASETS:
            continue
        spec = DATASETS.get(dataset)
        points = front_points(runs, spec)
        if points.empty:
            continue
        names = [o.name for o in spec.hypervolume_objectives]
        table, reference = front_metric_tables(points, names)
        per_run.append(table.assign(dataset=dataset))
        notes.append(
            f"{dataset}: {len(reference)} points, the non-dominated union of the test fronts of "
            f"{points.groupby(['label', 'seed']).ngroups} usable runs ({points['label'].nunique()} methods)"
        )
        summary = front_metric_summary(table)
        cell = {
            "IGD+": ("igd_plus", 4),
            "spacing": ("spacing", 4),
            "spread Δ": ("spread", 3),
            "non-dominated": ("non_dominated", 1),
            **{f"span {name}": (f"span_{name}", 4) for name in names},
        }
        display = pd.DataFrame(
            {
                "dataset": dataset,
                "method": summary["label"],
                "kind": summary["kind"],
                **{title: cells(summary, col, digits) for title, (col, digits) in cell.items()},
            }
        )
        order = summary.assign(key=summary["igd_plus_mean"]).sort_values(["kind", "key"]).index
        displays.append(display.loc[order])
    if not per_run:
        return pd.DataFrame(), pd.DataFrame(), []
    return pd.concat(per_run, ignore_index=True), pd.concat(displays, ignore_index=True).fillna("–"), notes


def alternative_hypervolumes(runs: list[Run], datasets: list[str], seeds: list[int] | None) -> list[Alternative]:
    """Per dataset of ``datasets`` and each of its alternative hypervolume definitions: the definition
    and the raw and display forms of its table (as :func:`hypervolume_display`), from the same fronts."""
    out = []
    for dataset in datasets:
        if dataset not in DATASETS:
            continue
        subset = [run for run in runs if run.dataset == dataset]
        for definition in DATASETS.get(dataset).hv_alternatives:
            raw, display = hypervolume_display(seed_summary(run_table(subset, definition.name), seeds))
            out.append((dataset, definition, raw, display))
    return out


def reference_description(spec: DatasetSpec) -> str:
    """``name (1.0, 1.0)``, or with the default's name and coordinates where the dataset has several."""
    if spec.hv_name == "default" and not spec.hv_alternatives:
        return f"{spec.name} {tuple(spec.hv_reference)}"
    return f"{spec.name} `{spec.hv_name}` {spec.hv_default.describe()}"


def alternatives_markdown(alternatives: Sequence[Alternative]) -> list[str]:
    """The REPORT.md section of the alternative hypervolume tables (nothing when there are none)."""
    if not alternatives:
        return []
    lines = [
        "### Other hypervolume definitions",
        "",
        "The table above uses each dataset's default hypervolume. These datasets also define others, "
        "computed from the same test fronts:",
        "",
    ]
    for dataset in dict.fromkeys(dataset for dataset, *_ in alternatives):
        default = DATASETS.get(dataset).hv_default
        lines.append(f"- {dataset} `{default.name}` (the default): {default.note or default.describe()}")
    lines.append("")
    for dataset, definition, _, display in alternatives:
        note = f" {definition.note}" if definition.note else ""
        lines += [
            f"#### {dataset}: `{definition.name}`",
            "",
            f"On {definition.describe()}.{note}",
            "",
            markdown(display),
        ]
    return lines


def front_metrics_markdown(display: pd.DataFrame | None, notes: Sequence[str]) -> list[str]:
    """The REPORT.md section of the front metrics (nothing without fronts)."""
    if display is None or display.empty:
        return []
    return [
        "## Front metrics",
        "",
        "On the hypervolume's coordinates (minimisation form). IGD+ (pymoo): mean distance from each point of "
        "the reference front to the run's front, counting only where the run is worse; 0 when it covers "
        "the reference. Spacing (pymoo, Schott): spread of the nearest-neighbour distances, 0 when even; "
        "spread Δ (Deb et al. 2002, two objectives): 0 for an even front reaching the reference's ends; "
        "non-dominated: distinct non-dominated points of the run's front; span: max − min of each "
        "coordinate over them. Single points have no spacing. The reference fronts are this comparison's "
        "best, not the true fronts:",
        "",
        *[f"- {note}" for note in notes],
        "",
        markdown(display),
    ]


def fmt(value: float, spec: str) -> str:
    """``value`` in ``spec``; an en dash for a missing value."""
    return "–" if pd.isna(value) else format(value, spec)


def memory_display(footprint: pd.DataFrame) -> pd.DataFrame:
    table = footprint.sort_values(["dataset", "total"])
    return pd.DataFrame(
        {
            "dataset": table["dataset"],
            "method": table["label"],
            "params": [fmt(v, ",.0f") for v in table["total"]],
            "trainable": [fmt(v, ",.0f") for v in table["trainable"]],
            "at inference": [fmt(v, ",.0f") for v in table["inference"]],
            "× single": [fmt(v, ".3f") for v in table["x_single"]],
            "overhead": [fmt(100 * v, ".1f") + " %" if pd.notna(v) else "–" for v in table["overhead"]],
            "PaMaL / this": [fmt(v, ".3g") for v in table["pamal_ratio"]],
            "train state MiB": [fmt(v / MIB, ".2f") for v in table["state_bytes"]],
            "peak train MiB": [fmt(v / MIB, ".0f") for v in table["peak_train_bytes"]],
            "peak eval MiB": [fmt(v / MIB, ".0f") for v in table["peak_eval_bytes"]],
        }
    )


def time_display(summary: pd.DataFrame, to95: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    raw = summary[["dataset", "label", "seconds_per_step", "train_seconds", "wall_seconds"]].merge(
        to95.rename(columns={"step": "step_to_95", "train_time": "train_s_to_95", "wall_time": "wall_s_to_95"}),
        on=["dataset", "label"],
        how="left",
    )
    raw = raw.sort_values(["dataset", "train_seconds"])

    display = pd.DataFrame(
        {
            "dataset": raw["dataset"],
            "method": raw["label"],
            "ms / step": [fmt(1000 * v, ".1f") for v in raw["seconds_per_step"]],
            "train s": [fmt(v, ".1f") for v in raw["train_seconds"]],
            "wall s": [fmt(v, ".1f") for v in raw["wall_seconds"]],
            "steps to 95% HV": [fmt(v, ".0f") for v in raw["step_to_95"]],
            "train s to 95% HV": [fmt(v, ".1f") for v in raw["train_s_to_95"]],
            "wall s to 95% HV": [fmt(v, ".1f") for v in raw["wall_s_to_95"]],
        }
    )
    return raw, display


def published_display(published: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dataset": published["dataset"],
            "method": published["method"],
            "kind": published["kind"],
            "hypervolume": [
                mean_pm_std(m, s, int(n) or 1) if pd.notna(n) else f"{m:.4f}" + ("" if pd.isna(s) else f" ± {s:.4f}")
                for m, s, n in zip(published.hv_mean, published.hv_std, published.n_seeds, strict=True)
            ],
            "how": published["how"],
            "source": published["reference"],
        }
    )


def front_points(runs: list[Run], spec: DatasetSpec) -> pd.DataFrame:
    """Every usable run's test front on ``spec`` in minimisation form, one row per ray."""
    labels = variant_labels(runs)
    names = [o.name for o in spec.hypervolume_objectives]
    rows = []
    for run in runs:
        if run.usable and run.summary is not None and run.dataset == spec.name:
            points = minimization_points(run.summary["front"], spec)
            for k, point in enumerate(points):
                rows.append(
                    {
                        "label": labels[run.variant],
                        "kind": run.summary["kind"],
                        "seed": run.seed,
                        "ray_index": k,
                        **dict(zip(names, point, strict=True)),
                    }
                )
    return pd.DataFrame(rows)


def problems_markdown(table: pd.DataFrame, summary: pd.DataFrame) -> str:
    lines = []
    for r in table[~table["usable"]].itertuples():
        lines.append(f"- `{r.run_id}` ({r.dataset}, {r.label}, seed {r.seed}): {r.status}")
    for r in summary[summary["missing_seeds"] != ""].itertuples():
        lines.append(f"- {r.dataset}, {r.label}: no run record for seed(s) {r.missing_seeds}")
    return "\n".join(lines) + "\n" if lines else "None: every expected run completed.\n"


def build_report(runs_dir: Path, out: Path, paper_dir: Path | None, seeds: list[int] | None) -> dict[str, float]:
    started = time.perf_counter()
    load_all()
    runs = scan(runs_dir)
    if not runs:
        raise ConfigError(f"no run records under {runs_dir} (a run directory holds config.json); run `bench run` first")
    if not any(run.usable for run in runs):
        shown = "; ".join(f"{r.run_id}: {r.status}" for r in runs[:3]) + ("; ..." if len(runs) > 3 else "")
        raise ConfigError(
            f"none of the {len(runs)} run record(s) under {runs_dir} is usable ({shown}); nothing to report"
        )
    table = run_table(runs)
    summary = seed_summary(table, seeds)
    curves = convergence_table(runs)
    to95 = time_to_fraction_table(curves)
    footprint = footprint_table(runs)
    paper = load_paper(paper_dir)
    tables_dir, figures_dir = out / "tables", out / "figures"
    files: list[tuple[list[Path], str]] = []

    hv_raw, hv_display = hypervolume_display(summary)
    files.append(
        (
            write_table(
                hv_raw,
                hv_display,
                tables_dir,
                "hypervolume",
                "Test hypervolume, mean ± std over seeds (number of seeds)",
            ),
            "test hypervolume per method and dataset, recomputed from each run's test front",
        )
    )
    alternatives = alternative_hypervolumes(runs, sorted(table["dataset"].unique()), seeds)
    for dataset, definition, raw, display in alternatives:
        name = f"hypervolume-{dataset}-{definition.name}"
        caption = f"{dataset}: test hypervolume '{definition.name}', mean ± std over seeds (number of seeds)"
        files.append(
            (
                write_table(raw, display, tables_dir, name, caption),
                f"{dataset}: test hypervolume on {definition.describe()}",
            )
        )
    metrics_raw, metrics_display, reference_notes = front_metrics_display(runs, sorted(table["dataset"].unique()))
    if not metrics_raw.empty:
        files.append(
            (
                write_table(
                    metrics_raw,
                    metrics_display,
                    tables_dir,
                    "front-metrics",
                    "Front metrics against each dataset's reference front, mean ± std over seeds",
                ),
                "IGD+, spacing, spread, non-dominated points and spans per run (csv) and per method (md, tex)",
            )
        )
    aware_files, aware_lines = front_aware_section(runs, sorted(table["dataset"].unique()), tables_dir)
    if aware_files:
        files.append((aware_files, "normalised, loss-space and gain HV, Δp, controllability, alignment per run (csv)"))
    memory = memory_display(footprint)
    files.append(
        (
            write_table(footprint, memory, tables_dir, "memory", "Parameters and memory per method"),
            "parameters, overhead over one model and against PaMaL, training-state bytes, peak memory",
        )
    )
    time_raw, time_table = time_display(summary, to95)
    files.append(
        (
            write_table(
                time_raw,
                time_table,
                tables_dir,
                "time",
                "Training time and time to 95% of the final validation hypervolume",
            ),
            "training and wall time; time to 95% of final HV",
        )
    )
    write_text(tables_dir / "runs.csv", table.to_csv(index=False))
    write_text(tables_dir / "convergence.csv", curves.to_csv(index=False))
    files.append(([tables_dir / "runs.csv"], "every run record found, with status and recomputed hypervolume"))
    files.append(([tables_dir / "convergence.csv"], "validation hypervolume at every evaluation of every run"))

    published_rows, sections = [], []
    for dataset in sorted(table["dataset"].unique()):
        if dataset not in DATASETS:
            continue
        spec = DATASETS.get(dataset)
        target = figures_dir / dataset
        published = paper_hypervolumes(paper, spec).assign(dataset=paper_dataset(spec))
        published_rows.append(published)
        cost = footprint[footprint["dataset"] == dataset]
        made = figures.save(
            figures.fronts_figure(front_points(runs, spec), paper_points(paper, spec), spec), target, "fronts"
        )
        made += figures.save(
            figures.convergence_figure(curves[curves["dataset"] == dataset], spec), target, "convergence"
        )
        made += figures.save(figures.memory_figure(cost, spec), target, "memory")
        made += figures.save(
            figures.hv_vs_overhead_figure(summary[summary["dataset"] == dataset], cost, published, spec),
            target,
            "hv_vs_overhead",
        )
        files.append((made, f"{dataset}: fronts, convergence, memory, hypervolume against parameter cost"))
        sections.append(dataset)
    published_all = pd.concat(published_rows, ignore_index=True) if published_rows else pd.DataFrame()
    if not published_all.empty:
        files.append(
            (
                write_table(
                    published_all,
                    published_display(published_all),
                    tables_dir,
                    "published",
                    "Published hypervolumes (as published, or computed here from published points)",
                ),
                "published numbers from --paper, with their source",
            )
        )
    seconds = time.perf_counter() - started
    write_text(
        out / "REPORT.md",
        report_markdown(
            runs_dir,
            out,
            paper_dir,
            table,
            summary,
            hv_display,
            memory,
            time_table,
            published_all,
            files,
            seconds,
            alternatives,
            metrics_display,
            reference_notes,
            aware_lines,
        ),
    )
    return {"runs": len(runs), "usable": int(table["usable"].sum()), "seconds": seconds}


def report_markdown(
    runs_dir: Path,
    out: Path,
    paper_dir: Path | None,
    table: pd.DataFrame,
    summary: pd.DataFrame,
    hv: pd.DataFrame,
    memory: pd.DataFrame,
    times: pd.DataFrame,
    published: pd.DataFrame,
    files: list[tuple[list[Path], str]],
    seconds: float,
    alternatives: Sequence[Alternative] = (),
    front_metrics: pd.DataFrame | None = None,
    reference_notes: Sequence[str] = (),
    front_aware: Sequence[str] = (),
) -> str:
    load_all()
    references = ", ".join(
        reference_description(DATASETS.get(d)) for d in sorted(table["dataset"].unique()) if d in DATASETS
    )
    devices = ", ".join(
        sorted({str(r.summary.get("device")) for r in scan(runs_dir) if r.usable and r.summary is not None})
    )
    lines = [
        "# Report (generated; do not edit by hand)",
        "",
        f"Generated by `python -m bench.report --runs {runs_dir} --out {out}` on "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} from {len(table)} run records "
        f"({int(table['usable'].sum())} usable), code at git {git_sha() or 'unknown'}; runs on {devices or '–'}. "
        f"The report took {seconds:.1f} s.",
        "",
        f"Hypervolume: pymoo, on the test metrics in minimisation form (accuracy → 1 − accuracy), against each "
        f"dataset's fixed reference point: {references}. Mean ± sample std over seeds, (number of seeds).",
        "",
        "## Test hypervolume",
        "",
        "`front`: a method that learns a whole front, evaluated on the dataset's ray grid; `point`: a single-"
        "point method, one model evaluated once (its hypervolume is that of one point).",
        "",
        markdown(hv),
        *alternatives_markdown(alternatives),
        *front_metrics_markdown(front_metrics, reference_notes),
        *front_aware,
        "## Failed, incomplete or missing runs",
        "",
        problems_markdown(table, summary),
        "## Memory footprint",
        "",
        "`× single` = trainable parameters / one plain model's; `overhead` = the parameters added to one model; "
        "`PaMaL / this` = PaMaL's overhead divided by this method's (the PaLoRA paper's memory comparison). "
        "Peak memory: CUDA peak allocated on GPU, process peak RSS on CPU (which includes the Python "
        "runtime and the data).",
        "",
        markdown(memory),
        "## Time",
        "",
        markdown(times),
    ]
    if not published.empty:
        source = Path(paper_dir or DEFAULT_DIRECTORY).resolve()
        shown = source.relative_to(Path.cwd()) if source.is_relative_to(Path.cwd()) else source
        lines += [
            "## Published numbers",
            "",
            f"From `{shown}`.",
            "",
            markdown(published_display(published)),
        ]
    lines += ["## Files", ""]
    for paths, how in files:
        names = ", ".join(f"`{p.relative_to(out)}`" for p in paths) if paths else "(none: nothing to draw)"
        lines.append(f"- {names}: {how}")
    return "\n".join(lines) + "\n"


def fresh_folder(parent: Path) -> Path:
    """A folder under ``parent`` named by the UTC time that does not exist yet (``-2``, ``-3``, ... on a clash)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%SZ")
    candidate, n = parent / stamp, 1
    while candidate.exists():
        n += 1
        candidate = parent / f"{stamp}-{n}"
    return candidate


def main(argv: list[str] | None = None, prog: str = "python -m bench.report") -> int:
    parser = Parser(prog=prog, description=help_text(__doc__))
    parser.add_argument(
        "--runs", type=Path, default=Path("runs"), metavar="DIR", help="folder of run directories (default: runs/)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="output folder, rewritten if it holds a report (default: a new folder reports/<UTC time>/)",
    )
    parser.add_argument(
        "--paper",
        type=Path,
        default=None,
        metavar="DIR",
        help="published numbers (default: results/paper of this checkout)",
    )
    parser.add_argument(
        "--seeds",
        default=None,
        help="seeds every run should have, e.g. 0,1,2 (default: every "
        "seed seen on the dataset); the report names each missing one",
    )
    args = parser.parse_args(argv)
    try:
        if args.out is None:
            args.out = fresh_folder(Path("reports"))
        if not args.runs.is_dir():
            raise ConfigError(
                f"--runs {args.runs} is not a folder; give the --out folder of `bench run` or `bench sweep`"
            )
        if args.out.exists() and not args.out.is_dir():
            raise ConfigError(f"--out {args.out} is a file; give the folder to write the report in")
        with np.errstate(all="ignore"):
            stats = build_report(args.runs, args.out, args.paper, parse_seeds(args.seeds))
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"report: {stats['usable']}/{stats['runs']} usable runs -> {args.out}/REPORT.md ({stats['seconds']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
