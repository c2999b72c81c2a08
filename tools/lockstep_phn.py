"""Lockstep producer for ``phn-ls`` and ``phn-epo``: the official hypernetworks and solvers, run on
our MultiLeNet target.

The official target networks differ from our MultiLeNet (``methods/phn.py``), so the target is ours
on both sides: the official hypernetwork's output is renamed to our parameter names and applied with
``torch.func.functional_call`` to our MultiLeNet. What runs officially per step is the hypernetwork
forward, the cross-entropy losses of the official trainer (``nn.CrossEntropyLoss``), the official
solver (``LinearScalarizationSolver`` or ``EPOSolver`` with cvxpy/GLPK, from
AvivNavon/pareto-hypernetworks ``phn/solvers.py``) and ``torch.optim.Adam`` over the hypernetwork's
parameters, as in ``experiments/multimnist/trainer.py``. Two hypernetworks are recorded:

- ``steps``: the chunked ``ResnetHyper`` (``experiments/multimnist/models.py``) with 30 chunks of
  2 x 500 values over our MultiLeNet's tensors (its ``layer_to_shape`` set to our names and shapes),
  against ours with ``chunk_size = 1000``, ``chunks = 30``;
- ``unchunked``: one linear head per tensor, nik-dim/palora ``src/models/factory/phn/phn_lenet.py``
  ``LeNetHyper`` (the official hypernetwork whose tensors are those of MultiLeNet; AvivNavon's
  ``LeNetHyper`` generates a different LeNet), against ours with ``chunk_size = 0``. Its checkout is
  found in ``$PHN_PALORA_OFFICIAL`` or next to the AvivNavon one as ``nik-dim+palora``.

Our initial hypernetwork (built from a seed) is copied into the official one by an explicit name map;
batches are :func:`bench.core.fidelity.seeded_batches`; the rays are drawn by our ``train_rays`` from a
seeded generator at :func:`bench.train.loop.training_progress` and recorded, and the official hypernetwork
is fed the same rays (the official trainer draws ``np.random.dirichlet`` from numpy's global state).
The EPO solver needs ``cvxopt`` (GLPK) on the path, e.g. ``pip install --target DIR cvxopt`` and
``PYTHONPATH=DIR``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from bench.backbones import create_backbone
from bench.core.conditioning import parameter_key
from bench.core.fidelity import checksum, load_file_module, seeded_batches
from bench.core.registry import DATASETS, METHODS, load_all
from bench.train.config import apply_overrides
from bench.train.loop import training_progress

SETUP: dict[str, Any] = {
    "dataset": "multimnist",
    "backbone": "multilenet",
    "model_seed": 0,
    "batch_seed": 1,
    "ray_seed": 2,
    "batch_size": 8,
    "steps": 5,
    "lr": 1e-3,
    "alpha": 1.0,
    "chunked": {"chunk_size": 1000, "chunks": 30, "chunk_embedding": 64, "hidden": 100, "num_ws": 2, "w_dim": 500},
    "unchunked": {"chunk_size": 0, "hidden": 100},
}

# nik-dim/palora LeNetHyper output name -> (its head attribute, our MultiLeNet parameter); task j of
# the official code is our objective j (multimnist: top-left, bottom-right).
LENET_MAP = {
    "encoder.conv1.weight": ("conv_1_weights", "encoder.0.weight"),
    "encoder.conv1.bias": ("conv_1_bias", "encoder.0.bias"),
    "encoder.conv2.weight": ("conv_2_weights", "encoder.3.weight"),
    "encoder.conv2.bias": ("conv_2_bias", "encoder.3.bias"),
    "encoder.fc.weight": ("fc_weights", "encoder.7.weight"),
    "encoder.fc.bias": ("fc_bias", "encoder.7.bias"),
}
for _j, _task in enumerate(("top-left", "bottom-right")):
    for _layer, _ours in (("fc1", 0), ("fc2", 2)):
        for _kind, _suffix in (("weight", "weights"), ("bias", "bias")):
            LENET_MAP[f"decoders.{_j}.{_layer}.{_kind}"] = (
                f"task_{_j + 1}_{_layer}_{_suffix}",
                f"heads.{_task}.{_ours}.{_kind}",
            )


def build_ours(method: str, variant: str) -> tuple[Any, Any, Any]:
    """(dataset spec, our method, our PHNNet) for ``variant`` (``chunked`` or ``unchunked``), seeded."""
    load_all()
    spec = DATASETS.get(SETUP["dataset"])
    cls = METHODS.get(method)
    keys = ("chunk_size", "chunks", "chunk_embedding", "hidden")
    overrides = {k: v for k, v in SETUP[variant].items() if k in keys}
    ours = cls(apply_overrides(cls.Hparams(), "method", {"alpha": SETUP["alpha"], **overrides}), spec)
    torch.manual_seed(SETUP["model_seed"])
    cnet = ours.build(lambda **kw: create_backbone(SETUP["backbone"], spec, **kw))
    return spec, ours, cnet


def batches_and_rays(spec: Any, method: Any) -> tuple[list[tuple[Tensor, dict[str, Tensor]]], list[Tensor]]:
    """The seeded batches (targets keyed by objective) and the rays our sampler draws for them."""
    steps = SETUP["steps"]
    raw = seeded_batches(
        spec.input_shape,
        tuple(o.outputs for o in spec.objectives),
        SETUP["batch_size"],
        steps,
        SETUP["batch_seed"],
    )
    batches = [(x, dict(zip(spec.objective_names, ys, strict=True))) for x, ys in raw]
    generator = torch.Generator().manual_seed(SETUP["ray_seed"])
    rays = [method.train_rays(training_progress(step, steps), generator)[0] for step in range(steps)]
    return batches, rays


def _chunked_official(models: Any, cnet: Any) -> tuple[nn.Module, Callable[[dict[str, Tensor]], dict[str, Tensor]]]:
    c = SETUP["chunked"]
    hyper = cnet.hyper
    official = models.ResnetHyper(
        preference_dim=hyper.ray_embedding.in_features,
        preference_embedding_dim=hyper.ray_embedding.out_features,
        hidden_dim=c["hidden"],
        num_chunks=c["chunks"],
        chunk_embedding_dim=c["chunk_embedding"],
        num_ws=c["num_ws"],
        w_dim=c["w_dim"],
    )
    official.layer_to_shape = dict(hyper.shapes)  # generate our MultiLeNet's tensors, in our order
    with torch.no_grad():
        official.preference_embedding_matrix.weight.copy_(hyper.ray_embedding.weight.T)
        official.chunk_embedding_matrix.weight.copy_(hyper.chunk_embeddings)
        for k in (0, 2, 4):
            official.fc[k].weight.copy_(hyper.ray_mlp[k].weight)
            official.fc[k].bias.copy_(hyper.ray_mlp[k].bias)
        for i, w in enumerate(official.ws):
            w.copy_(hyper.chunk_head.weight[i * c["w_dim"] : (i + 1) * c["w_dim"]])
    return official, lambda out: out


def _unchunked_official(lenet: Any, cnet: Any) -> tuple[nn.Module, Callable[[dict[str, Tensor]], dict[str, Tensor]]]:
    hyper = cnet.hyper
    official = lenet.LeNetHyper(ray_hidden_dim=SETUP["unchunked"]["hidden"], num_tasks=2)
    with torch.no_grad():
        for k in (0, 2, 4):
            official.ray_mlp[k].weight.copy_(hyper.ray_mlp[k].weight)
            official.ray_mlp[k].bias.copy_(hyper.ray_mlp[k].bias)
        for attribute, ours in LENET_MAP.values():
            head, mine = getattr(official, attribute), hyper.heads[parameter_key(ours)]
            head.weight.copy_(mine.weight)
            head.bias.copy_(mine.bias)
    shapes = hyper.shapes

    def rename(out: dict[str, Tensor]) -> dict[str, Tensor]:
        return {ours: out[name].reshape(shapes[ours]) for name, (_, ours) in LENET_MAP.items()}

    return official, rename


class _RecordingLP:
    """Wraps the official ``ExactParetoLP`` class to keep each call's move and alpha."""

    def __init__(self, lp_class: type, log: list[dict[str, Any]]) -> None:
        self.lp_class, self.log = lp_class, log

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        lp = self.lp_class(*args, **kwargs)
        get_alpha = lp.get_alpha

        def recorded(*a: Any, **kw: Any) -> Any:
            alpha = get_alpha(*a, **kw)
            move = {"bal": "balance", "dom": "dominance"}[lp.last_move] if alpha is not None else "fallback"
            self.log.append({"move": move, "alpha": None if alpha is None else [float(v) for v in alpha]})
            return alpha

        lp.get_alpha = recorded
        return lp


