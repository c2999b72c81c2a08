"""CelebA on tiny files in the exact official layout: labels, partition, decoding, errors, prepare, one step."""

from __future__ import annotations

import math
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from bench.backbones import create_backbone
from bench.core.errors import MissingDataError
from bench.core.fidelity import load_file_module
from bench.data import celeba
from bench.train.config import resolve
from bench.train.runner import run_experiment, summary_hypervolume

COLOURS = [(250, 10, 10), (10, 250, 10), (10, 10, 250), (250, 250, 10), (10, 250, 250), (250, 10, 250), (128,) * 3]
PARTITION = [0, 0, 0, 0, 1, 1, 2]  # 4 train, 2 val, 1 test
SCRIPT = Path(__file__).resolve().parent.parent / "datasets" / "celeba" / "prepare.py"


def write_celeba(folder: Path, zip_images: bool = False) -> np.ndarray:
    """The three official inputs for len(COLOURS) solid-colour 178x218 faces; returns the -1/1 attributes."""
    n = len(COLOURS)
    attributes = np.random.default_rng(0).choice([-1, 1], size=(n, 40))
    images = folder / celeba.IMAGE_DIR
    images.mkdir(parents=True)
    for i, colour in enumerate(COLOURS):
        Image.new("RGB", (178, 218), colour).save(images / f"{i + 1:06d}.jpg", quality=95)
    # The official file: count, names (trailing space), rows of right-aligned values; CRLF line ends.
    rows = [f"{i + 1:06d}.jpg " + " ".join(f"{v:2d}" for v in attributes[i]) for i in range(n)]
    text = "\r\n".join([str(n), " ".join(celeba.ATTRIBUTES) + " ", *rows]) + "\r\n"
    (folder / celeba.ATTR_FILE).write_bytes(text.encode())
    (folder / celeba.PARTITION_FILE).write_text("".join(f"{i + 1:06d}.jpg {p}\n" for i, p in enumerate(PARTITION)))
    if zip_images:
        with zipfile.ZipFile(folder / f"{celeba.IMAGE_DIR}.zip", "w") as zf:
            for path in sorted(images.iterdir()):
                zf.write(path, f"{celeba.IMAGE_DIR}/{path.name}")
        for path in images.iterdir():
            path.unlink()
        images.rmdir()
    return attributes


@pytest.fixture
def root(tmp_path: Path) -> tuple[Path, np.ndarray]:
    attributes = write_celeba(celeba.data_dir(tmp_path / "data"))
    return tmp_path / "data", attributes


