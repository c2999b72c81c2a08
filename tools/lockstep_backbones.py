"""Lockstep producer for PaLoRA and PaMaL on the real backbones: ResNet-18 (UTKFace) and SegNet (Cityscapes).

Run by ``tools/official_lockstep.py --official <checkout of nik-dim/palora> --method {palora,pamal}
--backbone {resnet18,segnet}``; the record is ``tests/lockstep/<method>-<backbone>.json``. Our model is
built by ``tests/test_lockstep_backbones.build_ours`` from the dataset's preset on a small input
(:data:`SETUPS`); its initial weights are copied by the explicit layer maps below into the official
model after the official method has rewritten it. BatchNorm runs in train mode on both sides; its
running statistics are recorded after every step with the parameters.

- PaLoRA: nik-dim/palora, assembled as ``_utkface.py`` / ``_split-cityscapes.py`` do (``UtkFaceResnet``
  / ``SegNet``, ``get_method``'s class for the config's ``inner_method``, ``configure_model``,
  ``configure_param_groups``, Adam, the experiment's ray sampler, ``EnsembleTrainer`` for one ray per
  step and ``MultiForwardEnsembleTrainer`` for more, ``UTKFaceMultiTaskLoss`` /
  ``CityscapesTwoTaskLoss``), driven by ``trainer.fit(epochs=1)``.
- PaMaL: nik-dim/palora's ``get_method`` raises on the presets' ``inner_method: gradnorm``, so the
  records come from nik-dim/pamal (its checkout beside this one), assembled as its ``utkface.py`` /
  ``split-cityscapes.py`` do (``SimplexWeightEnsemble``, ``PaMaLMETHODS[inner_method]``, Adam over
  ``model.parameters()``, ``MultiForwardEnsembleTrainer`` with the config's num, temperature and
  reg_coefficient), its own Dirichlet draws (torch's global generator, seeded) recorded as drawn.

Three adaptations, none touching the official arithmetic: (1) torch >= 2.x keeps ``Module._modules``
as a plain dict, which ``nn.Sequential(module._modules)`` in nik-dim/palora's
``PaSequential.from_module`` rejects (``TypeError: dict is not a Module subclass``); while the model is
configured, ``nn.Sequential`` takes such a dict as the OrderedDict that torch 2.0.1 (the official
requirements) passed. (2) The official UTKFace heads are ``Linear(2048, C)`` for 64x64 inputs; at
the 32x32 input used here the encoder gives 512 features, so the heads are the same class with
``Linear(512, C)``. (3) The train loader reports ``total_steps`` batches and yields ``steps``, so the
official t = (k + 1) / total_steps runs over a part of the schedule, as ours with the same total.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import subprocess
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bench.core.conditioning import parameter_key
from bench.core.fidelity import checksum
from bench.train.loop import training_progress
from tests.test_lockstep_backbones import batches, build_ours, layer_statistics, update_checksum
from tools.lockstep_palora import (
    Correspondence,
    FakeBenchmark,
    _Recorder,
    load_into,
    lr_numel,
    official_code,
    read_config,
    record_draws,
    regrouped,
)

CHECKOUT = "nik-dim/palora"
"""What ``--official`` names: PaMaL's records run nik-dim/pamal, checked out beside it."""

