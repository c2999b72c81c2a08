"""Seaborn figures for one dataset, each saved as PNG and PDF (atomically):

- ``fronts``: test fronts of every method overlaid, in minimisation form (mean over seeds per ray,
  ±1 std bars), single-point methods as markers, published points in grey beside them;
- ``convergence``: validation hypervolume against step and against training time (mean, ±1 std band);
- ``memory``: parameters, training-state bytes and peak training memory per method;
- ``hv_vs_overhead``: hypervolume against parameters relative to one model (the PaLoRA paper's
  comparison of fronts and their cost).
"""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd
import seaborn as sns

from bench.analysis.paper import paper_dataset
from bench.atomic import write_bytes
from bench.spec import DatasetSpec

matplotlib.use("Agg")  # files only; also on machines without a display

FORMATS = ("png", "pdf")
MAX_FRONT_OBJECTIVES = 4
POINT_MARKERS = "sD^vP*Xph<>"
PAPER_COLOR = "0.35"


def palette(labels: list[str]) -> dict[str, tuple[float, float, float]]:
    colors = sns.color_palette("tab20" if len(labels) > 10 else "tab10", len(labels))
    return dict(zip(labels, colors, strict=True))


def save(fig: plt.Figure, directory: Path, name: str, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    paths = []
    for fmt in formats:
        buffer = io.BytesIO()
        fig.savefig(
            buffer, format=fmt, dpi=200, bbox_inches="tight", metadata={"CreationDate": None} if fmt == "pdf" else None
        )
        path = Path(directory) / f"{name}.{fmt}"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(path, buffer.getvalue())
        paths.append(path)
    plt.close(fig)
    return paths


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
    return f"{objective.name}: {what} (test, lower is better)"


def view_limits(values: np.ndarray, reference: float) -> tuple[float, float]:
    """Axis limits that show where the fronts are: from the smallest value to a high quantile, so a
    handful of extreme points (LS models trained on one task) do not squash every front."""
    values = values[np.isfinite(values)]
    low, high = float(values.min()), float(min(np.quantile(values, 0.9), reference))
    pad = 0.08 * max(high - low, 1e-6)
    return low - pad, high + pad


def plot_fronts(fronts: pd.DataFrame, paper: pd.DataFrame, spec: DatasetSpec, directory: Path) -> list[Path]:
    """``fronts``: rows (label, kind, seed, ray_index, <objective>...) in minimisation form;
    ``paper``: :func:`bench.analysis.paper.paper_points` for this dataset."""
    names = [o.name for o in spec.hypervolume_objectives]
    if len(names) > MAX_FRONT_OBJECTIVES or fronts.empty:
        return []
    pairs = list(itertools.combinations(range(len(names)), 2))
    fig, axes = plt.subplots(1, len(pairs), figsize=(6.2 * len(pairs), 5.2), squeeze=False)
    labels = sorted(fronts["label"].unique())
    colors = palette(labels)
    point_markers = itertools.cycle(POINT_MARKERS)
    markers = {
        lab: ("o" if fronts[fronts["label"] == lab]["kind"].iloc[0] == "front" else next(point_markers))
        for lab in labels
    }
    mean = fronts.groupby(["label", "ray_index"])[names].mean()
    std = fronts.groupby(["label", "ray_index"])[names].std(ddof=1).fillna(0.0)
    seeds = fronts.groupby("label")["seed"].nunique()
    for ax, (i, j) in zip(axes[0], pairs, strict=True):
        for lab in labels:
            m, s = mean.loc[lab], std.loc[lab]
            is_front = len(m) > 1
            ax.errorbar(
                m[names[i]],
                m[names[j]],
                xerr=s[names[i]],
                yerr=s[names[j]],
                color=colors[lab],
                marker=markers[lab],
                markersize=4 if is_front else 7,
                linestyle="-" if is_front and len(names) == 2 else "none",
                linewidth=1.3,
                elinewidth=0.6,
                alpha=0.9,
                label=f"{lab} (n={seeds[lab]})",
            )
        for method, group in paper.groupby("method", sort=True) if not paper.empty else []:
            g = group.groupby("ray_index")[names].mean()
            is_front = len(g) > 1
            ax.plot(
                g[names[i]],
                g[names[j]],
                linestyle="--" if is_front else "none",
                marker="o" if is_front else "x",
                markersize=4 if is_front else 5,
                markerfacecolor="none",
                color=PAPER_COLOR,
                linewidth=0.9,
            )
            if is_front or paper["method"].nunique() <= 4:
                x, y = g[names[i]].iloc[0], g[names[j]].iloc[0]
                ax.annotate(method, (x, y), fontsize=7, color=PAPER_COLOR, xytext=(3, 2), textcoords="offset points")
        ours = fronts[[names[i], names[j]]].to_numpy(float)
        theirs = paper[[names[i], names[j]]].to_numpy(float) if not paper.empty else np.empty((0, 2))
        for axis, k, set_limits in ((0, i, ax.set_xlim), (1, j, ax.set_ylim)):
            low, high = view_limits(ours[:, axis], spec.hv_reference[k])
            if len(theirs):
                low = min(low, float(theirs[:, axis].min()) - 0.08 * (high - low))
            set_limits(low, high)
        hidden = int(((ours[:, 0] > ax.get_xlim()[1]) | (ours[:, 1] > ax.get_ylim()[1])).sum())
        if hidden:
            ax.text(
                0.99,
                0.99,
                f"{hidden} seed-points beyond the axes",
                transform=ax.transAxes,
                ha="right",
                va="top",
                fontsize=7,
                color="0.3",
            )
        ax.set_xlabel(axis_label(spec, i))
        ax.set_ylabel(axis_label(spec, j))
    handles, legend_labels = axes[0][0].get_legend_handles_labels()
    if not paper.empty:
        sources = ", ".join(sorted(paper["source"].unique()))
        fronts_published = paper.groupby("method")["ray_index"].nunique() > 1
        if fronts_published.any():
            handles.append(plt.Line2D([], [], color=PAPER_COLOR, marker="o", markerfacecolor="none", linestyle="--"))
            legend_labels.append(f"{sources}: fronts on {paper_dataset(spec)} (named)")
        if (~fronts_published).any():
            handles.append(plt.Line2D([], [], color=PAPER_COLOR, marker="x", linestyle="none"))
            legend_labels.append(
                f"{sources}: {int((~fronts_published).sum())} single-point methods on {paper_dataset(spec)}"
            )
    fig.legend(handles, legend_labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    fig.suptitle(f"{spec.name}: test fronts (mean over seeds, bars ±1 std); reference point {tuple(spec.hv_reference)}")
    fig.tight_layout()
    return save(fig, directory, "fronts")


def plot_convergence(curves: pd.DataFrame, spec: DatasetSpec, directory: Path) -> list[Path]:
    """Validation hypervolume against step, training seconds and wall seconds, per label (fronts
    solid, single-point methods dashed)."""
    if curves.empty:
        return []
    labels = sorted(curves["label"].unique())
    colors = palette(labels)
    kinds = curves.groupby("label")["kind"].first()
    stats = curves.groupby(["label", "step"], as_index=False).agg(
        hv=("hypervolume", "mean"),
        sd=("hypervolume", "std"),
        train_time=("train_time", "mean"),
        wall_time=("wall_time", "mean"),
    )
    axes_x = {
        "step": "training step",
        "train_time": "training time (s, evaluations excluded)",
        "wall_time": "wall time since start (s)",
    }
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), sharey=True)
    for lab in labels:
        s = stats[stats["label"] == lab].sort_values("step")
        band = s["sd"].fillna(0.0)
        style = "-" if kinds[lab] == "front" else "--"
        for ax, x in zip(axes, axes_x, strict=True):
            ax.plot(s[x], s["hv"], color=colors[lab], marker=".", linestyle=style, linewidth=1.3, label=lab)
            ax.fill_between(s[x], s["hv"] - band, s["hv"] + band, color=colors[lab], alpha=0.12, linewidth=0)
    for ax, label in zip(axes, axes_x.values(), strict=True):
        ax.set_xlabel(label)
    axes[0].set_ylabel(f"validation hypervolume (ref {tuple(spec.hv_reference)})")
    handles, legend_labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, legend_labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    fig.suptitle(f"{spec.name}: convergence (mean over seeds, band ±1 std; dashed: single-point methods)")
    fig.tight_layout()
    return save(fig, directory, "convergence")


