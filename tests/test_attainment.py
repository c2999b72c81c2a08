"""The attainment figure: exact attainment surfaces (hand-made fronts, a brute-force count and moocore
itself), every point inside the axes, one colour per method, zooms that never hide a point."""

from __future__ import annotations

from pathlib import Path

import matplotlib.colors
import matplotlib.pyplot as plt
import moocore
import numpy as np
import pandas as pd
import pytest

from bench.analysis import figures
from bench.analysis.attainment import (
    attainment_figure,
    attainment_points,
    attainment_surface,
    caption_attainment,
    extended,
    median_line,
    objective_table,
    runs_needed,
)
from bench.analysis.front_metrics import non_dominated
from bench.analysis.paper import load_paper, paper_points
from bench.analysis.style import COLUMN, FULL, label_style
from bench.core.registry import DATASETS
from tests.tidy_fronts import GRID, realistic, rows

SPEC = DATASETS.get("multimnist")  # two tasks, hypervolume on 1 - accuracy, reference (1, 1)
SINGLES = ["mean", "mgda", "pcgrad", "cagrad", "upgrad", "nash-mtl"]
A = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
B = np.array([[1.5, 2.5], [2.5, 1.5]])


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def brute_force(runs: list[np.ndarray], needed: int) -> np.ndarray:
    """The minimal points of the region weakly dominated by at least ``needed`` runs, by counting on
    the grid of every coordinate (in 2-D the surface's corners lie on it)."""
    stacked = np.concatenate([r for r in runs if len(r)])
    grid = np.array([(x, y) for x in np.unique(stacked[:, 0]) for y in np.unique(stacked[:, 1])])
    counts = np.array([sum(bool(np.any(np.all(r <= z, axis=1))) for r in runs if len(r)) for z in grid])
    attained = grid[counts >= needed]
    return non_dominated(attained) if len(attained) else np.empty((0, 2))


def test_the_median_of_two_runs_is_their_union_and_the_full_surface_their_intersection():
    union = [[1, 3], [1.5, 3], [1.5, 2.5], [2, 2.5], [2, 2], [2.5, 2], [2.5, 1.5], [3, 1.5], [3, 1]]
    np.testing.assert_array_equal(attainment_surface([A, B], 0.5), union)
    np.testing.assert_array_equal(attainment_surface([A, B], 0.25), union)  # at least one run either way
    intersection = [[1.5, 3], [2, 3], [2, 2.5], [2.5, 2.5], [2.5, 2], [3, 2], [3, 1.5]]
    np.testing.assert_array_equal(attainment_surface([A, B], 1.0), intersection)
    np.testing.assert_array_equal(attainment_surface([A, B], 0.51), intersection)


def test_a_run_without_points_still_counts():
    empty = np.empty((0, 2))
    assert attainment_points([A, B, empty], 1.0).shape == (0, 2)  # no point is reached by all three
    np.testing.assert_array_equal(attainment_points([A, B, empty], 0.5), [[1.5, 3], [2, 2.5], [2.5, 2], [3, 1.5]])


@pytest.mark.parametrize(
    ("runs", "level", "needed"), [(4, 0.25, 1), (4, 0.26, 2), (3, 0.5, 2), (3, 1 / 3, 1), (5, 0.5, 3), (1, 1.0, 1)]
)
def test_a_level_is_reached_by_ceil_level_times_runs(runs: int, level: float, needed: int):
    assert runs_needed(runs, level) == needed


@pytest.mark.parametrize("level", [0.0, -0.5, 1.01])
def test_a_level_outside_0_1_is_refused(level: float):
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        attainment_surface([A, B], level)


def test_only_two_objectives_are_drawn():
    with pytest.raises(ValueError, match="two objectives"):
        attainment_surface([np.ones((2, 3))], 0.5)


