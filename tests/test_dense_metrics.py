"""Dense objectives (bench/data/kit/dense.py): per-batch sufficient statistics summed over batches must give
the whole-split value computed directly with numpy; the losses must be the official ones."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.core.spec import Objective
from bench.data.kit.dense import ANGLE_BIN_DEGREES, depth, histogram_median, normals, segmentation

SIZES = (3, 1, 2, 2)  # uneven batches over an 8-sample split


def split_values(objective: Objective, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Each metric from statistics summed over uneven batches (as bench.train.evaluate does)."""
    sums: dict[str, torch.Tensor] = {}
    start = 0
    for size in SIZES:
        out, tgt = outputs[start : start + size], targets[start : start + size]
        start += size
        for metric in objective.metrics:
            stat = metric.statistics(out, tgt)
            sums[metric.name] = stat if metric.name not in sums else sums[metric.name] + stat
    assert start == outputs.shape[0]
    return {m.name: m.value(sums[m.name]) for m in objective.metrics}


def seg_data(num_classes: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(sum(SIZES), num_classes, 6, 7, generator=g)
    logits[:, num_classes - 1] -= 100.0  # the last class is never predicted ...
    target = torch.randint(num_classes - 1, (sum(SIZES), 6, 7), generator=g)  # ... nor in the targets
    target[torch.rand(target.shape, generator=g) < 0.2] = -1
    target[5] = -1  # a sample without any labelled pixel
    return logits, target


def test_segmentation_metrics_equal_whole_split_numpy():
    num_classes = 5
    logits, target = seg_data(num_classes)
    values = split_values(segmentation("seg", num_classes), logits, target)
    pred = logits.argmax(1).numpy().ravel()
    t = target.numpy().ravel()
    valid = t >= 0
    confusion = np.zeros((num_classes, num_classes))
    np.add.at(confusion, (t[valid], pred[valid]), 1)
    inter = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / union
    assert np.isnan(iou[-1])  # absent from predictions and targets
    assert values["miou"] == pytest.approx(np.nanmean(iou), abs=1e-12)
    assert values["miou"] > np.nan_to_num(iou).mean()  # not torchmetrics' absent = 0 over all classes
    assert values["pixel_accuracy"] == pytest.approx((pred[valid] == t[valid]).mean(), abs=1e-12)
    whole_ce = F.cross_entropy(logits.double(), target, ignore_index=-1)
    assert values["loss"] == pytest.approx(float(whole_ce), rel=1e-6)


def test_segmentation_loss_is_official_nll_and_safe_without_labels():
    logits, target = seg_data()
    objective = segmentation("seg", 5)
    official = F.nll_loss(F.log_softmax(logits, dim=1), target, ignore_index=-1)
    assert float(objective.loss(logits, target)) == pytest.approx(float(official), rel=1e-5)
    unlabelled = objective.loss(logits[5:6], target[5:6])
    assert float(unlabelled) == 0.0


def depth_data(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    pred = torch.rand(sum(SIZES), 1, 5, 6, generator=g) * 3
    gt = torch.rand(sum(SIZES), 1, 5, 6, generator=g) * 3 + 0.5
    gt[torch.rand(gt.shape, generator=g) < 0.3] = 0.0
    return pred, gt


def test_depth_metrics_are_valid_pixel_means_over_the_split():
    pred, gt = depth_data()
    values = split_values(depth("depth"), pred, gt)
    p, t = pred.numpy().ravel(), gt.numpy().ravel()
    valid = t != 0
    assert values["abs_err"] == pytest.approx(np.abs(p - t)[valid].mean(), rel=1e-6)
    assert values["rel_err"] == pytest.approx((np.abs(p - t)[valid] / t[valid]).mean(), rel=1e-6)
    assert values["loss"] == values["abs_err"]


def test_depth_loss_is_official_masked_l1():
    pred, gt = depth_data()
    mask = (gt.sum(dim=1) != 0).float().unsqueeze(1)
    official = ((pred - gt).abs() * mask).sum() / torch.count_nonzero(mask)
    assert float(depth("depth").loss(pred, gt)) == pytest.approx(float(official), rel=1e-6)
    assert float(depth("depth").loss(pred, torch.zeros_like(gt))) == 0.0


def normal_data(seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    gt = F.normalize(torch.randn(sum(SIZES), 3, 6, 5, generator=g), dim=1)
    gt = gt * (torch.rand(sum(SIZES), 1, 6, 5, generator=g) > 0.25)  # invalid pixels: all-zero vectors
    noisy = gt + 0.4 * torch.randn(gt.shape, generator=g)
    return F.normalize(noisy, dim=1), gt


def test_normal_metrics_equal_whole_split_numpy():
    pred, gt = normal_data()
    values = split_values(normals("normals"), pred, gt)
    p = pred.double().permute(0, 2, 3, 1).reshape(-1, 3).numpy()
    t = gt.double().permute(0, 2, 3, 1).reshape(-1, 3).numpy()
    valid = t.sum(1) != 0
    angles = np.degrees(np.arccos(np.clip((p[valid] * t[valid]).sum(1), -1, 1)))
    assert values["angle_mean"] == pytest.approx(angles.mean(), rel=1e-6)
    assert abs(values["angle_median"] - np.median(angles)) <= ANGLE_BIN_DEGREES
    for threshold in (11.25, 22.5, 30):
        assert values[f"within_{threshold:g}"] == pytest.approx((angles < threshold).mean(), abs=1e-12)
    diff = np.abs(p - t).sum(1)[valid]
    assert values["loss"] == pytest.approx(diff.mean(), rel=1e-6)


def test_normal_loss_is_official_masked_l1_over_channels():
    pred, gt = normal_data()
    valid = gt.sum(dim=1, keepdim=True) != 0
    official = F.l1_loss(pred, gt, reduction="none").masked_select(valid).sum() / torch.count_nonzero(valid)
    assert float(normals("normals").loss(pred, gt)) == pytest.approx(float(official), rel=1e-6)


def test_normal_angles_renormalise_the_prediction():
    pred, gt = normal_data()
    a = split_values(normals("normals"), pred, gt)
    b = split_values(normals("normals"), pred * 3.0, gt)
    assert a["angle_mean"] == pytest.approx(b["angle_mean"], rel=1e-9)


def test_histogram_median():
    values = torch.tensor([0.5, 10.0, 20.004, 30.0, 170.0])
    counts = torch.bincount((values / ANGLE_BIN_DEGREES).floor().long(), minlength=18000)
    assert abs(histogram_median(counts) - 20.004) <= ANGLE_BIN_DEGREES
    even = torch.bincount((torch.tensor([10.0, 20.0]) / ANGLE_BIN_DEGREES).floor().long(), minlength=18000)
    assert 10.0 <= histogram_median(even) <= 10.0 + ANGLE_BIN_DEGREES
    assert math.isnan(histogram_median(torch.zeros(18000)))


def test_hypervolume_forms():
    seg, dep, nor = segmentation("s", 7), depth("d"), normals("n")
    assert seg.metric(seg.hv_metric).to_minimization(0.4) == pytest.approx(0.6)
    assert dep.metric(dep.hv_metric).to_minimization(0.5) == 0.5
    assert nor.metric(nor.hv_metric).to_minimization(25.0) == 25.0
    assert (seg.outputs, dep.outputs, nor.outputs) == (7, 1, 3)
