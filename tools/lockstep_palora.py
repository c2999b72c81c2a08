"""Lockstep producer for PaLoRA, PaMaL, LS and MGDA from a checkout of nik-dim/palora.

Run by ``tools/official_lockstep.py --official <checkout> --method {palora,pamal,ls,mgda}``. Our
model is built from a seed by ``tests/test_lockstep_palora.build_ours`` (the MultiMNIST preset of
``bench/presets/multimnist.toml``); its initial weights are copied, by the explicit layer map
below, into the official ``SharedBottom(MultiLeNetR, MultiLeNetO)`` after the official method has
rewritten it (``PaLoRA.configure_model`` / ``PaMaL.configure_model``). The official trainer then
runs one epoch of seeded batches (``trainer.fit``: its step counter, its ``t``, its sampler, its
``configure_param_groups`` and Adam), and a callback records after each optimizer step the
per-ray losses and a checksum of the official parameters, regrouped as ours are. The official
experiment settings are read from the checkout's ``configs/`` (not copied).

Optional dependencies the official modules import but these runs never use (wandb, hydra,
omegaconf, coloredlogs, meshzoo, torchmetrics, peft, rotograd) are stubbed in ``sys.modules`` when absent.
For PaMaL the same steps are also run with nik-dim/pamal's modules and trainer, fed the rays the
first run drew; its checkout must lie beside this one (``<parent>/nik-dim+pamal``).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import io
import subprocess
import sys
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bench.core.conditioning import parameter_key
from bench.core.fidelity import checksum
from bench.core.registry import DATASETS
from bench.train.loop import training_progress
from tests.support import build_for_record as build_ours
from tests.support import record_batches as batches

REPO = "nik-dim/palora"
SETUP: dict[str, Any] = {
    "dataset": "multimnist",
    "backbone": "multilenet",
    "seed": 0,
    "data_seed": 1,
    "batch_size": 16,
    "steps": 8,
    "total_steps": 8,
}
"""One official epoch of ``steps`` batches, so t = (k + 1) / steps at the k-th step reaches the clip at 1."""
LS_RAYS = [[0.5, 0.5], [0.2, 0.8]]
"""LS members: the official default (uniform ``task_weights``) and one skewed ray."""
OPTIONAL_DEPENDENCIES = (
    "wandb",
    "hydra",
    "hydra.core",
    "hydra.core.hydra_config",
    "hydra.utils",
    "omegaconf",
    "coloredlogs",
    "meshzoo",
    "torchmetrics",
    "peft",
    "rotograd",
)
SKIPPED_PACKAGE_INITS = (
    "src.callbacks",
    "src.callbacks.methods",
    "src.datasets",
    "src.methods",
    "src.models",
    "src.models.factory",
    "src.trainer",
    "src.utils.callbacks",
)
"""Packages whose ``__init__`` imports every dataset or method; their submodules are imported alone."""


class _AnythingMeta(type):
    def __getattr__(cls, name: str) -> type:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Anything

    def __getitem__(cls, key: Any) -> type:
        return _Anything

    def __setitem__(cls, key: Any, value: Any) -> None:
        pass


class _Anything(metaclass=_AnythingMeta):
    """Stands for whatever an absent optional dependency provides (logging, plotting, metrics): any
    attribute, call, item or base class, doing nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __getattr__(self, name: str) -> type:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Anything

    def __call__(self, *args: Any, **kwargs: Any) -> _Anything:
        return _Anything()


def _stub_module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = []  # type: ignore[attr-defined]

    def attribute(attr: str) -> type:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Anything

    module.__getattr__ = attribute  # type: ignore[method-assign]
    return module


def record_draws(sampler: Any) -> list[tuple[float, Tensor]]:
    """Wrap an official ray sampler so that every ``sample(t)`` is kept, with its t, in the list returned."""
    drawn: list[tuple[float, Tensor]] = []
    draw = sampler.sample

    def recording_sample(t: float) -> Tensor:
        rays = draw(t)
        drawn.append((t, rays.clone()))
        return rays

    sampler.sample = recording_sample
    return drawn


