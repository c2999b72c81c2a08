"""Every method on every kind of backbone: tabular (MLP, regression + binary tasks) and images
(ResNet-18 with BatchNorm). One step must give finite losses, a gradient for every trainable
parameter, and an evaluation in eval mode (BatchNorm running statistics)."""

from __future__ import annotations

import pytest
import torch

from bench.core.errors import ConfigError
from bench.core.spec import DatasetSpec
from bench.data.kit.batches import make_batches
from bench.data.kit.objectives import binary, classification, regression
from bench.train.evaluate import evaluate
from tests.support import build_method
from tests.test_method_contract import ALL_METHODS


def _tabular(root, split):
    g = torch.Generator().manual_seed(len(split))
    x = torch.randn(12, 9, generator=g)
    return x, {"value": x[:, 0] * 2 + 0.1, "flag": (x[:, 1] > 0).long()}


def _images(root, split):
    g = torch.Generator().manual_seed(len(split))
    return torch.rand(6, 3, 32, 32, generator=g), {
        "a": torch.randint(2, (6,), generator=g),
        "b": torch.randint(5, (6,), generator=g),
    }


TABULAR = DatasetSpec(
    "tabular",
    "random vectors",
    (9,),
    (regression("value"), binary("flag")),
    "mlp",
    (10.0, 1.0),
    _tabular,
    backbone_options={"hidden": (16, 16)},
)
IMAGES = DatasetSpec(
    "images",
    "random 32x32 images",
    (3, 32, 32),
    (classification("a", 2), classification("b", 5)),
    "resnet18",
    (1.0, 1.0),
    _images,
)

# PHN on ResNet-18 needs chunks (see methods/phn.py); a small chunk keeps the test light.
OVERRIDES = {"phn-ls": {"chunk_size": 200_000}, "phn-epo": {"chunk_size": 200_000}}


def one_step(name: str, spec: DatasetSpec):
    overrides = OVERRIDES.get(name, {}) if spec is IMAGES else {}
    method, cnet = build_method(name, spec, **overrides)
    x, targets = spec.load(None, "train")
    rays = method.train_rays(0.5, torch.Generator().manual_seed(0))
    from bench.train.loop import compute_losses

    losses = compute_losses(cnet, x, targets, rays, spec.objectives)
    loss = method.backward(losses, rays, cnet)
    assert torch.isfinite(loss)
    for pname, p in cnet.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    rows = evaluate(cnet, make_batches(spec.load(None, "val"), 4, torch.device("cpu")), method.eval_rays()[:2], spec)
    assert rows and all(torch.isfinite(torch.tensor(r["value"])) for r in rows)


@pytest.mark.parametrize("name", ALL_METHODS)
def test_every_method_steps_on_an_mlp_with_regression_and_binary_tasks(name):
    one_step(name, TABULAR)


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL_METHODS)
def test_every_method_steps_on_resnet18(name):
    one_step(name, IMAGES)


def test_phn_without_chunks_on_a_large_backbone_says_to_set_chunk_size():
    with pytest.raises(ConfigError, match="method.chunk_size"):
        build_method("phn-ls", IMAGES)
