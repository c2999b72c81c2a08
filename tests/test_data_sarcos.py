"""The sarcos dataset on small .mat files in the exact GPML layout (MATLAB v5, [N, 28] matrices)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import savemat

from bench.core.errors import MissingDataError
from bench.core.fidelity import load_file_module
from bench.core.registry import DATASETS
from bench.data import sarcos
from bench.train.config import resolve
from bench.train.runner import run_experiment, summary_hypervolume

PREPARE = Path(__file__).resolve().parent.parent / "datasets" / "sarcos" / "prepare.py"
N_TRAIN = sarcos.VAL_ROWS + 24  # the official split needs more than 4,448 rows; 24 are left for training
N_TEST = 12


def write_sarcos(folder: Path, n_train: int = N_TRAIN, n_test: int = N_TEST) -> dict[str, np.ndarray]:
    """sarcos_inv.mat and sarcos_inv_test.mat as the GPML site ships them (float64 [N, 28], MATLAB v5)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        data = rng.normal(size=(n, 28)) * np.linspace(1, 30, 28)  # torques of different scales, both signs
        data[:, 21:] += np.arange(7) * 5.0
        name, variable = sarcos.FILES[split]
        savemat(folder / name, {variable: data}, format="5")
        arrays[split] = data
    return arrays


def test_columns_split_and_torque_scaling(tmp_path: Path):
    arrays = write_sarcos(sarcos.sarcos_dir(tmp_path))
    train = arrays["train"].astype(np.float32)
    scale = np.quantile(train[sarcos.VAL_ROWS :, 21:].astype(np.float64), 0.9, axis=0)
    expected = {"train": train[sarcos.VAL_ROWS :], "val": train[: sarcos.VAL_ROWS], "test": arrays["test"]}
    for split, data in expected.items():
        x, targets = sarcos.SARCOS.load(tmp_path, split)
        assert x.dtype == torch.float32 and x.shape == (len(data), 21)
        np.testing.assert_array_equal(x.numpy(), data[:, :21].astype(np.float32))  # inputs untouched
        assert list(targets) == [f"torque{k}" for k in range(1, 8)]
        for k, task in enumerate(targets):
            y = targets[task]
            assert y.dtype == torch.float32 and y.shape == (len(data),)
            np.testing.assert_allclose(y.numpy(), data[:, 21 + k] / scale[k], rtol=1e-5)
    assert sarcos.SARCOS.load(tmp_path, "val")[0].shape[0] == 4448


def test_torque_scaling_is_the_official_float32_arithmetic_bit_for_bit():
    # the steps of nik-dim/palora src/datasets/sarcos.py get_data on float32 arrays: val = the first
    # 4,448 rows, quant = np.quantile(Y_train, 0.9, axis=0) (float32), Y /= quant in place, X untouched
    rng = np.random.default_rng(3)
    train = (rng.normal(size=(5000, 28)) * rng.uniform(1, 50, 28)).astype(np.float32)
    test = (rng.normal(size=(300, 28)) * rng.uniform(1, 50, 28)).astype(np.float32)
    official_train, official_test = train.copy(), test.copy()
    val_rows, train_rows = official_train[: sarcos.VAL_ROWS], official_train[sarcos.VAL_ROWS :]
    quant = np.quantile(train_rows[:, 21:], q=0.9, axis=0)
    assert quant.dtype == np.float32
    for rows in (train_rows, val_rows, official_test):
        rows[:, 21:] /= quant
    ours = sarcos.build_splits(train, test)
    for split, rows in (("train", train_rows), ("val", val_rows), ("test", official_test)):
        x, targets = ours[split]
        np.testing.assert_array_equal(x.numpy(), rows[:, :21])
        np.testing.assert_array_equal(torch.stack(list(targets.values()), 1).numpy(), rows[:, 21:])


def test_registered_spec_follows_the_official_setup():
    spec = DATASETS.get("sarcos")
    assert spec.input_shape == (21,) and spec.num_tasks == 7
    assert spec.hv_reference == (1.0, 5.0, 1.0, 1.0, 10.0, 10.0, 1.0)
    assert all(o.hv_metric == "mse" and o.outputs == 1 for o in spec.objectives)
    assert spec.eval_rays().shape == (8, 7)  # the 7 vertices and the uniform ray
    from bench.backbones import create_backbone

    net = create_backbone("mlp", spec, **spec.backbone_options)
    assert sum(p.numel() for p in net.parameters()) == 139015  # the official count for sarcos
    cfg = resolve("palora", "sarcos")
    assert (cfg.hparams.rank, cfg.hparams.window, cfg.hparams.sampler) == (4, 1, "annealing_dirichlet")
    assert (cfg.train.lr, cfg.train.batch_size, cfg.train.epochs) == (1e-4, 512, 100)


