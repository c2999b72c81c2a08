"""Where on the preference simplex each Pareto-front method trained: the distribution of lambda_1, the
first task's weight in the rays its ``train_rays`` hook returned (design.md, "The contract"; the
samplers of :mod:`bench.core.rays`: Dirichlet draws, PaLoRA's annealing schedule, paper Sec. 3.3,
and linear scalarization's fixed grid).

Each run's summary holds ``train_ray_histogram`` = ``{"bins": B, "counts": {task: [B counts]}}``
(:mod:`bench.train.runner`): every ray of every training step, counted in B equal bins of each task's
weight over [0, 1] (bin k holds [k/B, (k+1)/B); a weight of 1 falls in the last). Per label (a method,
or a variant of one; :func:`bench.analysis.records.variant_labels`), the first task's counts summed
over seeds are drawn as a step histogram normalised to a density, counts / (total * 1/B), so a
uniform distribution is flat at 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bench.analysis.figures import faded, seed_names
from bench.analysis.records import Run, variant_labels
from bench.analysis.style import COLUMN, FONT_SIZE, FULL, kind_of, label_style, ordered, paper_rc
from bench.core.spec import DatasetSpec

MAX_COLUMNS = 4
PANEL = 1.25
"""Panels per row, and the height (inches) of a row of panels."""
HEADROOM = 1.3
"""The y axis reaches this many times the largest density: room for each panel's label above its line."""


def first_task_counts(run: Run, spec: DatasetSpec) -> np.ndarray | None:
    """The run's training-ray counts per bin of lambda_1, or None where its summary has none."""
    histogram = (run.summary or {}).get("train_ray_histogram")
    if not isinstance(histogram, dict):
        return None
    counts = (histogram.get("counts") or {}).get(spec.objective_names[0])
    if counts is None:
        return None
    counts = np.asarray(counts, dtype=float)
    if len(counts) != int(histogram.get("bins", len(counts))):
        raise ValueError(
            f"run {run.run_id}: its train_ray_histogram has {len(counts)} counts for {histogram.get('bins')} bins"
        )
    return counts


def histograms(runs: list[Run], spec: DatasetSpec) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Per Pareto-front label of ``spec``'s usable runs with a histogram: the density of lambda_1 per
    bin (counts summed over seeds) and the number of seeds summed. A ValueError names runs of one
    label with different bins."""
    mine = [run for run in runs if run.dataset == spec.name and run.usable]
    labels = variant_labels(mine)
    summed: dict[str, np.ndarray] = {}
    seeds: dict[str, set[int]] = {}
    for run in mine:
        label = labels[run.variant]
        counts = first_task_counts(run, spec)
        if counts is None or kind_of(label, (run.summary or {}).get("kind")) != "front":
            continue
        if label in summed and len(summed[label]) != len(counts):
            raise ValueError(
                f"{spec.name}, {label}: runs recorded training-ray histograms with {len(summed[label])} and "
                f"{len(counts)} bins; rerun them with one version of the code"
            )
        summed[label] = summed.get(label, np.zeros(len(counts))) + counts
        seeds.setdefault(label, set()).add(run.seed)
    density = {lab: c * len(c) / c.sum() for lab, c in summed.items() if c.sum() > 0}
    return density, {lab: len(seeds[lab]) for lab in density}


def ray_histogram_figure(runs: list[Run], spec: DatasetSpec) -> plt.Figure | None:
    """One small panel per Pareto-front label, all on the same axes: the density of lambda_1 over its
    training rays, all seeds together, as a step line in the label's colour and line style over a light
    fill, with the uniform density (1) dotted. Panels rather than lines in one axes: methods that share
    a sampler (PaLoRA and PaDoRA, or every Dirichlet(1) sampler) have the same histogram and would hide
    each other. None when no run of ``spec`` recorded a histogram."""
    density, seeds = histograms(runs, spec)
    if not density:
        return None
    kinds = dict.fromkeys(density, "front")
    labels = ordered(list(kinds), kinds)
    names = seed_names(pd.Series(seeds, dtype=int))
    ncols = min(len(labels), MAX_COLUMNS)
    nrows = math.ceil(len(labels) / ncols)
    top = HEADROOM * max(float(v.max()) for v in density.values())
    with paper_rc():
        fig, axes = plt.subplots(
            nrows,
            ncols,
            figsize=(COLUMN if ncols <= 2 else FULL, PANEL * nrows),
            sharex=True,
            sharey=True,
            squeeze=False,
            layout="constrained",
        )
        for ax in axes.flat[len(labels) :]:
            ax.set_visible(False)
        for ax, lab in zip(axes.flat, labels, strict=False):
            kw = label_style(lab, labels, "front")
            values = density[lab]
            edges = np.linspace(0.0, 1.0, len(values) + 1)
            ax.stairs(values, edges, fill=True, color=faded(kw["color"], 0.18), linewidth=0, zorder=1)
            ax.stairs(values, edges, color=kw["color"], linestyle=kw["linestyle"], linewidth=1.1, zorder=3).set_gid(
                f"method:{lab}"
            )
            ax.axhline(1.0, color="0.4", linestyle=":", linewidth=0.8, zorder=2, gid="uniform")
            ax.text(0.5, 0.97, names.get(lab, lab), transform=ax.transAxes, ha="center", va="top", color=kw["color"])
            ax.set_xlim(0.0, 1.0)
            ax.set_ylim(0.0, top)
            ax.set_xticks([0.0, 0.5, 1.0], ["0", "0.5", "1"])
        fig.supxlabel(f"λ₁ (training ray's weight on {spec.objective_names[0]})", fontsize=FONT_SIZE)
        fig.supylabel("density (dotted: uniform)", fontsize=FONT_SIZE)
    return fig


def caption_ray_histogram(spec: DatasetSpec, protocol: str, seeds: Sequence[int]) -> str:
    """What :func:`ray_histogram_figure` shows, for the report's text."""
    first = spec.objective_names[0]
    return (
        f"{spec.name}, {protocol} protocol, seeds {', '.join(str(s) for s in seeds)}: where each Pareto front "
        f"learning method trained, as the distribution of λ₁, the training rays' weight on {first}: every ray "
        "of every training step, all seeds together, in equal bins over [0, 1] (a weight of 1 falls in the last "
        "bin), as a density, one panel per method on shared axes; the dotted line at 1 is the uniform "
        "distribution. Single models (one fixed ray) are left out."
    )
