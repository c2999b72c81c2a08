"""SegNet: the hard-parameter-sharing "split" SegNet of MTAN (Liu, Johns, Davison, CVPR 2019;
lorenmt/mtan ``im2im_pred/model_segnet_split.py``) as used by the official PaLoRA code
(nik-dim/palora ``src/models/factory/segnet_{cityscapes,nyu}.py``: ``SegNetSplitEncoder`` /
``SegNetSplit`` with ``model_type="standard"``, the config's ``model.type: segnet``).

Shared encoder-decoder (VGG-16-like, filters 64, 128, 256, 512, 512): five encoder stages of
conv3x3 + BatchNorm + ReLU blocks (2, 2, 3, 3, 3 blocks), each followed by a 2x2 max-pool that keeps
its indices; five decoder stages, each a max-unpool with those indices followed by 3, 3, 3, 2, 2
blocks (deep to shallow), ending with 64 channels at the input resolution. Head per task:
conv3x3(64, 64) -> conv1x1(64, C), no normalisation or activation; the segmentation head outputs
logits (the official head applies log_softmax before an NLL loss: our cross-entropy is the same),
and the heads named in ``normalized_heads`` (surface normals) divide by the L2 norm over channels
with a parameter-free module, so methods that rewrite layers still only meet Conv2d and BatchNorm2d.
Initialisation (``layer_init = "xavier"``): xavier-normal conv weights, zero biases, BatchNorm weight 1
and bias 0, trunk and heads (official ``SegNetSplit`` in ``segnet_nyu.py``); with ``head_init="pytorch"``
the heads keep PyTorch's default init, as the official Cityscapes heads do (``SegNetSegmentationDecoder``
and ``SegNetDepthDecoder`` in ``segnet_cityscapes.py`` are built outside the xavier-initialised
``SegNetSplitEncoder``). A first conv widened by ``extra_inputs`` (COSMOS's ray channels) has PyTorch's
default init, as the official COSMOS's rebuilt first layer (nik-dim/palora ``cosmos.py``
``configure_model``); PaLoRA and PaMaL, whose official code rebuilds every layer, re-initialise them
all (:func:`bench.backbones.weights.official_rebuild`).

Differences from the official code: the unpooling gets the pre-pooling size, so any image size works
(the official code needs sides divisible by 32). The module layout differs (stages as
``nn.Sequential``), the layers and the parameter count (Cityscapes: 25,017,672 with its two heads) do not.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from bench.core.errors import ConfigError
from bench.core.registry import BACKBONES
from bench.core.spec import DatasetSpec, MultiTaskNet

FILTERS = (64, 128, 256, 512, 512)
ENCODER_BLOCKS = (2, 2, 3, 3, 3)
HEAD_INITS = ("xavier", "pytorch")


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Conv2d 3x3 (padding 1, with bias) -> BatchNorm2d -> ReLU (MTAN's ``conv_layer``)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _stage(channels: Sequence[int]) -> nn.Sequential:
    return nn.Sequential(*(conv_block(a, b) for a, b in zip(channels[:-1], channels[1:], strict=True)))


class SegNetEncoderDecoder(nn.Module):
    """The shared SegNet trunk: [N, C_in, H, W] -> [N, filters[0], H, W] (64 channels by default)."""

    def __init__(self, in_channels: int = 3, filters: Sequence[int] = FILTERS) -> None:
        super().__init__()
        encoder, decoder = [], []
        previous = in_channels
        for width, blocks in zip(filters, ENCODER_BLOCKS, strict=True):
            encoder.append(_stage([previous] + [width] * blocks))
            previous = width
        # Deep to shallow: unpool, then conv(filter[k] -> filter[k-1]) and the stage's remaining convs
        # (MTAN: decoder_block[k] followed by conv_block_dec[k]; 2 extra convs for k >= 2, 1 below).
        outputs = (filters[0], *filters[:-1])  # MTAN: 64, 64, 128, 256, 512
        for k in reversed(range(len(filters))):
            extra = 2 if k >= 2 else 1
            decoder.append(_stage([filters[k]] + [outputs[k]] * (1 + extra)))
        self.encoder = nn.ModuleList(encoder)
        self.decoder = nn.ModuleList(decoder)

    def forward(self, x: Tensor) -> Tensor:
        pooled: list[tuple[Tensor, tuple[int, int]]] = []
        for stage in self.encoder:
            x = stage(x)
            size = (x.shape[-2], x.shape[-1])
            x, indices = F.max_pool2d(x, kernel_size=2, stride=2, return_indices=True)
            pooled.append((indices, size))
        for stage, (indices, size) in zip(self.decoder, reversed(pooled), strict=True):
            x = F.max_unpool2d(x, indices, kernel_size=(2, 2), stride=(2, 2), output_size=size)
            x = stage(x)
        return x


class L2Normalize(nn.Module):
    """Divide by the L2 norm over the channel dimension (unit surface normals); no parameters."""

    def __init__(self, eps: float = 1e-12) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return x / x.norm(p=2, dim=1, keepdim=True).clamp_min(self.eps)


def segnet_head(outputs: int, normalize: bool = False, width: int = FILTERS[0]) -> nn.Sequential:
    """conv3x3(64, 64) -> conv1x1(64, outputs) [-> L2Normalize] (MTAN's ``pred_task`` layers)."""
    layers: list[nn.Module] = [
        nn.Conv2d(width, width, kernel_size=3, padding=1),
        nn.Conv2d(width, outputs, kernel_size=1),
    ]
    if normalize:
        layers.append(L2Normalize())
    return nn.Sequential(*layers)


def init_segnet(module: nn.Module) -> None:
    """MTAN's initialisation: xavier-normal conv/linear weights, zero biases, BatchNorm (1, 0)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@BACKBONES.register("segnet")
def segnet(
    spec: DatasetSpec,
    extra_inputs: int = 0,
    normalized_heads: Sequence[str] = (),
    filters: Sequence[int] = FILTERS,
    head_init: str = "xavier",
) -> MultiTaskNet:
    """MTAN's split SegNet: shared encoder-decoder and a conv3x3-conv1x1 head per dense task.

    The trunk gives 64 channels at full resolution; heads in ``normalized_heads`` output unit vectors.
    ``filters``: the five stage widths (MTAN's 64, 128, 256, 512, 512; narrower ones make CPU tests fast).
    ``head_init``: ``xavier`` (NYUv2) or ``pytorch`` (PyTorch's default, the official Cityscapes heads).
    """
    if len(spec.input_shape) != 3:
        raise ConfigError(f"backbone segnet expects images [C, H, W], dataset {spec.name!r} has {spec.input_shape}")
    unknown = set(normalized_heads) - set(spec.objective_names)
    if unknown:
        raise ConfigError(f"segnet normalized_heads {sorted(unknown)} are not objectives of {spec.name!r}")
    filters = tuple(filters)
    if len(filters) != len(FILTERS) or not all(isinstance(f, int) and f > 0 for f in filters):
        raise ConfigError(f"segnet filters must be {len(FILTERS)} positive widths (default {FILTERS}), got {filters}")
    if head_init not in HEAD_INITS:
        raise ConfigError(f"segnet head_init must be one of {', '.join(HEAD_INITS)}, got {head_init!r}")
    trunk = SegNetEncoderDecoder(spec.input_shape[0] + extra_inputs, filters)
    heads = nn.ModuleDict(
        {o.name: segnet_head(o.outputs, o.name in normalized_heads, width=filters[0]) for o in spec.objectives}
    )
    net = MultiTaskNet(trunk, heads)
    init_segnet(net if head_init == "xavier" else trunk)
    if extra_inputs:  # the official COSMOS rebuilds the widened layer: PyTorch's default init
        first = trunk.get_submodule("encoder.0.0.0")  # stage 0, block 0, its Conv2d
        assert isinstance(first, nn.Conv2d)
        first.reset_parameters()
    net.layer_init = "xavier"
    return net
