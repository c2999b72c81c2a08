"""LS with stacked parameters (``method.stacking=vmap``): the same training as K looped models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from bench.backbones import create_backbone
from bench.core.errors import ConfigError
from bench.core.registry import DATASETS
from bench.core.spec import DatasetSpec, MultiTaskNet
from bench.data.kit.synthetic import synthetic_split
from bench.train.config import apply_overrides, resolve
from bench.train.loop import train_step
from bench.train.record import read_status
from bench.train.runner import run_experiment
from methods.ls import Ensemble, LSHparams, StackedEnsemble
from tests.support import build_method
from tests.test_resume import SETTINGS, Interrupt, interrupt_after, metric_rows


def member_state(cnet: Ensemble | StackedEnsemble, k: int) -> dict[str, torch.Tensor]:
    if isinstance(cnet, Ensemble):
        return {name: p.detach() for name, p in cnet.members[k].named_parameters()}
    return {name: p.detach() for name, p in cnet.member_parameters(k).items()}


def assert_same_members(loop: Ensemble, stacked: StackedEnsemble, atol: float = 0.0) -> None:
    for k in range(len(loop.members)):
        a, b = member_state(loop, k), member_state(stacked, k)
        assert a.keys() == b.keys()
        for name in a:
            assert torch.allclose(a[name], b[name], rtol=0, atol=atol), f"member {k} {name}"


def bn_backbone(spec: DatasetSpec) -> MultiTaskNet:
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.BatchNorm1d(16), nn.ReLU())
    return MultiTaskNet(encoder, nn.ModuleDict({name: nn.Linear(16, 10) for name in spec.objective_names}))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("dataset", ["multimnist-mini", "census"], ids=["multilenet", "mlp"])
@pytest.mark.slow
def test_loop_and_vmap_train_alike(dataset: str, dtype: torch.dtype):
    spec = DATASETS.get(dataset)
    (method, loop), (_, stacked) = (build_method("ls", spec, stacking=s) for s in ("loop", "vmap"))
    assert isinstance(loop, Ensemble) and isinstance(stacked, StackedEnsemble)
    assert_same_members(loop, stacked)  # the same make_backbone sequence: the same initial weights, exactly
    loop.to(dtype), stacked.to(dtype)
    x, targets = synthetic_split(spec, create_backbone(spec.backbone, spec, **dict(spec.backbone_options)), 32)
    x = x.to(dtype)
    batches = [(x[i * 8 : (i + 1) * 8], {k: v[i * 8 : (i + 1) * 8] for k, v in targets.items()}) for i in range(4)]
    optimizers = [torch.optim.Adam(method.param_groups(c, 1e-3), lr=1e-3) for c in (loop, stacked)]
    rays = method.train_rays(0.5, torch.Generator()).to(dtype)
    for step in range(5):
        xb, tb = batches[step % len(batches)]
        (losses_loop, loss_loop), (losses_vmap, loss_vmap) = [
            train_step(c, method, opt, xb, tb, rays, spec.objectives)
            for c, opt in zip((loop, stacked), optimizers, strict=True)
        ]
        assert losses_loop.shape == (len(rays), spec.num_tasks)
        assert torch.allclose(losses_loop, losses_vmap, rtol=0, atol=1e-5 if dtype == torch.float32 else 1e-12)
    assert next(stacked.parameters()).dtype == dtype
    # Adam divides by sqrt(v): an element whose gradient is at rounding level (float32, batched conv
    # vs plain conv) may move by a fraction of lr = 1e-3 either way, so float32 gets 5e-5
    assert_same_members(loop, stacked, atol=5e-5 if dtype == torch.float32 else 1e-12)


def test_forward_of_one_ray_and_of_a_permuted_subset_equal_the_loop_members(mini_spec):
    (method, loop), (_, stacked) = (build_method("ls", mini_spec, stacking=s) for s in ("loop", "vmap"))
    x = torch.rand(4, 1, 28, 28)
    rays = method.eval_rays()
    for k, ray in enumerate(rays):
        out, expected = stacked(x, ray), loop.members[k](x)
        assert all(torch.allclose(out[t], expected[t], rtol=0, atol=1e-6) for t in out)
    order = torch.tensor([7, 2, 9, 0])
    with torch.inference_mode():  # as the evaluation runs it
        batched = stacked.eval().forward_rays(x, rays[order])
    for r, k in enumerate(order.tolist()):
        single = stacked(x, rays[k])
        assert all(batched[t].shape == (4, 4, 10) for t in batched)
        assert all(torch.allclose(batched[t][r], single[t], rtol=0, atol=1e-6) for t in single)


def test_all_rays_in_order_use_the_stacks_without_a_copy(mini_spec, monkeypatch):
    method, stacked = build_method("ls", mini_spec, stacking="vmap")
    gathers = []
    original = torch.Tensor.index_select
    monkeypatch.setattr(torch.Tensor, "index_select", lambda t, *a: gathers.append(t.shape) or original(t, *a))
    rays, x = method.train_rays(0.1, torch.Generator()), torch.rand(2, 1, 28, 28)
    stacked.forward_rays(x, rays)
    assert gathers == []
    stacked.forward_rays(x, rays[[1, 0]])
    assert len(gathers) == len(stacked.names)


def test_an_unknown_ray_raises(mini_spec):
    method, stacked = build_method("ls", mini_spec, stacking="vmap", rays="1,0;0.3,0.7")
    x = torch.rand(2, 1, 28, 28)
    with pytest.raises(ValueError, match=r"no LS model was trained for ray \[0.5, 0.5\]"):
        stacked(x, torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="no LS model"):
        stacked.forward_rays(x, torch.tensor([[0.3, 0.7], [0.5, 0.5]]))


def test_auto_stacks_multilenet_on_an_accelerator_and_loops_on_cpu_or_over_batchnorm(mini_spec):
    method, cnet = build_method("ls", mini_spec, device="cuda")
    assert isinstance(cnet, StackedEnsemble) and cnet.batches_rays
    assert method.describe() == {"models": 11, "memory_models": 11, "stacking": "vmap"}
    method, cnet = build_method("ls", mini_spec, device="cpu")  # measured ~2x slower stacked on CPU
    assert isinstance(cnet, Ensemble) and method.describe()["stacking"] == "loop"
    method, cnet = build_method(
        "ls", mini_spec, make_backbone=lambda **kw: bn_backbone(mini_spec), device="cuda", rays="1,0;0,1"
    )
    assert isinstance(cnet, Ensemble) and not cnet.batches_rays and method.describe()["stacking"] == "loop"


def test_vmap_over_batchnorm_is_a_config_error_naming_the_fix(mini_spec):
    with pytest.raises(ConfigError, match="BatchNorm1d.*method.stacking=loop"):
        build_method(
            "ls", mini_spec, make_backbone=lambda **kw: bn_backbone(mini_spec), rays="1,0;0,1", stacking="vmap"
        )
    with pytest.raises(ConfigError, match="valid: auto, vmap, loop"):
        apply_overrides(LSHparams(), "method", {"stacking": "stack"})


def test_parameter_counts_match_the_loop(mini_spec):
    (_, loop), (_, stacked) = (build_method("ls", mini_spec, stacking=s) for s in ("loop", "vmap"))
    total = sum(p.numel() for p in loop.parameters())
    assert sum(p.numel() for p in stacked.parameters()) == total == 11 * stacked.inference_parameters()
    assert stacked.inference_parameters() == loop.inference_parameters() == 27450


@pytest.mark.slow
def test_a_resumed_stacked_run_equals_an_uninterrupted_one(tmp_path: Path, monkeypatch):
    cfg = resolve(
        "ls", "multimnist-mini", seed=3, assignments=[*SETTINGS, "method.rays=1,0;0.5,0.5;0,1", "method.stacking=vmap"]
    )
    straight = run_experiment(cfg, tmp_path / "straight", device="cpu", show_progress=False)
    assert straight.summary["method_info"]["stacking"] == "vmap"
    with monkeypatch.context() as patch:
        interrupt_after(patch, 2)  # mid-epoch, at step 8
        with pytest.raises(Interrupt):
            run_experiment(cfg, tmp_path / "broken", device="cpu", show_progress=False)
    resumed = run_experiment(cfg, tmp_path / "broken", device="cpu", show_progress=False, resume=True)
    directory = tmp_path / "broken" / cfg.run_id()
    assert [r["from_step"] for r in resumed.summary["resumed"]] == [8] and read_status(directory) == "COMPLETED"
    assert resumed.summary["front"] == straight.summary["front"]
    assert metric_rows(directory) == metric_rows(straight.directory)
