"""Published numbers beside our points in objective space (style.py, "Published numbers"): hollow
markers in the method's colour and marker where the method ran here, grey otherwise, and for a
published front its median attainment surface as a dashed line. Drawn only on the axes of the
dataset the numbers were published for (:func:`bench.analysis.figures.shows_published`).

The points are :func:`bench.analysis.paper.paper_points`: one row per (source, method, seed,
ray_index), one column per hypervolume objective in minimisation form; ``ray_index`` is -1 for a
single model.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.artist import Artist

from bench.analysis.figures import shows_published
from bench.analysis.style import PUBLISHED_COLOR, blank, method_style, published_handles
from bench.core.spec import DatasetSpec

Surface = Callable[[list[np.ndarray]], np.ndarray]
"""Runs (one [N_i, 2] array per seed) -> the line drawn through a published front."""


def shown_published(published: pd.DataFrame | None, spec: DatasetSpec) -> pd.DataFrame:
    """The published points drawn on ``spec``'s axes: every complete one when :func:`shows_published`,
    else none."""
    names = [o.name for o in spec.hypervolume_objectives]
    if published is None or published.empty or not shows_published(spec):
        return pd.DataFrame(columns=["source", "method", "seed", "ray_index", *names])
    return published.dropna(subset=names).reset_index(drop=True)


def is_front(group: pd.DataFrame) -> bool:
    return bool(group["ray_index"].nunique() > 1)


def draw_published(
    ax: plt.Axes, shown: pd.DataFrame, names: list[str], ours: Collection[str], surface: Surface
) -> None:
    """Per published method, its points as hollow markers (gid ``published:<method>``) in the method's
    colour and marker when it is one of ``ours`` (grey circles or crosses otherwise); through a
    published front, ``surface`` of its seeds as a dashed line (gid ``published-surface:<method>``)."""
    for method, group in shown.groupby("method", sort=True):
        front, own = is_front(group), method in ours
        color = method_style(str(method)).color if own else PUBLISHED_COLOR
        if front:
            line = surface([g[names].to_numpy(float) for _, g in group.groupby("seed")])
            if len(line):
                ax.plot(line[:, 0], line[:, 1], linestyle="--", color=color, linewidth=0.8, zorder=3.5)[0].set_gid(
                    f"published-surface:{method}"
                )
        (marks,) = ax.plot(
            group[names[0]],
            group[names[1]],
            linestyle="none",
            marker=method_style(str(method)).marker if own else ("o" if front else "x"),
            markersize=3.5,
            markerfacecolor="none",
            markeredgewidth=0.7,
            color=color,
            zorder=3.5,
        )
        marks.set_gid(f"published:{method}")


def published_legend(shown: pd.DataFrame, ours: Collection[str]) -> list[tuple[Artist, str]]:
    """Legend entries for the published points, under a line that names their sources; none without
    any. Entries, not a block of their own: a column-wide figure has no room for a fourth block."""
    if shown.empty:
        return []
    per_method = shown.groupby("method")["ray_index"].nunique()
    own = per_method.index.isin(list(ours))
    handles = published_handles(
        bool(((per_method > 1) & own).any()), bool(((per_method <= 1) & own).any()), bool((~own).any())
    )
    return [(blank(), f"published\n({published_sources(shown)}):"), *handles]


def published_sources(shown: pd.DataFrame) -> str:
    """The sources of the published points, for a caption."""
    return ", ".join(sorted(shown["source"].unique()))
