"""The SegNet backbone (bench/backbones/segnet.py): MTAN's split SegNet layer by layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.backbones import create_backbone
from bench.backbones.segnet import L2Normalize
from bench.core.errors import ConfigError
from bench.core.registry import BACKBONES
from bench.core.spec import DatasetSpec
from bench.data.kit.dense import depth, normals, segmentation


def _spec(input_shape=(3, 128, 256), nyu: bool = False) -> DatasetSpec:
    objectives = (segmentation("segmentation", 13 if nyu else 7), depth("depth"))
    if nyu:
        objectives += (normals("normals"),)
    return DatasetSpec("dense", "random", input_shape, objectives, "segnet", (1.0,) * len(objectives), load=None)


# (in, out) of every conv3x3 + BN block: the encoder (2, 2, 3, 3, 3 blocks) and the decoder (3, 3, 3, 2, 2),
# written out from MTAN's model_segnet_split.py (encoder_block/conv_block_enc, decoder_block/conv_block_dec).
ENCODER = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256)]
ENCODER += [(256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
DECODER = [(512, 512), (512, 512), (512, 512), (512, 256), (256, 256), (256, 256)]
DECODER += [(256, 128), (128, 128), (128, 128), (128, 64), (64, 64), (64, 64), (64, 64)]


def expected_parameters(head_outputs: list[int], in_channels: int = 3) -> int:
    blocks = [(in_channels, 64), *ENCODER[1:], *DECODER]
    trunk = sum(9 * a * b + b + 2 * b for a, b in blocks)  # conv weight + bias, BN weight + bias
    heads = sum((9 * 64 * 64 + 64) + (64 * c + c) for c in head_outputs)
    return trunk + heads


def test_parameter_count_matches_the_official_layer_shapes():
    city = create_backbone("segnet", _spec())
    assert sum(p.numel() for p in city.parameters()) == expected_parameters([7, 1]) == 25_017_672
    assert sum(p.numel() for p in city.encoder.parameters()) == 24_943_296
    nyu = create_backbone("segnet", _spec((3, 288, 384), nyu=True), normalized_heads=("normals",))
    assert sum(p.numel() for p in nyu.parameters()) == expected_parameters([13, 1, 3]) == 25_055_185


def test_layer_sequence_and_extra_inputs():
    net = create_backbone("segnet", _spec(), extra_inputs=2)
    convs = [m for m in net.encoder.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(5, 64), *ENCODER[1:], *DECODER]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert [len(stage) for stage in net.encoder.encoder] == [2, 2, 3, 3, 3]
    assert [len(stage) for stage in net.encoder.decoder] == [3, 3, 3, 2, 2]
    head = net.heads["segmentation"]
    assert [(c.kernel_size, c.in_channels, c.out_channels) for c in head] == [((3, 3), 64, 64), ((1, 1), 64, 7)]
    assert expected_parameters([7, 1], in_channels=5) == sum(p.numel() for p in net.parameters())
    assert net(torch.rand(1, 5, 32, 32))["depth"].shape == (1, 1, 32, 32)


def test_only_conv_and_batchnorm_hold_parameters():
    net = create_backbone("segnet", _spec(nyu=True), normalized_heads=("normals",))
    for module in net.modules():
        if any(True for _ in module.parameters(recurse=False)):
            assert isinstance(module, (nn.Conv2d, nn.BatchNorm2d)), type(module)
    assert isinstance(net.heads["normals"][-1], L2Normalize)
    assert not any(isinstance(m, L2Normalize) for m in net.heads["depth"].modules())


def test_initialisation_is_mtan_s():
    torch.manual_seed(0)
    net = create_backbone("segnet", _spec())
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            assert torch.all(module.bias == 0)
        if isinstance(module, nn.BatchNorm2d):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0)
    conv = net.encoder.encoder[3][1][0]  # 512 -> 512, 3x3
    xavier_std = (2.0 / (512 * 9 + 512 * 9)) ** 0.5
    assert float(conv.weight.detach().std()) == pytest.approx(xavier_std, rel=0.02)


@pytest.mark.parametrize("size", [(32, 64), (36, 52)])
def test_outputs_keep_the_resolution_and_normals_are_unit(size):
    torch.manual_seed(0)
    net = create_backbone("segnet", _spec(nyu=True), normalized_heads=("normals",)).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, *size))
    assert out["segmentation"].shape == (2, 13, *size)
    assert out["depth"].shape == (2, 1, *size)
    assert out["normals"].shape == (2, 3, *size)
    assert torch.allclose(out["normals"].norm(dim=1), torch.ones(2, *size), atol=1e-5)


def test_registered_and_checked():
    assert "segnet" in BACKBONES
    with pytest.raises(ConfigError, match="images"):
        create_backbone("segnet", _spec(input_shape=(9,)))
    with pytest.raises(ConfigError, match="normalized_heads"):
        create_backbone("segnet", _spec(), normalized_heads=("normals",))
