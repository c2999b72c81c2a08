"""Lockstep producer for PaDoRA: the official ``PaDoRA`` / ``PaDoRA_GB`` (nik-dim/palora
``src/callbacks/methods/padora.py``) on the official MultiLeNet, trained by the official
``BaseTrainer.fit`` (``src/trainer/base_trainer.py``: its step counter, ``t``, sampler call,
callbacks, loss and Adam; ``EnsembleTrainer``, which the PFL scripts use with ``num = 1``, inherits
that ``training_step`` and only adds evaluation) from our initial weights.

Needs ``peft`` (not a project dependency). The record was made with peft 0.13.2 and transformers
4.46.3 installed in a separate folder, e.g. ``pip install --target DIR --no-deps peft==0.13.2
transformers==4.46.3 accelerate huggingface-hub safetensors tokenizers psutil pyyaml regex requests``
and ``PYTHONPATH=DIR python tools/official_lockstep.py --official CHECKOUT --method padora``.

Per case: our ``PaDoRANet`` is built from ``init_seed``; its backbone weights are copied into the
official ``SharedBottom(MultiLeNetR, MultiLeNetO)`` by :func:`official_layer`, the official
``configure_model`` wraps it with peft, and our adapters are copied into peft's ``lora_A`` /
``lora_B`` / ``lora_magnitude_vector`` by :func:`copy_adapters`. The rays are drawn by the official
``AnnealingDirichletSampler`` (one per step, torch's global generator seeded with ``ray_seed``) at the
official ``t`` and recorded; the test feeds them to our loop. The checkout is imported with
``tools/lockstep_palora.official_code`` (optional dependencies stubbed, package ``__init__`` files skipped).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import torch

from bench.backbones import create_backbone
from bench.core.fidelity import checksum, seeded_batches
from bench.core.registry import DATASETS, load_all
from bench.train.config import apply_overrides
from methods.padora import PaDoRA, PaDoRAHparams, PaDoRANet
from tools.lockstep_palora import FakeBenchmark, official_code

SETUP: dict[str, Any] = {"batch_size": 8, "lr": 1e-2, "optimizer": "Adam", "data_seed": 11, "ray_seed": 5}
CASES: dict[str, dict[str, Any]] = {
    "lora": {"dataset": "multimnist-mini", "steps": 8, "init_seed": 1, "hparams": {"rank": 1, "alpha": 1.0}},
    "dora": {
        "dataset": "multimnist3",
        "steps": 8,
        "init_seed": 2,
        "hparams": {"rank": 2, "alpha": 3.0, "peft": "dora"},
    },
    "lora-gb": {
        "dataset": "multimnist-mini",
        "steps": 5,
        "init_seed": 3,
        "hparams": {"rank": 2, "alpha": 2.0, "inner_method": "gb"},
    },
}
"""The replayed runs: the official presets' setting (rank 1, lora_alpha = rank, ls) and two that
exercise DoRA on three tasks with scaling 1.5 and gradient balancing. Every case uses the
experiment's ``annealing_dirichlet`` sampler with p = 1 and one ray per step, as the official PaDoRA takes."""

BACKBONE_NAMES = {"encoder.0": "encoder.conv1", "encoder.3": "encoder.conv2", "encoder.7": "encoder.fc"}
"""Our MultiLeNet encoder layers -> the official ``MultiLeNetR``'s; head layer ``heads.<t>.0`` / ``.2``
is the official ``decoders.<t>.fc1`` / ``.fc2``."""


def official_layer(name: str) -> str:
    """The official layer holding our MultiLeNet layer ``name``."""
    if name in BACKBONE_NAMES:
        return BACKBONE_NAMES[name]
    _, task, index = name.split(".")
    return f"decoders.{task}.{ {'0': 'fc1', '2': 'fc2'}[index] }"


def build_ours(case: dict[str, Any]) -> tuple[PaDoRA, PaDoRANet]:
    """Our method and model for a case (the test rebuilds them the same way)."""
    spec = DATASETS.get(case["dataset"])
    overrides = {"window": 1, "sampler": "annealing_dirichlet", **case["hparams"]}
    method = PaDoRA(apply_overrides(PaDoRAHparams(), "method", overrides), spec)
    torch.manual_seed(case["init_seed"])
    return method, method.build(lambda **kw: create_backbone(spec.backbone, spec, **kw))


def copy_backbone(cnet: PaDoRANet, model: torch.nn.Module) -> None:
    """Our MultiLeNet weights and biases -> the official ``SharedBottom``'s, layer by layer."""
    layers = dict(model.named_modules())
    with torch.no_grad():
        for name, module in cnet.net.named_modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                target = layers[official_layer(name)]
                target.weight.copy_(module.weight)
                target.bias.copy_(module.bias)