def _run(method: str, variant: str, make: Callable[..., Any], module: Any) -> dict[str, Any]:
    import phn.solvers as solvers  # the official package, on sys.path

    spec, ours, cnet = build_ours(method, variant)
    hnet, rename = make(module, cnet)
    target = create_backbone(SETUP["backbone"], spec)
    params = list(hnet.parameters())
    count = sum(p.numel() for p in params)
    lp_log: list[dict[str, Any]] = []
    lp_class = solvers.ExactParetoLP
    if method == "phn-epo":
        solvers.ExactParetoLP = _RecordingLP(lp_class, lp_log)  # the name EPO.get_weighted_loss looks up
        solver = solvers.EPOSolver(n_tasks=2, n_params=count)
    else:
        solver = solvers.LinearScalarizationSolver(n_tasks=2)
    optimizer = torch.optim.Adam(params, lr=SETUP["lr"], weight_decay=0.0)
    batches, rays = batches_and_rays(spec, ours)
    start = checksum(params)
    steps = []
    try:
        for (x, targets), ray in zip(batches, rays, strict=True):
            hnet.train()
            optimizer.zero_grad()
            weights = rename(hnet(ray))
            logits = functional_call(target, weights, (x,))
            losses = torch.stack([F.cross_entropy(logits[name], targets[name]) for name in spec.objective_names])
            loss = solver(losses, ray, params)
            loss.backward()
            optimizer.step()
            step = {
                "losses": [float(v) for v in losses.detach()],
                "loss": float(loss.detach()),
                "checksum": checksum(params),
            }
            if lp_log:
                step.update(lp_log.pop())
            steps.append(step)
    finally:
        solvers.ExactParetoLP = lp_class
    return {"rays": [[float(v) for v in r] for r in rays], "initial_checksum": start, "steps": steps}