SETUPS: dict[str, dict[str, Any]] = {
    "resnet18": {
        "dataset": "utkface",
        "backbone": "resnet18",
        "input_shape": [3, 32, 32],
        "seed": 0,
        "data_seed": 1,
        "total_steps": 8,
    },
    "segnet": {
        "dataset": "cityscapes",
        "backbone": "segnet",
        "input_shape": [3, 32, 32],
        "seed": 0,
        "data_seed": 1,
        "total_steps": 8,
    },
}
"""Per backbone: the dataset (its preset and objectives), the small input, the seeds, and the length of
the schedule the steps are taken from (t = (k + 2) / total_steps at the k-th step from 0)."""
RUNS: dict[str, dict[str, int]] = {"palora": {"batch_size": 4, "steps": 3}, "pamal": {"batch_size": 2, "steps": 2}}
"""Batch and step count per method (PaMaL's window of 3 rays with gradient balancing costs most)."""
EXPERIMENTS = {"utkface": ("utkface", "utkface.yaml"), "cityscapes": ("cityscapes", "cityscapes.yaml")}
OFFICIAL_TASKS = {
    "utkface": {"age": "age", "gender": "gender", "race": "race"},
    "cityscapes": {"segmentation": "sem", "depth": "depth"},
}
"""Our objective -> the official loss key (nik-dim/palora's loss dicts; nik-dim/pamal's lists follow our order)."""
OFFICIAL_LOSS_ORDER = {"utkface": ["age", "race", "gender"], "cityscapes": ["sem", "depth"]}
"""The order of nik-dim/palora's loss dicts (``UTKFaceMultiTaskLoss``, ``CityscapesTwoTaskLoss``): ray
entry k and adapter member k go with the k-th loss (``get_weighted_loss``: ``(ray * losses).sum()``)."""
LOSSES = {"utkface": "UTKFaceMultiTaskLoss", "cityscapes": "CityscapesTwoTaskLoss"}
PALORA_CLASSES = {"ls": "PaLoRA", "gb": "PaLoRA_GB"}
"""nik-dim/palora ``get_method`` (``src/callbacks/methods/__init__.py``): the class per ``inner_method``."""


def setup_for(method: str, backbone: str) -> dict[str, Any]:
    return {**SETUPS[backbone], **RUNS[method]}


# ---------------------------------------------------------------- layer maps


def _segnet_block(first: str, rest: str, stage: int, block: int) -> str:
    """The official module of our SegNet ``block`` in ``stage`` (MTAN's ``*_block`` holds the first conv
    layer of a stage, ``conv_block_*`` the others: one layer for stages 0 and 1, two for the deeper)."""
    if block == 0:
        return f"{first}.{stage}"
    if stage < 2:
        return f"{rest}.{stage}"
    return f"{rest}.{stage}.{block - 1}"


def layer_map(net: nn.Module, backbone: str, decoder_keys: dict[str, str]) -> dict[str, str]:
    """Our Conv2d / Linear / BatchNorm2d module -> the official module (before any method rewrote it).

    ResNet-18 (nik-dim/palora ``resnet.py``): torchvision's names, ``downsample`` -> ``shortcut``,
    ``heads.<task>`` -> ``decoders.<key>.linear``. SegNet (``segnet_cityscapes.py`` ``SegNet``): our
    ``encoder.encoder.<stage>.<block>.<0 conv | 1 BN>`` -> ``segnet.encoder_block`` / ``conv_block_enc``,
    our decoder stage i (applied i-th) -> the official stage 4 - i of ``decoder_block`` / ``conv_block_dec``,
    ``heads.segmentation`` -> ``segmentation_decoder.pred_task1``, ``heads.depth`` -> ``depth_decoder.pred_task2``.
    """
    layers = [n for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d))]
    out = {}
    for name in layers:
        parts = name.split(".")
        if backbone == "resnet18":
            if parts[0] == "heads":
                out[name] = f"decoders.{decoder_keys[parts[1]]}.linear"
            else:
                out[name] = name.replace(".downsample.", ".shortcut.")
        elif parts[0] == "heads":
            head = {"segmentation": "segmentation_decoder.pred_task1", "depth": "depth_decoder.pred_task2"}[parts[1]]
            out[name] = f"{head}.{parts[2]}"
        else:
            _, half, stage, block, kind = parts
            if half == "encoder":
                base = _segnet_block("encoder_block", "conv_block_enc", int(stage), int(block))
            else:
                base = _segnet_block("decoder_block", "conv_block_dec", 4 - int(stage), int(block))
            out[name] = f"segnet.{base}.{kind}"
    return out


def _kinds(net: nn.Module) -> dict[str, str]:
    return {
        n: type(m).__name__ for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d))
    }


def plain_correspondence(net: nn.Module, layers: dict[str, str]) -> Correspondence:
    """Our plain backbone's parameters -> the official plain model's."""
    return {f"{ours}.{kind}": [f"{theirs}.{kind}"] for ours, theirs in layers.items() for kind, _ in _own(net, ours)}


def _own(net: nn.Module, name: str) -> list[tuple[str, Tensor]]:
    return list(net.get_submodule(name).named_parameters(recurse=False))


