"""The training rays' histogram: per Pareto-front label, the first task's counts summed over seeds and
drawn as a density; labels without a histogram, single models and other datasets left out."""

from __future__ import annotations

from pathlib import Path

import matplotlib.colors
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.patches import StepPatch
from matplotlib.text import Text

from bench.analysis.context import ReportContext
from bench.analysis.convergence import convergence_table
from bench.analysis.ray_histogram import caption_ray_histogram, histograms, ray_histogram_figure
from bench.analysis.records import scan
from bench.analysis.sections_figures import figures_section
from bench.analysis.style import COLUMN, FULL, STYLES
from bench.core.registry import DATASETS
from tests.fake_runs import write_run

MINI = DATASETS.get("multimnist-mini")
FRONT = [(0.9, 0.5), (0.8, 0.8), (0.5, 0.9)]
# palora, two seeds: lambda_1 counts per bin of 0.1 (the other task's counts mirror them)
PALORA = {0: [0, 1, 2, 3, 4, 4, 3, 2, 1, 0], 1: [1, 1, 1, 3, 5, 5, 3, 1, 1, 1]}
COSMOS = [5, 5, 5, 5, 5, 5, 5, 5, 5, 5]


def histogram(counts: list[int]) -> dict:
    return {"bins": len(counts), "counts": {"top-left": counts, "bottom-right": counts[::-1]}}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    for seed, counts in PALORA.items():
        write_run(root, "palora", seed, FRONT, train_ray_histogram=histogram(counts))
    write_run(root, "cosmos", 0, FRONT, train_ray_histogram=histogram(COSMOS))
    write_run(root, "pamal", 0, FRONT)  # a record without a histogram
    write_run(root, "mgda", 0, [(0.8, 0.8)], train_ray_histogram=histogram([0, 0, 0, 0, 0, 9, 0, 0, 0, 0]))
    write_run(root, "phn-ls", 0, FRONT, train_ray_histogram=histogram([9] * 10), status="FAILED: RuntimeError: boom")
    return root


def steps(fig: plt.Figure) -> dict[str, StepPatch]:
    """label -> its step line, one per panel."""
    found = {}
    for ax in fig.axes:
        lines = [p for p in ax.patches if isinstance(p, StepPatch) and (p.get_gid() or "").startswith("method:")]
        assert len(lines) <= 1
        found |= {line.get_gid().removeprefix("method:"): line for line in lines}
    return found


def panel_names(fig: plt.Figure) -> list[str]:
    return [text.get_text() for ax in fig.axes if ax.get_visible() for text in ax.texts]


def test_each_step_line_is_the_density_of_the_counts_summed_over_seeds(runs_dir: Path):
    fig = ray_histogram_figure(scan(runs_dir), MINI)
    assert fig is not None
    drawn = steps(fig)
    summed = np.add(PALORA[0], PALORA[1])  # 1, 2, 3, 6, 9, 9, 6, 3, 2, 1: 42 rays
    expected = summed / (summed.sum() * 0.1)
    values, edges, _ = drawn["palora"].get_data()
    np.testing.assert_allclose(values, expected)
    np.testing.assert_allclose(edges, np.linspace(0, 1, 11))
    assert np.sum(values * np.diff(edges)) == pytest.approx(1.0)  # a density
    np.testing.assert_allclose(drawn["cosmos"].get_data()[0], np.ones(10))  # uniform: flat at 1
    for label, patch in drawn.items():
        assert matplotlib.colors.to_hex(patch.get_edgecolor()) == STYLES[label].color.lower()
    for ax in fig.axes:  # each panel: the uniform density, the same axes as the others
        (uniform,) = [line for line in ax.get_lines() if line.get_gid() == "uniform"]
        assert uniform.get_ydata()[0] == 1.0
        assert ax.get_ylim() == fig.axes[0].get_ylim() and ax.get_xlim() == (0.0, 1.0)
    assert fig.axes[0].get_ylim()[1] > expected.max()  # every step inside the axes
    assert fig.get_figwidth() == pytest.approx(COLUMN)  # two panels
    assert fig._suptitle is None and all(not ax.get_title() for ax in fig.axes)
    sizes = {t.get_fontsize() for t in fig.findobj(Text) if t.get_text() and t.get_visible()}
    assert min(sizes) >= 6.5 and max(sizes) <= 9, sizes


