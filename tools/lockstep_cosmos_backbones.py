"""Lockstep producer for COSMOS on the real ResNet-18 (UTKFace), against the official nik-dim/pamal trainer.

Run by ``tools/official_lockstep.py --official <checkout of nik-dim/pamal> --method cosmos --backbone
resnet18``; the record is ``tests/lockstep/cosmos-resnet18.json``. nik-dim/pamal rather than nik-dim/palora
for the reason ``tools/lockstep_cosmos.py`` gives (nik-dim/palora's COSMOS stops at its first forward).

Official pieces, imported at run time from the checkout, assembled as its ``utkface.py`` and
``src/utils/_selectors.py`` do for ``method=cosmos``: ``Upsampler(num_tasks, UtkFaceResnet(in_channels=3 + T),
input_dim)`` (``src/models/factory/cosmos/upsampler.py``, ``src/models/factory/resnet.py``), Adam over
``model.parameters()`` at the experiment's lr (``configs/experiment/utkface/utkface.yaml``),
``MultiSolutionTrainer(alpha)`` (one Dirichlet(alpha) ray per step from torch's global generator, seeded
with ``ray_seed``) with ``Cosmos(num_tasks, lamda)`` of ``src/methods/multi_solution_weight_methods.py`` and
the config ``configs/experiment/utkface/method/cosmos.yaml``, ``UTKFaceMultiTaskLoss``; driven by
``trainer.fit(epochs=1)`` over ``steps`` seeded batches (``tests.test_lockstep_backbones.batches``).

Our model is built by ``tests.test_lockstep_backbones.build_ours`` from the UTKFace preset on the small
input; its initial weights are copied into the official model by the explicit map of
:func:`correspondence` (ResNet layers as in ``tools/lockstep_backbones.py`` under ``child_model.``, our
``ray_map.layers.{0,2}`` -> ``transposed_cnn.{0,2}``). BatchNorm runs in train mode on both sides; after
every optimizer step the record keeps the ray the official trainer drew (fed to our step by the test:
our sampler draws from its own generator), the per-task losses, the scalarised loss, and checksums of
the parameters, of the step's update and of the BatchNorm running statistics, with every layer's
``num_batches_tracked``. The freshly built official model's per-layer distributions are kept too: on
this backbone both sides build the widened first convolution fresh with PyTorch's default init
(``Conv2d(3 + T, 64)``, nik-dim/pamal's ``UtkFaceResnet(in_channels=6)``; ours ``extra_inputs = T``), so
every tensor is compared, the widened layer included.

Harness adaptations, none touching the official arithmetic: (1) the official UTKFace heads are
``Linear(2048, C)`` for 64x64 inputs and its ``Upsampler`` gets the data module's ``input_dims``
([3, 64, 64]); at the 32x32 input used here the encoder gives 512 features, so the heads are the same
class with ``Linear(512, C)`` and the ``Upsampler`` gets ``input_dim = [3, 32, 32]`` (its
``nn.Upsample`` target size). (2) The trainer moves each ray with ``.cuda()``; without CUDA that call is
made a no-op for the run (``tools.lockstep_cosmos.cuda_calls_stay_on_cpu``). (3) Modules the trainer
imports but these steps never use are stubbed when absent: besides ``tools.lockstep_palora``'s optional
dependencies, ``cvxopt`` (the PHN EPO solver, imported by ``multi_solution_weight_methods``) and
``pymoo.factory`` (``src/utils/moo.py``'s hypervolume import; pymoo >= 0.6 has no such module);
the official packages' ``__init__`` files, which import every dataset and model, are skipped.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.core.fidelity import checksum
from tests.test_lockstep_backbones import build_ours
from tools.lockstep_backbones import (
    SETUPS,
    Loader,
    buffer_map,
    check_all_buffers_mapped,
    decoder_keys,
    layer_map,
    official_batches,
    per_layer_statistics,
    plain_correspondence,
    snapshot,
    state_checksums,
)
from tools.lockstep_cosmos import cuda_calls_stay_on_cpu
from tools.lockstep_palora import (
    Correspondence,
    FakeBenchmark,
    _Recorder,
    _stub_module,
    load_into,
    lr_numel,
    official_code,
    read_config,
    regrouped,
)

REPO = "nik-dim/pamal"
SETUP: dict[str, Any] = {
    **SETUPS["resnet18"],
    "batch_size": 4,
    "steps": 3,
    "total_steps": 3,
    "ray_seed": 2,
}
"""The UTKFace ResNet-18 setting of ``tools/lockstep_backbones.py`` (small input, seeds), one official epoch
of ``steps`` batches, and the seed of torch's global generator for the official Dirichlet draws."""
RAY_MAP: dict[str, str] = {
    "ray_map.layers.0.weight": "transposed_cnn.0.weight",
    "ray_map.layers.2.weight": "transposed_cnn.2.weight",
}
"""Our ``RayUpsampler`` -> the official ``Upsampler.transposed_cnn`` (ConvTranspose2d, ReLU, ConvTranspose2d)."""
MISSING_MODULES = ("cvxopt", "pymoo.factory")
"""Imported by the official modules, never used by these steps, absent from this environment."""


@contextlib.contextmanager
def stubbed_when_absent(names: tuple[str, ...]) -> Iterator[None]:
    """Stub each module of ``names`` that cannot be imported, for the block only."""
    added = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # the parent package itself is absent
            found = False
        if not found and name not in sys.modules:
            sys.modules[name] = _stub_module(name)
            added.append(name)
    try:
        yield
    finally:
        for name in added:
            del sys.modules[name]


