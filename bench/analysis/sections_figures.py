"""The report's figures, per dataset, each with its caption in REPORT.md: attainment surfaces of the
test fronts over seeds (with published points on their own dataset), error against preference, the
training rays' distribution, convergence (validation proxy), memory, and hypervolume against
parameter cost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import pyplot as plt

from bench.analysis import figures
from bench.analysis.attainment import attainment_figure, caption_attainment
from bench.analysis.context import ReportContext
from bench.analysis.front_aware import single_task_models
from bench.analysis.paper import paper_dataset, paper_hypervolumes, paper_points
from bench.analysis.preference_figure import caption_preference, preference_figure
from bench.analysis.ray_histogram import caption_ray_histogram, ray_histogram_figure
from bench.analysis.section import Section
from bench.core.rays import eval_grid
from bench.core.registry import DATASETS
from bench.core.spec import DatasetSpec
from bench.train.evaluate import validation_rays

Drawn = tuple[str, plt.Figure | None, str]
"""A figure's file name, the figure (None: nothing to draw) and its caption."""


def validation_proxy(ctx: ReportContext, dataset: str) -> str:
    """How the validation curves were evaluated (how many of the test grid's rays, how many pairs), from
    the runs' configs (:func:`bench.train.evaluate.validation_rays`)."""
    spec = DATASETS.get(dataset)
    grid = eval_grid(spec.num_tasks, spec.eval_points_per_edge)
    settings = {
        (run.config.get("train", {}).get("val_points_per_edge", 0), run.config.get("train", {}).get("val_samples", 0))
        for run in ctx.runs
        if run.dataset == dataset and run.usable
    }
    shown = "; ".join(
        f"{len(validation_rays(grid, spec.num_tasks, per_edge))} of the {len(grid)} test rays, "
        f"{pairs or 'all'} validation samples"
        for per_edge, pairs in sorted(settings)
    )
    return f"a proxy of the tables' test hypervolume, evaluated on {shown}" if shown else "a proxy"


def dataset_figures(ctx: ReportContext, spec: DatasetSpec) -> list[Drawn]:
    fronts = ctx.fronts[ctx.fronts["dataset"] == spec.name]
    protocol = ", ".join(sorted(set(fronts["protocol"]))) or "–"
    seeds = sorted(set(fronts["seed"]))
    single = single_task_models(ctx.runs, spec)
    ends = None if single is None else [float(v) for v in single.errors]
    curves = ctx.curves[ctx.curves["dataset"] == spec.name]
    cost = ctx.footprint[ctx.footprint["dataset"] == spec.name]
    published = paper_hypervolumes(ctx.paper, spec).assign(dataset=paper_dataset(spec))
    theirs = paper_points(ctx.paper, spec)
    reference = tuple(spec.hv_reference)
    uneven = fronts.groupby("label")["seed"].nunique().nunique() > 1
    fewer = " A method with fewer of these seeds has its count (n=) in the legend." if uneven else ""
    return [
        (
            "attainment",
            attainment_figure(fronts, spec, single_task=ends, published=theirs),
            caption_attainment(spec, protocol, seeds, published=theirs) + fewer,
        ),
        ("preference", preference_figure(fronts, spec), caption_preference(spec, protocol, seeds) + fewer),
        ("train_rays", ray_histogram_figure(ctx.runs, spec), caption_ray_histogram(spec, protocol, seeds) + fewer),
        (
            "convergence",
            figures.convergence_figure(curves, spec),
            f"{spec.name}: validation hypervolume (reference point {reference}) against the training step, "
            f"mean over seeds with a ±1 std band, dashed: single models; {validation_proxy(ctx, spec.name)}",
        ),
        ("memory", figures.memory_figure(cost, spec), figures.caption("memory", spec)),
        (
            "hv_vs_overhead",
            figures.hv_vs_overhead_figure(ctx.summary[ctx.summary["dataset"] == spec.name], cost, published, spec),
            figures.caption("hv_vs_overhead", spec),
        ),
    ]


def figures_section(ctx: ReportContext) -> Section:
    lines = ["## Figures", ""]
    files: list[tuple[list[Path], str]] = []
    for dataset in ctx.datasets:
        spec = DATASETS.get(dataset)
        lines += [f"### {dataset}", ""]
        with np.errstate(all="ignore"):
            drawn = dataset_figures(ctx, spec)
        for name, fig, caption in drawn:
            paths = figures.save(fig, ctx.figures_dir / dataset, name)
            if paths:
                png = next(p for p in paths if p.suffix == ".png")
                lines += [f"![{name}]({png.relative_to(ctx.out)})", "", f"*{caption.rstrip('.')}.*", ""]
                files.append((paths, f"{dataset}: the {name} figure, captioned above"))
    return Section(lines, files) if files else Section()
