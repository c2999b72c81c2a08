"""Paper figures for one dataset, each saved as PNG and vector PDF (atomically), in the style of
:mod:`bench.analysis.style` (one colour and marker per method, fronts apart from single models); the
fronts themselves are drawn by :mod:`bench.analysis.attainment`:

- ``convergence``: validation hypervolume against the training step (mean over seeds, ±1 std band);
- ``memory``: parameters, training-state bytes by part, and peak training memory where it tells the
  methods apart (:func:`peak_discriminates`);
- ``hv_vs_overhead``: hypervolume against trainable parameters relative to one model.

Figures carry no titles: :func:`caption` gives the text that says what each one shows.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import matplotlib.colors
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from bench.analysis.paper import paper_dataset
from bench.analysis.style import (
    COLUMN,
    FULL,
    PUBLISHED_COLOR,
    kind_of,
    label_style,
    method_legend,
    method_of,
    method_style,
    ordered,
    paper_rc,
)
from bench.core.atomic import write_bytes
from bench.core.spec import DatasetSpec

matplotlib.use("Agg")  # files only; also on machines without a display

FORMATS = ("png", "pdf")
PANEL_HEIGHT = 2.2
"""Height (inches) of one plot panel."""
BAR_HEIGHT = 0.13
"""Height (inches) of one method's row in the memory figure."""
NEAR_ONE = 1.05
"""Methods with fewer trainable parameters than this many plain models share the 1× strip."""
PEAK_SPREAD_SHOWN = 1.5
"""Process peak RSS (CPU) is drawn only when the largest is at least this many times the smallest."""
STATE_PARTS: tuple[tuple[str, str, float], ...] = (("parameter_bytes", "parameters", 1.0),)
STATE_PARTS += (("gradient_bytes", "gradients", 0.6), ("optimizer_bytes", "optimizer state", 0.3))
"""Training-state parts: column, legend name, opacity of the method's colour."""


def save(fig: plt.Figure | None, directory: Path, name: str) -> list[Path]:
    """Write ``fig`` as ``name.<fmt>`` for each of :data:`FORMATS` (reproducible PDF bytes), then close
    it; nothing for no figure (a ``*_figure`` function with nothing to draw)."""
    if fig is None:
        return []
    paths = []
    with paper_rc():
        for fmt in FORMATS:
            buffer = io.BytesIO()
            fig.savefig(buffer, format=fmt, metadata={"CreationDate": None} if fmt == "pdf" else None)
            path = Path(directory) / f"{name}.{fmt}"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes(path, buffer.getvalue())
            paths.append(path)
    plt.close(fig)
    return paths


def caption(name: str, spec: DatasetSpec) -> str:
    """What figure ``name`` shows, for the report's text (the figures themselves have no titles)."""
    reference = tuple(spec.hv_reference)
    captions = {
        "memory": f"{spec.name}: parameters (marker: total, tick: at inference), training state (parameters, "
        "gradients, optimizer state) and, where it differs between methods, peak training memory; "
        "means over seeds",
        "hv_vs_overhead": f"{spec.name}: test hypervolume (reference point {reference}, mean ± std over seeds) "
        "against trainable parameters relative to one plain model; methods within 5% of one model's size "
        "side by side on the left, by hypervolume"
        + (", hollow: the same method's published number" if shows_published(spec) else ""),
    }
    return captions[name]


def shows_published(spec: DatasetSpec) -> bool:
    """Published numbers go only on axes of the dataset they were published for."""
    return paper_dataset(spec) == spec.name