@pytest.mark.parametrize("n_runs", [2, 3, 5])
def test_surfaces_match_a_brute_force_count_and_moocore_on_random_fronts(n_runs: int):
    rng = np.random.default_rng(n_runs)
    for _ in range(5):
        runs = [rng.random((int(rng.integers(1, 7)), 2)).round(2) for _ in range(n_runs)]  # rounding: ties too
        full = moocore.eaf(np.concatenate(runs), np.repeat(np.arange(n_runs), [len(r) for r in runs]))
        for needed in range(1, n_runs + 1):
            level = needed / n_runs
            ours = attainment_points(runs, level)
            np.testing.assert_allclose(ours, brute_force(runs, needed))
            theirs = full[np.isclose(full[:, 2], 100.0 * needed / n_runs), :2]  # moocore's full EAF, all levels
            np.testing.assert_allclose(ours, non_dominated(theirs))
            surface = attainment_surface(runs, level)
            np.testing.assert_allclose(surface[0::2], ours)  # the staircase passes through every corner
            assert np.all(np.diff(surface[:, 0]) >= 0) and np.all(np.diff(surface[:, 1]) <= 0)


def test_the_objective_is_the_hypervolumes_minimisation_form():
    table = pd.DataFrame(rows("palora", SPEC, [0.0, 1.0], [0], lambda lam, seed: (0.1 + lam, 0.2)))
    out = objective_table(table, SPEC)
    np.testing.assert_allclose(out["top-left"], [0.1, 1.1])  # 1 - accuracy
    np.testing.assert_allclose(out["bottom-right"], [0.2, 0.2])
    cityscapes = DATASETS.get("cityscapes")  # hypervolume on the losses
    frame = pd.DataFrame({"label": ["x"], "seed": [0], "ray_index": [0], "segmentation_loss": [0.7]})
    frame["depth_loss"] = 0.3
    np.testing.assert_allclose(objective_table(frame, cityscapes)[["segmentation", "depth"]].to_numpy(), [[0.7, 0.3]])
    with pytest.raises(ValueError, match="top-left_accuracy"):
        objective_table(table.drop(columns=["top-left_accuracy"]), SPEC)


def drawn(ax: plt.Axes, prefix: str) -> dict[str, plt.Line2D]:
    return {line.get_gid()[len(prefix) :]: line for line in ax.get_lines() if (line.get_gid() or "").startswith(prefix)}


def assert_inside(ax: plt.Axes, points: np.ndarray) -> None:
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert np.all((points[:, 0] > x0) & (points[:, 0] < x1)), (ax.get_xlim(), points[:, 0].min(), points[:, 0].max())
    assert np.all((points[:, 1] > y0) & (points[:, 1] < y1)), (ax.get_ylim(), points[:, 1].min(), points[:, 1].max())


def test_every_point_is_drawn_inside_the_main_axes_in_its_methods_colour():
    table = realistic(SPEC)
    fig = attainment_figure(table, SPEC)
    assert fig is not None
    main = fig.axes[0]
    values = objective_table(table, SPEC)
    assert_inside(main, values[["top-left", "bottom-right"]].to_numpy())
    dots = drawn(main, "method:")
    assert set(dots) == set(table["label"])
    for label, line in dots.items():
        mine = values[values["label"] == label][["top-left", "bottom-right"]].to_numpy()
        np.testing.assert_allclose(np.sort(np.column_stack(line.get_data()), axis=0), np.sort(mine, axis=0))
        assert matplotlib.colors.to_hex(line.get_color()) == label_style(label)["color"].lower()
    colours = {matplotlib.colors.to_hex(line.get_color()) for line in dots.values()}
    assert len(colours) == len(dots)  # one distinct colour per method
    assert set(drawn(main, "median:")) == {"palora", "pamal", "phn-ls", "cosmos", "ls"}  # no surface for single models


def test_the_median_line_is_the_50_percent_surface_drawn_out_to_the_methods_own_extent():
    table = realistic(SPEC)
    fig = attainment_figure(table, SPEC)
    assert fig is not None
    values = objective_table(table, SPEC)
    for label in ("palora", "cosmos"):
        mine = values[values["label"] == label]
        runs = [g[["top-left", "bottom-right"]].to_numpy() for _, g in mine.groupby("seed")]
        expected = extended(attainment_surface(runs, 0.5), mine[["top-left", "bottom-right"]].max().to_numpy())
        line = drawn(fig.axes[0], "median:")[label]
        np.testing.assert_allclose(np.column_stack(line.get_data()), expected)
        band = next(p for p in fig.axes[0].patches if p.get_gid() == f"band:{label}")
        outline = band.get_path().vertices
        assert_inside(fig.axes[0], outline[np.isfinite(outline).all(axis=1)])


