"""Paper figures: one colour and marker per method everywhere, published numbers only on their own
dataset, no uninformative panels, two-column sizes and fonts, vector PDFs."""

from __future__ import annotations

from pathlib import Path

import matplotlib.colors
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text

from bench.analysis import figures
from bench.analysis.attainment import attainment_figure
from bench.analysis.paper import load_paper, paper_hypervolumes, paper_points
from bench.analysis.style import (
    COLUMN,
    FALLBACK_COLORS,
    FULL,
    PUBLISHED_COLOR,
    STYLES,
    label_style,
    legend_rows,
    method_of,
    method_style,
)
from bench.core.registry import DATASETS, METHODS
from bench.core.spec import DatasetSpec
from tests.tidy_fronts import realistic, rows

MINI = DATASETS.get("multimnist-mini")  # published numbers belong to "multimnist"
FULL_SET = DATASETS.get("multimnist")  # the published dataset itself
SUBSET_A = ["palora", "pamal", "mean", "mgda", "cosmos"]
SUBSET_B = ["palora (rank=4)", "ls", "mgda", "upgrad", "padora"]


def kind(label: str) -> str:
    return METHODS.get(method_of(label)).kind


def fronts_frame(labels: list[str], spec: DatasetSpec = MINI, seeds: int = 2) -> pd.DataFrame:
    """A tidy fronts table: five rays per front method, one per single model, errors near 0.05-0.16."""
    rng = np.random.default_rng(0)
    table = []
    for n, label in enumerate(labels):
        rays = [k / 4 for k in range(5)] if kind(label) == "front" else [0.5]

        def errors(lam: float, seed: int, n: int = n) -> tuple[float, ...]:
            point = [0.05 + 0.1 * lam + 0.01 * n, 0.15 - 0.1 * lam + 0.01 * n, 0.1][: spec.num_tasks]
            return tuple(float(v) for v in np.array(point) + rng.normal(0, 0.002, len(point)))

        table += rows(label, spec, rays, range(seeds), errors)
    return pd.DataFrame(table)


def curves_frame(labels: list[str], eval_share: float = 0.02) -> pd.DataFrame:
    rows = []
    for n, label in enumerate(labels):
        for seed in range(2):
            for step in (10, 20, 30):
                train = step * (1 + n) / 10
                rows.append(
                    {
                        "label": label,
                        "method": method_of(label),
                        "kind": kind(label),
                        "seed": seed,
                        "step": step,
                        "train_time": train,
                        "wall_time": train / (1 - eval_share),
                        "hypervolume": 0.5 + step / 100 + 0.01 * seed,
                    }
                )
    return pd.DataFrame(rows)


def footprint_frame(labels: list[str], peaks: list[float] | None = None, peak_kind: str = "process_peak_rss"):
    totals = [100 * (1 + 3 * n) if kind(lab) == "front" else 100 for n, lab in enumerate(labels)]
    return pd.DataFrame(
        {
            "label": labels,
            "method": [method_of(lab) for lab in labels],
            "total": totals,
            "trainable": totals,
            "inference": 100,
            "single_model": 100,
            "parameter_bytes": [4 * t for t in totals],
            "gradient_bytes": [4 * t for t in totals],
            "optimizer_bytes": [8 * t for t in totals],
            "peak_train_bytes": peaks or [1.0e9 + 1e7 * n for n in range(len(labels))],
            "peak_kind": peak_kind,
            "x_single": [t / 100 for t in totals],
        }
    )


def summary_frame(labels: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "label": labels,
            "method": [method_of(lab) for lab in labels],
            "kind": [kind(lab) for lab in labels],
            "hv_mean": [0.8 + 0.01 * n for n in range(len(labels))],
            "hv_std": 0.01,
            "n_seeds": 3,
        }
    )


def method_artists(fig: plt.Figure, prefix: str = "method:") -> dict[str, tuple[str, str]]:
    """gid label -> (colour, marker) of every drawn method in ``fig``."""
    found = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            gid = line.get_gid() or ""
            if gid.startswith(prefix):
                found[gid[len(prefix) :]] = (matplotlib.colors.to_hex(line.get_color()), line.get_marker())
    return found


def all_figures(labels: list[str]) -> dict[str, plt.Figure]:
    return {
        "attainment": attainment_figure(fronts_frame(labels), MINI, published=paper_points(load_paper(), MINI)),
        "convergence": figures.convergence_figure(curves_frame(labels), MINI),
        "memory": figures.memory_figure(footprint_frame(labels), MINI),
        "hv_vs_overhead": figures.hv_vs_overhead_figure(
            summary_frame(labels), footprint_frame(labels), pd.DataFrame(), MINI
        ),
    }


