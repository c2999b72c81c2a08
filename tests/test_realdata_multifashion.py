"""The real MultiFashion, built from the full Fashion-MNIST that Debian's ``dataset-fashion-mnist``
installs (``.ci/run`` installs it where it can), prepared and trained on briefly as a user would."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.core.fidelity import load_file_module
from bench.data import multifashion as mf
from bench.data.formats.idx import find_image_set
from bench.train.config import resolve
from bench.train.runner import run_experiment

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(find_image_set(mf.DEBIAN_FASHION_DIR)[1]),
        reason=f"needs the Fashion-MNIST files in {mf.DEBIAN_FASHION_DIR} (apt-get install dataset-fashion-mnist)",
    ),
]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def real_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root prepared by the real script with no options (it finds the Debian folder)."""
    root = tmp_path_factory.mktemp("multifashion-real")
    script = ROOT / "datasets" / "multifashion" / "prepare.py"
    module = load_file_module("prepare_multifashion_real", script)
    assert module.main(["--data-root", str(root)]) == 0
    return root


def test_the_real_splits_have_the_paper_sizes(real_root: Path):
    from bench.core.registry import DATASETS

    spec = DATASETS.get("multifashion")
    sizes = {split: spec.load(real_root, split)[0].shape[0] for split in ("train", "val", "test")}
    assert sizes == {"train": 50_000, "val": 10_000, "test": 10_000}
    x, targets = spec.load(real_root, "test")
    assert x.shape[1:] == (1, 28, 28)
    for labels in targets.values():  # Fashion-MNIST's test set is balanced: 1,000 items per class
        counts = labels.bincount(minlength=10)
        assert counts.min() > 800 and counts.max() < 1200


@pytest.mark.parametrize("method", ["palora", "ls"])
def test_brief_training_is_far_above_chance(real_root: Path, tmp_path: Path, method: str):
    """About 50 steps on 12,800 real pairs: every task at four times the 10 % of chance or more on 2,000 test pairs."""
    assignments = ["train.epochs=1", "data.train_limit=12800", "data.eval_limit=2000", "train.val_samples=500"]
    if method == "ls":  # three of its models (the ends and the middle) instead of one per grid ray
        assignments.append("method.rays=1,0;0.5,0.5;0,1")
    config = resolve(method, "multifashion", assignments=assignments)
    result = run_experiment(config, tmp_path / "runs", real_root, "cpu", False, workers=0)
    assert (result.directory / "status").read_text().strip() == "COMPLETED"
    front = result.summary["front"]
    middle = front[len(front) // 2]
    for task in ("top-left", "bottom-right"):
        best = max(point["metrics"][task]["accuracy"] for point in front)
        assert best > 0.4, (task, best)
        assert middle["metrics"][task]["accuracy"] > 0.3, (task, middle)
