"""Lockstep producer for ``phn-ls`` on the real ResNet-18 (UTKFace-shaped input): the official chunked
hypernetwork, ResNet target and trainer.

Run by ``tools/official_lockstep.py --official <checkout of nik-dim/pamal> --method phn-ls --backbone
resnet18``; the record is ``tests/lockstep/phn-ls-resnet18.json`` and its replay
``tests/test_lockstep_phn_backbones.py``.

Which official code, and why: nik-dim/palora's PHN cannot train (``ParetoHyperNetwork.configure_model``
raises ``NotImplementedError``, FIDELITY.md "PHN-LS and PHN-EPO"), but nik-dim/pamal's UTKFace PHN runs
end to end: ``utkface.py`` builds ``HyperModel(dm.name)`` (``src/models/factory/phn/phn_wrappers.py``:
``ResnetHyper(preference_dim=3)`` and ``ResNetTarget()``), Adam over ``model.parameters()`` at the
experiment's lr, and ``src/utils/_selectors.py`` ``get_trainer`` gives ``MultiSolutionTrainer(alpha)``
(one ``Dirichlet(alpha)`` ray per step from torch's global generator) with ``HypernetMethod(num_tasks,
model, solver)`` (``src/methods/multi_solution_weight_methods.py``: the ``LinearScalarizationSolver`` of
``src/models/factory/phn/solvers.py``, AvivNavon's ``(losses * ray).sum()``) and ``UTKFaceMultiTaskLoss``
(Huber on age, cross-entropy on gender and race). So this record runs that trainer, as the COSMOS and
PaMaL records run nik-dim/pamal's. nik-dim/pamal's ``phn_resnet.py`` is nik-dim/palora's (the file
FIDELITY.md cites) reformatted: the producer compares the two files' syntax trees when the palora
checkout lies beside (``nik-dim+palora``) and records the result.

Our model is the preset's (``bench/presets/utkface.toml`` ``[phn-ls.method]``) built from a seed by
``tests/test_lockstep_backbones.build_ours`` on a 32x32 input; its hypernetwork is copied into the
official ``ResnetHyper`` by the explicit map :data:`HYPER_MAP` (ray embedding = the official preference
embedding transposed, chunk head = the 11 ``ws`` matrices stacked). The official trainer runs on
``tests/test_lockstep_backbones.batches`` (as ``tools/lockstep_backbones.official_batches`` hands them
to nik-dim/pamal: ``(x, (age z, gender, race))``). Its own Dirichlet draws are recorded and the replay
feeds them to ours. Recorded per step: the ray, the losses, the scalarised loss, the hypernetwork's
parameter checksum (under our names) and its update checksum; besides, the checksum of the initial
hypernetwork, of every generated target tensor at the first step under our names (which pins the order
in which the flat vector fills the tensors) and of every hypernetwork tensor after the last step.

Adaptations, none touching the official arithmetic: (1) the official target is for 64x64 inputs
(``avg_pool2d(4)`` of an 8x8 map, heads reading 2,048 features); at 32x32 the map is 4x4 and the heads
read 512, so the hypernetwork's ``layer_to_shape`` entries of the three head weights become
``[C, 512]`` (the target's own, unused ``nn.Linear(2048, C)`` heads are left as they are: the forward with
generated weights never reads them). The hypernetwork still fills 102 of its 105 chunks of 110,000.
(2) ``MultiSolutionTrainer`` moves each ray with ``.cuda()``; without CUDA that call returns the tensor
(``tools/lockstep_cosmos.cuda_calls_stay_on_cpu``), and the trainer runs with ``gpu=None``. (3) The
modules the trainer imports but these steps never call (wandb, hydra, pymoo's factory, cvxopt, ...) are
stubbed and the packages' ``__init__`` files skipped (``tools/lockstep_cosmos.import_official``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.core.fidelity import checksum  # noqa: E402
from tests.test_lockstep_backbones import build_ours, update_checksum  # noqa: E402
from tools.lockstep_backbones import official_batches  # noqa: E402
from tools.lockstep_cosmos import _DataModule, cuda_calls_stay_on_cpu, import_official  # noqa: E402
from tools.lockstep_palora import _Recorder, read_config  # noqa: E402

CHECKOUT = "nik-dim/pamal"
"""What ``--official`` names: the repository whose trainer runs (the record's repo too)."""
REPO = "nik-dim/pamal"
SETUP: dict[str, Any] = {
    "method": "phn-ls",
    "dataset": "utkface",
    "backbone": "resnet18",
    "input_shape": [3, 32, 32],
    "seed": 0,
    "data_seed": 1,
    "ray_seed": 2,
    "batch_size": 4,
    "steps": 3,
}
"""``seed`` builds our model, ``data_seed`` draws the batches, ``ray_seed`` seeds torch's global generator
before the official trainer's Dirichlet draws."""
OFFICIAL_HEADS = {"age": "task1", "gender": "task2", "race": "task3"}
"""Our objective -> the official ``ResNetTarget`` head (``UTKFaceMultiTaskLoss``: age first, then the
cross-entropy tasks in the target's order; nik-dim/pamal's UTKFace targets are ``(age, gender, race)``)."""
HYPER_MAP: dict[str, list[str]] = {
    "ray_embedding.weight": ["preference_embedding_matrix.weight"],
    "chunk_embeddings": ["chunk_embedding_matrix.weight"],
    **{f"ray_mlp.{k}.{kind}": [f"fc.{k}.{kind}"] for k in (0, 2, 4) for kind in ("weight", "bias")},
    "chunk_head.weight": [f"ws.{i}" for i in range(11)],
}
"""Our hypernetwork parameter -> the official ``ResnetHyper`` ones: the preference embedding [T, 32] is our
ray embedding's weight [32, T] transposed; the ``ws`` matrices [10,000, 100] stacked are our chunk head
(a chunk is ``cat([F.linear(rep, w) for w in ws])``)."""


def official_view(hnet: nn.Module) -> dict[str, Tensor]:
    """The official hypernetwork's parameters arranged as ours, under our names."""
    params = dict(hnet.named_parameters())
    out = {}
    for ours, theirs in HYPER_MAP.items():
        tensors = [params[t] for t in theirs]
        if ours == "ray_embedding.weight":
            out[ours] = tensors[0].T
        else:
            out[ours] = torch.cat(tensors) if len(tensors) > 1 else tensors[0]
    return out


def copy_ours_into(hnet: nn.Module, ours: dict[str, Tensor]) -> None:
    """Load our hypernetwork's tensors into the official one (every official parameter covered)."""
    params = dict(hnet.named_parameters())
    covered = {t for theirs in HYPER_MAP.values() for t in theirs}
    if covered != set(params) or set(HYPER_MAP) != set(ours):
        raise SystemExit(
            f"error: HYPER_MAP misses {sorted(covered ^ set(params)) or sorted(set(HYPER_MAP) ^ set(ours))}"
        )
    with torch.no_grad():
        for name, theirs in HYPER_MAP.items():
            value = ours[name].detach()
            if name == "ray_embedding.weight":
                value = value.T
            parts = value.split(params[theirs[0]].shape[0]) if len(theirs) > 1 else [value]
            for target, part in zip(theirs, parts, strict=True):
                if params[target].shape != part.shape:
                    raise SystemExit(f"error: {target} is {tuple(params[target].shape)}, ours {tuple(part.shape)}")
                params[target].copy_(part)
    view = official_view(hnet)
    if not all(torch.equal(view[n], ours[n]) for n in ours):
        raise SystemExit("error: the official hypernetwork does not read back as ours after the copy")


def target_name(ours: str) -> str:
    """Our target parameter -> the official ``layer_to_shape`` key (``encoder.`` -> ``resnet.``, heads)."""
    if ours.startswith("encoder."):
        return "resnet." + ours.removeprefix("encoder.")
    _, task, kind = ours.split(".")
    return f"{OFFICIAL_HEADS[task]}.{kind}"


def adapt_heads(hnet: nn.Module, features: int) -> dict[str, list[int]]:
    """Adaptation (1): the head weights the hypernetwork generates read ``features`` (512 at 32x32)."""
    changed = {}
    for name, shape in list(hnet.layer_to_shape.items()):
        if name.endswith(".weight") and name.startswith("task"):
            hnet.layer_to_shape[name] = torch.Size([shape[0], features])
            changed[name] = [int(shape[0]), features]
    return changed


def check_layer_order(hnet: nn.Module, shapes: dict[str, torch.Size]) -> None:
    """The official ``layer_to_shape`` fills the same tensors in the same order as our ``shapes``."""
    theirs = [(name, tuple(shape)) for name, shape in hnet.layer_to_shape.items()]
    ours = [(target_name(name), tuple(shape)) for name, shape in shapes.items()]
    if theirs != ours:
        first = next(k for k, (a, b) in enumerate(zip(theirs, ours, strict=False)) if a != b)
        raise SystemExit(f"error: layer order differs at {first}: official {theirs[first]}, ours {ours[first]}")


def _commit(folder: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def palora_comparison(official: Path) -> dict[str, Any] | None:
    """Whether nik-dim/palora's ``phn_resnet.py`` (beside the checkout) parses to the same syntax tree."""
    palora = official.parent / "nik-dim+palora"
    relative = "src/models/factory/phn/phn_resnet.py"
    if not (palora / relative).is_file():
        return None
    trees = [ast.dump(ast.parse((root / relative).read_text())) for root in (official, palora)]
    return {
        "repo": "nik-dim/palora",
        "commit": _commit(palora),
        "file": relative,
        "same_syntax_tree": trees[0] == trees[1],
    }


def settings(official: Path) -> dict[str, Any]:
    experiment = official / "configs" / "experiment" / "utkface"
    return {
        "lr": read_config(experiment / "utkface.yaml")["optimizer"]["lr"],
        "method": read_config(experiment / "method" / "phn.yaml"),
        "data_batch_size": read_config(official / "configs" / "general" / "data" / "utkface.yaml")["batch_size"],
    }


def produce(official: Path, method: str) -> dict[str, Any]:
    """``method`` is the record name ``phn-ls-resnet18``."""
    if method != "phn-ls-resnet18":
        raise SystemExit(f"error: tools/lockstep_phn_backbones.py records phn-ls-resnet18, not {method!r}")
    if not (official / "src" / "methods" / "multi_solution_weight_methods.py").is_file():
        raise SystemExit(f"error: {official} is not a nik-dim/pamal checkout (its PHN trainer runs this record)")
    torch.set_num_threads(1)
    setup = dict(SETUP)
    config = settings(official)
    if config["method"]["name"] != "phn" or config["method"]["solver"] != "linear":
        raise SystemExit(f"error: nik-dim/pamal's UTKFace PHN config is not phn-ls: {config['method']}")
    ours, cnet, _, spec = build_ours(setup["method"], setup)
    objectives = list(spec.objective_names)
    if objectives != list(OFFICIAL_HEADS):
        raise SystemExit(f"error: our UTKFace objectives {objectives}, the map expects {list(OFFICIAL_HEADS)}")

    o = import_official(official)
    import src.methods.multi_solution_weight_methods as weight_methods
    import src.models.factory.phn.phn_wrappers as wrappers
    import src.utils.losses as losses_module

    model = wrappers.HyperModel("UTKFace")  # utkface.py: HyperModel(dm.name), dm.name == "UTKFace"
    hnet = model.hnet
    features = 512 * (setup["input_shape"][1] // 32) * (setup["input_shape"][2] // 32)
    adapted = adapt_heads(hnet, features)
    check_layer_order(hnet, cnet.target.shapes)
    copy_ours_into(hnet, dict(cnet.hyper.named_parameters()))
    initial = checksum(official_view(hnet).values())
    target_numel = sum(s.numel() for s in hnet.layer_to_shape.values())
    chunk_size = len(hnet.ws) * hnet.ws[0].shape[0]

    generated: dict[str, dict[str, float]] = {}
    forward = hnet.forward
    inverse = {target_name(n): n for n in cnet.target.shapes}

    def recording_forward(preference: Tensor) -> dict[str, Tensor]:
        out = forward(preference)
        if not generated:
            generated.update({inverse[name]: checksum([t]) for name, t in out.items()})
        return out

    hnet.forward = recording_forward

    steps: list[dict[str, Any]] = []
    previous = {n: t.detach().clone() for n, t in official_view(hnet).items()}

    def record(trainer: Any) -> None:
        if trainer.method.ray is not trainer.ray or model.ray is not trainer.ray:
            raise SystemExit("error: the trainer's ray is not the one the model and the solver read")
        now = {n: t.detach().clone() for n, t in official_view(hnet).items()}
        steps.append(
            {
                "rays": [trainer.ray.tolist()],
                "losses": [trainer.losses.detach().tolist()],
                "loss": float(trainer.loss.detach()),
                "checksum": checksum(now.values()),
                "update": update_checksum(now.values(), [previous[n] for n in now]),
            }
        )
        previous.update(now)

    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])  # utkface.py: get_optimizer
    num_tasks = len(objectives)
    trainer = o["MultiSolutionTrainer"](
        config["method"]["alpha"],
        model=model,
        benchmark=_DataModule(num_tasks, official_batches(setup, "pamal")),
        optimizer=optimizer,
        gpu=None,
        callbacks=[_Recorder(record)],
        loss_fn=losses_module.UTKFaceMultiTaskLoss(),
        method=weight_methods.HypernetMethod(num_tasks, model, config["method"]["solver"]),
    )
    torch.manual_seed(setup["ray_seed"])  # the trainer's Dirichlet draws use the global generator
    with cuda_calls_stay_on_cpu():
        trainer.fit(epochs=1)
    if len(steps) != setup["steps"] or not generated:
        raise SystemExit(f"error: the official trainer took {len(steps)} steps, expected {setup['steps']}")

    checks = {
        "alpha": float(config["method"]["alpha"]),
        "chunk_size": chunk_size,
        "chunks": hnet.num_chunks,
        "hidden": hnet.fc[0].out_features,
        "chunk_embedding": hnet.chunk_embedding_matrix.embedding_dim,
    }
    return {
        "repo": REPO,
        "setup": {**setup, "lr": config["lr"], "official_config": config, "preset_checks": checks},
        "covers": (
            "nik-dim/pamal's UTKFace PHN end to end: HyperModel (ResnetHyper: 105 chunks of 11 x 10,000, computed "
            "one at a time; ResNetTarget: functional ResNet-18 with batch-statistics BatchNorm, avg_pool2d(4), "
            "three linear heads), MultiSolutionTrainer's Dirichlet ray (fed to ours), UTKFaceMultiTaskLoss, "
            "HypernetMethod with LinearScalarizationSolver, Adam; heads adapted to the 32x32 input"
        ),
        "official_trainer": (
            "utkface.py (HyperModel, Adam), src/utils/_selectors.py get_trainer (MultiSolutionTrainer, "
            "HypernetMethod), src/models/factory/phn/phn_resnet.py, src/trainer/base_trainer.py training_step"
        ),
        "official_head_shapes_adapted": adapted,
        "official_architecture": {
            "ray_embedding": hnet.preference_embedding_dim,
            "hypernetwork_numel": sum(p.numel() for p in hnet.parameters()),
            "target_numel": target_numel,
            "chunks_used": -(-target_numel // chunk_size),
        },
        "official_phn_resnet_against_palora": palora_comparison(official),
        "initial_checksum": initial,
        "generated_first_step": generated,
        "steps": steps,
        "final_tensors": {n: checksum([t]) for n, t in official_view(hnet).items()},
    }