def expected_width(name: str, fig: plt.Figure) -> float:
    """One column, except for several panels: the attainment figure's zoom panel, memory."""
    if name == "attainment":
        return FULL if len(fig.axes) > 1 else COLUMN
    return COLUMN if name in ("hv_vs_overhead", "convergence") else FULL


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_every_registered_method_has_a_fixed_style_of_its_kind():
    """From the table, or for a method not in it (a new plug-in) the fallback of its registered kind,
    in colours that no method of the table has."""
    for name in METHODS.names():
        assert method_style(name).kind == METHODS.get(name).kind, name
    fallback = {color.lower() for colors in FALLBACK_COLORS.values() for color in colors}
    assert not fallback & {s.color.lower() for s in STYLES.values()}
    pairs = [(s.color.lower(), s.marker) for s in STYLES.values()]
    assert len(set(pairs)) == len(pairs)
    assert len({s.color.lower() for s in STYLES.values() if s.kind == "front"}) == sum(
        s.kind == "front" for s in STYLES.values()
    )
    # a single model that shares a front's marker has a clearly different colour (PaDoRA and MGDA-UB did not)
    for front in (s for s in STYLES.values() if s.kind == "front"):
        for point in (s for s in STYLES.values() if s.kind == "point" and s.marker == front.marker):
            gap = np.linalg.norm(
                np.subtract(matplotlib.colors.to_rgb(front.color), matplotlib.colors.to_rgb(point.color))
            )
            assert gap > 0.25, (front, point)
    # single models are a muted family: less saturated than any coloured front
    saturation = {n: matplotlib.colors.rgb_to_hsv(matplotlib.colors.to_rgb(s.color))[1] for n, s in STYLES.items()}
    fronts = [saturation[n] for n, s in STYLES.items() if s.kind == "front" and saturation[n] > 0]
    points = [saturation[n] for n, s in STYLES.items() if s.kind == "point"]
    assert max(points) < min(fronts)


def test_unknown_methods_get_a_deterministic_fallback_of_their_kind():
    first, again = method_style("brand-new", "point"), method_style("brand-new", "point")
    assert first == again and first.kind == "point"
    assert method_style("other-new").kind == "front"
    assert method_style("palora", "point") == STYLES["palora"]  # the table wins over a caller's guess
    assert label_style("palora (rank=4)")["color"] == STYLES["palora"].color


def test_a_method_looks_the_same_in_every_figure_and_across_method_subsets():
    seen: dict[str, set[tuple[str, str]]] = {}
    for labels in (SUBSET_A, SUBSET_B):
        for name, fig in all_figures(labels).items():
            drawn = method_artists(fig)
            assert set(drawn) == set(labels), name
            for label, style in drawn.items():
                seen.setdefault(method_of(label), set()).add(style)
    for method, styles in seen.items():
        expected = (matplotlib.colors.to_hex(STYLES[method].color), STYLES[method].marker)
        assert styles == {expected}, method
    assert len(seen) == len(set(map(method_of, SUBSET_A + SUBSET_B)))


def test_variants_of_one_method_share_colour_and_marker_but_not_line_style():
    labels = ["palora (rank=4)", "palora (rank=8)", "mean"]
    a, b = (label_style(lab, labels) for lab in labels[:2])
    assert (a["color"], a["marker"]) == (b["color"], b["marker"]) and a["linestyle"] != b["linestyle"]


def test_published_points_only_on_the_published_datasets_own_axes():
    paper = load_paper()
    assert MINI.paper_dataset == "multimnist" and not paper_points(paper, MINI).empty
    labels = ["pamal", "mgda", "palora"]
    mini = attainment_figure(fronts_frame(labels), MINI, published=paper_points(paper, MINI))
    assert method_artists(mini, "published:") == {}
    assert "published" not in " ".join(t.get_text() for t in mini.legends[0].get_texts())
    theirs = paper_points(paper, FULL_SET)
    own = attainment_figure(fronts_frame(labels, FULL_SET), FULL_SET, published=theirs)
    published = method_artists(own, "published:")
    assert {"pamal", "mgda"} <= set(published)
    assert published["pamal"] == (matplotlib.colors.to_hex(STYLES["pamal"].color), STYLES["pamal"].marker)
    assert published["uw"] == (matplotlib.colors.to_hex(PUBLISHED_COLOR), "x")  # a method not run here
    legend = " ".join(t.get_text() for t in own.legends[0].get_texts())
    assert "official-code" in legend  # labelled with the source
    (x0, x1), (y0, y1) = own.axes[0].get_xlim(), own.axes[0].get_ylim()  # every published point inside
    assert ((theirs["top-left"] > x0) & (theirs["top-left"] < x1)).all()
    assert ((theirs["bottom-right"] > y0) & (theirs["bottom-right"] < y1)).all()

    summary, footprint = summary_frame(labels), footprint_frame(labels)
    hv_mini = figures.hv_vs_overhead_figure(summary, footprint, paper_hypervolumes(paper, MINI), MINI)
    assert method_artists(hv_mini, "published:") == {}
    hv_own = figures.hv_vs_overhead_figure(summary, footprint, paper_hypervolumes(paper, FULL_SET), FULL_SET)
    assert {"pamal", "mgda"} <= set(method_artists(hv_own, "published:"))
    assert figures.shows_published(FULL_SET) and not figures.shows_published(MINI)