def _commit(folder: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def produce(official: Path, method: str) -> dict[str, Any]:
    """Run the official hypernetworks and solver for ``method`` (``phn-ls`` or ``phn-epo``)."""
    sys.path.insert(0, str(official))
    try:
        import cvxopt  # noqa: F401  (the official solvers module imports it)
    except ImportError:
        raise SystemExit(
            "error: the official phn/solvers.py needs cvxopt: pip install --target DIR cvxopt, then PYTHONPATH=DIR"
        ) from None
    palora = Path(os.environ.get("PHN_PALORA_OFFICIAL", official.parent / "nik-dim+palora"))
    lenet_file = palora / "src/models/factory/phn/phn_lenet.py"
    if not lenet_file.is_file():
        raise SystemExit(f"error: no {lenet_file}; set PHN_PALORA_OFFICIAL to a nik-dim/palora checkout")
    models = load_file_module("phn_official_models", official / "experiments/multimnist/models.py")
    lenet = load_file_module("phn_official_lenet", lenet_file)
    chunked = _run(method, "chunked", _chunked_official, models)
    unchunked = _run(method, "unchunked", _unchunked_official, lenet)
    return {
        "repo": "AvivNavon/pareto-hypernetworks",
        "setup": {**SETUP, "rays": chunked["rays"]},
        "covers": (
            "official hypernetwork forward (chunked ResnetHyper from AvivNavon/pareto-hypernetworks; unchunked "
            "LeNetHyper from nik-dim/palora), official solver (LinearScalarizationSolver / EPOSolver with cvxpy "
            "GLPK), nn.CrossEntropyLoss and Adam, applied to OUR MultiLeNet forward (the official LeNet targets "
            "differ); rays drawn by our sampler and fed to both"
        ),
        "initial_checksum": chunked["initial_checksum"],
        "steps": chunked["steps"],
        "unchunked": {
            "official": {
                "repo": "nik-dim/palora",
                "commit": _commit(palora),
                "file": str(lenet_file.relative_to(palora)),
            },
            "initial_checksum": unchunked["initial_checksum"],
            "steps": unchunked["steps"],
        },
    }
