"""The report's table sections: test hypervolume (and each dataset's other definitions), front
metrics, failed or missing runs, memory, time and the published numbers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from bench.analysis.aggregate import cells, mean_pm_std, run_table, seed_summary
from bench.analysis.context import ReportContext
from bench.analysis.front_aware import front_aware_section
from bench.analysis.front_metrics import front_metric_summary, front_metric_tables
from bench.analysis.paper import DEFAULT_DIRECTORY, paper_dataset, paper_hypervolumes
from bench.analysis.records import Run, variant_labels
from bench.analysis.section import Section
from bench.analysis.tables import markdown, write_table
from bench.core.hypervolume import minimization_points
from bench.core.registry import DATASETS
from bench.core.spec import DatasetSpec, HypervolumeDefinition

MIB = 2**20
Alternative = tuple[str, HypervolumeDefinition, pd.DataFrame, pd.DataFrame]
"""A dataset, one of its alternative hypervolume definitions, and the raw and display tables."""


def hypervolume_display(
    summary: pd.DataFrame, groups: Mapping[tuple[str, str], str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Raw and display forms of the method x dataset table of test hypervolume, mean ± std (seeds),
    each cell followed by its letter ``groups`` (dataset, label) where given."""
    raw = summary[["dataset", "label", "kind", "hv_mean", "hv_std", "n_seeds", "seeds", "failed", "missing_seeds"]]
    letters = [(groups or {}).get((d, lab), "") for d, lab in zip(summary.dataset, summary.label, strict=True)]
    cells = summary.assign(
        cell=[
            f"{mean_pm_std(m, s, n)} {g}".rstrip()
            for m, s, n, g in zip(summary.hv_mean, summary.hv_std, summary.n_seeds, letters, strict=True)
        ]
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


def problems_markdown(
    table: pd.DataFrame, summary: pd.DataFrame, duplicates: Sequence[Run] = (), missing: Sequence[str] = ()
) -> str:
    lines = []
    for r in table[~table["usable"]].itertuples():
        lines.append(f"- `{r.run_id}` ({r.dataset}, {r.label}, seed {r.seed}): {r.status}")
    for r in summary[summary["missing_seeds"] != ""].itertuples():
        lines.append(f"- {r.dataset}, {r.label}: no run record for seed(s) {r.missing_seeds}")
    labels = dict(zip(table["run_id"], table["label"], strict=True))
    counted = {(r.dataset, r.variant, r.seed): r.run_id for r in table.itertuples() if r.usable}
    for run in duplicates:
        first = counted.get((run.dataset, run.variant, run.seed), "?")
        label = labels.get(first, run.method)
        lines.append(f"- {run.dataset}, {label}, seed {run.seed}: `{run.run_id}` left out, `{first}` counted")
    lines += [f"- no run record for {entry}" for entry in missing]
    return "\n".join(lines) + "\n" if lines else "None: every expected run completed.\n"


def hypervolume_section(ctx: ReportContext) -> Section:
    """The test hypervolume per method and dataset, then each dataset's other definitions."""
    letters = {
        (dataset, label): group
        for dataset, (summary, _, _) in ctx.statistics.items()
        for label, group in zip(summary["label"], summary["group"], strict=True)
    }
    raw, display = hypervolume_display(ctx.summary, letters)
    caption = "Test hypervolume, mean ± std over seeds (number of seeds) and groups of the corrected tests"
    files = [
        (
            write_table(raw, display, ctx.tables_dir, "hypervolume", caption),
            "test hypervolume per method and dataset, recomputed from each run's test front",
        )
    ]
    alternatives = alternative_hypervolumes(ctx.runs, ctx.datasets, ctx.seeds)
    for dataset, definition, alt_raw, alt_display in alternatives:
        name = f"hypervolume-{dataset}-{definition.name}"
        caption = f"{dataset}: test hypervolume '{definition.name}', mean ± std over seeds (number of seeds)"
        files.append(
            (
                write_table(alt_raw, alt_display, ctx.tables_dir, name, caption),
                f"{dataset}: test hypervolume on {definition.describe()}",
            )
        )
    lines = [
        "## Test hypervolume",
        "",
        "`front`: a method that learns a whole front, evaluated on the dataset's ray grid; `point`: a single-"
        "point method, one model evaluated once (its hypervolume is that of one point). The letters after "
        "each cell are the dataset's groups (Statistics over seeds): methods that share a letter are not "
        "separated by the corrected tests, so the order within a group is not a ranking.",
        "",
        markdown(display),
        *alternatives_markdown(alternatives),
    ]
    return Section(lines, files)


def front_metrics_section(ctx: ReportContext) -> Section:
    raw, display, notes = front_metrics_display(ctx.runs, ctx.datasets)
    if raw.empty:
        return Section()
    caption = "Front metrics against each dataset's reference front, mean ± std over seeds"
    files = write_table(raw, display, ctx.tables_dir, "front-metrics", caption)
    described = "IGD+, spacing, spread, non-dominated points and spans per run (csv) and per method (md, tex)"
    return Section(front_metrics_markdown(display, notes), [(files, described)])


def front_aware_metrics_section(ctx: ReportContext) -> Section:
    files, lines = front_aware_section(ctx.runs, ctx.datasets, ctx.tables_dir)
    described = "normalised, loss-space and gain HV, Δp, controllability, alignment per run (csv)"
    return Section(lines, [(files, described)] if files else [])


def problems_section(ctx: ReportContext) -> Section:
    text = problems_markdown(ctx.table, ctx.summary, ctx.duplicates, ctx.missing)
    return Section(["## Failed, incomplete or missing runs", "", text])


def memory_section(ctx: ReportContext) -> Section:
    memory = memory_display(ctx.footprint)
    files = write_table(ctx.footprint, memory, ctx.tables_dir, "memory", "Parameters and memory per method")
    lines = [
        "## Memory footprint",
        "",
        "`× single` = trainable parameters / one plain model's; `overhead` = the parameters added to one model; "
        "`PaMaL / this` = PaMaL's overhead divided by this method's (the PaLoRA paper's memory comparison). "
        "Peak memory: CUDA peak allocated on GPU, process peak RSS on CPU (which includes the Python "
        "runtime and the data).",
        "",
        markdown(memory),
    ]
    described = "parameters, overhead over one model and against PaMaL, training-state bytes, peak memory"
    return Section(lines, [(files, described)])


def time_section(ctx: ReportContext) -> Section:
    raw, display = time_display(ctx.summary, ctx.to95)
    caption = "Training time and time to 95% of the final validation hypervolume"
    files = write_table(raw, display, ctx.tables_dir, "time", caption)
    lines = [
        "## Time",
        "",
        "Seconds as each run recorded them. Runs that a sweep packed side by side shared the CPUs or GPU "
        "(`tables/runs.csv` gives each run's threads and device), so compare them within one sweep only.",
        "",
        markdown(display),
    ]
    return Section(lines, [(files, "training and wall time; time to 95% of final HV")])


def published_table(ctx: ReportContext) -> pd.DataFrame:
    """The published hypervolumes of every dataset of the report (from ``--paper``)."""
    rows = [
        paper_hypervolumes(ctx.paper, DATASETS.get(d)).assign(dataset=paper_dataset(DATASETS.get(d)))
        for d in ctx.datasets
    ]
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def published_section(ctx: ReportContext) -> Section:
    published = published_table(ctx)
    if published.empty:
        return Section()
    display = published_display(published)
    caption = "Published hypervolumes (as published, or computed here from published points)"
    files = write_table(published, display, ctx.tables_dir, "published", caption)
    source = Path(ctx.paper_dir or DEFAULT_DIRECTORY).resolve()
    shown = source.relative_to(Path.cwd()) if source.is_relative_to(Path.cwd()) else source
    lines = ["## Published numbers", "", f"From `{shown}`.", "", markdown(display)]
    return Section(lines, [(files, "published numbers from --paper, with their source")])