def copy_adapters(cnet: PaDoRANet, model: torch.nn.Module, task_names: tuple[str, ...]) -> None:
    """Our A_k, B_k (and magnitudes m_k) -> peft's ``lora_A[task_k]``, ``lora_B[task_k]``
    (``lora_magnitude_vector[task_k].weight``) of the same layer, reshaped to peft's shapes."""
    layers = dict(model.base_model.model.named_modules())
    covered = 0
    for name, key in cnet.adapted.items():
        adapters, layer = cnet.adapters[key], layers[official_layer(name.removesuffix(".weight"))]
        with torch.no_grad():
            for k, task in enumerate(task_names):
                layer.lora_A[task].weight.copy_(adapters.A[k].view_as(layer.lora_A[task].weight))
                layer.lora_B[task].weight.copy_(adapters.B[k].view_as(layer.lora_B[task].weight))
                covered += 2
                if adapters.magnitude is not None:
                    magnitude = layer.lora_magnitude_vector[task].weight
                    magnitude.copy_(adapters.magnitude[k].view_as(magnitude))
                    covered += 1
    official_adapters = [n for n, _ in model.named_parameters() if "lora_" in n]
    if covered != len(official_adapters):
        raise SystemExit(f"error: copied {covered} adapter tensors, peft has {len(official_adapters)}")


def recorder(base_callback: type, record: Callable[[Any], None]) -> Any:
    """An official callback that hands the trainer to ``record`` after every optimizer step."""

    class Recorder(base_callback):
        def connect(self, trainer: Any) -> None:
            pass

        def on_after_optimizer_step(self, trainer: Any, *args: Any, **kwargs: Any) -> None:
            record(trainer)

    return Recorder()


def run_case(load: Callable[[str], ModuleType], case: dict[str, Any]) -> dict[str, Any]:
    """One official run of ``case["steps"]`` steps (one epoch), recorded after each step."""
    method, cnet = build_ours(case)
    hp, spec = method.hparams, method.spec
    task_names = list(spec.objective_names)
    padora = load("src.callbacks.methods.padora")
    lenet = load("src.models.factory.lenet")
    model = load("src.models.base_model").SharedBottom(
        encoder=lenet.MultiLeNetR(in_channels=1), decoder=lenet.MultiLeNetO(), task_names=task_names
    )
    copy_backbone(cnet, model)
    sampler = load("src.callbacks.methods.utils.samplers").AnnealingDirichletSampler(
        num_tasks=len(task_names), num=1, p=hp.p
    )
    official = {"ls": padora.PaDoRA, "gb": padora.PaDoRA_GB}[hp.inner_method](
        num_tasks=len(task_names), ray_sampler=sampler, rank=hp.rank, num=1, lora_alpha=hp.alpha, peft=hp.peft
    )
    model = official.configure_model(model, data_module=SimpleNamespace(task_names=task_names))
    copy_adapters(cnet, model, spec.objective_names)
    initial = checksum(model.parameters())
    optimizer = torch.optim.Adam(official.configure_param_groups(model, lr=SETUP["lr"]), lr=SETUP["lr"])
    raw = seeded_batches(
        spec.input_shape, (10,) * len(task_names), SETUP["batch_size"], case["steps"], SETUP["data_seed"]
    )
    train = [(x, dict(zip(task_names, ys, strict=True))) for x, ys in raw]
    steps: list[dict[str, Any]] = []

    def record(trainer: Any) -> None:
        losses = official.cast_losses_to_correct_type(trainer.losses)
        step = {"t": trainer.t, "ray": trainer.ray.tolist(), "losses": losses.detach().tolist()}
        steps.append({**step, "checksum": checksum(model.parameters())})

    trainer = load("src.trainer.base_trainer").BaseTrainer(
        model=model,
        benchmark=FakeBenchmark(task_names, train),
        method=official,
        loss_fn=load("src.utils.losses").MultiTaskCrossEntropyLoss(),
        optimizer=optimizer,
        callbacks=[recorder(load("src.callbacks.base_callback").BaseCallback, record)],
        gpu=None,
    )
    torch.manual_seed(SETUP["ray_seed"])
    trainer.fit(epochs=1)
    return {**case, "initial_checksum": initial, "steps": steps}


def produce(official: Path, method: str) -> dict[str, Any]:
    if method != "padora":
        raise SystemExit(f"error: lockstep_padora produces padora, not {method}")
    if importlib.util.find_spec("peft") is None:
        raise SystemExit("error: the official PaDoRA needs peft; see tools/lockstep_padora.py")
    import peft

    load_all()
    with official_code(official) as load, contextlib.redirect_stdout(io.StringIO()):
        cases = {name: run_case(load, case) for name, case in CASES.items()}
    return {
        "repo": "nik-dim/palora",
        "setup": {**SETUP, "peft": peft.__version__, "sampler": "annealing_dirichlet", "p": 1.0, "window": 1},
        "official_trainer": "src/trainer/base_trainer.py (BaseTrainer.fit, training_step)",
        "steps": cases["lora"]["steps"],
        "cases": cases,
    }