def palora_correspondence(net: nn.Module, layers: dict[str, str], members: list[int]) -> Correspondence:
    """PaLoRA: backbone tensors (``net.``), ``PaConv2d`` wrapping the convolution in ``.conv``, ``PaLinear``
    holding its own weight; adapters ``adapters.<key>.{A,B}`` [T, ...] -> ``lora_{A,B}.<member>`` with our
    task k at official member ``members[k]``; BatchNorm layers kept as they are by ``lorafy_model``."""
    out: Correspondence = {}
    kinds = _kinds(net)
    for ours, theirs in layers.items():
        base = f"{theirs}.conv" if kinds[ours] == "Conv2d" else theirs
        for kind, _ in _own(net, ours):
            out[f"net.{ours}.{kind}"] = [f"{base}.{kind}"]
        if kinds[ours] != "BatchNorm2d":
            key = parameter_key(ours)
            out[f"adapters.{key}.A"] = [f"{theirs}.lora_A.{m}" for m in members]
            out[f"adapters.{key}.B"] = [f"{theirs}.lora_B.{m}" for m in members]
    return out


def pamal_correspondence(names: list[str], layers: dict[str, str], num_tasks: int) -> Correspondence:
    """PaMaL: our stacked ``members.<key>`` [T, ...] of each target parameter in ``names`` -> nik-dim/pamal's
    ``model.<layer>.members.<k>.<kind>`` (``SubspaceConv`` / ``SubspaceLinear`` / ``SubspaceBatchNorm2d``,
    one copy of the layer per task)."""
    out: Correspondence = {}
    for name in names:
        layer, kind = name.rsplit(".", 1)
        out[f"members.{parameter_key(name)}"] = [f"model.{layers[layer]}.members.{k}.{kind}" for k in range(num_tasks)]
    return out


def buffer_map(net: nn.Module, layers: dict[str, str], ours_prefix: str, theirs_prefix: str) -> dict[str, str]:
    """Our BatchNorm running statistics -> the official ones (the layer's own, not PaMaL members')."""
    kinds = _kinds(net)
    return {
        f"{ours_prefix}{ours}.{stat}": f"{theirs_prefix}{theirs}.{stat}"
        for ours, theirs in layers.items()
        if kinds[ours] == "BatchNorm2d"
        for stat in ("running_mean", "running_var")
    }


def official_buffers(model: nn.Module, buffers: dict[str, str]) -> dict[str, Tensor]:
    """The official running statistics under our names (every official one of a mapped layer covered)."""
    theirs = dict(model.named_buffers())
    missing = [t for t in buffers.values() if t not in theirs]
    if missing:
        raise SystemExit(f"error: buffer map names official buffers that do not exist: {missing[:5]}")
    return {ours: theirs[t] for ours, t in buffers.items()}


def batches_tracked(model: nn.Module, buffers: dict[str, str]) -> list[int]:
    theirs = dict(model.named_buffers())
    names = {t.rsplit(".", 1)[0] + ".num_batches_tracked" for t in buffers.values()}
    return sorted(int(theirs[n]) for n in names)


def check_all_buffers_mapped(model: nn.Module, buffers: dict[str, str], unused: Callable[[str], bool]) -> None:
    stats = {n for n, _ in model.named_buffers() if n.endswith(("running_mean", "running_var")) and not unused(n)}
    if stats != set(buffers.values()):
        raise SystemExit(f"error: buffer map misses {sorted(stats ^ set(buffers.values()))[:5]}")


def per_layer_statistics(model: nn.Module, correspondence: Correspondence) -> dict[str, list[dict[str, float]]]:
    """Our parameter name -> the distribution of each official tensor it stacks (in our order)."""
    params = dict(model.named_parameters())
    return {ours: [layer_statistics(params[t]) for t in targets] for ours, targets in correspondence.items()}


# ---------------------------------------------------------------- official runs


@contextlib.contextmanager
def sequential_takes_module_dicts() -> Iterator[None]:
    """``nn.Sequential(d)`` for a plain dict ``d`` of modules builds from ``OrderedDict(d)``: what
    ``PaSequential.from_module``'s ``cls(module._modules)`` got under torch 2.0.1 (see the docstring)."""
    init = nn.Sequential.__init__

    def patched(self: nn.Sequential, *args: Any) -> None:
        if len(args) == 1 and type(args[0]) is dict:
            args = (OrderedDict(args[0]),)
        init(self, *args)

    nn.Sequential.__init__ = patched  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Sequential.__init__ = init  # type: ignore[method-assign]


