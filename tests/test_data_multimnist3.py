"""multimnist3 (three digits, three tasks) on tiny MNIST IDX files, through the real loader."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.transforms.functional import resize

from bench.core.errors import MissingDataError
from bench.core.fidelity import load_file_module
from bench.core.registry import DATASETS
from bench.data import multimnist3 as m3
from bench.data.formats.idx import write_idx
from bench.data.kit.multimnist_generator import canvas3, compose_three, draw_triples, make_multimnist3
from bench.data.multimnist import mnist_raw_dir
from bench.train.config import resolve
from bench.train.runner import run_experiment, summary_hypervolume

ROOT = Path(__file__).resolve().parent.parent


def official_sample(x0: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor, s: int = 42) -> torch.Tensor:
    """The official ``create_new_sample`` arithmetic (x0 top-left, x1 bottom, x2 top-right) with
    torchvision's tensor resize as torchvision 0.15.2 ran it (bilinear, no antialiasing)."""
    img = torch.zeros((s, s))
    img[0:28, 0:28] = x0
    img[s - 28 : s, s // 2 - 14 : s // 2 + 14] = torch.max(img[s - 28 : s, s // 2 - 14 : s // 2 + 14], x1)
    img[0:28, s - 28 : s] = torch.max(img[0:28, s - 28 : s], x2)
    return resize(img.unsqueeze(0), size=28, antialias=False).squeeze(0)


def random_digits(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 28, 28, generator=g) * (torch.rand(n, 28, 28, generator=g) > 0.5)


def test_canvas_is_the_pixelwise_max_where_digits_overlap():
    tl, tr, bottom = random_digits(3).unbind(0)
    canvas = canvas3(tl[None], tr[None], bottom[None])[0]
    assert canvas.shape == (42, 42)
    # placements: top-left rows 0:28 cols 0:28; top-right rows 0:28 cols 14:42; bottom rows 14:42 cols 7:35
    assert canvas[20, 20] == max(tl[20, 20], tr[20, 6], bottom[6, 13])  # all three overlap
    assert canvas[5, 20] == max(tl[5, 20], tr[5, 6])  # top-left and top-right only
    assert canvas[30, 10] == bottom[16, 3]  # bottom only
    assert canvas[2, 40] == tr[2, 26] and canvas[40, 2] == 0 and canvas[40, 40] == 0
    placed = torch.zeros(3, 42, 42)
    placed[0, 0:28, 0:28], placed[1, 0:28, 14:42], placed[2, 14:42, 7:35] = tl, tr, bottom
    assert torch.equal(canvas, placed.amax(dim=0))


def test_compose_three_matches_the_official_sample():
    digits = random_digits(9, seed=1)
    tl, tr, bottom = digits[0:3], digits[3:6], digits[6:9]
    ours = compose_three(tl, tr, bottom)
    assert ours.shape == (3, 1, 28, 28)
    for k in range(3):
        # official argument order: top-left, bottom, top-right
        assert torch.allclose(ours[k, 0], official_sample(tl[k], bottom[k], tr[k]), atol=1e-6)


def test_triples_are_distinct_and_cover_every_ordered_triple():
    ids = draw_triples(4, 5000, torch.Generator().manual_seed(0))
    assert ids.shape == (5000, 3)
    assert ((ids[:, 0] != ids[:, 1]) & (ids[:, 0] != ids[:, 2]) & (ids[:, 1] != ids[:, 2])).all()
    assert len({tuple(r) for r in ids.tolist()}) == 4 * 3 * 2
    with pytest.raises(ValueError, match="at least 3"):
        draw_triples(2, 1, torch.Generator())


def test_labels_follow_positions():
    images = torch.zeros(3, 28, 28, dtype=torch.uint8)
    images[0, :4, :4] = 255  # label 1: a block in its top-left corner
    images[1, :4, -4:] = 255  # label 2: a block in its top-right corner
    images[2, -4:, 12:16] = 255  # label 3: a block at the bottom centre
    x, y = make_multimnist3(images, torch.tensor([1, 2, 3]), 60, torch.Generator().manual_seed(0))
    # canvas 42 -> 28: the top-left block spans 0:2.7, top-right 25.3:28 (cols), bottom 25.3:28 (rows)
    assert x.shape == (60, 1, 28, 28) and y.shape == (60, 3)
    for k in range(60):
        assert (x[k, 0, 0, 0] > 0.5) == (y[k, 0] == 1)
        assert (x[k, 0, 0, 27] > 0.5) == (y[k, 1] == 2)
        assert (x[k, 0, 27, 13:15].mean() > 0.5) == (y[k, 2] == 3)


def write_tiny_mnist(folder: Path, n_train: int = 9, n_test: int = 5, gz: bool = True) -> dict[str, tuple]:
    """The four MNIST IDX files in ``folder``: unique random digits, label i % 10."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    pools = {}
    for part, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        suffix = ".gz" if gz else ""
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
        pools[part] = (images, labels)
    return pools


def all_triples(images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Every ordered triple of distinct digits of a pool and its composition."""
    digits = torch.from_numpy(images).float() / 255
    triples = torch.tensor(list(itertools.permutations(range(len(digits)), 3)))
    return triples, compose_three(digits[triples[:, 0]], digits[triples[:, 1]], digits[triples[:, 2]])


def sources_of(sample: torch.Tensor, triples: torch.Tensor, composed: torch.Tensor) -> tuple[int, int, int]:
    """The (top-left, top-right, bottom) indices of the one triple whose composition is ``sample``."""
    hits = ((composed - sample).abs().amax(dim=(1, 2, 3)) < 1e-6).nonzero()
    assert len(hits) == 1, "the sample is not the composition of exactly one triple of its pool"
    return tuple(triples[int(hits[0])].tolist())


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_build_reads_tiny_idx_files(tmp_path: Path, gz: bool):
    pools = write_tiny_mnist(mnist_raw_dir(tmp_path), gz=gz)
    splits = m3.build(tmp_path)
    # 9 training digits -> 9 samples cut 8 / 1 (50k : 10k, rounded); 5 test digits -> 5 test samples
    assert [splits[s][0].shape[0] for s in ("train", "val", "test")] == [8, 1, 5]
    for split, part in (("train", "train"), ("val", "train"), ("test", "test")):
        images, labels = pools[part]
        candidates = all_triples(images)
        x, y = splits[split]
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 28, 28) and y.dtype == torch.int64
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0  # bilinear: no overshoot
        for k in range(len(x)):
            i, j, m = sources_of(x[k], *candidates)  # test samples come from the test digits only
            assert y[k].tolist() == [labels[i], labels[j], labels[m]]  # top-left, top-right, bottom


