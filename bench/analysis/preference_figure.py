"""Each task's error against the preference, one line per method (evaluation.md, "Figures").

For a two-task dataset, one panel per task, side by side: the task's hypervolume objective (its
error in minimisation form, e.g. ``1 - accuracy``; :func:`bench.analysis.attainment.objective_table`)
against lambda_1, the ray's weight on the first task, per Pareto-front method the median over seeds
at each ray as a line with the method's markers and the min-max over seeds as a light band. A method
whose model does not follow its ray (collapse) draws a flat line; a mapping that is not monotone
(more weight on a task, a higher error on it) shows as a line that turns back. A task's axis is
logarithmic where a few far values (a poor single-task end) would flatten every other line
(:func:`error_axis`); every value stays inside the axes. Read with
:func:`bench.analysis.preference.controllability`, which puts a number on the same question.

The figure reads a tidy fronts table (one row per ``label``, ``seed``, ``ray_index``, with ``ray_<task>``
and ``<task>_<metric>``). Methods with a single distinct ray (single models) have no line and are left
out. Two-task datasets only: for any other number of tasks the figure is None.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from bench.analysis.attainment import objective_table
from bench.analysis.figures import FULL, PANEL_HEIGHT, axis_label, faded, fit_axes_height, seed_names
from bench.analysis.style import label_style, method_legend, ordered, paper_rc
from bench.core.spec import DatasetSpec

BAND_ALPHA = 0.15
BULK_QUANTILE = 0.9
BULK_SHARE = 0.35
"""A task's axis is logarithmic where its values up to this quantile span less than this share of
their range (:func:`error_axis`)."""
DIGITS = 9
"""Ray weights are matched across seeds after rounding to this many decimals."""


def lambda_column(spec: DatasetSpec) -> str:
    """The column of the first task's ray weight, lambda_1."""
    return f"ray_{spec.objective_names[0]}"


def preference_curves(fronts: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Per (label, lambda_1) of every label with more than one distinct lambda_1: the median, min and
    max over seeds of each task's objective, columns ``<task>``, ``<task>_min``, ``<task>_max``, and
    ``seeds``; sorted by label and lambda_1."""
    column = lambda_column(spec)
    if column not in fronts.columns:
        raise ValueError(
            f"{spec.name}: the fronts table has no ray column {column!r} (expected ray_<task> for "
            f"{list(spec.objective_names)}); found {list(fronts.columns)}"
        )
    names = [o.name for o in spec.hypervolume_objectives]
    table = objective_table(fronts, spec).assign(lam=lambda t: t[column].astype(float).round(DIGITS))
    table = table[table.groupby("label")["lam"].transform("nunique") > 1]
    grouped = table.groupby(["label", "lam"])
    out = grouped[names].median()
    for name in names:
        out[f"{name}_min"] = grouped[name].min()
        out[f"{name}_max"] = grouped[name].max()
    out["seeds"] = grouped["seed"].nunique()
    return out.reset_index().sort_values(["label", "lam"]).reset_index(drop=True)


def error_axis(ax: plt.Axes, values: np.ndarray) -> None:
    """A log scale (ticks at 1, 2, 3 and 5 times powers of ten) where a few far values squeeze the
    rest: the positive ``values`` up to their :data:`BULK_QUANTILE` span less than :data:`BULK_SHARE` of
    their whole range (typically a poor single-task end), so that the far ones do not flatten every
    other line."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if not len(values) or values.min() <= 0:
        return
    low, high = values.min(), values.max()
    if high == low or np.quantile(values, BULK_QUANTILE) - low >= BULK_SHARE * (high - low):
        return
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def preference_figure(fronts: pd.DataFrame, spec: DatasetSpec) -> plt.Figure | None:
    """One panel per task: the task's objective against lambda_1, per method with more than one
    distinct ray the median over seeds (line, the method's colour and marker) and the min-max over
    seeds (band). Single-point methods are left out (they have one ray, hence no line). None for a
    dataset with other than two tasks or with no method of several rays."""
    if spec.num_tasks != 2 or len(spec.hypervolume_objectives) != 2 or fronts.empty:
        return None
    curves = preference_curves(fronts, spec)
    if curves.empty:
        return None
    names = [o.name for o in spec.hypervolume_objectives]
    kinds = dict.fromkeys(curves["label"].unique(), "front")
    labels = ordered(list(kinds), kinds)
    with paper_rc():
        fig, axes = plt.subplots(1, 2, figsize=(FULL, 3.0), layout="constrained")
        for k, (ax, name) in enumerate(zip(axes, names, strict=True)):
            for lab in labels:
                c = curves[curves["label"] == lab]
                kw = label_style(lab, labels, "front")
                ax.fill_between(
                    c["lam"], c[f"{name}_min"], c[f"{name}_max"], color=faded(kw["color"], BAND_ALPHA), linewidth=0
                ).set_gid(f"band:{lab}")
                (line,) = ax.plot(c["lam"], c[name], markersize=3.0, zorder=3, **kw)
                line.set_gid(f"method:{lab}")
            ax.set_xlabel(f"λ₁ (ray weight on {spec.objective_names[0]})")
            ax.set_ylabel(axis_label(spec, k))
            error_axis(ax, curves[[f"{name}_min", f"{name}_max"]].to_numpy(float))
            ax.set_xlim(-0.03, 1.03)
            ax.grid(axis="both", color="0.92")
        extra: list[tuple[str, list[tuple[Artist, str]]]] = [
            (
                "over seeds",
                [
                    (Line2D([], [], color="0.2", marker="o", markersize=3.0), "median"),
                    (Patch(color=faded("0.2", 0.2), linewidth=0), "min-max"),
                ],
            )
        ]
        seeds = curves.groupby("label")["seeds"].max()
        method_legend(fig, labels, kinds, extra, names=seed_names(seeds))
        fit_axes_height(fig, axes[0], PANEL_HEIGHT)
    return fig


def caption_preference(
    spec: DatasetSpec, protocol: str, seeds: Sequence[int], reference: Sequence[float] | None = None
) -> str:
    """What :func:`preference_figure` shows, for the report's text."""
    ref = tuple(float(v) for v in (spec.hv_default.reference if reference is None else reference))
    first = spec.objective_names[0]
    return (
        f"{spec.name}, {protocol} protocol, seeds {', '.join(str(s) for s in seeds)}: each task's test error "
        f"(its hypervolume objective, lower is better) against λ₁, the ray's weight on {first}; per Pareto "
        "front learning method the line is the median over seeds at each evaluation ray and the band the "
        "min-max over seeds. A flat line is a method that ignores its ray (collapse), a line that turns back "
        "a mapping that is not monotone. Single models (one ray) are left out. A logarithmic error axis, where "
        "present, keeps a few far values (single-task ends) from flattening the other lines. The objectives are "
        f"those of the hypervolume, whose reference point is {ref} (not drawn: it bounds the hypervolume, not these "
        "axes)."
    )
