"""Initial weights per method and backbone, as the official code gives them (bench/backbones/weights.py).

PyTorch's default init (``reset_parameters``): kaiming-uniform(a = sqrt 5), i.e. U(+-b) with
b = 1/sqrt(fan_in), std b/sqrt(3), biases U(+-b). Xavier-normal (MTAN's SegNet): std
sqrt(2/(fan_in + fan_out)), zero biases. torchvision's ResNet: kaiming-normal(fan_out, relu), std
sqrt(2/fan_out). The official PaLoRA and PaMaL (reinit) rebuild every layer, so they get the default
init on SegNet; the official ResNet-18 has the default init for every method; COSMOS's widened first
layer is rebuilt; the plain baselines keep the backbone's init.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from bench.backbones import create_backbone
from bench.backbones.weights import official_rebuild
from bench.core.conditioning import parameter_key
from bench.core.spec import ConditionedNet, DatasetSpec
from bench.data.kit.objectives import classification
from tests.support import build_method

FILTERS = (16, 16, 32, 32, 32)
SEGNET = DatasetSpec(
    "segnet-tiny", "random", (3, 32, 32), (classification("a", 2), classification("b", 3)), "segnet", (1.0, 1.0), None
)
RESNET = DatasetSpec(
    "resnet-tiny", "random", (3, 32, 32), (classification("a", 2), classification("b", 3)), "resnet18", (1.0, 1.0), None
)
# One big layer of each kind: 32 -> 32 3x3 in the SegNet trunk, the head's 3x3 conv, the first conv;
# ResNet-18's layer1 3x3 conv (64 -> 64) and a linear head.
SEGNET_TRUNK, SEGNET_HEAD, SEGNET_FIRST = "encoder.encoder.2.1.0", "heads.a.0", "encoder.encoder.0.0.0"
RESNET_CONV, RESNET_HEAD = "encoder.layer1.0.conv1", "heads.a"
OVERRIDES = {"ls": {"rays": "0.5,0.5"}}


def init_kind(weight: Tensor, bias: Tensor | None = None) -> str:
    """Which initialisation drew ``weight`` (and ``bias``), from their statistics (10% on the std)."""
    w = weight.detach().double()
    fan_in = w[0].numel()
    fan_out = w.shape[0] * w[0, 0].numel()
    bound = 1 / math.sqrt(fan_in)
    std = float(w.std())
    bias = None if bias is None else bias.detach()
    zero_bias = bias is None or bool(torch.all(bias == 0))
    if float(w.abs().max()) <= bound * (1 + 1e-6) and std == pytest.approx(bound / math.sqrt(3), rel=0.1):
        if bias is None or (not zero_bias and float(bias.abs().max()) <= bound * (1 + 1e-6)):
            return "pytorch"
    if zero_bias and std == pytest.approx(math.sqrt(2 / (fan_in + fan_out)), rel=0.1):
        return "xavier"
    if bias is None and std == pytest.approx(math.sqrt(2 / fan_out), rel=0.1):
        return "kaiming-fan-out"
    return "unknown"


def layer(cnet: ConditionedNet, module: str, member: int = 0) -> tuple[Tensor, Tensor | None]:
    """The initial weight and bias of backbone layer ``module`` (of member ``member`` for PaMaL / LS)."""
    params = dict(cnet.named_parameters())
    out = []
    for suffix in ("weight", "bias"):
        name = f"{module}.{suffix}"
        for key in (f"net.{name}", f"members.{member}.{name}"):
            if key in params:
                out.append(params[key])
                break
        else:
            stacked = params.get(f"members.{parameter_key(name)}")
            out.append(None if stacked is None else stacked[member])
    return out[0], out[1]


def small_spec(backbone: str) -> DatasetSpec:
    shape = (1, 28, 28) if backbone == "multilenet" else (3, 32, 32)
    return DatasetSpec("t", "random", shape, (classification("a"), classification("b")), backbone, (1.0, 1.0), None)


SEGNET_NYU = {  # method -> kinds of (trunk, head, first conv): head_init xavier (official segnet_nyu.py)
    "ls": ("xavier", "xavier", "xavier"),
    "mgda": ("xavier", "xavier", "xavier"),
    "cosmos": ("xavier", "xavier", "pytorch"),
    "palora": ("pytorch", "pytorch", "pytorch"),
    "pamal": ("pytorch", "pytorch", "pytorch"),
}


@pytest.mark.parametrize("name", sorted(SEGNET_NYU))
def test_segnet_init_per_method(name: str):
    _, cnet = build_method(name, SEGNET, backbone_options={"filters": FILTERS}, **OVERRIDES.get(name, {}))
    kinds = tuple(init_kind(*layer(cnet, m)) for m in (SEGNET_TRUNK, SEGNET_HEAD, SEGNET_FIRST))
    assert kinds == SEGNET_NYU[name]


@pytest.mark.parametrize(("name", "kinds"), [("ls", ("xavier", "pytorch")), ("palora", ("pytorch", "pytorch"))])
def test_segnet_cityscapes_heads_keep_the_default_init(name: str, kinds: tuple[str, str]):
    """Official segnet_cityscapes.py builds the heads outside the xavier-initialised trunk."""
    options = {"filters": FILTERS, "head_init": "pytorch"}
    _, cnet = build_method(name, SEGNET, backbone_options=options, **OVERRIDES.get(name, {}))
    assert tuple(init_kind(*layer(cnet, m)) for m in (SEGNET_TRUNK, SEGNET_HEAD)) == kinds


def test_pamal_members_are_rebuilt_independently_or_copied():
    for reinit, kind in ((True, "pytorch"), (False, "xavier")):
        _, cnet = build_method("pamal", SEGNET, backbone_options={"filters": FILTERS}, reinit=reinit)
        members = [layer(cnet, SEGNET_TRUNK, k)[0] for k in range(2)]
        assert [init_kind(*layer(cnet, SEGNET_TRUNK, k)) for k in range(2)] == [kind, kind]
        assert torch.equal(members[0], members[1]) is (not reinit)


def test_palora_adapters_on_a_rebuilt_segnet():
    """lora_A: kaiming-uniform(a = sqrt 5) on its own fan-in (in * kw), lora_B zero (palora_modules.py)."""
    _, cnet = build_method("palora", SEGNET, backbone_options={"filters": FILTERS})
    adapters = cnet.adapters[parameter_key(SEGNET_TRUNK)]
    assert adapters.A.shape == (2, 3, 32 * 3)  # T, r*kh, in*kw (rank 1)
    bound = 1 / math.sqrt(32 * 3)
    largest = float(adapters.A.detach().abs().max())
    assert 0.9 * bound < largest <= bound
    assert torch.all(adapters.B == 0)
    assert cnet.net.layer_init == "pytorch"


@pytest.mark.parametrize("name", ["ls", "cosmos", "palora", "pamal"])
def test_resnet18_has_the_default_init_for_every_method(name: str):
    """Official ResNetEncoder (src/models/factory/resnet.py) has no init code."""
    _, cnet = build_method(name, RESNET, **OVERRIDES.get(name, {}))
    assert init_kind(*layer(cnet, RESNET_CONV)) == "pytorch"
    assert init_kind(*layer(cnet, RESNET_HEAD)) == "pytorch"


@pytest.mark.parametrize("name", ["ls", "palora"])
def test_resnet18_imagenet_keeps_torchvision_s_init(name: str):
    """No official counterpart: torchvision's kaiming-normal(fan_out) stays, for every method."""
    _, cnet = build_method(name, RESNET, backbone="resnet18-imagenet", **OVERRIDES.get(name, {}))
    assert init_kind(*layer(cnet, RESNET_CONV)) == "kaiming-fan-out"


@pytest.mark.parametrize("backbone", ["multilenet", "resnet18"])
def test_rebuild_is_a_no_op_on_default_initialised_backbones(backbone: str):
    """Nothing drawn, nothing changed: the runs on these backbones stay bit-identical."""
    spec = small_spec(backbone)
    torch.manual_seed(0)
    net = create_backbone(backbone, spec)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    assert official_rebuild(net) is net
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_rebuild_resets_every_segnet_layer_and_keeps_batchnorm():
    torch.manual_seed(0)
    net = official_rebuild(create_backbone("segnet", SEGNET, filters=FILTERS))
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            assert not torch.all(module.bias == 0)
        if isinstance(module, nn.BatchNorm2d):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0)