def test_far_single_task_ends_get_a_zoom_panel_and_a_dense_cluster_an_inset():
    table = realistic(SPEC)  # linear scalarization's ends lie far out; six single models in a tight cluster
    fig = attainment_figure(table, SPEC)
    assert fig is not None
    main, zoom = fig.axes[0], next(ax for ax in fig.axes if ax.get_gid() == "zoom")
    assert main.get_xlim()[1] > 0.4 and zoom.get_xlim()[1] < 0.2  # the zoom enlarges the bulk
    (inset,) = [ax for ax in zoom.child_axes if ax.get_gid() == "inset"]
    singles = objective_table(table[table["label"].isin(SINGLES)], SPEC)[["top-left", "bottom-right"]].to_numpy()
    assert_inside(inset, singles)
    assert fig.get_figwidth() == pytest.approx(FULL)


def test_a_whole_method_far_off_gets_a_zoom_panel_on_the_rest():
    """A method that diverged (all its points far from the rest, a third of the points) would squash
    every other front into a corner: the zoom shows the rest, the main axes still show every point."""
    table = realistic(SPEC)
    table = table[table["label"].isin(["palora", "pamal", "phn-ls"])].copy()
    far = table["label"] == "phn-ls"
    table.loc[far, "top-left_accuracy"], table.loc[far, "bottom-right_accuracy"] = 0.57, 0.60
    fig = attainment_figure(table, SPEC)
    assert fig is not None
    main, zoom = fig.axes[0], next(ax for ax in fig.axes if ax.get_gid() == "zoom")
    values = objective_table(table, SPEC)[["top-left", "bottom-right"]].to_numpy()
    assert_inside(main, values)
    assert_inside(zoom, values[~far.to_numpy()])
    assert zoom.get_xlim()[1] < 0.3 and zoom.get_ylim()[1] < 0.3


def test_without_far_points_one_column_panel_with_the_inset_off_every_point():
    table = realistic(SPEC)
    table = table[table["label"] != "ls"]
    fig = attainment_figure(table, SPEC, reference=(0.2, 0.2))
    assert fig is not None
    assert len([ax for ax in fig.axes if ax.get_gid() == "zoom"]) == 0
    main = fig.axes[0]
    assert fig.get_figwidth() == pytest.approx(COLUMN)
    (inset,) = main.child_axes
    values = objective_table(table, SPEC)[["top-left", "bottom-right"]].to_numpy()
    assert_inside(main, values)
    fig.canvas.draw()
    box = inset.get_tightbbox().transformed(main.transData.inverted())  # the inset with its tick labels
    covered = (values[:, 0] > box.x0) & (values[:, 0] < box.x1) & (values[:, 1] > box.y0) & (values[:, 1] < box.y1)
    assert not covered.any()
    (star,) = drawn(main, "reference").values()
    np.testing.assert_allclose(np.column_stack(star.get_data()), [[0.2, 0.2]])
    assert not (box.x0 < 0.2 < box.x1 and box.y0 < 0.2 < box.y1)


def test_a_far_reference_point_is_pointed_at_and_single_task_ends_are_marked():
    table = realistic(SPEC)
    fig = attainment_figure(table, SPEC, single_task=(0.052, 0.07))
    assert fig is not None
    main = fig.axes[0]
    assert not drawn(main, "reference")  # (1, 1) is far beyond the points: an arrow, not a star
    (arrow,) = [t for t in main.texts if t.get_gid() == "reference"]
    assert "(1, 1)" in arrow.get_text()
    vertical, horizontal = drawn(main, "single-task:0")[""], drawn(main, "single-task:1")[""]
    assert vertical.get_xdata()[0] == pytest.approx(0.052) and horizontal.get_ydata()[0] == pytest.approx(0.07)
    assert main.get_ylim()[0] < 0.07 < main.get_ylim()[1]
    zoom = next(ax for ax in fig.axes if ax.get_gid() == "zoom")
    assert zoom.get_ylim()[0] < 0.07 and zoom.get_xlim()[0] < 0.052  # the zoom keeps the single-task ends