def peak_panel(fig: plt.Figure) -> bool:
    return any("peak" in ax.get_xlabel() for ax in fig.axes)


def test_memory_figure_shows_peak_memory_only_where_it_discriminates():
    labels = SUBSET_A
    cpu_alike = figures.memory_figure(footprint_frame(labels), MINI)
    assert not peak_panel(cpu_alike)
    assert [ax.get_xlabel() for ax in cpu_alike.axes] == ["parameters", "training state (MiB)"]
    spread = [1e8, 2e8, 3e8, 4e8, 5e8]
    assert peak_panel(figures.memory_figure(footprint_frame(labels, spread), MINI))
    cuda = figures.memory_figure(footprint_frame(labels, peak_kind="cuda_max_allocated"), MINI)
    assert peak_panel(cuda) and "CUDA" in cuda.axes[2].get_xlabel()
    mixed = footprint_frame(labels, spread).assign(peak_kind=["cuda_max_allocated"] + ["process_peak_rss"] * 4)
    assert not figures.peak_discriminates(mixed)


def test_convergence_is_drawn_against_the_step_only_with_the_seed_band():
    """No time axis (packed runs share the CPUs: their seconds are not clean timings); the line of a
    label is the mean over seeds at each step, the band ±1 std."""
    fig = figures.convergence_figure(curves_frame(SUBSET_A, 0.4), MINI)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "training step"
    (line,) = [ln for ln in ax.get_lines() if ln.get_gid() == "method:palora"]
    np.testing.assert_allclose(line.get_xdata(), [10, 20, 30])
    np.testing.assert_allclose(line.get_ydata(), [0.605, 0.705, 0.805])  # seeds 0 and 1: +0.00 and +0.01


def test_fronts_and_single_models_have_their_own_legend_blocks():
    fig = attainment_figure(fronts_frame(SUBSET_A), MINI, published=paper_points(load_paper(), MINI))
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    fronts, points = texts.index("Pareto fronts"), texts.index("single models")
    assert {"palora", "pamal", "cosmos"} <= set(texts[fronts:points])
    assert {"mean", "mgda"} <= set(texts[points:])


def test_sizes_fonts_and_no_titles_for_a_two_column_paper():
    for labels in (SUBSET_A, SUBSET_B):
        for name, fig in all_figures(labels).items():
            assert fig.get_figwidth() == pytest.approx(expected_width(name, fig)), name
            assert fig._suptitle is None and all(not ax.get_title() for ax in fig.axes), name
            sizes = {t.get_fontsize() for t in fig.findobj(Text) if t.get_text() and t.get_visible()}
            assert min(sizes) >= 6.5 and max(sizes) <= 9, (name, sizes)
    crowded = attainment_figure(realistic(FULL_SET), FULL_SET)
    assert crowded is not None and any(ax.child_axes for ax in crowded.axes)  # a zoom panel and an inset
    assert crowded.get_figwidth() == pytest.approx(expected_width("attainment", crowded))
    sizes = {t.get_fontsize() for t in crowded.findobj(Text) if t.get_text() and t.get_visible()}
    assert min(sizes) >= 6.5 and max(sizes) <= 9, sizes
    three = DATASETS.get("multimnist3")  # attainment surfaces are drawn for two objectives only
    assert attainment_figure(fronts_frame(SUBSET_A, three), three, published=paper_points(load_paper(), three)) is None


def test_saved_files_are_tight_vector_pdfs_and_pngs(tmp_path: Path):
    fronts = attainment_figure(fronts_frame(SUBSET_A), MINI)
    assert fronts is not None
    width = expected_width("attainment", fronts)
    made = figures.save(fronts, tmp_path, "fronts")
    made += figures.save(figures.convergence_figure(curves_frame(SUBSET_A), MINI), tmp_path, "convergence")
    assert figures.save(None, tmp_path, "nothing") == []
    assert sorted(p.name for p in made) == ["convergence.pdf", "convergence.png", "fronts.pdf", "fronts.png"]
    for path in tmp_path.glob("*.pdf"):
        pdf = path.read_bytes()
        assert b"/Subtype /Image" not in pdf, path.name  # lines and markers stay vectors
        assert b"/Type3" not in pdf and b"/CIDFontType2" in pdf, path.name  # TrueType fonts
    image = plt.imread(tmp_path / "fronts.png")
    assert image.shape[1] / 300 <= width + 0.1  # tight: no wider than the figure at 300 dpi


def test_legend_rows_fit_the_width_and_keep_blocks_apart():
    blocks = [["Pareto fronts", *"abcdefg"], ["single models", *"abcdefghij"]]
    assert legend_rows(blocks, FULL) < legend_rows(blocks, COLUMN) <= 11