@contextlib.contextmanager
def recording_backward(seen: list[float]) -> Iterator[None]:
    """Record the value of every loss ``.backward()`` is called on (the official trainers' total loss)."""
    backward = torch.Tensor.backward

    def recording(self: Tensor, *args: Any, **kwargs: Any) -> Any:
        seen.append(float(self.detach()))
        return backward(self, *args, **kwargs)

    torch.Tensor.backward = recording  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.Tensor.backward = backward  # type: ignore[method-assign]


class Loader:
    """The train loader: yields the seeded batches and reports ``total`` batches (the official trainer
    reads ``len`` for its total step count, hence t)."""

    def __init__(self, items: list[Any], total: int) -> None:
        self.items, self.total = items, total

    def __iter__(self) -> Iterator[Any]:
        return iter(self.items)

    def __len__(self) -> int:
        return self.total


def official_batches(setup: dict[str, Any], repo: str) -> list[tuple[Tensor, Any]]:
    """Our batches as the official loaders yield them: nik-dim/palora a dict by its task keys (age z;
    segmentation labels as float, as its Cityscapes dataset returns them), nik-dim/pamal a tuple in task order."""
    keys = OFFICIAL_TASKS[setup["dataset"]]
    out = []
    for x, targets in batches(setup):
        official = {}
        for name, y in targets.items():
            if name == "age":
                y = y[:, 0]
            elif name == "segmentation":
                y = y.to(torch.get_default_dtype())
            official[name] = y
        out.append((x, {keys[n]: y for n, y in official.items()} if repo == "palora" else tuple(official.values())))
    return out