def test_labels_partition_and_decoded_images(root):
    data_root, attributes = root
    start = 0
    for split, size in (("train", 4), ("val", 2), ("test", 1)):
        dataset = celeba.load(data_root, split)
        assert len(dataset) == size
        for k in range(size):
            i = start + k
            x, targets = dataset[k]
            assert x.shape == (3, 64, 64) and x.dtype == torch.float32
            expected = torch.tensor(COLOURS[i], dtype=torch.float32).view(3, 1, 1) / 255
            assert (x - expected).abs().max() <= 4 / 255  # a solid colour survives JPEG and the resize
            assert list(targets) == list(celeba.ATTRIBUTES)
            assert [int(targets[a]) for a in celeba.ATTRIBUTES] == ((attributes[i] + 1) // 2).tolist()
            assert all(t.dtype == torch.int64 for t in targets.values())
        start += size


def test_preprocessing_equals_the_official_transform(tmp_path: Path):
    rng = np.random.default_rng(1)
    path = tmp_path / "face.jpg"
    Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(path)
    official = transforms.Compose([transforms.Resize((64, 64)), transforms.ToTensor()])
    with Image.open(path) as img:
        expected = official(img.convert("RGB"))
    assert torch.equal(celeba.load_image(path), expected)


def test_dataset_pickles_for_workers(root):
    dataset = celeba.load(root[0], "train")
    clone = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(clone[2][0], dataset[2][0])


def test_header_must_name_the_40_attributes(root):
    data_root, _ = root
    path = celeba.data_dir(data_root) / celeba.ATTR_FILE
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace("Smiling", "Smile")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(MissingDataError, match=r"32: 'Smile' \(expected 'Smiling'\)"):
        celeba.load(data_root, "train")


def test_missing_files_are_named_with_the_download_page_and_command(tmp_path: Path):
    with pytest.raises(MissingDataError) as err:
        celeba.load(tmp_path, "train")
    message = str(err.value)
    for name in (celeba.ATTR_FILE, celeba.PARTITION_FILE, celeba.IMAGE_DIR):
        assert str(celeba.data_dir(tmp_path) / name) in message
    assert celeba.URL in message and "python datasets/celeba/prepare.py --source DIR" in message


def test_missing_images_are_counted(root):
    data_root, _ = root
    (celeba.data_dir(data_root) / celeba.IMAGE_DIR / "000003.jpg").unlink()
    with pytest.raises(MissingDataError, match="1 of the 7 images .* missing .*000003.jpg"):
        celeba.load(data_root, "val")


@pytest.mark.slow
def test_parameter_count_matches_the_official_model():
    net = create_backbone("resnet18", celeba.CELEBA)
    assert sum(p.numel() for p in net.parameters()) == 11_332_752  # official CELEBA_COUNT
    assert net(torch.rand(2, 3, 64, 64))["Young"].shape == (2, 2)


def load_prepare():
    module = load_file_module("celeba_prepare", SCRIPT)
    return module


@pytest.mark.parametrize("zip_images", [False, True], ids=["folder", "zip"])
def test_prepare_script_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture, zip_images: bool):
    prepare = load_prepare()
    source = tmp_path / "downloads"
    attributes = write_celeba(source, zip_images=zip_images)
    data_root = tmp_path / "root"
    assert prepare.main(["--source", str(source), "--data-root", str(data_root)]) == 0
    out = capsys.readouterr().out
    assert "7 images, train 4, val 2, test 1" in out and "note: the official partition" in out
    assert ("extracted 7 images" in out) == zip_images and ("linked" in out) != zip_images
    _, targets = celeba.load(data_root, "test")[0]
    assert int(targets["Young"]) == (attributes[6, -1] + 1) // 2
    # a missing annotation file: one line naming it, exit code 2
    (source / celeba.PARTITION_FILE).unlink()
    assert prepare.main(["--source", str(source), "--data-root", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: missing in") and celeba.PARTITION_FILE in err and celeba.ATTR_FILE not in err


@pytest.mark.parametrize("method", ["palora", "ls"])
@pytest.mark.slow
def test_one_training_step(method: str, root, tmp_path: Path):
    # One image per evaluation split: PaLoRA merges its 40 adapters into the ResNet-18 for each of
    # the 41 rays (40 vertices + uniform) on val and test, ~0.1 s per ray and split on 2 idle cores.
    settings = ["train.epochs=1", "train.max_steps=1", "train.batch_size=4", "train.eval_batch_size=4"]
    settings.append("data.eval_limit=1")
    if method == "ls":  # one ResNet-18 for the uniform ray: the 41 grid rays would need 41 models (~7 GB)
        settings.append("method.rays=" + ",".join(["0.025"] * 40))
    cfg = resolve(method, "celeba", assignments=settings)
    result = run_experiment(cfg, tmp_path / "runs", root[0], "cpu", show_progress=False, workers=0)
    assert (result.directory / "status").read_text().strip() == "COMPLETED"
    summary = result.summary
    assert summary["steps"] == 1 and len(summary["front"]) == (41 if method == "palora" else 1)
    assert math.isfinite(summary_hypervolume(summary)) and summary["hv_reference"] == [1.0, 1.0, 1.0]
    assert list(summary["hv_metrics"]) == ["Attractive", "Male", "Smiling"]
    for entry in summary["front"]:
        assert all(math.isfinite(v) for metrics in entry["metrics"].values() for v in metrics.values())
        assert 0.0 <= celeba.mean_error(entry) <= 1.0
