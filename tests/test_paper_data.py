"""Published numbers under results/paper: format, provenance, and cross-checks against our own code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.analysis.paper import DEFAULT_DIRECTORY, load_paper, paper_hypervolumes, paper_points
from bench.backbones import create_backbone
from bench.core.registry import DATASETS


@pytest.fixture(scope="module")
def paper() -> pd.DataFrame:
    return load_paper()


def sweep_hypervolume_2d(points: np.ndarray, reference: tuple[float, float]) -> float:
    """2-D hypervolume by a sweep over x (a second, independent implementation)."""
    inside = points[(points < np.asarray(reference)).all(axis=1)]
    order = inside[np.argsort(inside[:, 0])]
    total, best_y = 0.0, reference[1]
    for k, (x, y) in enumerate(order):
        best_y = min(best_y, y)
        next_x = order[k + 1, 0] if k + 1 < len(order) else reference[0]
        total += (next_x - x) * (reference[1] - best_y)
    return total


def test_every_file_has_provenance(paper: pd.DataFrame):
    assert DEFAULT_DIRECTORY.is_dir() and (DEFAULT_DIRECTORY / "README.md").is_file()
    assert len(paper) > 0 and paper["reference"].notna().all() and paper["source"].notna().all()
    assert set(paper["dataset"]) <= set(DATASETS.names())


def test_official_multimnist_records_are_complete(paper: pd.DataFrame):
    rows = paper[paper["file"] == "official-multimnist.csv"]
    # 12 single-point methods x 3 seeds x (val, test) x (acc, loss) x 2 tasks; PaMaL: the same x 11 rays
    assert len(rows) == 12 * 3 * 8 + 3 * 11 * 8
    assert rows.groupby("method")["seed"].nunique().eq(3).all()
    accuracies = rows[rows["metric"] == "accuracy"]["value"]
    assert accuracies.between(0.9, 1.0).all()


def test_published_pamal_hypervolume_matches_an_independent_sweep(paper: pd.DataFrame):
    spec = DATASETS.get("multimnist-mini")  # shows the full MultiMNIST's numbers, labelled so
    table = paper_hypervolumes(paper, spec).set_index("method")
    rows = paper[(paper["method"] == "pamal") & (paper["split"] == "test") & (paper["metric"] == "accuracy")]
    per_seed = []
    for _, seed_rows in rows.groupby("seed"):
        wide = seed_rows.pivot(index="ray_index", columns="task", values="value")
        errors = 1.0 - wide[["top-left", "bottom-right"]].to_numpy()
        per_seed.append(sweep_hypervolume_2d(errors, (1.0, 1.0)))
    assert table.loc["pamal", "n_seeds"] == 3
    assert table.loc["pamal", "kind"] == "front" and table.loc["ls", "kind"] == "point"  # official LS: one model
    assert table.loc["pamal", "hv_mean"] == pytest.approx(np.mean(per_seed), abs=1e-12)
    assert table.loc["pamal", "hv_std"] == pytest.approx(np.std(per_seed, ddof=1), abs=1e-12)
    points = paper_points(paper, spec)
    assert len(points[points["method"] == "ls"]) == 3  # one point per seed


@pytest.mark.parametrize(
    "dataset", ["multimnist", "multimnist3", "census", "sarcos", "celeba", "utkface", "cityscapes", "nyuv2"]
)
def test_single_model_parameter_counts_match_the_official_code(paper: pd.DataFrame, dataset: str):
    rows = paper[(paper["metric"] == "parameters") & (paper["dataset"] == dataset)]
    assert len(rows) == 1
    spec = DATASETS.get(dataset)
    net = create_backbone(spec.backbone, spec, **dict(spec.backbone_options))
    assert sum(p.numel() for p in net.parameters()) == int(rows["value"].iloc[0])


def test_a_file_without_the_columns_is_an_error(tmp_path: Path):
    (tmp_path / "bad.csv").write_text("method,value\nls,0.9\n")
    with pytest.raises(ValueError, match=r"bad.csv: missing columns \['source'"):
        load_paper(tmp_path)
    assert load_paper(tmp_path / "absent").empty