def correspondence(net: nn.Module, layers: dict[str, str]) -> Correspondence:
    """Our COSMOS parameters (``net.`` backbone, ``ray_map.`` upsampler) -> the official ``Upsampler``'s."""
    backbone = {
        f"net.{ours}": [f"child_model.{theirs}" for theirs in targets]
        for ours, targets in plain_correspondence(net, layers).items()
    }
    return {**backbone, **{ours: [theirs] for ours, theirs in RAY_MAP.items()}}


def official_model(load: Any, setup: dict[str, Any], num_tasks: int) -> nn.Module:
    """``Upsampler(T, UtkFaceResnet(in_channels=3 + T), input_dim)`` with ``Linear(512, C)`` heads (docstring)."""
    shape = list(setup["input_shape"])
    child = load("src.models.factory.resnet").UtkFaceResnet(in_channels=shape[0] + num_tasks)
    features = 512 * (shape[1] // 32) * (shape[2] // 32)
    for decoder in child.decoders:
        decoder.linear = nn.Linear(features, decoder.num_classes)
    return load("src.models.factory.cosmos.upsampler").Upsampler(num_tasks, child, input_dim=shape)


def cosmos_run(pamal: Path) -> dict[str, Any]:
    setup = dict(SETUP)
    experiment = pamal / "configs" / "experiment" / "utkface"
    config = read_config(experiment / "method" / "cosmos.yaml")
    lr = read_config(experiment / "utkface.yaml")["optimizer"]["lr"]
    _, cnet, _, spec = build_ours("cosmos", setup)
    objectives = list(spec.objective_names)
    num_tasks = spec.num_tasks
    with (
        stubbed_when_absent(MISSING_MODULES),
        official_code(pamal) as load,
        contextlib.redirect_stdout(io.StringIO()),
    ):
        weight_methods = load("src.methods.multi_solution_weight_methods")
        losses_module = load("src.utils.losses")
        trainer_module = load("src.trainer.multi_solution_trainer")
        torch.manual_seed(setup["seed"])
        model = official_model(load, setup, num_tasks)
        layers = layer_map(cnet.net, "resnet18", decoder_keys(setup, "pamal", objectives))
        mapping = correspondence(cnet.net, layers)
        initialisation = per_layer_statistics(model, mapping)
        buffers = buffer_map(cnet.net, layers, "net.", "child_model.")
        check_all_buffers_mapped(model, buffers, lambda name: False)
        load_into(model, dict(cnet.named_parameters()), mapping)
        initial = checksum(regrouped(model, mapping).values())
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        steps: list[dict[str, Any]] = []
        previous = snapshot(model, mapping)

        def record(trainer: Any) -> None:
            steps.append(
                {
                    "rays": [trainer.ray.tolist()],
                    "losses": [trainer.losses.tolist()],
                    "loss": float(trainer.loss.detach()),
                    **state_checksums(model, mapping, buffers, previous),
                }
            )

        method = weight_methods.Cosmos(num_tasks, config["lamda"])
        trainer = trainer_module.MultiSolutionTrainer(
            config["alpha"],
            model=model,
            benchmark=FakeBenchmark(objectives, Loader(official_batches(setup, "pamal"), setup["total_steps"])),
            method=method,
            loss_fn=losses_module.UTKFaceMultiTaskLoss(),
            optimizer=optimizer,
            callbacks=[_Recorder(record)],
            gpu=None,
        )
        torch.manual_seed(setup["ray_seed"])  # the trainer's Dirichlet draws use the global generator
        with cuda_calls_stay_on_cpu():
            trainer.fit(epochs=1)
    if len(steps) != setup["steps"]:
        raise SystemExit(f"error: the official trainer took {len(steps)} steps, not {setup['steps']}")
    commit = subprocess.run(
        ["git", "-C", str(pamal), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return {
        "repo": REPO,
        "official_commit": commit,
        "setup": {
            **setup,
            "method": "cosmos",
            "lr": lr,
            "official_config": {
                "lr": lr,
                "method": config,
                "model": "utkface.py: Upsampler(dm.num_tasks, UtkFaceResnet(in_channels=6), input_dim=dm.input_dims)",
                "trainer": "src/utils/_selectors.py get_trainer: MultiSolutionTrainer(alpha) with Cosmos(lamda)",
            },
            "preset_checks": {"reg_coefficient": config["lamda"], "alpha": config["alpha"]},
        },
        "official_trainer": "src/trainer/multi_solution_trainer.py, src/trainer/base_trainer.py (training_step)",
        "official_method_class": type(method).__name__,
        "official_lr_numel": lr_numel(optimizer),
        "rays": "official MultiSolutionTrainer Dirichlet draws (global generator seeded with ray_seed), fed to ours",
        "initial_checksum": initial,
        "steps": steps,
        "initialisation": {"method": initialisation},
    }


def produce(official: Path, method: str) -> dict[str, Any]:
    """``method`` is the record name ``cosmos-resnet18``; ``official`` a checkout of nik-dim/pamal."""
    if method != "cosmos-resnet18":
        raise SystemExit(f"error: tools/lockstep_cosmos_backbones.py records cosmos-resnet18, not {method!r}")
    if not (official / "src" / "models" / "factory" / "cosmos" / "upsampler.py").is_file():
        raise SystemExit(f"error: --official {official} is not a checkout of {REPO} (no COSMOS upsampler)")
    torch.set_num_threads(1)
    return cosmos_run(official)