def test_labels_without_a_histogram_single_models_failed_runs_and_other_datasets_are_left_out(
    runs_dir: Path, tmp_path: Path
):
    write_run(
        runs_dir,
        "palora",
        0,
        [(0.9, 0.5, 0.7), (0.5, 0.6, 0.9)],
        dataset="multimnist3",
        tasks=("top-left", "top-right", "bottom"),
    )
    runs = scan(runs_dir)
    fig = ray_histogram_figure(runs, MINI)
    assert fig is not None
    assert set(steps(fig)) == {"palora", "cosmos"}
    assert panel_names(fig) == ["cosmos (n=1)", "palora"]  # one panel each, named, with fewer seeds said
    _, seeds = histograms(runs, MINI)
    assert seeds == {"palora": 2, "cosmos": 1}
    assert ray_histogram_figure(runs, DATASETS.get("multimnist3")) is None  # its run recorded none
    bare = tmp_path / "bare"
    write_run(bare, "palora", 0, FRONT)
    assert ray_histogram_figure(scan(bare), MINI) is None


def test_variants_are_lines_of_their_own_and_mixed_bins_are_refused(tmp_path: Path):
    write_run(tmp_path, "palora", 0, FRONT, train_ray_histogram=histogram(PALORA[0]))
    write_run(tmp_path, "palora", 0, FRONT, settings=("method.rank=4",), train_ray_histogram=histogram(COSMOS))
    fig = ray_histogram_figure(scan(tmp_path), MINI)
    assert fig is not None
    drawn = steps(fig)
    assert len(drawn) == 2 and {matplotlib.colors.to_hex(p.get_edgecolor()) for p in drawn.values()} == {
        STYLES["palora"].color.lower()
    }
    assert len({p.get_linestyle() for p in drawn.values()}) == 2
    assert sorted(panel_names(fig)) == ["palora (rank=1)", "palora (rank=4)"]
    write_run(tmp_path, "palora", 1, FRONT, train_ray_histogram=histogram([1] * 20))
    with pytest.raises(ValueError, match="10 and 20 bins"):
        ray_histogram_figure(scan(tmp_path), MINI)


def test_the_report_draws_it_with_its_caption(runs_dir: Path, tmp_path: Path):
    runs = scan(runs_dir)
    ctx = ReportContext(f"--runs {runs_dir}", tmp_path / "out", runs, convergence_table(runs), lambda run: "custom")
    section = figures_section(ctx)
    text = "\n".join(section.lines)
    assert "![train_rays](figures/multimnist-mini/train_rays.png)" in text
    assert (tmp_path / "out" / "figures" / "multimnist-mini" / "train_rays.pdf").stat().st_size > 1000


def test_the_caption_states_dataset_protocol_seeds_and_what_is_drawn():
    text = caption_ray_histogram(MINI, "paper", [0, 1, 2])
    for part in ("multimnist-mini", "paper protocol", "seeds 0, 1, 2", "λ₁", "top-left", "density", "uniform"):
        assert part in text, part


def test_many_methods_fill_a_full_width_grid_of_panels(tmp_path: Path):
    methods = ["cosmos", "ls", "padora", "palora", "pamal", "phn-epo", "phn-ls"]
    for method in methods:
        write_run(tmp_path, method, 0, FRONT, train_ray_histogram=histogram(PALORA[0]))
    fig = ray_histogram_figure(scan(tmp_path), MINI)
    assert fig is not None
    assert set(steps(fig)) == set(methods) and panel_names(fig) == methods
    assert fig.get_figwidth() == pytest.approx(FULL)
    assert sum(ax.get_visible() for ax in fig.axes) == len(methods)
