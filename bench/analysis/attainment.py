"""The empirical attainment function (EAF) of each method's test fronts over seeds, as a figure that
shows every point (evaluation.md, "Figures").

The k%-attainment surface of n runs (López-Ibáñez, Paquete and Stützle, "Exploratory analysis of
stochastic local search algorithms in biobjective optimization", 2010; Fonseca et al., EMO 2011) is
the boundary of the objective-space region weakly dominated by at least ceil(k/100 * n) of the runs
(at least one): the 50% surface of two runs is the boundary of their union, the 100% surface that of
their intersection. Each seed's test front is one run. ``moocore.eaf`` computes the surfaces; this
module turns them into staircases (minimisation) and draws, per Pareto-front method, the median
surface as a line and the band between the 25% and 75% surfaces, instead of averaging each ray over
seeds (the rays of shifted fronts, averaged, make curves fold back).

The figure reads a **tidy fronts table**: one row per (``label``, ``seed``, ``ray_index``) with the
ray weights ``ray_<task>`` and the metrics ``<task>_<metric>``; each coordinate is the dataset's
default hypervolume objective (:func:`bench.core.hypervolume.minimization_points`: accuracy ->
error = 1 - accuracy), in the order of :attr:`DatasetSpec.hv_default`. Two-objective datasets only:
for any other number of hypervolume objectives the figure is None.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import matplotlib.ticker
import moocore  # type: ignore[import-untyped]  # no py.typed marker
import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from bench.analysis.figures import COLUMN, FULL, axis_label, faded, fit_axes_height, seed_names
from bench.analysis.front_metrics import non_dominated
from bench.analysis.published_marks import draw_published, published_legend, published_sources, shown_published
from bench.analysis.style import label_style, method_legend, method_of, ordered, paper_rc
from bench.core.hypervolume import minimization_points
from bench.core.spec import DatasetSpec

MEDIAN = 0.5
BAND = (0.25, 0.75)
"""The attainment levels drawn: the median surface and the band between the quartile surfaces."""
AXES_HEIGHT = 2.4
"""Height (inches) of the attainment axes."""
PAD = 0.05
"""Margin around the data, as a share of its span on each axis, so every marker is whole."""
REFERENCE_REACH = 1.0
"""The HV reference point is drawn inside the axes when that widens them by at most this many spans
of the data on each axis; farther away, an arrow at the border points to it (and the caption gives it),
so a distant reference does not squash every front into a corner."""
CLUSTER_SHARE = 0.15
MARKER_SHARE = 0.025
"""Single models whose points all lie in a box at most :data:`CLUSTER_SHARE` of the axes' span on both
axes (at least two models, four points), two of them closer than :data:`MARKER_SHARE` of it on both
(about a marker's width: they overlap), are a dense cluster, enlarged in an inset."""
BULK_QUANTILE = 0.95
BULK_AREA = 0.25
"""A panel beside the first enlarges the bulk of the points (up to this quantile on each axis) when
it covers less than this share of the first panel's area."""
INSET_SIZE = 0.38
"""Side of the inset, as a share of the main axes."""
TICK_ROOM = 0.12
"""Room (share of the main axes) left of and below an inset for its tick labels."""


def objective_table(fronts: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """``fronts`` (a tidy fronts table) with one more column per hypervolume objective, named by the
    objective, holding its value in minimisation form (``1 - accuracy`` and so on); rows with a
    missing value are dropped. A ValueError names the metric columns that are missing."""
    definition = spec.hv_default
    columns = [f"{task}_{metric}" for task, metric in definition.coordinates]
    missing = [c for c in columns if c not in fronts.columns]
    if missing:
        raise ValueError(
            f"{spec.name}: the fronts table has no column(s) {missing} (expected <task>_<metric> for the "
            f"hypervolume's {list(definition.coordinates)}); found {list(fronts.columns)}"
        )
    read = fronts[columns].to_numpy(float)
    entries = [
        {"metrics": {task: {metric: value} for (task, metric), value in zip(definition.coordinates, row, strict=True)}}
        for row in read
    ]
    values = minimization_points(entries, spec, definition)
    names = [o.name for o in spec.hypervolume_objectives]
    out = fronts.assign(**{name: values[:, k] for k, name in enumerate(names)})
    return out.dropna(subset=names).reset_index(drop=True)


def staircase(points: np.ndarray) -> np.ndarray:
    """The vertices [2K - 1, 2] of the boundary of the region that ``points`` (mutually non-dominated,
    minimisation) weakly dominate, between its two ends: sorted by the first objective, each point is
    followed by the corner at the next point's first and its own second coordinate."""
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    pts = pts[np.lexsort((-pts[:, 1], pts[:, 0]))]
    if len(pts) < 2:
        return pts
    corners = np.column_stack([pts[1:, 0], pts[:-1, 1]])
    out = np.empty((2 * len(pts) - 1, 2))
    out[0::2], out[1::2] = pts, corners
    return out


def runs_needed(runs: int, level: float) -> int:
    """How many of ``runs`` must attain a point for it to be on the ``level`` attainment surface:
    ceil(level * runs), at least one."""
    if not 0.0 < level <= 1.0:
        raise ValueError(f"an attainment level is a share of runs in (0, 1], got {level}")
    return max(1, math.ceil(level * runs - 1e-9))


def attainment_points(points_per_run: Sequence[np.ndarray], level: float) -> np.ndarray:
    """The minimal points [K, 2] (sorted by the first objective) of the region weakly dominated by at
    least :func:`runs_needed` of the runs, from ``moocore.eaf``; empty when too few runs have points.
    Each run is an array [N_i, 2] in minimisation form (a run may be empty)."""
    runs = [np.asarray(p, dtype=float) for p in points_per_run]
    runs = [r.reshape(0, 2) if r.size == 0 else r for r in runs]
    if any(r.ndim != 2 or r.shape[1] != 2 for r in runs):
        raise ValueError(f"attainment surfaces are drawn for two objectives; got runs of {[r.shape for r in runs]}")
    runs = [r[np.isfinite(r).all(axis=1)] for r in runs]
    needed = runs_needed(len(runs), level)
    filled = [r for r in runs if len(r)]
    if needed > len(filled):
        return np.empty((0, 2))
    sets = np.concatenate([np.full(len(r), i) for i, r in enumerate(filled)])
    # moocore reaches ceil(p / 100 * m) runs of the m it is given; half a run below `needed` is exact
    percentile = 100.0 * (needed - 0.5) / len(filled)
    surface = moocore.eaf(np.concatenate(filled), sets, percentiles=[percentile])[:, :2]
    return non_dominated(surface) if len(surface) else np.empty((0, 2))


def attainment_surface(points_per_run: list[np.ndarray], level: float) -> np.ndarray:
    """The ``level`` attainment surface (a share of runs in (0, 1]; see the module docstring) of the
    runs ``points_per_run`` (each [N_i, 2], minimisation), as staircase vertices [2K - 1, 2]
    (:func:`staircase` of :func:`attainment_points`)."""
    return staircase(attainment_points(points_per_run, level))


def extended(vertices: np.ndarray, upper: np.ndarray | Sequence[float]) -> np.ndarray:
    """A staircase with its two open ends drawn out to ``upper`` (x, y): up from the first point,
    right from the last."""
    if not len(vertices):
        return vertices
    return np.vstack([[vertices[0, 0], upper[1]], vertices, [upper[0], vertices[-1, 1]]])


def median_line(runs: list[np.ndarray]) -> np.ndarray:
    """The median attainment surface of ``runs`` drawn out to their largest values (:func:`extended`)."""
    return extended(attainment_surface(runs, MEDIAN), np.concatenate(runs).max(axis=0))


def padded(low: np.ndarray, high: np.ndarray, share: float = PAD) -> np.ndarray:
    """The box [[x0, y0], [x1, y1]] from ``low`` to ``high`` with a margin of ``share`` of its span."""
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    pad = share * np.maximum(high - low, 1e-6 * np.maximum(1.0, np.abs(high)))
    return np.array([low - pad, high + pad])


def reference_shown(points: np.ndarray, reference: np.ndarray) -> bool:
    """Whether the reference point goes inside the axes (:data:`REFERENCE_REACH`)."""
    low, high = points.min(axis=0), points.max(axis=0)
    span = np.maximum(high - low, 1e-12)
    return bool(np.all((reference >= low - REFERENCE_REACH * span) & (reference <= high + REFERENCE_REACH * span)))


def below_gap(points: np.ndarray) -> np.ndarray:
    """Per axis, the largest value below the widest gap between sorted values when that gap is more
    than half the axis's range and at least half the points lie below it (a whole method far off, such
    as one that diverged), else the largest value."""
    out = points.max(axis=0).astype(float)
    for k in range(points.shape[1]):
        values = np.sort(points[:, k])
        gaps = np.diff(values)
        if len(gaps) and gaps.max() > 0.5 * (values[-1] - values[0]):
            cut = int(gaps.argmax())
            if cut + 1 >= len(values) / 2:
                out[k] = values[cut]
    return out


def bulk_window(points: np.ndarray, keep: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """A zoom window on the bulk of ``points`` when a few far points (typically the single-task ends of
    linear scalarization) squeeze it into less than :data:`BULK_AREA` of the axes ``box``; else None.
    The bulk, on each axis: from the least value to the largest within half their range beyond the
    :data:`BULK_QUANTILE` (so a front's own ends stay in) and below a wide gap (:func:`below_gap`), and
    every point of ``keep``."""
    if len(points) < 10:
        return None
    low, quantile = points.min(axis=0), np.quantile(points, BULK_QUANTILE, axis=0)
    reach = np.minimum(quantile + 0.5 * (quantile - low), below_gap(points))
    high = np.array([points[points[:, k] <= reach[k], k].max() for k in range(2)])
    if len(keep):
        high = np.maximum(high, keep.max(axis=0))
    window = padded(low, high)
    share = (window[1] - window[0]) / (box[1] - box[0])
    return window if float(np.prod(share)) < BULK_AREA else None


def cluster_window(points: np.ndarray, labels: int, box: np.ndarray) -> np.ndarray | None:
    """The zoom window [[x0, y0], [x1, y1]] on single models' ``points`` (of ``labels`` models) when
    they form a dense cluster (:data:`CLUSTER_SHARE`, :data:`MARKER_SHARE`) in axes with limits ``box``,
    else None."""
    if labels < 2 or len(points) < 4:
        return None
    span = box[1] - box[0]
    low, high = points.min(axis=0), points.max(axis=0)
    if np.any(high - low > CLUSTER_SHARE * span):
        return None
    apart = np.abs(points[:, None, :] - points[None, :, :]) / span
    overlap = np.all(apart < MARKER_SHARE, axis=2) & ~np.eye(len(points), dtype=bool)
    if not overlap.any():
        return None
    pad = np.maximum(0.25 * (high - low), 0.01 * span)
    return np.array([low - pad, high + pad])


def inset_place(
    window: np.ndarray, markers: np.ndarray, lines: list[np.ndarray], box: np.ndarray
) -> list[float] | None:
    """Where an inset goes, in axes fraction [x0, y0, w, h]: of the places whose inset and tick labels
    cover no marker and not the zoom window (the corners, then the middles of the sides), the one that
    covers the least of the lines; None when none is free."""

    def fraction(xy: np.ndarray) -> np.ndarray:
        return (np.asarray(xy, dtype=float).reshape(-1, 2) - box[0]) / (box[1] - box[0])

    samples = [fraction(np.linspace(a, b, 25)) for line in lines for a, b in zip(line[:-1], line[1:], strict=True)]
    sampled = np.concatenate(samples) if samples else np.empty((0, 2))
    marks, zoom = fraction(markers), fraction(window)
    side, far = INSET_SIZE, 1.0 - INSET_SIZE - 0.02
    mid = (TICK_ROOM + far) / 2
    places = [(far, far), (TICK_ROOM, TICK_ROOM), (far, TICK_ROOM), (TICK_ROOM, far)]
    places += [(far, mid), (mid, far), (mid, TICK_ROOM), (TICK_ROOM, mid)]
    best: tuple[int, list[float]] | None = None
    for x0, y0 in places:
        low, high = np.array([x0 - TICK_ROOM, y0 - TICK_ROOM]), np.array([x0 + side, y0 + side])
        if np.any(np.all((marks >= low - 0.02) & (marks <= high + 0.02), axis=1)):
            continue
        if np.all(zoom[1] >= low - 0.02) and np.all(zoom[0] <= high + 0.02):
            continue
        covered = int(np.all((sampled >= low) & (sampled <= high), axis=1).sum())
        if best is None or covered < best[0]:
            best = (covered, [x0, y0, side, side])
    return None if best is None else best[1]


def attainment_figure(
    fronts: pd.DataFrame,
    spec: DatasetSpec,
    reference: Sequence[float] | None = None,
    single_task: Sequence[float] | None = None,
    published: pd.DataFrame | None = None,
) -> plt.Figure | None:
    """Per Pareto-front method (a label with more than one ray), the median attainment surface over
    seeds as a staircase line and the 25%-75% band, drawn out to the method's own largest values;
    every seed's points as small translucent markers; single models (one ray) as their muted
    markers, one per seed, with no surface. Also marked: the hypervolume ``reference`` point
    (default: the dataset's; an arrow at the border where it is far off, :data:`REFERENCE_REACH`) and,
    when given, ``single_task``: each task's objective value of a model trained on that task alone,
    as a dotted line (vertical for the first task, horizontal for the second). ``published``
    (:func:`bench.analysis.paper.paper_points`), on the dataset it was published for only: hollow
    markers, a dashed median surface through a published front
    (:func:`bench.analysis.published_marks.draw_published`).

    Every point, published ones included, is inside the (first) axes: no axis cut. Where a few far
    points squeeze the rest (:func:`bulk_window`), a second panel beside it enlarges the bulk; a dense
    cluster of single models (:func:`cluster_window`) is enlarged in an inset in a free corner of the
    most enlarged panel (clear of every marker and of the arrow to a far reference point), or in a
    panel of its own where no corner is free. Zoomed regions are outlined in the panel they enlarge.

    ``fronts``: a tidy fronts table (module docstring). None for a dataset whose hypervolume has other
    than two objectives, or for an empty table."""
    definition = spec.hv_default
    if len(definition.coordinates) != 2 or fronts.empty:
        return None
    names = [o.name for o in spec.hypervolume_objectives]
    table = objective_table(fronts, spec)
    if table.empty:
        return None
    ref = np.asarray(definition.reference if reference is None else reference, dtype=float)
    rays = table.groupby("label")["ray_index"].nunique()
    kinds = {lab: "front" if rays[lab] > 1 else "point" for lab in rays.index}
    labels = ordered(list(kinds), kinds)
    own = {lab: table[table["label"] == lab][names].to_numpy(float) for lab in labels}
    runs = {
        lab: [g[names].to_numpy(float) for _, g in table[table["label"] == lab].groupby("seed")]
        for lab in labels
        if kinds[lab] == "front"
    }
    surfaces = {
        lab: {q: extended(attainment_surface(r, q), own[lab].max(axis=0)) for q in (MEDIAN, *BAND)}
        for lab, r in runs.items()
    }
    shown = shown_published(published, spec)
    theirs = shown[names].to_numpy(float).reshape(-1, 2)
    ours = {method_of(lab) for lab in labels}
    points = np.concatenate([table[names].to_numpy(float), theirs])
    show_reference = reference_shown(points, ref)
    ends = None if single_task is None else np.asarray(single_task, dtype=float)
    everything = np.concatenate(
        [points, *([ref[None, :]] if show_reference else []), *([ends[None, :]] if ends is not None else [])]
    )
    box = padded(everything.min(axis=0), everything.max(axis=0))
    singles = [lab for lab in labels if kinds[lab] == "point"]
    single_points = np.concatenate([own[lab] for lab in singles]) if singles else np.empty((0, 2))
    boxes = [box]
    keep = np.concatenate([single_points, *([ends[None, :]] if ends is not None else [])])
    bulk = bulk_window(points, keep, box)
    if bulk is not None:
        boxes.append(bulk)
    cluster = cluster_window(single_points, len(singles), boxes[-1])
    lines = [s[q] for s in surfaces.values() for q in (MEDIAN, *BAND)]
    pointer = [] if show_reference or bulk is not None else [arrow_region(ref, box)]  # the inset goes beside it
    marked = np.concatenate([points, *([ref[None, :]] if show_reference else []), *pointer])
    place = None if cluster is None else inset_place(cluster, marked, lines, boxes[-1])
    if cluster is not None and place is None:
        boxes.append(cluster)
    seeds = table.groupby("label")["seed"].nunique()

    def draw(ax: plt.Axes) -> None:
        for lab in labels:
            kw = label_style(lab, labels, kinds[lab])
            if kinds[lab] == "front":
                low, high = (surfaces[lab][q] for q in BAND)
                if len(low) and len(high):
                    (band,) = ax.fill(*np.vstack([low, high[::-1]]).T, color=faded(kw["color"], 0.14), linewidth=0)
                    band.set(zorder=1, gid=f"band:{lab}")
                median = surfaces[lab][MEDIAN]
                (line,) = ax.plot(
                    median[:, 0], median[:, 1], color=kw["color"], linestyle=kw["linestyle"], linewidth=1.1, zorder=3
                )
                line.set_gid(f"median:{lab}")
                style: dict[str, Any] = {"markersize": 2.6, "alpha": 0.5, "markeredgewidth": 0.0, "zorder": 2}
            else:
                style = {"markersize": 4.0, "alpha": 0.85, "markeredgewidth": kw["markeredgewidth"], "zorder": 4}
            (dots,) = ax.plot(
                own[lab][:, 0],
                own[lab][:, 1],
                linestyle="none",
                marker=kw["marker"],
                color=kw["color"],
                fillstyle=kw["fillstyle"],
                markeredgecolor=kw["markeredgecolor"],
                **style,
            )
            dots.set_gid(f"method:{lab}")
        draw_published(ax, shown, names, ours, median_line)
        if ends is not None:
            ax.axvline(ends[0], color="0.35", linestyle=":", linewidth=0.8, zorder=0, gid="single-task:0")
            ax.axhline(ends[1], color="0.35", linestyle=":", linewidth=0.8, zorder=0, gid="single-task:1")
        if show_reference:
            ax.plot(*ref, linestyle="none", marker="*", markersize=6.5, color="black", zorder=5, gid="reference")

    with paper_rc():
        width = COLUMN if len(boxes) == 1 else FULL
        fig, grid = plt.subplots(1, len(boxes), figsize=(width, width), squeeze=False, layout="constrained")
        axes = list(grid[0])
        for k, (ax, limits) in enumerate(zip(axes, boxes, strict=True)):
            draw(ax)
            ax.set_xlim(limits[0, 0], limits[1, 0])
            ax.set_ylim(limits[0, 1], limits[1, 1])
            ax.set_xlabel(axis_label(spec, 0))
            ax.set_ylabel(axis_label(spec, 1))
            if k > 0:  # outline what this panel enlarges in the panel before it (no connectors across panels)
                ax.set_gid("zoom")
                corner, size = limits[0], limits[1] - limits[0]
                axes[k - 1].indicate_inset([*corner, *size], edgecolor="0.45", linewidth=0.6)
        if not show_reference:
            point_to_reference(axes[0], ref, box)
        if cluster is not None and place is not None:
            inset = axes[-1].inset_axes(place)
            draw(inset)
            inset.set_xlim(cluster[0, 0], cluster[1, 0])
            inset.set_ylim(cluster[0, 1], cluster[1, 1])
            inset.tick_params(labelsize=6.5, length=2, pad=1)
            for axis in (inset.xaxis, inset.yaxis):
                axis.set_major_locator(matplotlib.ticker.MaxNLocator(3))
            inset.set_gid("inset")
            axes[-1].indicate_inset_zoom(inset, edgecolor="0.45", linewidth=0.5)
        seed_marks: list[tuple[Artist, str]] = []
        if runs:
            seed_marks += [
                (Line2D([], [], color="0.2", linewidth=1.1), "median surface"),
                (Patch(color=faded("0.2", 0.2), linewidth=0), "25-75% band"),
                (
                    Line2D([], [], linestyle="none", marker="o", markersize=2.6, color="0.2", alpha=0.5, mew=0),
                    "seed point",
                ),
            ]
        marks: list[tuple[Artist, str]] = []
        if show_reference:
            marks.append((Line2D([], [], linestyle="none", marker="*", markersize=6.5, color="black"), "HV reference"))
        if ends is not None:
            marks.append((Line2D([], [], color="0.35", linestyle=":", linewidth=0.8), "single task"))
        extra = [("marks", seed_marks + marks + published_legend(shown, ours))]  # one block: room for three
        method_legend(fig, labels, kinds, extra, names=seed_names(seeds))
        fit_axes_height(fig, axes[0], AXES_HEIGHT)
    return fig


def arrow_geometry(reference: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where :func:`point_to_reference` draws, in axes fraction: the arrow's tip and tail, and the side
    of the tail its label extends to (-1, 0 or 1 per axis)."""
    direction = (reference - box[0]) / (box[1] - box[0]) - 0.5
    direction = direction / max(float(np.abs(direction).max()), 1e-12)
    tip = 0.5 + 0.49 * direction
    tail = tip - 0.13 * direction / max(float(np.linalg.norm(direction)), 1e-12)
    side = -np.sign(direction) * (np.abs(direction) > 0.3)
    return tip, tail, side


def arrow_region(reference: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Points (data coordinates of ``box``) along the arrow and over its label, for an inset to avoid."""
    tip, tail, side = arrow_geometry(reference, box)
    label = tail + np.array([0.3, 0.12]) * np.where(side == 0, [[-0.5], [0.5]], [[0.0], [1.0]] * side)
    corners = np.array([[x, y] for x in label[:, 0] for y in label[:, 1]])
    fractions = np.vstack([np.linspace(tail, tip, 5), corners])
    return box[0] + fractions * (box[1] - box[0])


def point_to_reference(ax: plt.Axes, reference: np.ndarray, box: np.ndarray) -> None:
    """An arrow at the border of ``ax`` towards a reference point that lies outside it, with its value."""
    tip, tail, side = arrow_geometry(reference, box)
    text = f"HV reference\n({', '.join(f'{v:g}' for v in reference)})"
    ax.annotate(
        text,
        xy=tuple(tip),
        xytext=tuple(tail),
        xycoords="axes fraction",
        textcoords="axes fraction",
        ha={-1.0: "right", 1.0: "left"}.get(float(side[0]), "center"),
        va={-1.0: "top", 1.0: "bottom"}.get(float(side[1]), "center"),
        fontsize=6.5,
        color="0.3",
        arrowprops={"arrowstyle": "->", "color": "0.3", "linewidth": 0.7, "shrinkA": 0, "shrinkB": 0},
        gid="reference",
    )


def caption_attainment(
    spec: DatasetSpec,
    protocol: str,
    seeds: Sequence[int],
    reference: Sequence[float] | None = None,
    published: pd.DataFrame | None = None,
) -> str:
    """What :func:`attainment_figure` shows, for the report's text; ``published`` as given to it."""
    ref = tuple(spec.hv_default.reference if reference is None else reference)
    shown = shown_published(published, spec)
    theirs = (
        f"Hollow markers are published numbers ({published_sources(shown)}), one per seed, in the method's "
        "colour where it ran here and grey where it did not; a dashed line is a published front's median "
        "surface. "
        if len(shown)
        else ""
    )
    axes = " and ".join(axis_label(spec, k) for k in range(min(2, len(spec.hypervolume_objectives))))
    return (
        f"{spec.name}, {protocol} protocol, seeds {', '.join(str(s) for s in seeds)}: empirical attainment of the "
        f"test fronts over seeds (each seed one run), on {axes} (lower is better). Per Pareto front learning method, "
        "the line is the median (50%) attainment surface, the boundary of what at least half of the seeds reach, "
        "and the band lies between the 25% and 75% surfaces; small translucent markers are every seed's ray "
        "points, muted markers the single models (one per seed). Every point lies inside the left axes; a panel "
        "beside them, where present, enlarges the region outlined there, and an inset the cluster of single "
        "models; dotted lines, where present, are single-task models' errors on their own task. "
        f"{theirs}The hypervolume "
        f"reference point is {tuple(float(v) for v in ref)} "
        "(a star, or an arrow at the border where it lies beyond the points)."
    )
