"""Lockstep producer for COSMOS against the official nik-dim/pamal trainer (MultiMNIST setting).

Official pieces, imported at run time from the checkout, as ``multimnist.py`` and
``src/utils/_selectors.py`` assemble them for ``method=cosmos``: ``SharedBottom(MultiLeNetR(in_channels=3),
MultiLeNetO())`` wrapped in the ``Upsampler`` of ``src/models/factory/cosmos/upsampler.py``; Adam on
all its parameters at the experiment's lr; ``MultiSolutionTrainer`` (one Dirichlet(alpha) ray per step
from torch's global generator) with the ``Cosmos`` weight method of
``src/methods/multi_solution_weight_methods.py``; ``MultiTaskCrossEntropyLoss``. The method config
is ``configs/experiment/multimnist/method/cosmos.yaml`` (lamda 8, alpha 1).

nik-dim/pamal rather than nik-dim/palora: the latter's COSMOS stops at its first forward
(``Upsampler.forward`` passes ``return_embedding`` positionally into ``SharedBottom``'s ``ray``, and
``MultiLeNetR`` hands ``ray=True`` to a plain ``Conv2d``), and its MultiMNIST experiment's default
annealing sampler refuses the ``num: 1`` of its COSMOS config.

Our model is built from a seed (as ``bench.train.runner`` does), its weights are copied into the official
model by the explicit name map :func:`name_map`, and the official trainer runs on
:func:`bench.core.fidelity.seeded_batches`. Our sampler does not draw from torch's global generator, so
the record keeps the official rays and the test feeds them to our step. The trainer moves each ray
with ``.cuda()``; on a machine without CUDA that call is made a no-op for the run. Modules the
trainer imports but these steps never use (wandb, hydra, rotograd, cvxopt, ...) are stubbed, and the
official packages' ``__init__`` files, which import every dataset and model, are skipped.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.backbones import create_backbone  # noqa: E402
from bench.core.fidelity import checksum, seeded_batches  # noqa: E402
from bench.core.registry import DATASETS, METHODS  # noqa: E402
from bench.train.config import resolve  # noqa: E402

SETUP: dict[str, Any] = {
    "dataset": "multimnist",
    "backbone": "multilenet",
    "seed": 0,
    "data_seed": 1,
    "ray_seed": 2,
    "batch_size": 8,
    "steps": 6,
    "total_steps": 6,
    "lr": 1e-3,
    "official_config": {
        "method": "configs/experiment/multimnist/method/cosmos.yaml (name cosmos, lamda 8, alpha 1)",
        "optimizer": "configs/experiment/multimnist/multimnist.yaml (Adam, lr 0.001)",
        "trainer": "src/utils/_selectors.py get_trainer: MultiSolutionTrainer(alpha) with Cosmos(lamda)",
        "model": "multimnist.py: Upsampler(2, SharedBottom(MultiLeNetR(in_channels=3), MultiLeNetO()), [1, 28, 28])",
    },
    "preset_checks": {"reg_coefficient": 8.0, "alpha": 1.0},
}

OURS_TO_OFFICIAL: dict[str, str] = {
    "net.encoder.0.weight": "child_model.encoder.conv1.weight",
    "net.encoder.0.bias": "child_model.encoder.conv1.bias",
    "net.encoder.3.weight": "child_model.encoder.conv2.weight",
    "net.encoder.3.bias": "child_model.encoder.conv2.bias",
    "net.encoder.7.weight": "child_model.encoder.fc.weight",
    "net.encoder.7.bias": "child_model.encoder.fc.bias",
    "ray_map.layers.0.weight": "transposed_cnn.0.weight",
    "ray_map.layers.2.weight": "transposed_cnn.2.weight",
}
"""Our parameter name -> the official one (heads: ``net.heads.<task k>.{0,2}`` -> ``decoders.<k>.fc{1,2}``)."""

STUBBED = (
    "wandb",
    "coloredlogs",
    "hydra",
    "hydra.core",
    "hydra.core.hydra_config",
    "omegaconf",
    "rotograd",
    "pymoo.factory",
    "cvxopt",
)
SKIPPED_INITS = (
    "src",
    "src.datasets",
    "src.methods",
    "src.models",
    "src.models.factory",
    "src.trainer",
    "src.utils",
    "src.utils.callbacks",
)


class _Stub(types.ModuleType):
    """A module whose every attribute is another stub and which does nothing when called."""

    def __getattr__(self, name: str) -> _Stub:
        if name.startswith("__"):
            raise AttributeError(name)
        stub = _Stub(f"{self.__name__}.{name}")
        setattr(self, name, stub)
        return stub

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        return None


def import_official(official: Path) -> dict[str, Any]:
    """The official classes this lockstep runs, imported from ``official``."""
    sys.path.insert(0, str(official))
    for name in STUBBED:
        sys.modules.setdefault(name, _Stub(name))
    sys.modules["rotograd"].RotoGrad = type("RotoGrad", (nn.Module,), {})  # type: ignore[attr-defined]
    for package in SKIPPED_INITS:
        module = types.ModuleType(package)
        module.__path__ = [str(official / package.replace(".", "/"))]
        sys.modules[package] = module
    import src.trainer.base_trainer as base_trainer
    from src.methods.multi_solution_weight_methods import Cosmos
    from src.models.base_model import SharedBottom
    from src.models.factory.cosmos.upsampler import Upsampler
    from src.models.factory.lenet import MultiLeNetO, MultiLeNetR
    from src.trainer.multi_solution_trainer import MultiSolutionTrainer
    from src.utils.callbacks.base_callback import BaseCallback
    from src.utils.losses import MultiTaskCrossEntropyLoss

    base_trainer.install_logging = lambda *args, **kwargs: None  # coloredlogs set-up only
    return {
        "Cosmos": Cosmos,
        "SharedBottom": SharedBottom,
        "Upsampler": Upsampler,
        "MultiLeNetR": MultiLeNetR,
        "MultiLeNetO": MultiLeNetO,
        "MultiSolutionTrainer": MultiSolutionTrainer,
        "BaseCallback": BaseCallback,
        "MultiTaskCrossEntropyLoss": MultiTaskCrossEntropyLoss,
    }


@contextlib.contextmanager
def cuda_calls_stay_on_cpu() -> Iterator[None]:
    """``Tensor.cuda()`` returns the tensor itself while CUDA is absent (the trainer's ray transfer)."""
    if torch.cuda.is_available():
        yield
        return
    original = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.Tensor.cuda = original  # type: ignore[method-assign]


def name_map(tasks: list[str]) -> dict[str, str]:
    heads = {}
    for k, task in enumerate(tasks):
        for ours, theirs in (("0", "fc1"), ("2", "fc2")):
            for kind in ("weight", "bias"):
                heads[f"net.heads.{task}.{ours}.{kind}"] = f"child_model.decoders.{k}.{theirs}.{kind}"
    return {**OURS_TO_OFFICIAL, **heads}


class _DataModule:
    """What the official trainer reads from a MultiMNIST data module."""

    def __init__(self, num_tasks: int, batches: list[Any]) -> None:
        self.num_tasks, self.batches = num_tasks, batches

    def train_dataloader(self) -> list[Any]:
        return self.batches

    def val_dataloader(self) -> None:
        return None


def recorder(base: type) -> Any:
    """An official-trainer callback that keeps, after every optimizer step, the ray, the per-task
    losses, the scalarised loss and a checksum of all parameters."""

    class Recorder(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.steps: list[dict[str, Any]] = []

        def connect(self, trainer: Any) -> None:
            pass

        def on_after_optimizer_step(self, trainer: Any, *args: Any, **kwargs: Any) -> None:
            self.steps.append(
                {
                    "rays": [trainer.ray.tolist()],
                    "losses": [trainer.losses.tolist()],
                    "loss": float(trainer.loss.detach()),
                    "checksum": checksum(trainer.model.parameters()),
                }
            )

    return Recorder()


def produce(official: Path, method: str) -> dict[str, Any]:
    if method != "cosmos":
        raise SystemExit(f"error: tools/lockstep_cosmos.py records cosmos, not {method!r}")
    o = import_official(official)
    setup = dict(SETUP)
    cfg = resolve("cosmos", setup["dataset"], seed=setup["seed"])
    spec = DATASETS.get(setup["dataset"])
    ours = METHODS.get("cosmos")(cfg.hparams, spec)
    torch.manual_seed(setup["seed"])
    cnet = ours.build(lambda **kw: create_backbone(setup["backbone"], spec, **kw))
    tasks = list(spec.objective_names)
    if cfg.train.lr != setup["lr"] or cfg.hparams.reg_coefficient != 8.0 or cfg.hparams.alpha != 1.0:
        raise SystemExit(f"error: our multimnist cosmos preset differs from the official config: {cfg}")

    raw = seeded_batches(spec.input_shape, (10,) * len(tasks), setup["batch_size"], setup["steps"], setup["data_seed"])
    dm = _DataModule(len(tasks), [(x, tuple(ys)) for x, ys in raw])
    in_channels = spec.input_shape[0] + len(tasks)
    child = o["SharedBottom"](
        encoder=o["MultiLeNetR"](in_channels=in_channels), decoder=o["MultiLeNetO"](), num_tasks=2
    )
    model = o["Upsampler"](len(tasks), child, input_dim=list(spec.input_shape))

    mapping = name_map(tasks)
    theirs = dict(model.named_parameters())
    if sorted(mapping.values()) != sorted(theirs):
        raise SystemExit(f"error: name map does not cover the official parameters {sorted(theirs)}")
    with torch.no_grad():
        for name, p in cnet.named_parameters():
            theirs[mapping[name]].copy_(p)
    initial = checksum(model.parameters())

    optimizer = torch.optim.Adam(model.parameters(), lr=setup["lr"])
    record = recorder(o["BaseCallback"])
    trainer = o["MultiSolutionTrainer"](
        cfg.hparams.alpha,
        model=model,
        benchmark=dm,
        optimizer=optimizer,
        gpu=None,
        callbacks=[record],
        loss_fn=o["MultiTaskCrossEntropyLoss"](),
        method=o["Cosmos"](len(tasks), cfg.hparams.reg_coefficient),
    )
    torch.manual_seed(setup["ray_seed"])  # the trainer's Dirichlet draws use the global generator
    with cuda_calls_stay_on_cpu():
        trainer.fit(epochs=1)

    inverse = {v: k for k, v in mapping.items()}
    return {
        "repo": "nik-dim/pamal",
        "setup": setup,
        "initial_checksum": initial,
        "steps": record.steps,
        "final_tensors": {inverse[name]: checksum([p]) for name, p in model.named_parameters()},
        "rays": "official MultiSolutionTrainer Dirichlet draws (global generator seeded with ray_seed), fed to ours",
    }
