"""How a step runs: rays batched under vmap, autocast, torch.compile. Each must compute what the
plain sequential float32 step computes, up to rounding; and none changes the id of earlier runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from bench.core.conditioning import ray_batching_problem
from bench.core.errors import ConfigError
from bench.core.hypervolume import front_hypervolume
from bench.core.registry import DATASETS, METHODS
from bench.train.config import identity_of, resolve
from bench.train.loop import StepOptions, compute_losses
from bench.train.runner import run_experiment
from bench.train.trial import step_options
from tests.support import build_preset, random_batch, tiny_settings

PROBLEMS = {name: ray_batching_problem(build_preset(name)[1]) for name in METHODS.names()}
"""Why each registered method's model cannot vmap its rays on multimnist-mini (None: it can)."""
VMAPPABLE = [name for name, problem in PROBLEMS.items() if problem is None]


def test_some_methods_vmap_their_rays_and_the_others_are_refused_with_their_reason():
    assert VMAPPABLE and "palora" in VMAPPABLE and PROBLEMS["ls"]
    for name, problem in PROBLEMS.items():
        cfg = resolve(name, "multimnist-mini", assignments=["train.ray_batching=vmap"])
        if problem is None:
            assert step_options(cfg, build_preset(name)[1]).batch_rays, name
            continue
        with pytest.raises(ConfigError) as err:
            step_options(cfg, build_preset(name)[1])
        assert problem in str(err.value) and "train.ray_batching=sequential" in str(err.value), name


def gradients(cnet: torch.nn.Module) -> dict[str, torch.Tensor | None]:
    return {name: None if p.grad is None else p.grad.clone() for name, p in cnet.named_parameters()}


@pytest.mark.parametrize("name", VMAPPABLE)
def test_vmapped_rays_give_the_sequential_losses_and_gradients(name):
    """Also with a method parameter that the forward does not use (it gets no gradient either way)."""
    method, cnet = build_preset(name)
    spec = method.spec
    cnet.method_parameters["unused_by_the_forward"] = torch.nn.Parameter(torch.zeros(()))
    x, targets = random_batch(spec, n=16)
    rays = torch.tensor([[0.1, 0.9], [0.6, 0.4], [1.0, 0.0]])
    results = []
    for batched in (False, True):
        cnet.zero_grad(set_to_none=True)
        losses = compute_losses(cnet, x, targets, rays, spec.objectives, StepOptions(batch_rays=batched))
        (losses * torch.arange(1.0, 7.0).view(3, 2)).sum().backward()  # a different weight per entry
        results.append((losses.detach(), gradients(cnet)))
    (seq_losses, seq_grads), (vmap_losses, vmap_grads) = results
    assert seq_losses.shape == (3, 2)
    torch.testing.assert_close(vmap_losses, seq_losses, rtol=1e-5, atol=1e-6)
    without = {n for n, g in seq_grads.items() if g is None}
    assert {n for n, g in vmap_grads.items() if g is None} == without and len(without) < len(seq_grads)
    for n, grad in seq_grads.items():
        if grad is not None:
            torch.testing.assert_close(vmap_grads[n], grad, rtol=1e-4, atol=1e-6, msg=lambda m, n=n: f"{n}: {m}")


@pytest.mark.parametrize(
    ("name", "dataset", "reason"),
    [
        ("ls", "multimnist-mini", "does not compute outputs from the ray alone"),
        ("mgda", "multimnist-mini", "does not compute outputs from the ray alone"),
        ("palora", "cityscapes", "BatchNorm2d"),
        ("pamal", "utkface", "BatchNorm2d"),
    ],
)
def test_vmap_is_refused_with_the_reason(name, dataset, reason):
    cfg = resolve(name, dataset, assignments=["train.ray_batching=vmap"])
    with pytest.raises(ConfigError, match=reason) as err:
        step_options(cfg, build_preset(name, dataset)[1])
    assert "train.ray_batching=sequential" in str(err.value)