def plot_memory(footprint: pd.DataFrame, spec: DatasetSpec, directory: Path) -> list[Path]:
    """Bars per method: parameters (total, at inference), training-state MB by part, peak train MB."""
    if footprint.empty:
        return []
    table = footprint.sort_values("total")
    order = list(table["label"])
    params = table.melt(id_vars="label", value_vars=["total", "inference"], var_name="count", value_name="parameters")
    state = table.assign(
        parameters=table["parameter_bytes"] / 2**20,
        gradients=table["gradient_bytes"] / 2**20,
        optimizer=table["optimizer_bytes"] / 2**20,
    )
    height = max(3.2, 1.0 + 0.32 * len(order))
    fig, axes = plt.subplots(1, 3, figsize=(15, height), sharey=True)
    sns.barplot(params, y="label", x="parameters", hue="count", order=order, ax=axes[0], orient="h")
    ratio_axis(axes[0], params["parameters"].to_numpy())
    axes[0].set_xlabel("parameters (total and at inference)")
    left = np.zeros(len(order))
    for part, color in zip(("parameters", "gradients", "optimizer"), sns.color_palette("muted", 3), strict=True):
        axes[1].barh(order, state[part], left=left, color=color, label=part)
        left += state[part].to_numpy()
    axes[1].legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.5 / height - 0.1), ncol=3)
    axes[1].set_xlabel("training state (MiB)")
    kind = str(table["peak_kind"].iloc[0])
    peak_label = "CUDA peak allocated" if kind.startswith("cuda") else "process peak RSS"
    axes[2].barh(order, table["peak_train_bytes"] / 2**20, color=sns.color_palette("muted")[3])
    axes[2].set_xlabel(f"peak memory in training (MiB, {peak_label})")
    for ax in axes:
        ax.set_ylabel("")
    axes[0].legend(
        fontsize=8, frameon=False, title=None, loc="upper center", bbox_to_anchor=(0.5, -0.5 / height - 0.1), ncol=2
    )
    fig.suptitle(f"{spec.name}: memory footprint (mean over seeds)")
    fig.tight_layout()
    return save(fig, directory, "memory")