@contextlib.contextmanager
def official_code(root: Path) -> Iterator[Callable[[str], types.ModuleType]]:
    """Import modules of the checkout ``root`` (top-level package ``src``) for the duration of the
    block; yields ``load(dotted_name)``. Absent optional dependencies are stubbed; the checkout's
    modules, the stubs and the path entry are removed afterwards (two checkouts both name ``src``)."""
    sys.path.insert(0, str(root))
    added: set[str] = set()
    absent = {name for name in OPTIONAL_DEPENDENCIES if "." not in name and importlib.util.find_spec(name) is None}
    for name in OPTIONAL_DEPENDENCIES:
        if name.split(".")[0] in absent:
            sys.modules[name] = _stub_module(name)
            added.add(name)
    for package in SKIPPED_PACKAGE_INITS:
        folder = root / Path(*package.split("."))
        if folder.is_dir():
            module = types.ModuleType(package)
            module.__path__ = [str(folder)]  # type: ignore[attr-defined]
            sys.modules[package] = module
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield importlib.import_module
    finally:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n == "src" or n.startswith("src.") or n in added]:
            del sys.modules[name]


def read_config(path: Path) -> dict[str, Any]:
    """The scalar entries of a Hydra YAML file (nested mappings by indentation; lists skipped)."""
    root: dict[str, Any] = {}
    stack: list[tuple[int, dict[str, Any]]] = [(-1, root)]
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip() or line.strip().startswith("-") or ":" not in line:
            continue
        indent = len(line) - len(line.lstrip())
        key, _, value = line.strip().partition(":")
        while stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        value = value.strip()
        if not value:
            parent[key] = {}
            stack.append((indent, parent[key]))
        else:
            parent[key] = _scalar(value)
    return root


