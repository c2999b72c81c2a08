"""Dense-prediction objectives: semantic segmentation, depth and surface normals (Cityscapes, NYUv2).

Losses follow the official PaLoRA code (nik-dim/palora ``src/utils/losses.py``: ``CityscapesTwoTaskLoss``,
``NYUv2Loss``, after lorenmt/auto-lambda ``compute_loss``). Every metric is computed over the whole
split from summed per-batch statistics (:class:`bench.core.spec.Metric`), as LibMTL does
(median-research-group/LibMTL ``examples/nyu/utils.py``), not as a mean of per-batch values as the
official callbacks (``src/callbacks/metrics/{nyu,cityscapes}_metric_cb.py``) and MTAN do:

- segmentation: a confusion matrix over the split (MTAN ``ConfMatrix``, LibMTL ``SegMetric``).
  ``miou`` averages the IoU over the classes whose union is non-empty (MTAN/LibMTL's nan-mean); the
  official torchmetrics 0.10 ``JaccardIndex`` scores such a class 0 and still averages over all C.
  Both agree whenever every class occurs in the split's targets or predictions (the full test splits).
- depth: ``abs_err`` and ``rel_err`` are means over all valid pixels of the split (LibMTL's
  valid-pixel weighting); the official code averages per-batch means with equal weight.
- normals: the angular error of every valid pixel; ``angle_median`` is the split-level median read
  from a histogram of 0.01-degree bins over [0, 180] (linear within the bin, so it is within 0.01
  degree of the exact median); the official code averages per-batch medians.

Targets: segmentation int64 [N, H, W] with ``ignore_index`` (-1) for unlabelled pixels; depth float
[N, 1, H, W] with 0 for invalid pixels; normals float [N, 3, H, W] with an all-zero vector for
invalid pixels (valid where the channel sum is non-zero, as officially).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.core.spec import Metric, Objective

ANGLE_BIN_DEGREES = 0.01
ANGLE_BINS = round(180 / ANGLE_BIN_DEGREES)
ANGLE_THRESHOLDS = (11.25, 22.5, 30.0)


# --- segmentation -----------------------------------------------------------------------------


def _segmentation_loss(output: Tensor, target: Tensor, ignore_index: int) -> Tensor:
    """Cross-entropy on logits [N, C, H, W], mean over the non-ignored pixels (0 when there are none)."""
    total = F.cross_entropy(output, target, ignore_index=ignore_index, reduction="sum")
    return total / (target != ignore_index).sum().clamp_min(1)


def _segmentation_pixel_loss(output: Tensor, target: Tensor, ignore_index: int) -> Tensor:
    per_pixel = F.cross_entropy(output, target, ignore_index=ignore_index, reduction="none")
    return per_pixel[target != ignore_index]


def _confusion(output: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """The flattened [C * C] confusion matrix (row: target class, column: predicted class) of the
    pixels whose target is a class (``0 <= target < C``)."""
    predicted = output.argmax(dim=1)
    valid = (target >= 0) & (target < num_classes)
    index = target[valid] * num_classes + predicted[valid]
    return torch.bincount(index, minlength=num_classes * num_classes)


def mean_iou(confusion: Tensor, num_classes: int) -> float:
    """Mean IoU over the classes with a non-empty union, from a flattened confusion matrix
    (NaN when no pixel was counted)."""
    matrix = confusion.reshape(num_classes, num_classes).double()
    intersection = matrix.diagonal()
    union = matrix.sum(0) + matrix.sum(1) - intersection
    present = union > 0
    if not present.any():
        return math.nan
    return float((intersection[present] / union[present]).mean())


def _pixel_correct(output: Tensor, target: Tensor, ignore_index: int) -> Tensor:
    valid = target != ignore_index
    return (output.argmax(dim=1)[valid] == target[valid]).float()


def segmentation(name: str, num_classes: int, ignore_index: int = -1) -> Objective:
    """Semantic segmentation on logits [N, C, H, W] and int64 targets [N, H, W].

    Loss: cross-entropy over the non-ignored pixels (the official log_softmax + NLL is the same).
    Metrics: ``miou`` (confusion matrix over the split; HV on 1 - mIoU), ``pixel_accuracy`` and
    ``loss`` (per-pixel cross-entropy), both over the split's valid pixels.
    """
    return Objective(
        name=name,
        loss_fn=functools.partial(_segmentation_loss, ignore_index=ignore_index),
        metrics=(
            Metric(
                "miou",
                functools.partial(_confusion, num_classes=num_classes),
                higher_is_better=True,
                best=1.0,
                finalize=functools.partial(mean_iou, num_classes=num_classes),
            ),
            Metric(
                "pixel_accuracy",
                functools.partial(_pixel_correct, ignore_index=ignore_index),
                higher_is_better=True,
                best=1.0,
            ),
            Metric(
                "loss", functools.partial(_segmentation_pixel_loss, ignore_index=ignore_index), higher_is_better=False
            ),
        ),
        hv_metric="miou",
        outputs=num_classes,
    )


# --- depth ------------------------------------------------------------------------------------


def _depth_valid(target: Tensor) -> Tensor:
    """Valid pixels [N, 1, H, W] of a depth target [N, 1, H, W]: non-zero depth."""
    return target.sum(dim=1, keepdim=True) != 0


def _depth_loss(output: Tensor, target: Tensor) -> Tensor:
    """Masked L1: sum of |pred - target| over valid pixels / number of valid pixels."""
    valid = _depth_valid(target)
    return (output - target).abs()[valid].sum() / valid.sum().clamp_min(1)


def _depth_abs(output: Tensor, target: Tensor) -> Tensor:
    valid = _depth_valid(target)
    return (output - target).abs()[valid]


def _depth_rel(output: Tensor, target: Tensor) -> Tensor:
    valid = _depth_valid(target)
    return (output - target).abs()[valid] / target[valid].abs()


def depth(name: str) -> Objective:
    """Depth (or disparity) regression on outputs [N, 1, H, W] and targets [N, 1, H, W] (0 = invalid).

    Loss: masked L1 (official). Metrics over all valid pixels of the split: ``abs_err`` (HV metric),
    ``rel_err`` (|pred - gt| / gt) and ``loss``, which equals ``abs_err`` at the split level (kept
    because the official code logs and plots ``depth/loss``).
    """
    return Objective(
        name=name,
        loss_fn=_depth_loss,
        metrics=(
            Metric("abs_err", _depth_abs, higher_is_better=False),
            Metric("rel_err", _depth_rel, higher_is_better=False),
            Metric("loss", _depth_abs, higher_is_better=False),
        ),
        hv_metric="abs_err",
        outputs=1,
    )


# --- surface normals --------------------------------------------------------------------------


def _normal_valid(target: Tensor) -> Tensor:
    """Valid pixels [N, H, W] of a normal target [N, 3, H, W]: non-zero channel sum (official)."""
    return target.sum(dim=1) != 0


def _normals_loss(output: Tensor, target: Tensor) -> Tensor:
    """The official NYUv2 normal loss: sum over the 3 channels of |pred - gt|, mean over valid pixels."""
    valid = _normal_valid(target)
    return (output - target).abs().sum(dim=1)[valid].sum() / valid.sum().clamp_min(1)


def _normals_pixel_loss(output: Tensor, target: Tensor) -> Tensor:
    return (output - target).abs().sum(dim=1)[_normal_valid(target)]


def angle_errors(output: Tensor, target: Tensor) -> Tensor:
    """Angles in degrees (float64, 1-D) between the L2-normalised prediction and the target at valid pixels."""
    valid = _normal_valid(target)
    pred = output.double().permute(0, 2, 3, 1)[valid]
    gt = target.double().permute(0, 2, 3, 1)[valid]
    cosine = (F.normalize(pred, dim=1) * gt).sum(dim=1).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.acos(cosine))


def _angle_histogram(output: Tensor, target: Tensor) -> Tensor:
    bins = (angle_errors(output, target) / ANGLE_BIN_DEGREES).floor().long().clamp(0, ANGLE_BINS - 1)
    return torch.bincount(bins, minlength=ANGLE_BINS)


def histogram_median(counts: Tensor, bin_width: float = ANGLE_BIN_DEGREES) -> float:
    """The median of values histogrammed in bins [k w, (k + 1) w), assuming a uniform spread inside
    each bin (NaN for an empty histogram)."""
    counts = counts.double()
    total = float(counts.sum())
    if total == 0:
        return math.nan
    cumulative = counts.cumsum(0)
    half = total / 2
    k = int(torch.searchsorted(cumulative, torch.tensor([half], dtype=cumulative.dtype))[0])
    before = float(cumulative[k - 1]) if k > 0 else 0.0
    return (k + (half - before) / float(counts[k])) * bin_width


def _within(output: Tensor, target: Tensor, degrees: float) -> Tensor:
    return (angle_errors(output, target) < degrees).double()


def normals(name: str) -> Objective:
    """Surface normals on outputs [N, 3, H, W] (unit vectors: the SegNet head normalises them) and
    targets [N, 3, H, W] (unit vectors, all zero where invalid).

    Loss: the official PaLoRA NYUv2 loss (masked L1 summed over the channels, mean over valid pixels;
    MTAN and LibMTL use 1 - cosine instead). Metrics over all valid pixels of the split, on the
    angle between the (re-normalised) prediction and the target: ``angle_mean`` (HV metric),
    ``angle_median`` (histogram, 0.01 degree), ``within_11.25`` / ``within_22.5`` / ``within_30``
    (fractions of pixels below that angle) and ``loss``.
    """
    metrics = [
        Metric("angle_mean", angle_errors, higher_is_better=False),
        Metric("angle_median", _angle_histogram, higher_is_better=False, finalize=histogram_median),
    ]
    for degrees in ANGLE_THRESHOLDS:
        label = f"{degrees:g}"
        metrics.append(
            Metric(f"within_{label}", functools.partial(_within, degrees=degrees), higher_is_better=True, best=1.0)
        )
    metrics.append(Metric("loss", _normals_pixel_loss, higher_is_better=False))
    return Objective(name=name, loss_fn=_normals_loss, metrics=tuple(metrics), hv_metric="angle_mean", outputs=3)