def ratio_axis(ax: plt.Axes, values: np.ndarray, axis: str = "x", unit: str = "") -> None:
    """Log scale when the values span more than 3x, with plain-number tick labels."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    if len(values) and values.max() / values.min() > 3:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(
        matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}{unit}" if v >= 1000 else f"{v:.4g}{unit}")
    )
    target.set_minor_formatter(matplotlib.ticker.NullFormatter())


def axis_label(spec: DatasetSpec, k: int) -> str:
    objective = spec.hypervolume_objectives[k]
    metric = objective.metric(objective.hv_metric)
    what = f"{metric.best:g} − {metric.name}" if metric.higher_is_better else metric.name
    return f"{objective.name}: {what}"


def fit_axes_height(fig: plt.Figure, ax: plt.Axes, height: float, rows: int = 1) -> None:
    """Grow or shrink the figure so that ``ax`` (one of ``rows`` rows) is ``height`` inches tall
    after the constrained layout has made room for legends and labels. One layout pass: the labels'
    room barely changes with the height, so the axes land within 1% of it (a second pass, a whole
    draw of the figure, moved them by 0.9% at most on the report's figures)."""
    fig.canvas.draw()
    actual = ax.get_position().height * fig.get_figheight()
    fig.set_size_inches(fig.get_figwidth(), fig.get_figheight() + (height - actual) * rows)


def faded(color: str, alpha: float) -> tuple[float, float, float, float]:
    return matplotlib.colors.to_rgba(color, alpha)


def seed_names(counts: pd.Series) -> dict[str, str]:
    """Legend text: the label, with its seed count where it has fewer seeds than the others."""
    full = counts.max() if len(counts) else 0
    return {lab: lab if n == full else f"{lab} (n={n})" for lab, n in counts.items()}


def convergence_figure(curves: pd.DataFrame, spec: DatasetSpec) -> plt.Figure | None:
    """Validation hypervolume against the training step, per label (mean over seeds, ±1 std band):
    fronts solid, single models dashed. No time axis: runs a sweep packs side by side share the CPUs,
    so their seconds are not clean timings (the time table gives them, with that caveat)."""
    if curves.empty:
        return None
    kinds = curves.groupby("label")["kind"].first().to_dict()
    labels = ordered(list(kinds), kinds)
    stats = curves.groupby(["label", "step"], as_index=False).agg(hv=("hypervolume", "mean"), sd=("hypervolume", "std"))
    with paper_rc():
        fig, ax = plt.subplots(figsize=(COLUMN, 3.0), layout="constrained")
        for lab in labels:
            s = stats[stats["label"] == lab].sort_values("step")
            band = s["sd"].fillna(0.0)
            kw = label_style(lab, labels, kinds[lab])
            point = kind_of(lab, kinds[lab]) == "point"
            if point:
                kw["linestyle"] = "--"
            (line,) = ax.plot(
                s["step"], s["hv"], markersize=2.5, linewidth=0.8 if point else 1.1, zorder=2 if point else 3, **kw
            )
            line.set_gid(f"method:{lab}")
            ax.fill_between(s["step"], s["hv"] - band, s["hv"] + band, color=kw["color"], alpha=0.12, linewidth=0)
        ax.set_xlabel("training step")
        ax.set_ylabel("validation hypervolume")
        seeds = curves.groupby("label")["seed"].nunique()
        method_legend(fig, labels, kinds, point_line="--", names=seed_names(seeds))
        fit_axes_height(fig, ax, PANEL_HEIGHT * 0.9)
    return fig


def peak_discriminates(footprint: pd.DataFrame) -> bool:
    """Whether peak training memory is worth a panel: always when every record is a CUDA peak (the
    allocator's own counter); for process peak RSS (CPU, mostly the interpreter and libraries) only
    when the largest is at least :data:`PEAK_SPREAD_SHOWN` times the smallest; never for a mix."""
    peaks = footprint["peak_train_bytes"].to_numpy(float)
    kinds = footprint["peak_kind"].astype(str)
    if not np.isfinite(peaks).any() or (peaks[np.isfinite(peaks)] <= 0).any():
        return False
    if kinds.str.startswith("cuda").all():
        return True
    if kinds.str.startswith("cuda").any():
        return False
    finite = peaks[np.isfinite(peaks)]
    return bool(finite.max() >= PEAK_SPREAD_SHOWN * finite.min())


def memory_figure(footprint: pd.DataFrame, spec: DatasetSpec) -> plt.Figure | None:
    """Bars per method (fronts above single models, each group by total parameters): parameters
    (total; tick at inference), training state by part, and peak training memory if it discriminates."""
    if footprint.empty:
        return None
    table = footprint.assign(front=[kind_of(lab) == "front" for lab in footprint["label"]])
    table = table.sort_values(["front", "total", "label"], ascending=[False, False, True]).reset_index(drop=True)
    labels = list(table["label"])
    y = np.arange(len(table))
    show_peak = peak_discriminates(table)
    panels = 3 if show_peak else 2
    with paper_rc():
        fig, axes = plt.subplots(1, panels, figsize=(FULL, 3.0), sharey=True, layout="constrained")
        colors = [label_style(lab, labels)["color"] for lab in labels]
        for k, lab in enumerate(labels):  # a dot plot: bars have no length on a log axis
            kw = label_style(lab, labels)
            total, inference = table.loc[k, "total"], table.loc[k, "inference"]
            axes[0].plot([inference, total], [k, k], color=kw["color"], linewidth=0.8, zorder=1)
            kw["linestyle"] = "none"
            (dot,) = axes[0].plot([total], [k], markersize=4.5, zorder=3, **kw)
            dot.set_gid(f"method:{lab}")
        axes[0].plot(table["inference"], y, linestyle="none", marker="|", markersize=6, color="black", mew=0.8)
        ratio_axis(axes[0], np.concatenate([table["total"], table["inference"]]))
        axes[0].set_xlabel("parameters")
        axes[0].grid(axis="x", which="major", color="0.9")
        axes[0].legend(
            [
                Line2D([], [], linestyle="none", marker="o", color="0.55"),
                Line2D([], [], linestyle="none", marker="|", color="black", markersize=6),
            ],
            ["total", "at inference"],
            loc="lower center",
            bbox_to_anchor=(0.5, 1.0),
            ncols=2,
        )
        left = np.zeros(len(table))
        for column, _, alpha in STATE_PARTS:
            values = table[column].fillna(0.0).to_numpy() / 2**20
            axes[1].barh(
                y, values, left=left, height=0.7, color=[faded(c, alpha) for c in colors], linewidth=0, gid=column
            )
            left += values
        axes[1].set_xlabel("training state (MiB)")
        axes[1].legend(
            [Patch(color=faded("0.3", alpha)) for _, _, alpha in STATE_PARTS],
            [name for _, name, _ in STATE_PARTS],
            loc="lower center",
            bbox_to_anchor=(0.5, 1.0),
            ncols=3,
        )
        if show_peak:
            cuda = str(table["peak_kind"].iloc[0]).startswith("cuda")
            axes[2].barh(y, table["peak_train_bytes"] / 2**20, height=0.7, color=colors, gid="peak")
            axes[2].set_xlabel(f"peak training memory (MiB, {'CUDA allocated' if cuda else 'process RSS'})")
        fronts = int(table["front"].sum())
        for ax in axes:
            if 0 < fronts < len(table):
                ax.axhline(fronts - 0.5, color="0.6", linewidth=0.5, linestyle=":")
            ax.tick_params(axis="y", length=0)
        axes[0].set_yticks(y, labels)
        axes[0].set_ylim(len(table) - 0.5, -0.5)
        fit_axes_height(fig, axes[0], max(1.0, BAR_HEIGHT * len(table)))
    return fig


def hv_vs_overhead_figure(
    summary: pd.DataFrame, footprint: pd.DataFrame, published: pd.DataFrame, spec: DatasetSpec
) -> plt.Figure | None:
    """Hypervolume (mean ± std over seeds) against trainable parameters relative to one model.
    Methods within :data:`NEAR_ONE` of one model share a strip on the left, side by side in order of
    hypervolume (on a log axis they would all sit on one spot); the others are on a log axis to its
    right. Beside a method, its published hypervolume on this dataset (only when :func:`shows_published`)."""
    table = summary.merge(footprint[["label", "x_single"]], on="label").dropna(subset=["hv_mean", "x_single"])
    if table.empty:
        return None
    kinds = dict(zip(table["label"], table["kind"], strict=True))
    labels = ordered(list(kinds), kinds)
    table = table.set_index("label").loc[labels].reset_index()
    near = table[table["x_single"] < NEAR_ONE].sort_values(["hv_mean", "label"], ascending=[False, True])
    far = table[table["x_single"] >= NEAR_ONE]
    if not shows_published(spec) or published.empty:
        shown = published.iloc[0:0]
    else:  # beside ours only the same method of the same kind (the official "ls" is one model, ours a front)
        method_kinds = dict(zip(table["method"], table["kind"], strict=False))
        same = [
            m in method_kinds and k in ("", method_kinds[m])
            for m, k in zip(published["method"], published["kind"], strict=True)
        ]
        shown = published[same]
    with paper_rc():
        ratios = ([0.14 * (len(near) + 1)] if len(near) else []) + ([2.0] if len(far) else [])
        fig, grid = plt.subplots(
            1, len(ratios), figsize=(COLUMN, 3.5), sharey=True, width_ratios=ratios, squeeze=False, layout="constrained"
        )
        axes = list(grid[0])
        place: dict[str, tuple[plt.Axes, float]] = {r.label: (axes[0], k) for k, r in enumerate(near.itertuples())}
        place |= {r.label: (axes[-1], r.x_single) for r in far.itertuples()}
        for r in table.itertuples():
            ax, x = place[r.label]
            kw = label_style(r.label, labels, r.kind)
            kw["linestyle"] = "none"
            front = kind_of(r.label, r.kind) == "front"
            bars = ax.errorbar(
                x,
                r.hv_mean,
                yerr=0.0 if np.isnan(r.hv_std) else r.hv_std,
                markersize=4.0 if front else 4.5,
                ecolor=faded(kw["color"], 0.6),
                elinewidth=0.7,
                zorder=3,
                **kw,
            )
            bars.lines[0].set_gid(f"method:{r.label}")
        for r in shown.itertuples():
            style = method_style(r.method)
            for lab in (lab for lab in labels if method_of(lab) == r.method):
                ax, x = place[lab]
                (ring,) = ax.plot(
                    x,
                    r.hv_mean,
                    marker=style.marker,
                    markerfacecolor="none",
                    markeredgewidth=0.8,
                    color=style.color,
                    markersize=5.5,
                    linestyle="none",
                    zorder=2,
                )
                ring.set_gid(f"published:{r.method}")
        if len(near):
            axes[0].set_xticks([])
            axes[0].set_xlim(-0.7, len(near) - 0.3)
            axes[0].set_xlabel("≈1×" if len(far) else "parameters: ≈1× one model")
        if len(far):
            ratio_axis(axes[-1], far["x_single"].to_numpy(), unit="×")
            axes[-1].set_xlabel("parameters (× one model)")
            if len(near):
                axes[-1].tick_params(axis="y", left=False)
        axes[0].set_ylabel("test hypervolume")
        extra = []
        if len(shown):
            header = f"published ({', '.join(sorted(shown['source'].unique()))})"
            ring = Line2D([], [], marker="o", linestyle="none", color=PUBLISHED_COLOR, markerfacecolor="none")
            extra.append((header, [(ring, "same method")]))
        seeds = table.set_index("label")["n_seeds"] if "n_seeds" in table else pd.Series(dtype=int)
        method_legend(fig, labels, kinds, extra, names=seed_names(seeds))
        fit_axes_height(fig, axes[0], PANEL_HEIGHT)
    return fig