def _scalar(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip("'\"")


def official_settings(official: Path, method: str) -> dict[str, Any]:
    """The official MultiMNIST experiment: optimizer, method and ray-sampler configs."""
    experiment = official / "configs" / "experiment" / "multimnist"
    top = read_config(experiment / "multimnist.yaml")
    method_file = experiment / "method" / f"{method}.yaml"
    general = official / "configs" / "general"
    if not method_file.is_file():
        method_file = general / "method" / f"{method}.yaml"
    return {
        "lr": top["optimizer"]["lr"],
        "method": read_config(method_file),
        "ray_sampler": read_config(general / "ray_sampler" / "annealing.yaml"),
    }


# ---------------------------------------------------------------- weight maps


def layer_map(net: nn.Module, decoder_keys: list[str], prefix: str = "") -> dict[str, tuple[str, bool]]:
    """Our MultiLeNet layer -> (official layer, is_conv): ``encoder.{0,3,7}`` -> ``encoder.{conv1,
    conv2,fc}``, ``heads.<task>.{0,2}`` -> ``decoders.<key>.{fc1,fc2}`` (official ``lenet.py``)."""
    mapping = {"encoder.0": "encoder.conv1", "encoder.3": "encoder.conv2", "encoder.7": "encoder.fc"}
    for task, key in zip(net.heads, decoder_keys, strict=True):
        mapping |= {f"heads.{task}.0": f"decoders.{key}.fc1", f"heads.{task}.2": f"decoders.{key}.fc2"}
    layers = {n: isinstance(m, nn.Conv2d) for n, m in net.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}
    if set(layers) != set(mapping):
        raise SystemExit(f"error: MultiLeNet layers changed: {sorted(layers)}; update layer_map")
    return {ours: (prefix + theirs, layers[ours]) for ours, theirs in mapping.items()}


Correspondence = dict[str, list[str]]
"""Our parameter name -> the official parameters it stacks (one: the same tensor; T: dim 0)."""


def palora_correspondence(cnet: nn.Module, num_tasks: int) -> Correspondence:
    out: Correspondence = {}
    for ours, (theirs, conv) in layer_map(cnet.net, list(cnet.net.heads)).items():
        base = f"{theirs}.conv" if conv else theirs  # PaConv2d wraps the convolution; PaLinear is one
        out[f"net.{ours}.weight"], out[f"net.{ours}.bias"] = [f"{base}.weight"], [f"{base}.bias"]
        key = parameter_key(ours)
        out[f"adapters.{key}.A"] = [f"{theirs}.lora_A.{k}" for k in range(num_tasks)]
        out[f"adapters.{key}.B"] = [f"{theirs}.lora_B.{k}" for k in range(num_tasks)]
    return out


def pamal_correspondence(net: nn.Module, num_tasks: int, decoder_keys: list[str], prefix: str = "") -> Correspondence:
    out: Correspondence = {}
    for ours, (theirs, _) in layer_map(net, decoder_keys, prefix).items():
        for kind in ("weight", "bias"):
            out[f"members.{parameter_key(f'{ours}.{kind}')}"] = [
                f"{theirs}.members.{k}.{kind}" for k in range(num_tasks)
            ]
    return out


def plain_correspondence(net: nn.Module, prefix: str = "") -> Correspondence:
    out: Correspondence = {}
    for ours, (theirs, _) in layer_map(net, list(net.heads)).items():
        for kind in ("weight", "bias"):
            out[f"{prefix}{ours}.{kind}"] = [f"{theirs}.{kind}"]
    return out


def load_into(official: nn.Module, ours: dict[str, Tensor], correspondence: Correspondence) -> None:
    """Copy our tensors into the official model's parameters (each one covered, shapes equal)."""
    params = dict(official.named_parameters())
    state = {}
    for name, targets in correspondence.items():
        value = ours[name].detach()
        for k, target in enumerate(targets):
            state[target] = value[k] if len(targets) > 1 else value
    if set(state) != set(params):
        raise SystemExit(f"error: weight map misses {sorted(set(params) ^ set(state))}")
    with torch.no_grad():
        for name, value in state.items():
            if params[name].shape != value.shape:
                raise SystemExit(f"error: {name} is {tuple(params[name].shape)}, ours {tuple(value.shape)}")
            params[name].copy_(value)


def regrouped(official: nn.Module, correspondence: Correspondence) -> dict[str, Tensor]:
    """The official parameters arranged as ours (stacked where ours stacks them)."""
    params = dict(official.named_parameters())
    return {
        name: torch.stack([params[t] for t in targets]) if len(targets) > 1 else params[targets[0]]
        for name, targets in correspondence.items()
    }


def tensor_checksums(tensors: dict[str, Tensor]) -> dict[str, dict[str, float]]:
    return {name: checksum([t]) for name, t in tensors.items()}


# ---------------------------------------------------------------- official runs


class FakeBenchmark:
    """The part of the official ``BaseDataModule`` a trainer reads: tasks and the train batches."""

    def __init__(self, task_names: list[str], train: list[Any]) -> None:
        self.task_names = task_names
        self.num_tasks = len(task_names)
        self.train = train

    def train_dataloader(self) -> list[Any]:
        return self.train

    def val_dataloader(self) -> None:
        return None


def official_batches(spec: Any, as_dict: bool) -> list[tuple[Tensor, Any]]:
    """Our seeded batches as the official loaders yield them: (x, {task: y}) or (x, (y_0, ...))."""
    out = []
    for x, targets in batches(SETUP, spec):
        out.append((x, targets if as_dict else tuple(targets.values())))
    return out


def losses_matrix(per_ray: list[Any]) -> list[list[float]]:
    """[R][T] floats from per-ray official losses (dicts in task order, or sequences)."""
    rows = []
    for losses in per_ray:
        values = list(losses.values()) if isinstance(losses, dict) else list(losses)
        rows.append([float(v) for v in values])
    return rows


def palora_repo_pfl(official: Path, method: str, settings: dict[str, Any]) -> dict[str, Any]:
    """PaLoRA or PaMaL through the official ``_multimnist.py`` assembly and ``MultiForwardEnsembleTrainer``."""
    ours, cnet, _, spec = build_ours(method, SETUP)
    num_tasks = spec.num_tasks
    window = ours.hparams.window
    method_config = {k: v for k, v in settings["method"].items() if k != "name"}
    method_config["num"] = window  # official num = 1 cannot run the deterministic annealing sampler
    sampler_config = {k: v for k, v in settings["ray_sampler"].items() if k not in ("name", "_target_")}
    task_names = list(spec.objective_names)
    with official_code(official) as load, contextlib.redirect_stdout(io.StringIO()):
        samplers = load("src.callbacks.methods.utils.samplers")
        lenet = load("src.models.factory.lenet")
        base_model = load("src.models.base_model")
        losses_module = load("src.utils.losses")
        trainer_module = load("src.trainer.multi_forward_ensemble_trainer")
        callback_cls = getattr(load(f"src.callbacks.methods.{method}"), {"palora": "PaLoRA", "pamal": "PaMaL"}[method])
        sampler = samplers.AnnealingSampler(**sampler_config, num=window, num_tasks=num_tasks)
        drawn = record_draws(sampler)
        callback = callback_cls(**method_config, ray_sampler=sampler, num_tasks=num_tasks)
        model = base_model.SharedBottom(
            encoder=lenet.MultiLeNetR(in_channels=1), decoder=lenet.MultiLeNetO(), task_names=task_names
        )
        model = callback.configure_model(model)
        if method == "palora":
            correspondence = palora_correspondence(cnet, num_tasks)
        else:
            correspondence = pamal_correspondence(cnet.target.net, num_tasks, task_names)
        load_into(model, dict(cnet.named_parameters()), correspondence)
        initial = checksum(regrouped(model, correspondence).values())
        optimizer = torch.optim.Adam(callback.configure_param_groups(model, lr=settings["lr"]), lr=settings["lr"])
        defaults = {
            name: p.default
            for name, p in inspect.signature(callback_cls).parameters.items()
            if p.default is not inspect.Parameter.empty
        }
        steps: list[dict[str, Any]] = []
        recorder = _Recorder(lambda trainer: steps.append(_pfl_step(trainer, model, correspondence, drawn)))
        trainer = trainer_module.MultiForwardEnsembleTrainer(
            model=model,
            benchmark=FakeBenchmark(task_names, official_batches(spec, as_dict=True)),
            method=callback,
            loss_fn=losses_module.MultiTaskCrossEntropyLoss(),
            optimizer=optimizer,
            callbacks=[recorder],
            gpu=None,
            validate_every_n=1,
        )
        trainer.fit(epochs=1)
        final = tensor_checksums(regrouped(model, correspondence))
    for k, step in enumerate(steps):
        if abs(step["t"] - training_progress(k, SETUP["total_steps"])) > 1e-12:
            raise SystemExit(f"error: official t {step['t']} at step {k + 1} is not bench.train.loop.training_progress")
    return {
        "initial_checksum": initial,
        "steps": steps,
        "final_tensors": final,
        "official_trainer": "src/trainer/multi_forward_ensemble_trainer.py (training_step1)",
        "official_method_config": method_config,
        "official_method_defaults": defaults,
        "official_lr_numel": lr_numel(optimizer),
        "official_sampler": {"class": "AnnealingSampler", **sampler_config, "num": window},
    }


def lr_numel(optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """How many parameter elements the optimizer steps at each learning rate."""
    out: dict[str, int] = {}
    for group in optimizer.param_groups:
        key = repr(float(group["lr"]))
        out[key] = out.get(key, 0) + sum(p.numel() for p in group["params"])
    return out


class _Recorder:
    """An official callback that hands the trainer to ``record`` after every optimizer step."""

    def __init__(self, record: Callable[[Any], None]) -> None:
        self.record = record

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)

    def connect(self, trainer: Any) -> None:
        pass

    def on_after_optimizer_step(self, trainer: Any, *args: Any, **kwargs: Any) -> None:
        self.record(trainer)


def _pfl_step(trainer: Any, model: nn.Module, correspondence: Correspondence, drawn: list) -> dict[str, Any]:
    t, rays = drawn[-1]
    return {
        "t": t,
        "rays": rays.tolist(),
        "losses": losses_matrix(trainer.losses),
        "checksum": checksum(regrouped(model, correspondence).values()),
    }


def pamal_repo_run(pamal: Path, rays: list[list[list[float]]], cnet: nn.Module, lr: float) -> dict[str, Any]:
    """nik-dim/pamal's ``SimplexWeightEnsemble`` + ``MultiForwardEnsembleTrainer`` on the same
    weights, batches and rays (its own Dirichlet draws replaced by ``rays``), regulariser settings
    of its MultiMNIST config (temperature 1, reg_coefficient 0)."""
    settings = read_config(pamal / "configs" / "experiment" / "multimnist" / "method" / "pamal.yaml")
    spec = DATASETS.get(SETUP["dataset"])
    num_tasks = spec.num_tasks
    queue = [torch.tensor(ray) for step in rays for ray in step]
    with official_code(pamal) as load, contextlib.redirect_stdout(io.StringIO()):
        lenet = load("src.models.factory.lenet")
        base_model = load("src.models.base_model")
        ensemble_module = load("src.ll.weight_ensemble")
        weight_methods = load("src.methods.pamal_weight_methods")
        losses_module = load("src.utils.losses")
        trainer_module = load("src.trainer.multi_forward_ensemble_trainer")
        model = base_model.SharedBottom(
            encoder=lenet.MultiLeNetR(in_channels=1), decoder=lenet.MultiLeNetO(), num_tasks=num_tasks
        )
        ensemble = ensemble_module.SimplexWeightEnsemble(
            model=model,
            num_tasks=num_tasks,
            reinit_flag=settings["reinit_flag"],
            validate_models=settings["validate_models"],
            p=settings["p"],
        )
        ensemble.sample_alpha = lambda: queue.pop(0)
        correspondence = pamal_correspondence(
            cnet.target.net, num_tasks, [str(k) for k in range(num_tasks)], prefix="model."
        )
        load_into(ensemble, dict(cnet.named_parameters()), correspondence)
        method = weight_methods.PaMaLMETHODS[settings["inner_method"]](num_tasks=num_tasks)
        seen: list[Tensor] = []
        weighted = method.get_weighted_loss

        def recording_loss(losses: list[Tensor], **kwargs: Any) -> Any:
            seen.append(torch.stack([loss.detach() for loss in losses]))
            return weighted(losses=losses, **kwargs)

        method.get_weighted_loss = recording_loss
        steps: list[dict[str, Any]] = []

        def record(trainer: Any) -> None:
            per_ray = seen[-settings["num"] :]
            steps.append(
                {
                    "losses": [row.tolist() for row in per_ray],
                    "checksum": checksum(regrouped(ensemble, correspondence).values()),
                }
            )

        trainer = trainer_module.MultiForwardEnsembleTrainer(
            num=settings["num"],
            temperature=settings["temperature"],
            reg_coefficient=settings["reg_coefficient"],
            model=ensemble,
            benchmark=FakeBenchmark(list(spec.objective_names), []),
            method=method,
            optimizer=torch.optim.Adam(ensemble.parameters(), lr=lr),
            loss_fn=losses_module.MultiTaskCrossEntropyLoss(),
            callbacks=[_Recorder(record)],
            gpu=None,
        )
        trainer.train_loader = official_batches(spec, as_dict=False)
        trainer.epoch = 1
        trainer.train_epoch()
    if queue:
        raise SystemExit(f"error: nik-dim/pamal drew {len(queue)} rays fewer than recorded")
    commit = subprocess.run(
        ["git", "-C", str(pamal), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return {
        "repo": "nik-dim/pamal",
        "commit": commit,
        "config": settings,
        "trainer": "src/trainer/multi_forward_ensemble_trainer.py (training_step), src/ll/weight_ensemble.py",
        "rays": "the nik-dim/palora run's rays, in order, in place of its Dirichlet draws",
        "steps": steps,
    }


def single_model_run(
    official: Path,
    make_method: Callable[[Callable[[str], types.ModuleType]], Any],
    cnet_params: dict[str, Tensor],
    net: nn.Module,
    prefix: str,
    lr: float,
) -> dict[str, Any]:
    """One official ``BaseTrainer`` epoch of a single-model method (MGDA, LinearScalarization)."""
    spec = DATASETS.get(SETUP["dataset"])
    task_names = list(spec.objective_names)
    with official_code(official) as load, contextlib.redirect_stdout(io.StringIO()):
        lenet = load("src.models.factory.lenet")
        base_model = load("src.models.base_model")
        losses_module = load("src.utils.losses")
        trainer_module = load("src.trainer.base_trainer")
        method = make_method(load)
        model = base_model.SharedBottom(
            encoder=lenet.MultiLeNetR(in_channels=1), decoder=lenet.MultiLeNetO(), task_names=task_names
        )
        model = method.configure_model(model, data_module=None)
        correspondence = plain_correspondence(net, prefix)
        load_into(model, cnet_params, correspondence)
        initial = checksum(regrouped(model, correspondence).values())
        weights: list[Tensor] = []
        solver = getattr(method, "solver", None)
        if solver is not None:
            # The solver's float64 simplex weights (the step uses them times T); the callback logs float32.
            solve = solver.find_min_norm_element

            def recording_solve(*args: Any, **kwargs: Any) -> Any:
                sol, min_norm = solve(*args, **kwargs)
                weights.append(torch.as_tensor(sol, dtype=torch.float64))
                return sol, min_norm

            solver.find_min_norm_element = recording_solve
        optimizer = torch.optim.Adam(method.configure_param_groups(model, lr=lr), lr=lr)
        steps: list[dict[str, Any]] = []

        def record(trainer: Any) -> None:
            step = {"losses": losses_matrix([trainer.losses]), "checksum": checksum(model.parameters())}
            if weights:
                step["weights"] = weights[-1].tolist()
            steps.append(step)

        trainer = trainer_module.BaseTrainer(
            model=model,
            benchmark=FakeBenchmark(task_names, official_batches(spec, as_dict=True)),
            method=method,
            loss_fn=losses_module.MultiTaskCrossEntropyLoss(),
            optimizer=optimizer,
            callbacks=[_Recorder(record)],
            gpu=None,
        )
        trainer.fit(epochs=1)
    return {"initial_checksum": initial, "steps": steps}


def mgda_runs(official: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Official ``MGDA`` callback at its default (params shared, normalization none) and the two
    variants ours also has: params rep (our ``mgda-ub``) and normalization loss."""
    config = {k: v for k, v in settings["method"].items() if k != "name"}
    runs: dict[str, Any] = {}
    variants = {
        "default": ("mgda", {}, config),
        "mgda-ub": ("mgda-ub", {}, {**config, "params": "rep"}),
        "normalize=loss": ("mgda", {"method.normalize": "loss"}, {**config, "normalization": "loss"}),
    }
    for label, (ours_name, overrides, official_kwargs) in variants.items():
        _, cnet, _, spec = build_ours(ours_name, SETUP, overrides)
        run = single_model_run(
            official,
            lambda load, kw=official_kwargs, n=spec.num_tasks: load("src.callbacks.methods.mgda").MGDA(n, **kw),
            dict(cnet.named_parameters()),
            cnet.net,
            "net.",
            settings["lr"],
        )
        clipped = [w for step in run["steps"] for w in step["weights"] if min(w, 1 - w) < 0.0011]
        runs[label] = {
            "method": ours_name,
            "overrides": overrides,
            "official_kwargs": official_kwargs,
            "official_solver_clipped": bool(clipped),
            **run,
        }
    unrunnable = {}
    with official_code(official) as load:
        solvers = load("src.callbacks.methods.utils.min_norm_solvers")
        grads = {0: [torch.ones(3)], 1: [torch.arange(3.0)]}
        for normalization in ("norm", "loss+"):
            try:
                solvers.gradient_normalizers(grads, torch.ones(2), normalization)
            except Exception as err:  # noqa: BLE001 - what the official code raises is the finding
                unrunnable[normalization] = f"{type(err).__name__}: {err}"
    default = runs.pop("default")
    return {
        **default,
        "variants": runs,
        "official_normalizations_that_raise": unrunnable,
    }


def ls_runs(official: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Official ``LinearScalarization(task_weights=ray)`` runs, one per LS member of ours."""
    overrides = {"method.rays": LS_RAYS, "method.stacking": "loop"}
    _, cnet, _, spec = build_ours("ls", SETUP, overrides)
    runs = []
    for k, ray in enumerate(LS_RAYS):
        member = cnet.members[k]
        runs.append(
            single_model_run(
                official,
                lambda load, r=ray: load("src.callbacks.methods.ls").LinearScalarization(
                    spec.num_tasks, task_weights=r
                ),
                dict(member.named_parameters()),
                member,
                "",
                settings["lr"],
            )
        )
    steps = []
    for k in range(SETUP["steps"]):
        steps.append(
            {
                "rays": LS_RAYS,
                "losses": [run["steps"][k]["losses"][0] for run in runs],
                "member_checksums": [run["steps"][k]["checksum"] for run in runs],
            }
        )
    return {
        "overrides": {"method.rays": LS_RAYS},
        "initial_member_checksums": [run["initial_checksum"] for run in runs],
        "steps": steps,
        "official_trainer": "src/trainer/base_trainer.py (one run per ray)",
    }


def preset_checks(method: str, settings: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Our hyperparameter names -> the official values they must equal (config, else the official
    class's default)."""
    config, sampler = settings["method"], settings["ray_sampler"]
    checks = {"mul": sampler["mul"], "eps": sampler["epsilon"], "sampler": "annealing"}
    checks |= {"reg_coefficient": config["reg_coefficient"], "p": config["p"]}
    if method == "palora":
        checks |= {"rank": config["rank"], "reweight_lr": config["reweight_lr"], "alpha": defaults["lora_alpha"]}
        checks["inner_method"] = config["inner_method"]
    else:
        checks |= {"window": config["num"], "reinit": config["reinit_flag"], "inner_method": config["inner_method"]}
    return checks


def produce(official: Path, method: str) -> dict[str, Any]:
    settings = official_settings(official, method)
    setup = dict(SETUP, lr=settings["lr"], official_config=settings)
    torch.set_num_threads(1)
    if method in ("palora", "pamal"):
        run = palora_repo_pfl(official, method, settings)
        setup["preset_checks"] = preset_checks(method, settings, run["official_method_defaults"])
        if method == "pamal":
            pamal = official.parent / "nik-dim+pamal"
            if not pamal.is_dir():
                raise SystemExit(f"error: the PaMaL record also runs nik-dim/pamal; check it out at {pamal}")
            cnet = build_ours("pamal", SETUP)[1]
            run["pamal_repository"] = pamal_repo_run(
                pamal, [step["rays"] for step in run["steps"]], cnet, settings["lr"]
            )
    elif method == "mgda":
        run = mgda_runs(official, settings)
    elif method == "ls":
        run = ls_runs(official, settings)
        setup["overrides"] = run.pop("overrides")
    else:
        raise SystemExit(f"error: {method} is not produced from {REPO}")
    return {"repo": REPO, "setup": setup, **run}
