"""multifashion and multifashion-mnist on tiny IDX files in torchvision's layout, through the real loaders."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.core.errors import MissingDataError
from bench.core.fidelity import load_file_module
from bench.core.registry import DATASETS
from bench.data import multifashion as mf
from bench.data.formats.idx import IMAGE_SET_FILES, write_idx
from bench.data.kit.multimnist_generator import compose, make_multimnist_from_pools
from bench.data.multimnist import cache_path, mnist_raw_dir
from bench.train.config import resolve
from bench.train.runner import run_experiment, summary_hypervolume

ROOT = Path(__file__).resolve().parent.parent
Pools = dict[str, tuple[np.ndarray, np.ndarray]]


@pytest.fixture(autouse=True)
def no_debian_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a real /usr/share/datasets/fashion-mnist out of these tests; one test fakes it."""
    monkeypatch.setattr(mf, "DEBIAN_FASHION_DIR", tmp_path / "no-debian-package")


def write_idx_set(folder: Path, n_train: int, n_test: int, seed: int, label_step: int, gz: bool = True) -> Pools:
    """The four IDX files of an MNIST-layout set in ``folder``: unique random images, label (i * step) % 10."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pools: Pools = {}
    for part, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = ((np.arange(n) * label_step) % 10).astype(np.uint8)
        suffix = ".gz" if gz else ""
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
        pools[part] = (images, labels)
    return pools


def write_fashion(root: Path, gz: bool = True) -> Pools:
    return write_idx_set(mf.fashion_raw_dir(root), 12, 6, seed=1, label_step=3, gz=gz)


def write_mnist(root: Path) -> Pools:
    return write_idx_set(mnist_raw_dir(root), 14, 7, seed=2, label_step=1)


def sources_of(sample: torch.Tensor, left: np.ndarray, right: np.ndarray, distinct: bool) -> tuple[int, int]:
    """The (left, right) indices whose composition is ``sample`` (every pair composed at once)."""
    a, b = torch.from_numpy(left).float() / 255, torch.from_numpy(right).float() / 255
    ii, jj = torch.meshgrid(torch.arange(len(a)), torch.arange(len(b)), indexing="ij")
    ii, jj = ii.reshape(-1), jj.reshape(-1)
    hits = (compose(a[ii], b[jj]) - sample).abs().amax(dim=(1, 2, 3)) < 1e-6
    if distinct:
        hits &= ii != jj
    assert int(hits.sum()) == 1, "the sample is not the composition of exactly one pair of its pools"
    k = int(hits.nonzero()[0])
    return int(ii[k]), int(jj[k])


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_multifashion_pairs_two_items_of_the_same_part(tmp_path: Path, gz: bool):
    pools = write_fashion(tmp_path, gz=gz)
    splits = mf.build_multifashion(tmp_path)
    # 12 training items -> 12 pairs cut 10 / 2 (50k : 10k); 6 test items -> 6 test pairs
    assert [splits[s][0].shape[0] for s in ("train", "val", "test")] == [10, 2, 6]
    for split, part in (("train", "train"), ("val", "train"), ("test", "test")):
        images, labels = pools[part]
        x, y = splits[split]
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 28, 28) and y.dtype == torch.int64
        for k in range(len(x)):
            i, j = sources_of(x[k], images, images, distinct=True)
            assert y[k].tolist() == [labels[i], labels[j]]  # top-left item, bottom-right item


def test_multifashion_mnist_pairs_a_digit_with_an_item(tmp_path: Path):
    digits, items = write_mnist(tmp_path), write_fashion(tmp_path)
    splits = mf.build_multifashion_mnist(tmp_path)
    # as many pairs as MNIST images: 14 -> 12 train / 2 val (rounded 50k : 10k), 7 test
    assert [splits[s][0].shape[0] for s in ("train", "val", "test")] == [12, 2, 7]
    for split, part in (("train", "train"), ("val", "train"), ("test", "test")):
        x, y = splits[split]
        for k in range(len(x)):
            # the digit comes from the MNIST pool of the same part (test never sees a training image)
            i, j = sources_of(x[k], digits[part][0], items[part][0], distinct=False)
            assert y[k].tolist() == [digits[part][1][i], items[part][1][j]]  # digit (top-left), item


def test_two_pools_generator_places_each_pool_in_its_corner():
    left = torch.zeros(3, 28, 28, dtype=torch.uint8)
    left[:, :4, :4] = 255  # a block in the top-left corner of every "digit"
    right = torch.zeros(5, 28, 28, dtype=torch.uint8)
    right[:, -4:, -4:] = 255  # a block in the bottom-right corner of every "item"
    x, y = make_multimnist_from_pools(
        left, torch.tensor([1, 2, 3]), right, torch.tensor([5, 6, 7, 8, 9]), 50, torch.Generator().manual_seed(0)
    )
    assert x.shape == (50, 1, 28, 28) and (x[:, 0, :3, :3].mean(dim=(1, 2)) > 0.5).all()
    # the item's block, canvas rows/cols 30:34 of 36, lands at about 23.3:26.4 of 28
    assert (x[:, 0, 24:26, 24:26].mean(dim=(1, 2)) > 0.5).all() and (x[:, 0, 12:16, 12:16].abs() < 0.01).all()
    assert set(y[:, 0].tolist()) <= {1, 2, 3} and set(y[:, 1].tolist()) <= {5, 6, 7, 8, 9}


def test_loaders_through_the_specs_and_the_cache(tmp_path: Path):
    write_mnist(tmp_path)
    write_fashion(tmp_path)
    for name, tasks in (("multifashion", ("top-left", "bottom-right")), ("multifashion-mnist", ("digit", "item"))):
        spec = DATASETS.get(name)
        assert spec.objective_names == tasks and spec.hv_reference == (1.0, 1.0) and len(spec.eval_rays()) == 11
        path = mf.prepare(tmp_path, name)
        assert path == cache_path(tmp_path, name) and path.is_file()
        x, targets = spec.load(tmp_path, "test")
        assert set(targets) == set(tasks) and all(t.shape == (x.shape[0],) for t in targets.values())
        stored = torch.load(path, weights_only=True)
        assert torch.equal(stored["test"][0], x) and torch.equal(stored["test"][1][:, 1], targets[tasks[1]])
    a, b = mf.build_multifashion(tmp_path), mf.build_multifashion(tmp_path)
    assert torch.equal(a["train"][0], b["train"][0])  # seeded: regenerating gives the same data


def test_missing_fashion_files_are_named_with_the_fix(tmp_path: Path):
    write_fashion(tmp_path)
    (mf.fashion_raw_dir(tmp_path) / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(MissingDataError) as err:
        DATASETS.get("multifashion").load(tmp_path, "train")
    message = str(err.value)
    assert "t10k-images-idx3-ubyte" in message and "train-images-idx3-ubyte" not in message
    assert str(mf.fashion_raw_dir(tmp_path)) in message and "fashion-mnist.s3-website" in message
    assert "python datasets/multifashion/prepare.py [--fashion-dir" in message and str(tmp_path) in message
    assert "apt-get install dataset-fashion-mnist" in message


def test_prepare_uses_the_debian_package_folder_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    debian = tmp_path / "usr-share-datasets-fashion-mnist"
    fashion = write_idx_set(debian, 12, 6, seed=1, label_step=3)
    monkeypatch.setattr(mf, "DEBIAN_FASHION_DIR", debian)
    root = tmp_path / "root"
    assert load_script("multifashion").main(["--data-root", str(root)]) == 0
    copied = mf.read_sources(root, "multifashion", False, True)["fashion"]
    assert np.array_equal(copied["train_labels"], fashion["train"][1])
    assert cache_path(root, "multifashion").is_file()


def test_missing_files_of_both_sets_in_one_message(tmp_path: Path):
    write_fashion(tmp_path)
    with pytest.raises(MissingDataError) as err:
        DATASETS.get("multifashion-mnist").load(tmp_path, "val")
    message = str(err.value)
    assert all(stem in message for stem in IMAGE_SET_FILES.values()) and str(mnist_raw_dir(tmp_path)) in message
    assert "python datasets/multifashion-mnist/prepare.py --mnist-dir" in message and "--fashion-dir" not in message
    assert "datasets/multimnist/prepare.py" in message and "yann.lecun.com" in message
    for path in mf.fashion_raw_dir(tmp_path).iterdir():
        path.unlink()
    with pytest.raises(MissingDataError, match=r"--mnist-dir .* \[--fashion-dir"):
        DATASETS.get("multifashion-mnist").load(tmp_path, "val")


def load_script(name: str):
    path = ROOT / "datasets" / name / "prepare.py"
    module = load_file_module(f"prepare_{name.replace('-', '_')}", path)
    return module


def test_prepare_scripts_copy_files_and_build_the_caches(tmp_path: Path, capsys: pytest.CaptureFixture):
    downloads = tmp_path / "downloads"
    fashion = write_fashion(downloads)
    write_mnist(downloads)
    root = tmp_path / "root"
    fashion_dir, mnist_dir = str(mf.fashion_raw_dir(downloads)), str(mnist_raw_dir(downloads))
    assert load_script("multifashion").main(["--fashion-dir", fashion_dir, "--data-root", str(root)]) == 0
    assert cache_path(root, "multifashion").is_file()
    assert np.array_equal(
        mf.read_sources(root, "multifashion", False, True)["fashion"]["test_labels"], fashion["test"][1]
    )
    mixed = load_script("multifashion-mnist")
    # Fashion-MNIST is already in place: only MNIST is missing, and the error says so on one line
    assert mixed.main(["--data-root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "--mnist-dir" in err and "Traceback" not in err
    assert mixed.main(["--mnist-dir", mnist_dir, "--data-root", str(root)]) == 0
    assert cache_path(root, "multifashion-mnist").is_file()
    (mf.fashion_raw_dir(downloads) / "train-labels-idx1-ubyte.gz").unlink()
    assert mixed.main(["--fashion-dir", fashion_dir, "--data-root", str(tmp_path / "other")]) == 2
    assert "train-labels-idx1-ubyte" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["multifashion", "multifashion-mnist"])
@pytest.mark.parametrize("method", ["palora", "ls"])
def test_one_training_step(tmp_path: Path, name: str, method: str):
    data_root = tmp_path / "data"
    write_mnist(data_root)
    write_fashion(data_root)
    assignments = ["train.epochs=1", "train.max_steps=1", "train.batch_size=4", "train.eval_batch_size=4"]
    result = run_experiment(
        resolve(method, name, assignments=assignments), tmp_path / "runs", data_root, "cpu", False, workers=0
    )
    assert (result.directory / "status").read_text().strip() == "COMPLETED"
    summary = result.summary
    assert summary["steps"] == 1 and len(summary["front"]) == 11 and math.isfinite(summary_hypervolume(summary))
    values = [v for point in summary["front"] for m in point["metrics"].values() for v in m.values()]
    assert set(summary["front"][0]["metrics"]) == set(DATASETS.get(name).objective_names)
    assert len(values) == 11 * 2 * 2 and all(math.isfinite(v) for v in values)