def official_model(load: Callable[[str], Any], setup: dict[str, Any], repo: str) -> nn.Module:
    """``UtkFaceResnet()`` (heads ``Linear(512, C)`` for the 32x32 input) or ``SegNet()``."""
    if setup["backbone"] == "resnet18":
        model = load("src.models.factory.resnet").UtkFaceResnet()
        features = 512 * (setup["input_shape"][1] // 32) * (setup["input_shape"][2] // 32)
        decoders = model.decoders.values() if repo == "palora" else model.decoders
        for decoder in decoders:
            decoder.linear = nn.Linear(features, decoder.num_classes)
        return model
    return load("src.models.factory.segnet_cityscapes").SegNet()


def decoder_keys(setup: dict[str, Any], repo: str, objectives: list[str]) -> dict[str, str]:
    if repo == "palora":
        return {name: name for name in objectives}
    return {name: str(k) for k, name in enumerate(objectives)}


def _config_defaults(path: Path) -> dict[str, str]:
    """The ``defaults:`` list entries ``- group: option`` of a Hydra config (read_config skips lists)."""
    out = {}
    for line in path.read_text().splitlines():
        entry = line.strip()
        if entry.startswith("- ") and ":" in entry:
            group, _, option = entry[2:].partition(":")
            out[group.strip()] = option.strip()
    return out


def palora_settings(official: Path, dataset: str) -> dict[str, Any]:
    folder, top_file = EXPERIMENTS[dataset]
    experiment = official / "configs" / "experiment" / folder
    top = read_config(experiment / top_file)
    sampler_name = _config_defaults(experiment / top_file)["ray_sampler"]
    return {
        "lr": top["optimizer"]["lr"],
        "method": read_config(experiment / "method" / "palora.yaml"),
        "ray_sampler_file": sampler_name,
        "ray_sampler": read_config(official / "configs" / "general" / "ray_sampler" / f"{sampler_name}.yaml"),
    }


def pamal_settings(pamal: Path, dataset: str) -> dict[str, Any]:
    folder, top_file = EXPERIMENTS[dataset]
    experiment = pamal / "configs" / "experiment" / folder
    return {
        "lr": read_config(experiment / top_file)["optimizer"]["lr"],
        "method": read_config(experiment / "method" / "pamal.yaml"),
    }


def _step_losses(per_ray: list[Any], order: list[str]) -> list[list[float]]:
    """[R][T] in our objective order from the official per-ray losses (dicts by key or lists in order)."""
    rows = []
    for losses in per_ray:
        values = [losses[key] for key in order] if isinstance(losses, dict) else list(losses)
        rows.append([float(v) for v in values])
    return rows


def palora_run(official: Path, backbone: str) -> dict[str, Any]:
    setup = setup_for("palora", backbone)
    settings = palora_settings(official, setup["dataset"])
    ours, cnet, _, spec = build_ours("palora", setup)
    objectives = list(spec.objective_names)
    keys = OFFICIAL_TASKS[setup["dataset"]]
    official_order = OFFICIAL_LOSS_ORDER[setup["dataset"]]
    members = [official_order.index(keys[n]) for n in objectives]
    method_config = {k: v for k, v in settings["method"].items() if k != "name"}
    window = ours.hparams.window
    method_config["num"] = window  # the Cityscapes num = 1 cannot run the deterministic annealing sampler
    sampler_config = {k: v for k, v in settings["ray_sampler"].items() if k not in ("name", "_target_")}
    sampler_class = settings["ray_sampler"]["_target_"].rsplit(".", 1)[1]
    num_tasks = spec.num_tasks
    with official_code(official) as load, contextlib.redirect_stdout(io.StringIO()):
        samplers = load("src.callbacks.methods.utils.samplers")
        losses_module = load("src.utils.losses")
        palora_module = load("src.callbacks.methods.palora")
        trainer_name = "multi_forward_ensemble_trainer" if window > 1 else "ensemble_trainer"
        trainer_module = load(f"src.trainer.{trainer_name}")
        sampler = getattr(samplers, sampler_class)(**sampler_config, num=window, num_tasks=num_tasks)
        drawn = record_draws(sampler)
        callback_cls = getattr(palora_module, PALORA_CLASSES[method_config["inner_method"]])
        callback = callback_cls(**method_config, ray_sampler=sampler, num_tasks=num_tasks)
        torch.manual_seed(setup["seed"])
        model = official_model(load, setup, "palora")
        layers = layer_map(cnet.net, backbone, decoder_keys(setup, "palora", objectives))
        plain = per_layer_statistics(model, plain_correspondence(cnet.net, layers))
        with sequential_takes_module_dicts():
            model = callback.configure_model(model)
        correspondence = palora_correspondence(cnet.net, layers, members)
        initialisation = per_layer_statistics(model, correspondence)
        buffers = buffer_map(cnet.net, layers, "net.", "")
        check_all_buffers_mapped(model, buffers, lambda name: False)
        load_into(model, dict(cnet.named_parameters()), correspondence)
        initial = checksum(regrouped(model, correspondence).values())
        optimizer = torch.optim.Adam(callback.configure_param_groups(model, lr=settings["lr"]), lr=settings["lr"])
        defaults = {
            name: p.default
            for name, p in inspect.signature(callback_cls).parameters.items()
            if p.default is not inspect.Parameter.empty
        }
        steps: list[dict[str, Any]] = []
        order = [keys[n] for n in objectives]
        previous = snapshot(model, correspondence)

        def record(trainer: Any) -> None:
            t, rays = drawn[-1]
            rays = rays.reshape(-1, num_tasks)
            per_ray = trainer.losses if isinstance(trainer.losses, list) else [trainer.losses]
            steps.append(
                {
                    "t": t,
                    "rays": rays[:, members].tolist(),
                    "losses": _step_losses(per_ray, order),
                    "loss": float(trainer.loss),
                    **state_checksums(model, correspondence, buffers, previous),
                }
            )

        # Validation never runs (no val loader); validate_models -1 avoids meshzoo's 3-task lattice.
        kwargs: dict[str, Any] = {"validate_every_n": 1, "validate_models": -1}
        trainer = getattr(trainer_module, "MultiForwardEnsembleTrainer" if window > 1 else "EnsembleTrainer")(
            model=model,
            benchmark=FakeBenchmark(objectives, Loader(official_batches(setup, "palora"), setup["total_steps"])),
            method=callback,
            loss_fn=getattr(losses_module, LOSSES[setup["dataset"]])(),
            optimizer=optimizer,
            callbacks=[_Recorder(record)],
            gpu=None,
            **kwargs,
        )
        torch.manual_seed(setup["seed"])
        trainer.fit(epochs=1)
    for k, step in enumerate(steps):
        if abs(step["t"] - training_progress(k, setup["total_steps"])) > 1e-12:
            raise SystemExit(f"error: official t {step['t']} at step {k + 1} is not bench.train.loop.training_progress")
    return {
        "setup": {
            **setup,
            "lr": settings["lr"],
            "official_config": settings,
            "preset_checks": palora_checks(settings, defaults),
        },
        "official_trainer": f"src/trainer/{trainer_name}.py",
        "official_method_class": callback_cls.__name__,
        "official_method_config": method_config,
        "official_sampler": {"class": sampler_class, **sampler_config, "num": window},
        "official_task_order": official_order,
        "official_lr_numel": lr_numel(optimizer),
        "initial_checksum": initial,
        "steps": steps,
        "initialisation": {"backbone": plain, "method": initialisation},
    }


def snapshot(model: nn.Module, correspondence: Correspondence) -> dict[str, Tensor]:
    """The official parameters now, regrouped as ours (copies)."""
    return {n: t.detach().clone() for n, t in regrouped(model, correspondence).items()}


def state_checksums(
    model: nn.Module, correspondence: Correspondence, buffers: dict[str, str], previous: dict[str, Tensor]
) -> dict[str, Any]:
    """After an optimizer step: the parameters' checksum, the step's update (``update_checksum``; ``previous``
    is moved on), the running statistics' checksum and every layer's ``num_batches_tracked``."""
    now = snapshot(model, correspondence)
    update = update_checksum(now.values(), [previous[n] for n in now])
    previous.update(now)
    return {
        "checksum": checksum(now.values()),
        "update": update,
        "buffers": checksum(official_buffers(model, buffers).values()),
        "batches_tracked": batches_tracked(model, buffers),
    }


def palora_checks(settings: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Our hyperparameter names -> the official values (config, else the class default)."""
    config, sampler = settings["method"], settings["ray_sampler"]
    checks = {
        "rank": config["rank"],
        "alpha": config.get("lora_alpha", defaults["lora_alpha"]),
        "reweight_lr": config["reweight_lr"],
        "inner_method": config["inner_method"],
        "reg_coefficient": config["reg_coefficient"],
        "sampler": settings["ray_sampler_file"],
    }
    if "p" in sampler:
        checks["p"] = sampler["p"]
    if "mul" in sampler:
        checks |= {"mul": sampler["mul"], "eps": sampler["epsilon"]}
    if checks["sampler"] == "annealing_dirichlet":
        checks["window"] = config["num"]
    return checks


def pamal_run(official: Path, backbone: str) -> dict[str, Any]:
    """nik-dim/pamal's ``SimplexWeightEnsemble`` + ``MultiForwardEnsembleTrainer`` with the experiment's
    PaMaL config; its own Dirichlet(p) draws are recorded and replayed by the test."""
    pamal = official.parent / "nik-dim+pamal"
    if not pamal.is_dir():
        raise SystemExit(f"error: the PaMaL records run nik-dim/pamal; check it out at {pamal}")
    setup = setup_for("pamal", backbone)
    settings = pamal_settings(pamal, setup["dataset"])
    config = settings["method"]
    ours, cnet, _, spec = build_ours("pamal", setup)
    objectives = list(spec.objective_names)
    num_tasks = spec.num_tasks
    with official_code(pamal) as load, contextlib.redirect_stdout(io.StringIO()):
        ensemble_module = load("src.ll.weight_ensemble")
        weight_methods = load("src.methods.pamal_weight_methods")
        losses_module = load("src.utils.losses")
        trainer_module = load("src.trainer.multi_forward_ensemble_trainer")
        torch.manual_seed(setup["seed"])
        base = official_model(load, setup, "pamal")
        layers = layer_map(cnet.target.net, backbone, decoder_keys(setup, "pamal", objectives))
        ensemble = ensemble_module.SimplexWeightEnsemble(
            model=base, num_tasks=num_tasks, reinit_flag=config["reinit_flag"], validate_models=-1, p=config["p"]
        )
        correspondence = pamal_correspondence(cnet.names, layers, num_tasks)
        initialisation = per_layer_statistics(ensemble, correspondence)
        buffers = buffer_map(cnet.target.net, layers, "target.net.", "model.")
        check_all_buffers_mapped(ensemble, buffers, lambda name: ".members." in name)
        load_into(ensemble, dict(cnet.named_parameters()), correspondence)
        initial = checksum(regrouped(ensemble, correspondence).values())
        member_stats = {n: b.clone() for n, b in ensemble.named_buffers() if ".members." in n}
        drawn: list[Tensor] = []
        sample = ensemble.sample_alpha

        def recording_sample() -> Tensor:
            alpha = sample()
            drawn.append(alpha.clone())
            return alpha

        ensemble.sample_alpha = recording_sample
        method = weight_methods.PaMaLMETHODS[config["inner_method"]](num_tasks=num_tasks)
        seen: list[list[float]] = []
        weighted = method.get_weighted_loss

        scalarised: list[float] = []

        def recording_loss(losses: list[Tensor], **kwargs: Any) -> Any:
            seen.append([float(v) for v in losses])
            loss, extra = weighted(losses=losses, **kwargs)
            scalarised.append(float(loss))
            return loss, extra

        method.get_weighted_loss = recording_loss
        totals: list[float] = []
        steps: list[dict[str, Any]] = []
        optimizer = torch.optim.Adam(ensemble.parameters(), lr=settings["lr"])
        previous = snapshot(ensemble, correspondence)

        def record(trainer: Any) -> None:
            steps.append(
                {
                    "rays": [ray.tolist() for ray in drawn[-config["num"] :]],
                    "losses": seen[-config["num"] :],
                    "loss": totals[-1],
                    # What the trainer added to the window's gradient-balanced loss: its order regulariser
                    # (reg_coefficient * reg_term when that is below the loss, else 0).
                    "regulariser": totals[-1] - sum(scalarised[-config["num"] :]),
                    **state_checksums(ensemble, correspondence, buffers, previous),
                }
            )

        trainer = trainer_module.MultiForwardEnsembleTrainer(
            num=config["num"],
            temperature=config["temperature"],
            reg_coefficient=config["reg_coefficient"],
            model=ensemble,
            benchmark=FakeBenchmark(objectives, []),
            method=method,
            optimizer=optimizer,
            loss_fn=getattr(losses_module, LOSSES[setup["dataset"]])(),
            callbacks=[_Recorder(record)],
            gpu=None,
        )
        trainer.train_loader = Loader(official_batches(setup, "pamal"), setup["total_steps"])
        trainer.epoch = 1
        torch.manual_seed(setup["seed"])
        with recording_backward(totals):
            trainer.train_epoch()
        unused_unchanged = all(torch.equal(b, dict(ensemble.named_buffers())[n]) for n, b in member_stats.items())
    commit = subprocess.run(
        ["git", "-C", str(pamal), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    checks = {
        "window": config["num"],
        "p": config["p"],
        "reg_coefficient": config["reg_coefficient"],
        "inner_method": config["inner_method"],
        "reinit": config["reinit_flag"],
        "sampler": "dirichlet",
        "regulariser": "official",
    }
    if config["temperature"] != 1:
        raise SystemExit(f"error: nik-dim/pamal temperature {config['temperature']}; ours has none (1)")
    return {
        "repo": "nik-dim/pamal",
        "official_commit": commit,
        "setup": {**setup, "lr": settings["lr"], "official_config": settings, "preset_checks": checks},
        "official_trainer": "src/trainer/multi_forward_ensemble_trainer.py (training_step), src/ll/weight_ensemble.py",
        "official_method_class": type(method).__name__,
        "official_lr_numel": lr_numel(optimizer),
        "official_member_running_statistics_unchanged": unused_unchanged,
        "initial_checksum": initial,
        "steps": steps,
        "initialisation": {"method": initialisation},
    }


def produce(official: Path, method: str) -> dict[str, Any]:
    """``method`` is the record name ``<method>-<backbone>``."""
    name, _, backbone = method.partition("-")
    if backbone not in SETUPS or name not in RUNS:
        raise SystemExit(f"error: {method} is not produced here; valid: palora/pamal x {', '.join(SETUPS)}")
    torch.set_num_threads(1)
    run = palora_run(official, backbone) if name == "palora" else pamal_run(official, backbone)
    run.setdefault("repo", "nik-dim/palora")
    run["setup"]["method"] = name
    return run