def test_new_keys_at_their_old_behaviour_keep_earlier_run_ids():
    cfg = resolve("palora", "multimnist-mini")
    old_record = cfg.to_dict()
    for key in ("ray_batching", "amp", "compile"):
        del old_record["train"][key]  # a record written before these keys existed
    assert identity_of(old_record) == cfg.identity()
    ids = {
        resolve("palora", "multimnist-mini", assignments=[a]).run_id() for a in ("train.amp=off", "train.compile=false")
    }
    assert ids == {cfg.run_id()}
    for changed in ("train.amp=bf16", "train.compile=true", "train.ray_batching=vmap"):
        assert resolve("palora", "multimnist-mini", assignments=[changed]).run_id() != cfg.run_id()


@pytest.mark.parametrize(("amp", "dtype"), [("off", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_amp_runs_the_forward_in_its_dtype_and_returns_float32_losses(amp, dtype):
    method, cnet = build_preset("palora")
    spec = method.spec
    seen = []
    cnet.net.heads["top-left"][0].register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    x, targets = random_batch(spec, n=8)
    losses = compute_losses(
        cnet, x, targets, torch.tensor([[0.5, 0.5]]), spec.objectives, StepOptions.from_names("sequential", amp)
    )
    assert seen == [dtype] and losses.dtype == torch.float32


def test_compile_compiles_the_model_in_place_keeping_its_parameter_names():
    _, cnet = build_preset("palora")
    names = list(cnet.state_dict())
    step_options(resolve("palora", "multimnist-mini", assignments=["train.compile=true"]), cnet)
    assert cnet._compiled_call_impl is not None and list(cnet.state_dict()) == names


def test_unknown_amp_and_ray_batching_list_the_valid_values():
    with pytest.raises(ConfigError, match="valid: off, bf16, fp16"):
        resolve("palora", "multimnist-mini", assignments=["train.amp=fp8"])
    with pytest.raises(ConfigError, match="valid: sequential, vmap"):
        resolve("palora", "multimnist-mini", assignments=["train.ray_batching=batched"])
    with pytest.raises(ConfigError, match="valid: merged, activations"):
        resolve("palora", "multimnist-mini", assignments=["method.adapter_path=hooks"])


def tiny_run(tmp_path: Path, data_root: Path, *settings: str, method: str = "palora") -> dict:
    cfg = resolve(method, "multimnist-mini", assignments=[*tiny_settings(), *settings])
    result = run_experiment(cfg, tmp_path, data_root, "cpu", show_progress=False)
    config = json.loads((result.directory / "config.json").read_text())["config"]["train"]
    for setting in settings:  # recorded in the run
        key, _, value = setting.partition("=")
        assert str(config[key.split(".")[1]]).lower() == value
    return result.summary


def assert_same_front(a: dict, b: dict, atol: float) -> None:
    assert len(a["front"]) == len(b["front"])
    for p, q in zip(a["front"], b["front"], strict=True):
        for objective, metrics in p["metrics"].items():
            for name, value in metrics.items():
                assert value == pytest.approx(q["metrics"][objective][name], abs=atol), (objective, name)


@pytest.mark.parametrize("setting", ["train.ray_batching=vmap", "train.amp=bf16", "train.amp=fp16"])
def test_a_tiny_run_gives_the_same_metrics(setting, tmp_path: Path, data_root: Path):
    plain = tiny_run(tmp_path / "plain", data_root)
    other = tiny_run(tmp_path / "other", data_root, setting)
    # vmap differs only by rounding; bf16 keeps 8 bits of mantissa, so 8 steps drift a little further
    assert_same_front(other, plain, atol=0.01 if "vmap" in setting else 0.05)
    spec = DATASETS.get("multimnist-mini")
    hv, plain_hv = (front_hypervolume(summary["front"], spec) for summary in (other, plain))
    assert hv == pytest.approx(plain_hv, abs=0.01 if "vmap" in setting else 0.03)


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("cc") is None and shutil.which("gcc") is None, reason="torch.compile needs a C compiler"
)
def test_a_compiled_tiny_run_gives_the_same_metrics(tmp_path: Path, data_root: Path):
    plain = tiny_run(tmp_path / "plain", data_root)
    compiled = tiny_run(tmp_path / "compiled", data_root, "train.compile=true")
    assert_same_front(compiled, plain, atol=0.01)
