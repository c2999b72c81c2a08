"""The registry-wide contract: every registered method, on 2 and 3 tasks."""

import copy
import dataclasses
import json
import typing

import pytest
import torch

from bench.core.rays import SAMPLERS
from bench.core.registry import METHODS
from bench.core.spec import Method, MethodInfo, NoHparams
from bench.train.loop import compute_losses
from methods.windowed import SamplerName
from tests.support import build_method, train_batch, train_steps

ALL_METHODS = METHODS.names()


@pytest.mark.parametrize("name", ALL_METHODS)
def test_one_step_gives_finite_loss_and_a_gradient_for_every_parameter(name, spec):
    method, cnet = build_method(name, spec)
    rays = method.train_rays(0.5, torch.Generator().manual_seed(0))
    assert rays.ndim == 2 and rays.shape[1] == spec.num_tasks
    x, targets = train_batch(spec)
    losses = compute_losses(cnet, x, targets, rays, spec.objectives)
    assert losses.shape == (rays.shape[0], spec.num_tasks)
    loss = method.backward(losses, rays, cnet)
    assert torch.isfinite(loss)
    for pname, p in cnet.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{pname} got no gradient"
            assert torch.isfinite(p.grad).all(), f"{pname} has a non-finite gradient"


@pytest.mark.parametrize("name", ALL_METHODS)
def test_outputs_have_the_right_shapes_for_every_eval_ray(name, spec):
    method, cnet = build_method(name, spec)
    rays = method.eval_rays()
    assert (rays >= 0).all() and torch.allclose(rays.sum(1), torch.ones(len(rays)), atol=1e-6)
    x, _ = train_batch(spec, 5)
    cnet.eval()
    with torch.no_grad():
        for ray in rays:
            out = cnet(x, ray)
            assert set(out) == set(spec.objective_names)
            assert all(v.shape == (5, 10) for v in out.values())


@pytest.mark.parametrize("name", ALL_METHODS)
@pytest.mark.slow
def test_same_seed_gives_identical_results(name, spec):
    runs = []
    for _ in range(2):
        method, cnet = build_method(name, spec, seed=3)
        losses = train_steps(method, cnet, spec, steps=3, seed=3)
        runs.append((losses, [p.detach().clone() for p in cnet.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))
    other_method, other = build_method(name, spec, seed=4)  # another seed, trained the same way
    other_losses = train_steps(other_method, other, spec, steps=3, seed=4)
    assert other_losses != runs[0][0]
    assert not all(torch.equal(a, b.detach()) for a, b in zip(runs[0][1], other.parameters(), strict=True))


@pytest.mark.parametrize("name", [n for n in ALL_METHODS if METHODS.get(n).kind == "front"])
def test_front_outputs_change_with_the_ray(name, spec):
    """A front method is one model per ray: after a few steps (PaLoRA's B starts at zero, so at
    initialisation every ray gives the backbone), the two ends of the grid give different outputs."""
    method, cnet = build_method(name, spec, seed=0)
    train_steps(method, cnet, spec, steps=3)
    rays = method.eval_rays()
    ends = [int(rays[:, k].argmax()) for k in range(spec.num_tasks)]
    x, _ = train_batch(spec, 8)
    cnet.eval()
    with torch.no_grad():
        first, last = cnet(x, rays[ends[0]]), cnet(x, rays[ends[-1]])
    assert any(not torch.allclose(first[k], last[k]) for k in first), f"{name}: the ray changes nothing"


@pytest.mark.parametrize("name", ALL_METHODS)
def test_state_dict_round_trip(name, spec):
    method, cnet = build_method(name, spec, seed=0)
    train_steps(method, cnet, spec, steps=2)
    state, method_state = copy.deepcopy(cnet.state_dict()), copy.deepcopy(method.state_dict())
    fresh_method, fresh = build_method(name, spec, seed=9)
    fresh.load_state_dict(state)
    fresh_method.load_state_dict(method_state)
    x, _ = train_batch(spec, 4)
    cnet.eval()
    fresh.eval()
    with torch.no_grad():
        for ray in method.eval_rays():
            a, b = cnet(x, ray), fresh(x, ray)
            assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", ALL_METHODS)
def test_method_declares_its_kind_and_hparams(name, spec):
    cls = METHODS.get(name)
    assert cls.kind in ("front", "point")
    assert cls.__doc__, "a method needs a one-line description"
    method, cnet = build_method(name, spec)
    assert cnet.inference_parameters() > 0
    assert dataclasses.is_dataclass(cls.Hparams) and cls.Hparams.__dataclass_params__.frozen
    assert isinstance(method.hparams, cls.Hparams)
    assert isinstance(cnet.conditioning, str) and cnet.conditioning


@pytest.mark.parametrize("name", ALL_METHODS)
def test_the_device_is_given_at_construction(name, spec):
    cls = METHODS.get(name)
    assert cls(cls.Hparams(), spec).device == torch.device("cpu")
    assert cls(cls.Hparams(), spec, device=torch.device("meta")).device == torch.device("meta")


@pytest.mark.parametrize("name", ALL_METHODS)
def test_describe_gives_json_scalars_by_name(name, spec):
    """``describe()`` is a :data:`bench.core.spec.MethodInfo` (after training too: PHN-EPO counts moves)."""
    scalars = typing.get_args(typing.get_args(MethodInfo)[1])
    method, cnet = build_method(name, spec)
    train_steps(method, cnet, spec, steps=2)
    info = method.describe()
    assert isinstance(info, dict) and all(isinstance(key, str) for key in info), info
    for key, value in info.items():
        assert isinstance(value, scalars), f"{name}: {key}={value!r}"
    json.dumps(info, allow_nan=False)


@pytest.mark.parametrize("name", ALL_METHODS)
def test_param_groups_hold_every_trainable_parameter_once(name, spec):
    method, cnet = build_method(name, spec)
    cnet.method_parameters["probe"] = torch.nn.Parameter(torch.zeros(2))  # where a method's own parameters go
    grouped = [id(p) for group in method.param_groups(cnet, 1e-3) for p in group["params"]]
    trainable = [id(p) for p in cnet.parameters() if p.requires_grad]
    assert sorted(grouped) == sorted(trainable)


@pytest.mark.parametrize("name", ALL_METHODS)
def test_shared_parameters_are_trainable_parameters_of_the_net(name, spec):
    _, cnet = build_method(name, spec)
    shared = [id(p) for p in cnet.shared_parameters()]
    assert shared and len(set(shared)) == len(shared)
    assert set(shared) <= {id(p) for p in cnet.parameters() if p.requires_grad}


def test_hparams_come_from_the_generic_base():
    @dataclasses.dataclass(frozen=True)
    class TinyHparams:
        size: int = 1

    class Tiny(Method[TinyHparams]):
        """A method with hyperparameters."""

    class Plain(Method):
        """A method without."""

    class Child(Tiny):
        """Inherits its parent's."""

    assert Tiny.Hparams is TinyHparams and Child.Hparams is TinyHparams
    assert Plain.Hparams is NoHparams and Method[NoHparams].__origin__ is Method
    with pytest.raises(TypeError, match="must be a dataclass"):

        class Wrong(Method[int]):
            """int is not a hyperparameter dataclass."""


def test_sampler_choices_are_the_samplers_of_bench_rays():
    assert typing.get_args(SamplerName) == SAMPLERS