def spread(values: list[float], gap: float) -> list[float]:
    """Positions for labels of ``values`` (sorted ascending), at least ``gap`` apart: each run of
    crowded labels is spaced evenly around its mean; runs that then collide are merged."""
    clusters = [[v] for v in values]
    merged = True
    while merged:
        merged = False
        for i in range(len(clusters) - 1):
            a, b = clusters[i], clusters[i + 1]
            top_a = np.mean(a) + gap * (len(a) - 1) / 2
            bottom_b = np.mean(b) - gap * (len(b) - 1) / 2
            if bottom_b - top_a < gap:
                clusters[i : i + 2] = [a + b]
                merged = True
                break
    out: list[float] = []
    for cluster in clusters:
        centre = float(np.mean(cluster))
        out += [centre + gap * (k - (len(cluster) - 1) / 2) for k in range(len(cluster))]
    return out


def label_column(ax: plt.Axes, points: pd.DataFrame, color: str = "black") -> None:
    """Name each point (columns x, y, name). Points within a fifth of a decade in x share one column
    of names beside them, spaced so that none overlap (spacing from the axis's y range)."""
    low, high = ax.get_ylim()
    gap = 0.032 * (high - low)
    column = (np.log10(points["x"].astype(float)) * 5).round()
    for _, group in points.groupby(column):
        group = group.sort_values("y")
        for r, y in zip(group.itertuples(), spread(list(group["y"]), gap), strict=True):
            ax.annotate(
                r.name,
                (r.x, r.y),
                xytext=(14, y),
                textcoords=("offset points", "data"),
                fontsize=7,
                color=color,
                va="center",
                arrowprops={"arrowstyle": "-", "color": "0.6", "linewidth": 0.5},
            )


def plot_hv_vs_overhead(
    summary: pd.DataFrame, footprint: pd.DataFrame, published: pd.DataFrame, spec: DatasetSpec, directory: Path
) -> list[Path]:
    """Hypervolume (mean ± std over seeds) against total parameters relative to one model."""
    table = summary.merge(footprint[["label", "x_single"]], on="label").dropna(subset=["hv_mean", "x_single"])
    if table.empty:
        return []
    labels = sorted(table["label"])
    colors = palette(labels)
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for r in table.itertuples():
        ax.errorbar(
            r.x_single,
            r.hv_mean,
            yerr=0.0 if np.isnan(r.hv_std) else r.hv_std,
            color=colors[r.label],
            marker="o" if r.kind == "front" else "s",
            markersize=6,
            capsize=2,
        )
    ours = dict(zip(table["method"], table["x_single"], strict=False))
    kinds = dict(zip(table["method"], table["kind"], strict=False))
    # beside ours only the same method of the same kind (the official "ls" is one model, ours a front)
    same = [m in ours and k in ("", kinds[m]) for m, k in zip(published["method"], published["kind"], strict=True)]
    shown = published[same]
    for r in shown.itertuples():
        ax.plot(ours[r.method], r.hv_mean, marker="o", markerfacecolor="none", color=PAPER_COLOR, markersize=7)
    ratio_axis(ax, table["x_single"].to_numpy(), unit="×")
    label_column(ax, pd.DataFrame({"x": table["x_single"], "y": table["hv_mean"], "name": table["label"]}))
    if len(shown):
        names = [f"{r.method}, {r.source} ({paper_dataset(spec)})" for r in shown.itertuples()]
        xs = [ours[m] for m in shown["method"]]
        label_column(ax, pd.DataFrame({"x": xs, "y": shown["hv_mean"].to_numpy(), "name": names}), PAPER_COLOR)
    ax.set_xlabel("trainable parameters / one plain model's")
    ax.set_ylabel(f"test hypervolume (ref {tuple(spec.hv_reference)})")
    title = f"{spec.name}: hypervolume (mean ± std over seeds) against parameter cost"
    if len(shown):
        title += f"\ngrey rings: the same method's number from {', '.join(sorted(shown['source'].unique()))}"
    ax.set_title(title + "\n(filled circles: fronts; squares: single points)", fontsize=10)
    fig.tight_layout()
    return save(fig, directory, "hv_vs_overhead")
