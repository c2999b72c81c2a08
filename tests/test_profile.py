"""bench.benchmarks.profile runs a method and its plain baseline and reports sane, positive numbers (no time is
asserted: the profiler is a benchmark, not a test)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from bench.backbones import create_backbone
from bench.benchmarks.profile import main
from bench.core.errors import UserError
from bench.core.registry import DATASETS, METHODS
from bench.data.kit.synthetic import synthetic_split, target_for
from bench.train.config import resolve
from bench.train.stepper import PlainBackbone, rays_per_step


def test_plain_baseline_is_one_unconditioned_model_with_the_methods_rays_per_step():
    spec = DATASETS.get("multimnist3")
    hparams = resolve("palora", "multimnist3").hparams
    assert rays_per_step(METHODS.get("palora")(hparams, spec)) == hparams.window
    plain = PlainBackbone(spec, 2)
    rays = plain.train_rays(0.3, torch.Generator())
    assert rays.shape == (2, 3) and torch.allclose(rays.sum(1), torch.ones(2))
    net = plain.build(lambda **kw: create_backbone("multilenet", spec, **kw))
    assert sum(p.numel() for p in net.parameters()) == 30_510  # one plain MultiLeNet with 3 heads


def test_profile_prints_a_row_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "p.json"
    args = ["--method", "palora", "--device", "cpu", "--steps", "3", "--batch-size", "32"]
    assert main([*args, "--set", "data.eval_limit=64", "--set", "data.train_limit=256", "--json", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("method") and lines[1].startswith("palora")
    (row,) = json.loads(out.read_text())
    assert row["batch_size"] == 32 and row["steps"] == 3 and row["eval_rays"] == 11 and row["rays_per_step"] == 2
    assert 0 < row["step_ms_median"] <= row["step_ms_p90"] and row["samples_per_s"] > 0
    assert 0 <= row["data_wait_share"] < 1 and row["eval_seconds"] > 0
    assert row["trainable_params"] == 30_880 and row["inference_params"] == 27_450
    assert row["time_ratio_to_plain"] > 0 and math.isfinite(row["time_ratio_to_plain"])
    assert row["plain_trainable_params"] == 27_450
    # 4 bytes each for a parameter, its gradient and Adam's two moments, plus Adam's float32 step per
    # tensor: MultiLeNet has 14 tensors, PaLoRA adds an A and a B on each of its 7 Linear/Conv2d layers
    assert row["training_state_bytes"] == 16 * 30_880 + 4 * 28
    assert row["state_ratio_to_plain"] == pytest.approx(row["training_state_bytes"] / (16 * 27_450 + 4 * 14))
    if row["step_peak_kind"] != "unavailable":
        assert row["step_peak_bytes"] > 0 and row["step_peak_ratio_to_plain"] > 0


def test_profile_rejects_bad_input(capsys: pytest.CaptureFixture[str]):
    assert main(["--method", "plora"]) == 2
    assert "valid methods" in capsys.readouterr().err
    assert main(["--method", "palora", "--steps", "0"]) == 2
    assert "--steps must be >= 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("dataset", "expected"),
    [
        ("multimnist3", {name: ((4,), torch.int64) for name in ("top-left", "top-right", "bottom")}),
        ("cityscapes", {"segmentation": ((4, 128, 256), torch.int64), "depth": ((4, 1, 128, 256), torch.float32)}),
        ("sarcos", {f"torque{i}": ((4,), torch.float32) for i in range(1, 8)}),
    ],
)
def test_synthetic_data_is_shaped_as_each_objectives_loss_expects(dataset, expected):
    spec = DATASETS.get(dataset)
    net = create_backbone(spec.backbone, spec, **dict(spec.backbone_options))
    x, targets = synthetic_split(spec, net, 4)
    assert tuple(x.shape) == (4, *spec.input_shape)
    assert {k: (tuple(v.shape), v.dtype) for k, v in targets.items()} == expected
    out = net.train()(x)
    assert all(torch.isfinite(o.loss(out[o.name], targets[o.name])) for o in spec.objectives)


@pytest.mark.slow
def test_profile_runs_on_synthetic_celeba_shaped_input_without_the_files(tmp_path: Path):
    out = tmp_path / "p.json"
    args = ["--method", "palora", "--dataset", "celeba", "--device", "cpu", "--steps", "1", "--batch-size", "2"]
    assert main([*args, "--synthetic", "4", "--data-root", str(tmp_path / "empty"), "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())
    assert row["data"] == "synthetic" and row["step_ms_median"] > 0 and row["eval_rays"] > 1


def test_synthetic_age_is_a_z_and_std_pair_and_an_unknown_layout_is_refused():
    """UTKFace's age target is ``[z, std]`` (a channel more than its output), the last layout tried;
    an objective whose loss takes none of the layouts is refused with the reason."""
    spec = DATASETS.get("utkface")
    out = torch.zeros(2, 1)
    age = next(o for o in spec.objectives if o.name == "age")
    target = target_for(age, out, 5, torch.Generator().manual_seed(0))
    assert target.shape == (5, 2) and bool((target >= 0.5).all()) and bool((target < 1.5).all())

    def refuses(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise ValueError("a layout of its own")

    with pytest.raises(UserError, match="no synthetic target fits objective 'age'"):
        target_for(dataclasses.replace(age, loss_fn=refuses), out, 5, torch.Generator())