def test_missing_files_message_names_them_and_the_fix(tmp_path: Path):
    folder = sarcos.sarcos_dir(tmp_path)
    write_sarcos(folder)
    (folder / "sarcos_inv_test.mat").unlink()
    with pytest.raises(MissingDataError) as err:
        sarcos.SARCOS.load(tmp_path, "train")
    message = str(err.value)
    assert f"missing in {folder}: sarcos_inv_test.mat. " in message
    assert "http://www.gaussianprocess.org/gpml/data/" in message
    assert f"python datasets/sarcos/prepare.py --source <folder with the two .mat files> --data-root {tmp_path}" in (
        message
    )


def test_bad_files_say_what_was_expected(tmp_path: Path):
    folder = sarcos.sarcos_dir(tmp_path)
    write_sarcos(folder)
    savemat(folder / "sarcos_inv.mat", {"data": np.zeros((5000, 28))})
    with pytest.raises(MissingDataError, match="no variable 'sarcos_inv' .found: data."):
        sarcos.SARCOS.load(tmp_path, "train")
    savemat(folder / "sarcos_inv.mat", {"sarcos_inv": np.zeros((5000, 27))})
    with pytest.raises(MissingDataError, match=r"shape \(5000, 27\).*expected a numeric \[N, 28\]"):
        sarcos.SARCOS.load(tmp_path, "train")
    savemat(folder / "sarcos_inv.mat", {"sarcos_inv": np.zeros((100, 28))})
    with pytest.raises(MissingDataError, match="has 100 rows; the official split needs more than 4448"):
        sarcos.SARCOS.load(tmp_path, "train")
    (folder / "sarcos_inv.mat").write_text("not a mat file")
    with pytest.raises(MissingDataError, match="cannot read .* as a MATLAB v5 file"):
        sarcos.SARCOS.load(tmp_path, "train")


def _prepare_main(argv: list[str]) -> int:
    module = load_file_module("sarcos_prepare", PREPARE)
    return module.main(argv)


def test_prepare_script_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture):
    source = tmp_path / "downloads"
    write_sarcos(source)
    root = tmp_path / "root"
    assert _prepare_main(["--source", str(source), "--data-root", str(root)]) == 0
    captured = capsys.readouterr()
    assert "rows: train 24, val 4448, test 12" in captured.out
    assert "warning: the GPML files have 44484 / 4449 rows" in captured.err  # tiny files: not the real sizes
    for name, _ in sarcos.FILES.values():
        assert (sarcos.sarcos_dir(root) / name).read_bytes() == (source / name).read_bytes()
    assert sarcos.SARCOS.load(root, "test")[0].shape == (N_TEST, 21)

    (source / "sarcos_inv.mat").unlink()
    assert _prepare_main(["--source", str(source), "--data-root", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: missing in") and "sarcos_inv.mat" in err and err.count("\n") == 1


@pytest.mark.parametrize("method", ["palora", "ls"])
def test_one_training_step(method: str, tmp_path: Path):
    root = tmp_path / "data"
    write_sarcos(sarcos.sarcos_dir(root))
    steps = ["train.epochs=1", "train.max_steps=1", "train.batch_size=4", "train.eval_batch_size=64"]
    assignments = [*steps, "data.eval_limit=64"]  # 64 of the 4,448 validation rows
    cfg = resolve(method, "sarcos", assignments=assignments)
    result = run_experiment(cfg, tmp_path / "runs", root, "cpu", show_progress=False, workers=0)
    assert (result.directory / "status").read_text().strip() == "COMPLETED"
    summary = json.loads((result.directory / "summary.json").read_text())
    assert summary["steps"] == 1 and len(summary["front"]) == 8
    assert summary["hv_reference"] == [1.0, 5.0, 1.0, 1.0, 10.0, 10.0, 1.0]
    hv = summary_hypervolume(summary)
    assert math.isfinite(hv) and hv >= 0.0
    values = [v for point in summary["front"] for metrics in point["metrics"].values() for v in metrics.values()]
    assert len(values) == 8 * 7 * 2 and all(math.isfinite(v) for v in values)