def test_spec_loader_and_cache(tmp_path: Path):
    write_tiny_mnist(mnist_raw_dir(tmp_path))
    spec = DATASETS.get("multimnist3")
    assert spec.objective_names == ("top-left", "top-right", "bottom") and spec.hv_reference == (1.0, 1.0, 1.0)
    assert spec.hv_name == "official" and [d.name for d in spec.hv_definitions] == ["official", "errors"]
    assert spec.eval_rays().shape == (66, 3) and spec.train_defaults["train.epochs"] == 20
    path = m3.prepare(tmp_path)
    assert path == tmp_path / "multimnist3" / "multimnist3-v1-seed0.pt" and path.is_file()
    x, targets = spec.load(tmp_path, "val")
    assert x.shape == (1, 1, 28, 28) and set(targets) == set(spec.objective_names)
    assert torch.equal(torch.load(path, weights_only=True)["val"][1][:, 2], targets["bottom"])


def test_missing_files_message_names_them_and_the_fix(tmp_path: Path):
    write_tiny_mnist(mnist_raw_dir(tmp_path))
    (mnist_raw_dir(tmp_path) / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(MissingDataError) as err:
        DATASETS.get("multimnist3").load(tmp_path, "test")
    message = str(err.value)
    assert "dataset 'multimnist3'" in message and str(mnist_raw_dir(tmp_path)) in message
    assert "train-labels-idx1-ubyte" in message and "t10k-labels-idx1-ubyte" not in message
    assert f"python datasets/multimnist3/prepare.py --mnist-dir <folder with the 4 files> --data-root {tmp_path}" in (
        message
    )


def test_prepare_script(tmp_path: Path, capsys: pytest.CaptureFixture):
    path = ROOT / "datasets" / "multimnist3" / "prepare.py"
    script = load_file_module("prepare_multimnist3", path)
    source = tmp_path / "downloads"
    write_tiny_mnist(source, gz=False)
    root = tmp_path / "root"
    assert script.main(["--mnist-dir", str(source), "--data-root", str(root)]) == 0
    assert m3.cache_file(root).is_file() and (mnist_raw_dir(root) / "t10k-images-idx3-ubyte").is_file()
    assert "multimnist3 cache (generated)" in capsys.readouterr().out
    (source / "t10k-images-idx3-ubyte").unlink()
    assert script.main(["--mnist-dir", str(source), "--data-root", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "t10k-images-idx3-ubyte" in err and "Traceback" not in err


@pytest.mark.parametrize("method", ["palora", "ls"])
def test_one_training_step(tmp_path: Path, method: str):
    data_root = tmp_path / "data"
    write_tiny_mnist(mnist_raw_dir(data_root))
    assignments = ["train.epochs=1", "train.max_steps=1", "train.batch_size=4", "train.eval_batch_size=4"]
    result = run_experiment(
        resolve(method, "multimnist3", assignments=assignments), tmp_path / "runs", data_root, "cpu", False, workers=0
    )
    assert (result.directory / "status").read_text().strip() == "COMPLETED"
    summary = result.summary
    assert summary["steps"] == 1 and len(summary["front"]) == 66 and summary["hv_reference"] == [1.0, 1.0, 1.0]
    assert summary["hv_metrics"] == {"top-left": "loss", "top-right": "loss", "bottom": "loss"}  # the official HV
    assert math.isfinite(summary_hypervolume(summary))
    values = [v for point in summary["front"] for m in point["metrics"].values() for v in m.values()]
    assert len(values) == 66 * 3 * 2 and all(math.isfinite(v) for v in values)
