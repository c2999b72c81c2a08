"""NYUv2 (bench/data/nyuv2.py, bench/data/formats/mtan_npy.py) on tiny files in MTAN's exact .npy layout."""

from __future__ import annotations

import dataclasses
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.core.errors import CorruptDataError, MissingDataError, UserError
from bench.core.fidelity import load_file_module
from bench.core.registry import DATASETS
from bench.data import nyuv2 as ny
from bench.data.formats import mtan_npy
from bench.train.command import main as run_main
from bench.train.config import resolve
from bench.train.runner import run_experiment, summary_hypervolume

ROOT = Path(__file__).resolve().parent.parent
H, W = 32, 32  # tiny; the loader reads the size from the files (the real ones are 288 x 384)
FOLDERS = ("image", "label", "depth", "normal")


def write_split(folder: Path, n: int, seed: int) -> dict[str, list[np.ndarray]]:
    """MTAN's files: image (H, W, 3) in [0, 1], label (H, W) with -1, depth (H, W, 1) metres with 0
    invalid, normal (H, W, 3) unit vectors with all-zero invalid pixels."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, list[np.ndarray]] = {name: [] for name in FOLDERS}
    for name in FOLDERS:
        (folder / name).mkdir(parents=True)
    for i in range(n):
        valid = rng.random((H, W, 1)) > 0.2
        normal = rng.normal(size=(H, W, 3))
        normal = (normal / np.linalg.norm(normal, axis=2, keepdims=True) * valid).astype(np.float32)
        sample = {
            "image": rng.integers(0, 256, (H, W, 3)) / 255.0,
            "label": rng.integers(-1, 13, (H, W)).astype(np.float64),
            "depth": (rng.random((H, W, 1)) * 9.99 * valid).astype(np.float32),
            "normal": normal,
        }
        for name, array in sample.items():
            np.save(folder / name / f"{i}.npy", array)
            arrays[name].append(array)
    return arrays


def write_tiny(base: Path, n_train: int = 6, n_val: int = 3) -> dict[str, dict[str, list[np.ndarray]]]:
    return {"train": write_split(base / "train", n_train, 0), "val": write_split(base / "val", n_val, 1)}


def test_test_split_decodes_the_files_and_rescales_images(tmp_path: Path):
    arrays = write_tiny(tmp_path / "nyuv2")
    data = ny.NYUV2.load(tmp_path, "test")
    assert len(data) == 3
    for i in range(3):
        image, targets = data[i]
        original = torch.from_numpy(np.moveaxis(arrays["val"]["image"][i], -1, 0)).float()
        assert image.dtype == torch.float32 and image.shape == (3, H, W)
        assert torch.allclose(image, 2 * original - 1)  # official PaLoRA: [0, 1] -> [-1, 1]
        assert float(image.min()) >= -1.0 and float(image.max()) <= 1.0
        assert torch.equal(targets["segmentation"], torch.from_numpy(arrays["val"]["label"][i]).long())
        assert targets["segmentation"].shape == (H, W) and int(targets["segmentation"].max()) <= 12
        assert targets["depth"].shape == (1, H, W)
        assert torch.equal(targets["depth"][0], torch.from_numpy(arrays["val"]["depth"][i][..., 0]))
        normal = targets["normals"]
        assert normal.dtype == torch.float32 and normal.shape == (3, H, W)
        assert torch.equal(normal, torch.from_numpy(np.moveaxis(arrays["val"]["normal"][i], -1, 0)))
        assert torch.equal(normal.sum(0) == 0, targets["depth"][0] == 0)  # the writer's shared invalid mask
    assert set(targets) == set(ny.NYUV2.objective_names) == {"segmentation", "depth", "normals"}


def test_train_val_cut_is_the_official_randperm(tmp_path: Path):
    order = torch.randperm(795, generator=torch.Generator().manual_seed(795)).tolist()
    assert mtan_npy.train_val_indices(ny.LAYOUT, 795) == (order[:700], order[700:])
    write_tiny(tmp_path / "nyuv2")
    train, val = ny.NYUV2.load(tmp_path, "train"), ny.NYUV2.load(tmp_path, "val")
    assert (len(train), len(val)) == (5, 1) and sorted(train.indices + val.indices) == list(range(6))
    assert train.augment and not val.augment


def test_augmentation_scales_depth_and_flip_negates_normal_x():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, H, W, generator=g)
    depth = torch.rand(1, H, W, generator=g) + 1.0
    normal = torch.nn.functional.normalize(torch.randn(3, H, W, generator=g), dim=0)
    label = torch.randint(-1, 13, (H, W), generator=g)
    kinds = {"segmentation": "label", "depth": "depth", "normals": "normal"}
    targets = {"segmentation": label, "depth": depth, "normals": normal}
    _, out = mtan_npy.scale_crop(image, targets, kinds, 1.2, top=2, left=1)
    h, w = int(H / 1.2), int(W / 1.2)
    # nearest resize of the crop: every pixel comes from one source pixel, depth / 1.2, normals unchanged
    crop_depth = depth[0, 2 : 2 + h, 1 : 1 + w]
    source = (out["depth"][0] * 1.2 - crop_depth.flatten()[:, None, None]).abs().argmin(0)
    assert torch.allclose(out["depth"][0], crop_depth.flatten()[source] / 1.2)
    crop_normal = normal[:, 2 : 2 + h, 1 : 1 + w].flatten(1)
    assert torch.allclose(out["normals"], crop_normal[:, source])
    assert torch.allclose(out["normals"].norm(dim=0), torch.ones(H, W), atol=1e-5)
    flipped_image, flipped = mtan_npy.hflip(image, targets, kinds)
    assert torch.equal(flipped["normals"][0], -normal[0].flip(-1))
    assert torch.equal(flipped["normals"][1:], normal[1:].flip(-1))
    assert torch.equal(flipped["depth"], depth.flip(-1)) and torch.equal(flipped_image, image.flip(-1))
    assert torch.equal(normal, targets["normals"])  # inputs untouched


@pytest.mark.parametrize("scale", [1.0, 1.2, 1.5])
def test_resize_crop_is_the_official_resize_then_crop(scale: float):
    """The official NYUv2 ``DataTransform``: torchvision ``resize`` of the whole sample by the scale
    (image bilinear with antialiasing, the rest nearest), one (H, W) crop, depth / scale."""
    tf = pytest.importorskip("torchvision.transforms.functional")
    from torchvision.transforms import InterpolationMode

    g = torch.Generator().manual_seed(1)
    image = torch.rand(3, H, W, generator=g)
    depth = torch.rand(1, H, W, generator=g) * 9.0
    normal = torch.nn.functional.normalize(torch.randn(3, H, W, generator=g), dim=0)
    label = torch.randint(-1, 13, (H, W), generator=g)
    kinds = {"segmentation": "label", "depth": "depth", "normals": "normal"}
    size = [int(H * scale), int(W * scale)]
    top, left = size[0] - H, (size[1] - W) // 2  # the bottom edge, the middle

    def official(tensor: torch.Tensor, mode: InterpolationMode) -> torch.Tensor:
        return tf.crop(tf.resize(tensor, size, mode, antialias=True), top, left, H, W)

    out_image, out = mtan_npy.resize_crop(
        image, {"segmentation": label, "depth": depth, "normals": normal}, kinds, scale, top, left
    )
    assert torch.equal(out_image, official(image, InterpolationMode.BILINEAR))
    assert torch.equal(out["segmentation"], official(label[None], InterpolationMode.NEAREST)[0])
    assert torch.equal(out["depth"], official(depth, InterpolationMode.NEAREST) / scale)
    assert torch.equal(out["normals"], official(normal, InterpolationMode.NEAREST))
    assert out["segmentation"].dtype == torch.int64 and out_image.shape == (3, H, W)


def test_nyuv2_resizes_then_crops_and_cityscapes_crops_then_resizes():
    from bench.data import cityscapes

    assert ny.LAYOUT.scale_mode == "resize_crop" and cityscapes.LAYOUT.scale_mode == "crop_resize"


@pytest.mark.parametrize("mode", ["crop_resize", "resize_crop"])
def test_random_augmentation_draws_every_scale_and_both_flips(mode: str):
    image = torch.arange(H * W, dtype=torch.float32).view(1, H, W).expand(3, H, W)
    depth = torch.full((1, H, W), 6.0)
    normal = torch.zeros(3, H, W)
    normal[0] = 1.0
    kinds = {"depth": "depth", "normals": "normal"}
    torch.manual_seed(0)
    seen_depth, seen_x = set(), set()
    for _ in range(60):
        _, out = mtan_npy.augment(image, {"depth": depth, "normals": normal}, kinds, mode=mode)
        seen_depth.add(round(float(out["depth"][0, 0, 0]), 4))
        seen_x.add(float(out["normals"][0, 0, 0]))
    assert seen_depth == {6.0, 5.0, 4.0} and seen_x == {1.0, -1.0}


def test_missing_files_are_named_with_the_fix(tmp_path: Path):
    write_tiny(tmp_path / "nyuv2")
    write_tiny(tmp_path / "other" / "nyuv2")
    for path in (tmp_path / "nyuv2" / "train" / "normal").iterdir():
        path.unlink()
    (tmp_path / "nyuv2" / "train" / "normal").rmdir()
    with pytest.raises(MissingDataError) as err:
        ny.NYUV2.load(tmp_path, "val")
    message = str(err.value)
    assert f"{tmp_path / 'nyuv2' / 'train' / 'normal'}/" in message and message.count("nyuv2/train") == 1
    assert "dropbox.com/sh/86nssgwm6hm3vkb" in message and "datasets/nyuv2/prepare.py --source" in message
    (tmp_path / "other" / "nyuv2" / "train" / "image" / "3.npy").unlink()
    with pytest.raises(MissingDataError, match=r"0.npy .. N-1.npy, found 5 .npy files"):
        ny.NYUV2.load(tmp_path / "other", "val")


def load_script():
    path = ROOT / "datasets" / "nyuv2" / "prepare.py"
    module = load_file_module("prepare_nyuv2", path)
    return module


def test_prepare_from_the_two_official_split_zips(tmp_path: Path, capsys: pytest.CaptureFixture):
    """PaLoRA's gdown zips hold one split's folders each (train.zip: image/, label/, ...)."""
    download = tmp_path / "download"
    arrays = write_tiny(download)
    zips = []
    for split in ("train", "val"):
        archive = tmp_path / f"{split}.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            for path in sorted((download / split).rglob("*.npy")):
                zf.write(path, path.relative_to(download / split))
        zips += ["--source", str(archive)]
    root = tmp_path / "root"
    assert load_script().main([*zips, "--data-root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "6 samples (the MTAN archive has 795)" in out and "3 samples (the MTAN archive has 654)" in out
    _, targets = ny.NYUV2.load(root, "test")[1]
    assert torch.equal(targets["normals"], torch.from_numpy(np.moveaxis(arrays["val"]["normal"][1], -1, 0)))
    other = tmp_path / "copied"
    assert load_script().main(["--source", str(download), "--data-root", str(other), "--copy"]) == 0
    assert not (other / "nyuv2" / "val").is_symlink() and (other / "nyuv2" / "val" / "normal" / "2.npy").is_file()
    capsys.readouterr()
    (download / "val" / "normal" / "2.npy").unlink()
    assert load_script().main(["--source", str(download), "--data-root", str(tmp_path / "third")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "normal" in err and "2.npy" in err


@pytest.mark.parametrize("method", ["palora", "ls"])
def test_one_training_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str):
    write_tiny(tmp_path / "data" / "nyuv2")
    # The 25M-parameter SegNet is too slow for a CPU test: the same SegNet with narrow stages
    # (tests/test_segnet.py checks the full one), and the 6-ray grid instead of 66 rays. PaLoRA's inner
    # gb costs 18 extra backward passes here (3 tasks x 6 rays), so this step uses ls (the cityscapes
    # test runs gb on SegNet). LS trains one model (its default is one per grid ray).
    spec = DATASETS.get("nyuv2")
    options = {**spec.backbone_options, "filters": (4, 8, 8, 16, 16)}
    spec = dataclasses.replace(spec, backbone_options=options, eval_points_per_edge=3)
    monkeypatch.setitem(DATASETS._items, "nyuv2", spec)
    assignments = ["train.epochs=1", "train.max_steps=1", "train.batch_size=2", "train.eval_batch_size=4"]
    assignments.append("method.rays=0.4,0.3,0.3" if method == "ls" else "method.inner_method=ls")
    cfg = resolve(method, "nyuv2", assignments=assignments)
    result = run_experiment(cfg, tmp_path / "runs", tmp_path / "data", "cpu", show_progress=False, workers=0)
    assert (result.directory / "status").read_text().strip() == "COMPLETED"
    summary = result.summary
    assert summary["steps"] == 1 and summary["hv_reference"] == [1.0, 2.0, 90.0]
    assert len(summary["front"]) == (6 if method == "palora" else 1) and math.isfinite(summary_hypervolume(summary))
    for point in summary["front"]:
        metrics = point["metrics"]
        assert set(metrics["normals"]) == {
            "angle_mean",
            "angle_median",
            "within_11.25",
            "within_22.5",
            "within_30",
            "loss",
        }
        assert all(math.isfinite(v) for m in metrics.values() for v in m.values())
        assert 0.0 <= metrics["normals"]["angle_median"] <= 180.0
    assert summary["backbone"] == "segnet"


def damage(path: Path, how: str) -> None:
    """Spoil one MTAN .npy file the way a broken download or disk would."""
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "header_cut":
        path.write_bytes(data[:40])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(b"<html>404 Not Found</html>" * 8)
    elif how == "wrong_shape":
        np.save(path, np.zeros((H, W + 1), np.float32))
    elif how == "wrong_dtype":
        np.save(path, np.load(path).astype(np.complex64))
    elif how == "objects":
        np.save(path, np.array([{"not": "an image"}], dtype=object), allow_pickle=True)


DAMAGES = {
    "truncated": "is truncated",
    "header_cut": "is not a readable .npy file",
    "empty": "is empty",
    "garbage": "is not a readable .npy file (the magic string is not correct",
    "wrong_shape": "has shape (32, 33), expected",
    "wrong_dtype": "has dtype complex64, expected float",
    "objects": "has dtype object, expected float",
}


@pytest.mark.parametrize("how", list(DAMAGES))
@pytest.mark.parametrize("which", ["val/image/0.npy", "train/normal/4.npy"])
def test_a_damaged_npy_file_names_itself_and_the_fix(tmp_path: Path, how: str, which: str):
    """Every file's header is read before training: a damaged one, first or not, is one line
    naming it, what is wrong and the prepare command, for every split."""
    write_tiny(tmp_path / "nyuv2")
    path = tmp_path / "nyuv2" / which
    damage(path, how)
    for split in ("train", "val", "test"):
        with pytest.raises(UserError) as err:
            ny.NYUV2.load(tmp_path, split)
        message = str(err.value)
        assert message.startswith(f"{path} {DAMAGES[how]}") and "\n" not in message, message
        assert message.endswith(
            f"re-extract the archive (or download it again) and run: {ny.LAYOUT.prepare_command(tmp_path)}"
        )


def test_a_file_damaged_after_the_check_is_named_when_read(tmp_path: Path):
    write_tiny(tmp_path / "nyuv2")
    data = ny.NYUV2.load(tmp_path, "test")
    damage(tmp_path / "nyuv2" / "val" / "depth" / "1.npy", "truncated")
    data[0]  # the others still read
    with pytest.raises(CorruptDataError, match=r"val/depth/1.npy cannot be read \(.*\); re-extract the archive"):
        data[1]


@pytest.mark.parametrize("how", ["truncated", "empty", "garbage", "wrong_shape"])
def test_bench_run_on_a_damaged_npy_file_prints_one_error_line(tmp_path: Path, capsys, how: str):
    write_tiny(tmp_path / "data" / "nyuv2")
    path = tmp_path / "data" / "nyuv2" / "train" / "depth" / "2.npy"
    damage(path, how)
    argv = ["--method", "ls", "--dataset", "nyuv2", "--device", "cpu", "--data-root", str(tmp_path / "data")]
    assert run_main([*argv, "--out", str(tmp_path / "runs")]) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert line.startswith(f"error: {path} ") and "datasets/nyuv2/prepare.py --source" in line
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())
