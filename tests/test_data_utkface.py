"""UTKFace on tiny files named like the release: labels, skipping, split, standardisation, prepare, one step."""

from __future__ import annotations

import logging
import math
import pickle
import tarfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from bench.backbones import create_backbone
from bench.core.errors import MissingDataError
from bench.core.fidelity import load_file_module
from bench.data import utkface
from bench.train.config import resolve
from bench.train.runner import run_experiment, summary_hypervolume

# (age, gender, race): string order differs from numeric order ("100_" < "10_" < "1_" < "25_")
LABELS = [(1, 0, 2), (10, 1, 0), (100, 0, 1), (25, 1, 3), (33, 0, 4), (47, 1, 1), (5, 0, 0), (61, 1, 2)]
LABELS += [(70, 0, 3), (8, 1, 4), (90, 0, 0), (19, 1, 1)]
MALFORMED = [  # the three files of the release that lack the race field
    "39_1_20170116174525125.jpg.chip.jpg",
    "61_1_20170109150557335.jpg.chip.jpg",
    "61_1_20170109142408075.jpg.chip.jpg",
]
SCRIPT = Path(__file__).resolve().parent.parent / "datasets" / "utkface" / "prepare.py"


def file_name(i: int, label: tuple[int, int, int]) -> str:
    return f"{label[0]}_{label[1]}_{label[2]}_2017011{i:010d}.jpg.chip.jpg"


def colour(i: int) -> tuple[int, int, int]:
    return (20 * i, 240 - 15 * i, 100 + 10 * i)