def test_only_two_objective_datasets_and_non_empty_tables():
    three = DATASETS.get("multimnist3")
    assert (
        attainment_figure(pd.DataFrame(rows("palora", three, GRID, [0], lambda lam, s: (0.1, 0.2, 0.3))), three) is None
    )
    assert attainment_figure(realistic(SPEC).iloc[0:0], SPEC) is None


def test_no_titles_and_the_files_written_are_non_empty(tmp_path: Path):
    fig = attainment_figure(realistic(SPEC), SPEC)
    assert fig is not None
    assert all(not ax.get_title() for ax in fig.axes)
    paths = figures.save(fig, tmp_path, "attainment")
    assert [p.name for p in paths] == ["attainment.png", "attainment.pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert paths[1].read_bytes().startswith(b"%PDF")


def test_the_caption_states_dataset_protocol_seeds_lines_bands_and_reference():
    text = caption_attainment(SPEC, "paper", [0, 1, 2], None)
    for part in ("multimnist", "paper protocol", "seeds 0, 1, 2", "median (50%)", "25% and 75%", "(1.0, 1.0)"):
        assert part in text, part
    assert "(2.0, 2.0)" in caption_attainment(SPEC, "mini", [0], (2, 2))


def test_single_models_that_do_not_overlap_get_no_zoom():
    """Two single models close together, but no two markers on top of each other: no inset, no panel."""
    table = pd.DataFrame(rows("palora", SPEC, GRID, [0, 1], lambda lam, seed: (0.05 + 0.1 * lam, 0.15 - 0.1 * lam)))
    for n, name in enumerate(["mean", "mgda"]):
        table = pd.concat(
            [table, pd.DataFrame(rows(name, SPEC, [0.5], [0, 1], lambda lam, s, n=n: (0.1 + 0.006 * (n + 2 * s), 0.1)))]
        )
    fig = attainment_figure(table, SPEC)
    assert fig is not None
    assert len(fig.axes) == 1 and not fig.axes[0].child_axes
    assert fig.get_figwidth() == pytest.approx(COLUMN)


def test_published_points_are_hollow_inside_the_axes_and_in_every_panel():
    table, theirs = realistic(SPEC), paper_points(load_paper(), SPEC)
    fig = attainment_figure(table, SPEC, published=theirs)
    assert fig is not None
    main, zoom = fig.axes[0], next(ax for ax in fig.axes if ax.get_gid() == "zoom")
    assert_inside(main, theirs[["top-left", "bottom-right"]].to_numpy(float))
    for ax in (main, zoom):
        marks = drawn(ax, "published:")
        assert set(marks) == set(theirs["method"])
        for method, line in marks.items():
            mine = theirs[theirs["method"] == method][["top-left", "bottom-right"]].to_numpy(float)
            np.testing.assert_allclose(np.column_stack(line.get_data()), mine)
            assert line.get_markerfacecolor() == "none" and line.get_linestyle() == "None"
        (surface,) = drawn(ax, "published-surface:").values()  # the one published front: pamal's median
        runs = [
            g[["top-left", "bottom-right"]].to_numpy(float)
            for _, g in theirs[theirs["method"] == "pamal"].groupby("seed")
        ]
        np.testing.assert_allclose(np.column_stack(surface.get_data()), median_line(runs))
        assert surface.get_linestyle() == "--"
    (x0, x1), (y0, y1) = zoom.get_xlim(), zoom.get_ylim()
    values = theirs[["top-left", "bottom-right"]].to_numpy(float)
    assert ((values[:, 0] > x0) & (values[:, 0] < x1) & (values[:, 1] > y0) & (values[:, 1] < y1)).any()
    mini = DATASETS.get("multimnist-mini")  # the same numbers, not published for this dataset: not drawn
    assert not drawn(attainment_figure(table, mini, published=paper_points(load_paper(), mini)).axes[0], "published:")


def test_the_caption_names_hollow_markers_only_where_published_numbers_are_drawn():
    theirs = paper_points(load_paper(), SPEC)
    assert "Hollow markers are published numbers (official-code)" in caption_attainment(
        SPEC, "paper", [0], published=theirs
    )
    assert "published" not in caption_attainment(SPEC, "paper", [0])
    mini = DATASETS.get("multimnist-mini")
    assert "published" not in caption_attainment(mini, "paper", [0], published=paper_points(load_paper(), mini))
