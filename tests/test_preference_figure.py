"""The metric-against-preference figure: its lines are the medians over seeds (read back from the
Axes), a collapsed method is flat, single models are left out, two tasks only."""

from __future__ import annotations

from pathlib import Path

import matplotlib.colors
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from bench.analysis import figures
from bench.analysis.preference_figure import caption_preference, preference_curves, preference_figure
from bench.analysis.style import FULL, label_style
from bench.core.registry import DATASETS
from tests.tidy_fronts import realistic, rows

SPEC = DATASETS.get("multimnist")
RAYS = [0.0, 0.25, 0.5, 0.75, 1.0]
SEEDS = [0, 1, 2]
OFFSET = {0: 0.0, 1: 0.01, 2: 0.03}  # seed 1 is the median seed everywhere


def palora(lam: float, seed: int) -> tuple[float, float]:
    return 0.05 + 0.1 * (1 - lam) + OFFSET[seed], 0.06 + 0.1 * lam + 2 * OFFSET[seed]


def pamal(lam: float, seed: int) -> tuple[float, float]:  # not monotone in lambda_1
    return 0.08 + 0.04 * np.sin(6 * lam) - OFFSET[seed], 0.1 + 0.02 * lam + OFFSET[seed]


def cosmos(lam: float, seed: int) -> tuple[float, float]:  # collapsed: the ray changes nothing
    return 0.09 + OFFSET[seed], 0.11 - OFFSET[seed]


def table() -> pd.DataFrame:
    out = rows("palora", SPEC, RAYS, SEEDS, palora) + rows("pamal", SPEC, RAYS, SEEDS, pamal)
    out += rows("cosmos", SPEC, RAYS, SEEDS, cosmos) + rows("mgda", SPEC, [0.5], SEEDS, lambda lam, s: (0.07, 0.08))
    return pd.DataFrame(out)


def lines(ax: plt.Axes) -> dict[str, plt.Line2D]:
    return {
        line.get_gid().removeprefix("method:"): line
        for line in ax.get_lines()
        if (line.get_gid() or "").startswith("method:")
    }


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_each_line_is_the_median_over_seeds_at_each_ray():
    fig = preference_figure(table(), SPEC)
    assert fig is not None
    panels = fig.axes[:2]
    for method, errors in (("palora", palora), ("pamal", pamal), ("cosmos", cosmos)):
        per_seed = np.array([[errors(lam, seed) for lam in RAYS] for seed in SEEDS])  # [seed, ray, task]
        medians = np.median(per_seed, axis=0)
        for task, ax in enumerate(panels):
            line = lines(ax)[method]
            np.testing.assert_allclose(line.get_xdata(), RAYS)
            np.testing.assert_allclose(line.get_ydata(), medians[:, task], atol=1e-12)
            band = next(c for c in ax.collections if c.get_gid() == f"band:{method}")
            outline = band.get_paths()[0].vertices[:, 1]
            assert outline.min() == pytest.approx(per_seed[:, :, task].min())
            assert outline.max() == pytest.approx(per_seed[:, :, task].max())


def test_a_collapsed_method_is_flat_and_a_non_monotone_one_turns_back():
    fig = preference_figure(table(), SPEC)
    assert fig is not None
    for ax in fig.axes[:2]:
        assert np.ptp(lines(ax)["cosmos"].get_ydata()) == pytest.approx(0.0, abs=1e-12)
    steps = np.diff(lines(fig.axes[0])["pamal"].get_ydata())
    assert (steps > 0).any() and (steps < 0).any()
    assert np.all(np.diff(lines(fig.axes[0])["palora"].get_ydata()) < 0)  # more weight, lower error


def test_single_models_are_left_out_and_each_method_has_its_own_colour():
    fig = preference_figure(table(), SPEC)
    assert fig is not None
    for ax in fig.axes[:2]:
        drawn = lines(ax)
        assert set(drawn) == {"palora", "pamal", "cosmos"}
        colours = {label: matplotlib.colors.to_hex(line.get_color()) for label, line in drawn.items()}
        assert len(set(colours.values())) == len(colours)
        assert all(colours[label] == label_style(label)["color"].lower() for label in colours)
    assert set(preference_curves(table(), SPEC)["label"]) == {"palora", "pamal", "cosmos"}


def test_every_value_is_inside_the_axes_and_far_errors_get_a_log_axis():
    fig = preference_figure(table(), SPEC)
    assert fig is not None
    assert [ax.get_yscale() for ax in fig.axes[:2]] == ["linear", "linear"]
    wide = realistic(SPEC)  # linear scalarization's other task is eight times worse at the ends
    fig = preference_figure(wide, SPEC)
    assert fig is not None
    curves = preference_curves(wide, SPEC)
    for ax, task in zip(fig.axes[:2], ["top-left", "bottom-right"], strict=True):
        assert ax.get_yscale() == "log"
        low, high = ax.get_ylim()
        assert low < curves[f"{task}_min"].min() and curves[f"{task}_max"].max() < high
        assert ax.get_xlim()[0] < 0 and ax.get_xlim()[1] > 1


def test_two_tasks_only_and_something_to_draw():
    three = DATASETS.get("multimnist3")
    assert (
        preference_figure(pd.DataFrame(rows("palora", three, RAYS, [0], lambda lam, s: (0.1, 0.2, 0.3))), three) is None
    )
    only_single = pd.DataFrame(rows("mgda", SPEC, [0.5], SEEDS, lambda lam, s: (0.07, 0.08)))
    assert preference_figure(only_single, SPEC) is None
    assert preference_figure(table().iloc[0:0], SPEC) is None
    with pytest.raises(ValueError, match="ray_top-left"):
        preference_figure(table().drop(columns=["ray_top-left"]), SPEC)


def test_full_width_no_titles_and_the_files_written_are_non_empty(tmp_path: Path):
    fig = preference_figure(table(), SPEC)
    assert fig is not None
    assert fig.get_figwidth() == pytest.approx(FULL)
    assert all(not ax.get_title() for ax in fig.axes)
    assert "1 − accuracy" in fig.axes[0].get_ylabel() and "λ₁" in fig.axes[0].get_xlabel()
    paths = figures.save(fig, tmp_path, "preference")
    assert [p.name for p in paths] == ["preference.png", "preference.pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_the_caption_states_dataset_protocol_seeds_lines_bands_and_reference():
    text = caption_preference(SPEC, "paper", [0, 1, 2], None)
    for part in ("multimnist", "paper protocol", "seeds 0, 1, 2", "median over seeds", "min-max", "(1.0, 1.0)"):
        assert part in text, part
    assert "left out" in text and "collapse" in text
