"""Cityscapes (bench/data/cityscapes.py, bench/data/formats/mtan_npy.py) on tiny files in MTAN's exact .npy layout."""

from __future__ import annotations

import dataclasses
import math
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import random_split

from bench.core.errors import MissingDataError
from bench.core.fidelity import load_file_module
from bench.core.registry import DATASETS
from bench.data import cityscapes as cs
from bench.data.formats import mtan_npy
from bench.train.config import resolve
from bench.train.runner import run_experiment, summary_hypervolume

ROOT = Path(__file__).resolve().parent.parent
H, W = 32, 32  # tiny; the loader reads the size from the files (the real ones are 128 x 256)
NARROW = {"filters": (4, 8, 8, 16, 16)}


def write_split(folder: Path, n: int, seed: int) -> dict[str, list[np.ndarray]]:
    """MTAN's files: image (H, W, 3) float64 in [0, 1], label_7 (H, W) float with -1, depth (H, W, 1) float32."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, list[np.ndarray]] = {"image": [], "label_7": [], "depth": []}
    for name in arrays:
        (folder / name).mkdir(parents=True)
    for i in range(n):
        image = rng.integers(0, 256, (H, W, 3)) / 255.0
        label = rng.integers(-1, 7, (H, W)).astype(np.float64)
        disparity = (rng.random((H, W, 1)) * 0.49 * (rng.random((H, W, 1)) > 0.3)).astype(np.float32)
        for name, array in (("image", image), ("label_7", label), ("depth", disparity)):
            np.save(folder / name / f"{i}.npy", array)
            arrays[name].append(array)
    return arrays


def write_tiny(base: Path, n_train: int = 6, n_val: int = 3) -> dict[str, dict[str, list[np.ndarray]]]:
    """``base``/{train,val}/... (base is ``<root>/cityscapes`` or a download folder)."""
    return {"train": write_split(base / "train", n_train, 0), "val": write_split(base / "val", n_val, 1)}


def test_test_split_decodes_the_files(tmp_path: Path):
    arrays = write_tiny(tmp_path / "cityscapes")
    data = cs.CITYSCAPES.load(tmp_path, "test")
    assert len(data) == 3
    for i in range(3):
        image, targets = data[i]
        assert image.dtype == torch.float32 and image.shape == (3, H, W)
        assert torch.allclose(image, torch.from_numpy(np.moveaxis(arrays["val"]["image"][i], -1, 0)).float())
        assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0  # Cityscapes stays in [0, 1]
        seg, disparity = targets["segmentation"], targets["depth"]
        assert seg.dtype == torch.int64 and seg.shape == (H, W)
        assert torch.equal(seg, torch.from_numpy(arrays["val"]["label_7"][i]).long())
        assert int(seg.min()) == -1 and int(seg.max()) <= 6
        assert disparity.dtype == torch.float32 and disparity.shape == (1, H, W)
        assert torch.equal(disparity[0], torch.from_numpy(arrays["val"]["depth"][i][..., 0]))
    assert set(targets) == set(cs.CITYSCAPES.objective_names) == {"segmentation", "depth"}


def test_datasets_pickle_for_worker_processes(tmp_path: Path):
    write_tiny(tmp_path / "cityscapes")
    for split in ("train", "val"):
        data = cs.CITYSCAPES.load(tmp_path, split)
        copy = pickle.loads(pickle.dumps(data))
        assert copy.indices == data.indices and copy.augment == data.augment
    image, targets = copy[0]
    assert torch.equal(image, data[0][0]) and torch.equal(targets["depth"], data[0][1]["depth"])


def test_train_val_cut_is_the_official_random_split():
    official = random_split(range(2975), [2500, 475], generator=torch.Generator().manual_seed(42))
    train, val = mtan_npy.train_val_indices(cs.LAYOUT, 2975)
    assert train == list(official[0].indices) and val == list(official[1].indices)


def test_train_and_val_splits_of_the_train_folder(tmp_path: Path):
    arrays = write_tiny(tmp_path / "cityscapes")
    train, val = cs.CITYSCAPES.load(tmp_path, "train"), cs.CITYSCAPES.load(tmp_path, "val")
    assert (len(train), len(val)) == (5, 1)  # round(6 * 2500 / 2975) = 5
    assert sorted(train.indices + val.indices) == list(range(6))
    assert train.augment and not val.augment
    image, targets = val[0]
    k = val.indices[0]
    assert torch.equal(targets["segmentation"], torch.from_numpy(arrays["train"]["label_7"][k]).long())
    torch.manual_seed(0)
    for i in range(len(train)):
        image, targets = train[i]  # augmented: same shapes, labels from the original's values
        assert image.shape == (3, H, W) and targets["depth"].shape == (1, H, W)
        original = set(np.unique(arrays["train"]["label_7"][train.indices[i]]).astype(int))
        assert set(targets["segmentation"].unique().tolist()) <= original


def test_scale_crop_divides_depth_and_flip_mirrors():
    image = torch.rand(3, H, W)
    label = torch.randint(-1, 7, (H, W))
    disparity = torch.rand(1, H, W) + 0.1
    kinds = {"segmentation": "label", "depth": "depth"}
    targets = {"segmentation": label, "depth": disparity}
    out_image, out = mtan_npy.scale_crop(image, targets, kinds, 1.5, top=3, left=5)
    h, w = int(H / 1.5), int(W / 1.5)
    assert out_image.shape == (3, H, W) and out["depth"].shape == (1, H, W)
    # nearest resize: every output pixel is a crop pixel; disparity divided by the scale (as officially)
    crop_values = set((disparity[0, 3 : 3 + h, 5 : 5 + w] / 1.5).flatten().tolist())
    assert set(out["depth"].flatten().tolist()) <= crop_values
    assert out["segmentation"].dtype == torch.int64
    assert set(out["segmentation"].unique().tolist()) <= set(label[3 : 3 + h, 5 : 5 + w].unique().tolist())
    assert torch.allclose(out_image[:, 0, 0], image[:, 3, 5]) and torch.allclose(
        out_image[:, -1, -1], image[:, 3 + h - 1, 5 + w - 1]
    )
    same_image, same = mtan_npy.scale_crop(image, targets, kinds, 1.0, 0, 0)
    assert torch.allclose(same_image, image) and torch.equal(same["depth"], disparity)
    flipped_image, flipped = mtan_npy.hflip(image, targets, kinds)
    assert torch.equal(flipped_image, image.flip(-1)) and torch.equal(flipped["segmentation"], label.flip(-1))


def test_missing_files_are_named_with_the_fix(tmp_path: Path):
    with pytest.raises(MissingDataError) as err:
        cs.CITYSCAPES.load(tmp_path, "train")
    message = str(err.value)
    assert str(tmp_path / "cityscapes" / "train") in message and "label_7" in message
    assert "dropbox.com/sh/gaw6vh6qusoyms6" in message and "datasets/cityscapes/prepare.py --source" in message
    write_tiny(tmp_path / "cityscapes")
    for path in (tmp_path / "cityscapes" / "val" / "depth").iterdir():
        path.unlink()
    (tmp_path / "cityscapes" / "val" / "depth").rmdir()
    with pytest.raises(MissingDataError) as err:
        cs.CITYSCAPES.load(tmp_path, "test")
    message = str(err.value)
    assert f"{tmp_path / 'cityscapes' / 'val' / 'depth'}/" in message and "label_7" not in message
    (tmp_path / "cityscapes" / "val" / "depth").mkdir()
    with pytest.raises(MissingDataError, match="has 0 .npy files but"):
        cs.CITYSCAPES.load(tmp_path, "test")


def test_inconsistent_shapes_are_reported(tmp_path: Path):
    write_tiny(tmp_path / "cityscapes")
    np.save(tmp_path / "cityscapes" / "train" / "depth" / "0.npy", np.zeros((H, W + 1, 1), np.float32))
    with pytest.raises(MissingDataError, match=r"depth/0.npy has shape \(32, 33, 1\)"):
        cs.CITYSCAPES.load(tmp_path, "train")


def load_script():
    path = ROOT / "datasets" / "cityscapes" / "prepare.py"
    module = load_file_module("prepare_cityscapes", path)
    return module


def test_prepare_links_a_folder_and_extracts_a_zip(tmp_path: Path, capsys: pytest.CaptureFixture):
    script = load_script()
    download = tmp_path / "download" / "cityscapes"
    arrays = write_tiny(download)
    root = tmp_path / "root"
    assert script.main(["--source", str(tmp_path / "download"), "--data-root", str(root)]) == 0
    assert (root / "cityscapes" / "train").is_symlink()
    assert "6 samples (the MTAN archive has 2975)" in capsys.readouterr().out
    image, _ = cs.CITYSCAPES.load(root, "test")[2]
    assert torch.allclose(image, torch.from_numpy(np.moveaxis(arrays["val"]["image"][2], -1, 0)).float())
    # a zip of the folder, into another root; the folder root refuses to be overwritten without --force
    archive = tmp_path / "cityscapes.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(download.rglob("*.npy")):
            zf.write(path, path.relative_to(download.parent))
    other = tmp_path / "other"
    assert script.main(["--source", str(archive), "--data-root", str(other)]) == 0
    assert (other / "cityscapes" / "val" / "label_7" / "2.npy").is_file()
    assert not (other / "cityscapes" / "train").is_symlink()
    assert not list((other / "cityscapes").glob(".extract-*"))
    assert script.main(["--source", str(archive), "--data-root", str(root)]) == 2
    assert "--force" in capsys.readouterr().err
    assert script.main(["--source", str(archive), "--data-root", str(root), "--force"]) == 0
    capsys.readouterr()
    assert script.main(["--source", str(tmp_path / "nothing"), "--data-root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("method", ["palora", "ls"])
def test_one_training_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str):
    write_tiny(tmp_path / "data" / "cityscapes")
    # The 25M-parameter SegNet is too slow for a CPU test: the same SegNet with narrow stages
    # (tests/test_segnet.py checks the full one). PaLoRA runs its preset (inner gb, window 2) on the
    # 11-ray grid; LS trains one model (its default is one per grid ray).
    spec = DATASETS.get("cityscapes")
    monkeypatch.setitem(DATASETS._items, "cityscapes", dataclasses.replace(spec, backbone_options=NARROW))
    assignments = ["train.epochs=1", "train.max_steps=1", "train.batch_size=2", "train.eval_batch_size=4"]
    if method == "ls":
        assignments.append("method.rays=0.5,0.5")
    cfg = resolve(method, "cityscapes", assignments=assignments)
    result = run_experiment(cfg, tmp_path / "runs", tmp_path / "data", "cpu", show_progress=False, workers=0)
    assert (result.directory / "status").read_text().strip() == "COMPLETED"
    summary = result.summary
    assert summary["steps"] == 1 and summary["hv_reference"] == [1.0, 1.0]  # the official HV (losses)
    assert len(summary["front"]) == (11 if method == "palora" else 1) and math.isfinite(summary_hypervolume(summary))
    for point in summary["front"]:
        assert set(point["metrics"]["segmentation"]) == {"miou", "pixel_accuracy", "loss"}
        assert set(point["metrics"]["depth"]) == {"abs_err", "rel_err", "loss"}
        assert all(math.isfinite(v) for m in point["metrics"].values() for v in m.values())
    assert summary["backbone"] == "segnet"