def write_utkface(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Solid-colour 200x200 JPEGs named by their labels, the malformed names, a hidden file and a text file."""
    folder.mkdir(parents=True)
    names = {}
    for i, label in enumerate(LABELS):
        Image.new("RGB", (200, 200), colour(i)).save(folder / file_name(i, label), quality=95)
        names[file_name(i, label)] = label
    for name in MALFORMED:
        Image.new("RGB", (200, 200)).save(folder / name)
    (folder / "._1_0_0_20170110000000000.jpg.chip.jpg").write_bytes(b"macOS metadata")
    (folder / "README.txt").write_text("not an image")
    return names


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_utkface(utkface.image_dir(tmp_path / "data"))
    return tmp_path / "data"


def test_names_parse_like_the_official_loader():
    for i, label in enumerate(LABELS):
        name = file_name(i, label)
        assert utkface.parse_name(name) == tuple(int(v) for v in name.split(".")[0].split("_")[:-1]) == label
    for name in [*MALFORMED, "1_2_0_20170110000000000.jpg", "1_0_5_x.jpg", "a_0_0_x.jpg", "1_0_0_0_x.jpg"]:
        assert utkface.parse_name(name) is None


def test_split_standardisation_labels_and_images(root: Path, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING):
        splits = {s: utkface.load(root, s) for s in utkface.SPLITS}
    assert "skipped 3 of 15 images" in caplog.text
    assert splits["train"].skipped == tuple(sorted(MALFORMED))
    names = sorted(file_name(i, label) for i, label in enumerate(LABELS))  # ImageFolder's order
    # random_split with integer lengths (8, 1, 3) = consecutive slices of randperm(12) under seed 42
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(42)).tolist()
    expected = {"train": perm[:8], "val": perm[8:9], "test": perm[9:]}
    ages = torch.tensor([float(n.split("_")[0]) for n in names])
    z = (ages - ages.mean()) / ages.std()  # over the whole dataset, unbiased std
    for split, dataset in splits.items():
        assert list(dataset.names) == [names[i] for i in expected[split]]
        for k, i in enumerate(expected[split]):
            x, targets = dataset[k]
            assert x.shape == (3, 64, 64) and x.dtype == torch.float32
            source = LABELS.index(utkface.parse_name(names[i]))
            assert (x - torch.tensor(colour(source)).view(3, 1, 1) / 255).abs().max() <= 4 / 255
            assert targets["age"].dtype == torch.float32 and targets["age"].shape == (2,)
            assert targets["age"][0].item() == pytest.approx(z[i].item(), abs=1e-6)
            assert targets["age"][1].item() == pytest.approx(ages.std().item())
            assert (int(targets["gender"]), int(targets["race"])) == LABELS[source][1:]
            assert targets["gender"].dtype == targets["race"].dtype == torch.int64
    clone = pickle.loads(pickle.dumps(splits["test"]))
    assert torch.equal(clone[1][0], splits["test"][1][0])


def test_age_metrics_read_the_standardised_column_and_report_years():
    age = utkface.UTKFACE.objectives[0]
    target = torch.tensor([[0.0, 20.0], [1.0, 20.0], [-2.0, 20.0]])
    output = target[:, :1] + 0.5
    assert age.metric("mae_original").fn(output, target).tolist() == [10.0, 10.0, 10.0]  # 0.5 std in years
    assert age.metric("mae").fn(output, target).tolist() == [0.5] * 3
    assert age.metric("huber").fn(output, target).tolist() == [0.125] * 3
    assert age.loss(output, target).item() == pytest.approx(0.125)
    assert age.hv_metric == "huber" and utkface.UTKFACE.hv_reference == (1.0, 1.0, 1.0)
    assert utkface.UTKFACE.eval_rays().shape == (66, 3)


def test_parameter_count_matches_the_official_model():
    net = create_backbone("resnet18", utkface.UTKFACE)
    assert sum(p.numel() for p in net.parameters()) == 11_185_224  # official PARAMETER_COUNTS["UTKFace"]


def test_split_lengths_follow_the_official_integer_rule():
    assert utkface.split_lengths(23705) == [16593, 2370, 4742]
    assert [len(v) for v in utkface.split_indices(23705).values()] == [16593, 2370, 4742]


def test_missing_folder_message(tmp_path: Path):
    with pytest.raises(MissingDataError) as err:
        utkface.load(tmp_path, "train")
    message = str(err.value)
    assert str(tmp_path / "utkface" / "UTKFace") in message and utkface.URL in message
    assert "python datasets/utkface/prepare.py --source" in message


def test_too_few_images_is_a_clear_error(tmp_path: Path):
    folder = utkface.image_dir(tmp_path)
    folder.mkdir(parents=True)
    for i, label in enumerate(LABELS[:5]):
        Image.new("RGB", (8, 8)).save(folder / file_name(i, label))
    with pytest.raises(MissingDataError, match="only 5 usable images.*val empty"):
        utkface.load(tmp_path, "train")


def load_prepare():
    module = load_file_module("utkface_prepare", SCRIPT)
    return module


def test_prepare_script_from_the_archive_and_from_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture):
    prepare = load_prepare()
    folder = tmp_path / "downloads" / "UTKFace"
    write_utkface(folder)
    archive = tmp_path / "downloads" / "UTKFace.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(folder, arcname="UTKFace")
    data_root = tmp_path / "root"
    assert prepare.main(["--source", str(archive), "--data-root", str(data_root)]) == 0
    out = capsys.readouterr().out
    assert "extracted 15 images" in out  # 12 + 3 malformed; the hidden file and README.txt are not
    assert "12 usable of 15 images; train 8, val 1, test 3" in out and "skipped 3 malformed names" in out
    assert len(utkface.load(data_root, "test")) == 3
    linked = tmp_path / "linked"
    assert prepare.main(["--source", str(folder.parent), "--data-root", str(linked)]) == 0
    assert "linked" in capsys.readouterr().out and utkface.image_dir(linked).is_symlink()
    assert list(utkface.load(linked, "val").names) == list(utkface.load(data_root, "val").names)
    assert prepare.main(["--source", str(tmp_path / "nothing.tar.gz"), "--data-root", str(linked)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --source") and err.count("\n") == 1 and utkface.URL in err


@pytest.mark.parametrize("method", ["palora", "ls"])
@pytest.mark.slow
def test_one_training_step(method: str, root: Path, tmp_path: Path):
    # One image per evaluation split: PaLoRA runs the ResNet-18 for each of the 66 grid rays on val
    # and test, ~0.07 s per ray and split on 2 idle cores.
    settings = ["train.epochs=1", "train.max_steps=1", "train.batch_size=4", "train.eval_batch_size=4"]
    settings.append("data.eval_limit=1")
    if method == "ls":  # one ResNet-18 for one fixed ray instead of one per grid ray (66)
        settings.append("method.rays=0.2,0.4,0.4")
    cfg = resolve(method, "utkface", assignments=settings)
    result = run_experiment(cfg, tmp_path / "runs", root, "cpu", show_progress=False, workers=0)
    assert (result.directory / "status").read_text().strip() == "COMPLETED"
    summary = result.summary
    assert summary["steps"] == 1 and len(summary["front"]) == (66 if method == "palora" else 1)
    assert math.isfinite(summary_hypervolume(summary)) and summary["hv_reference"] == [1.0, 1.0, 1.0]
    assert summary["hv_metrics"] == {"age": "huber", "gender": "loss", "race": "loss"}  # the official HV
    for entry in summary["front"]:
        assert set(entry["metrics"]["age"]) == {"mse", "mae", "huber", "mae_original"}
        assert all(math.isfinite(v) for metrics in entry["metrics"].values() for v in metrics.values())
