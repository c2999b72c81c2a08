"""Pareto HyperNetworks (Navon, Shamsian, Chechik, Fetaya, ICLR 2021; arXiv 2010.04104).

A hypernetwork maps the ray to every parameter of the target backbone, which then runs
functionally (``torch.func.functional_call``) with the produced parameters (paper Sec. 4, Fig. 2;
official AvivNavon/pareto-hypernetworks ``LeNetHyper`` and nik-dim/palora ``phn_lenet.py``):
ray -> MLP (T -> 100 -> 100 -> 100, ReLU between) -> one linear head per target tensor, reshaped.
With ``chunk_size > 0`` (large backbones: ResNet-18, SegNet) the MLP reads the ray's embedding
together with a learned embedding of each of a fixed number of chunks and one shared bias-free head
produces each chunk (the official ``ResnetHyper`` / ``SegNetHyper``; see :class:`HyperNetwork`).
The target's BatchNorm layers always normalise with the batch's statistics, in evaluation too, and
keep no running statistics (the official ``ResNetTarget``: ``F.batch_norm(..., training=True)``),
so a sample's output depends on its batch: ``PHNNet.batch_dependent_eval`` is then True and the
evaluation runs each batch of ``train.eval_batch_size`` whole, on CPU as on GPU.
One ray per step from Dirichlet(alpha).
- ``phn-ls``: loss = sum_k ray_k L_k (official ``LinearScalarizationSolver``).
- ``phn-epo``: the EPO direction on the hypernetwork's parameters (:mod:`methods.epo`); the LP's
  weights are multiplied by T as in the official ``EPOSolver``.
The official LeNet targets differ from MultiLeNet (AvivNavon's: no head hidden layer; nik-dim/palora's:
no ReLU after the encoder's linear layer and ``fc2`` applied to the encoder output); ours is the
shared MultiLeNet, so every method runs the same target network.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from bench.core.conditioning import FunctionalTarget, parameter_key
from bench.core.errors import ConfigError
from bench.core.rays import RaySampler
from bench.core.registry import METHODS
from bench.core.spec import ConditionedNet, DatasetSpec, Method, MethodInfo, MultiTaskNet
from methods.epo import epo_weights
from methods.gradients import task_jacobian


def _mlp(inputs: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden)
    )


UNCHUNKED_LIMIT = 200_000_000
"""Most hypernetwork parameters allowed without chunks (MultiLeNet: 2.8M; ResNet-18 would be 1.1G)."""

INIT_STD = 0.1
"""Standard deviation of the normal initialisation of the ray and chunk embeddings and of the chunk
head (official ``ResnetHyper`` / ``SegNetHyper``: ``torch.nn.init.normal_(..., std=0.1)``)."""


def use_batch_statistics(net: nn.Module) -> None:
    """Make every BatchNorm of ``net`` normalise with the batch's statistics in training and in
    evaluation, with no running statistics kept (official ``ResNetTarget``: ``F.batch_norm`` with
    fresh zero/one buffers and ``training=True``)."""
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.track_running_stats = False
            module.running_mean = module.running_var = module.num_batches_tracked = None


class HyperNetwork(nn.Module):
    """ray [T] -> {target parameter name: tensor of its shape}.

    Without chunks: ray -> MLP (T -> h -> h -> h) -> one linear head per target tensor.
    With chunks (official ``ResnetHyper`` / ``SegNetHyper``): ``chunks`` learned chunk embeddings;
    for chunk c, the ray's embedding (no bias: sum_k ray_k e_k) is concatenated with chunk c's
    embedding, passed through the MLP, and one bias-free linear head gives the chunk's
    ``chunk_size`` values (the official ``num_ws`` matrices of ``w_dim`` rows, stacked). The chunks
    are concatenated and cut into the target's tensors in ``shapes`` order; the values past the
    target's size (the tail of the last chunk used and every later chunk) are discarded, so the
    later chunks are not computed (the official code computes and drops them: the numbers are the
    same). Embeddings and head start ~N(0, 0.1), the MLP with PyTorch's default.
    """

    def __init__(
        self,
        num_tasks: int,
        shapes: dict[str, torch.Size],
        hidden: int,
        chunk_size: int,
        chunk_embedding: int,
        chunks: int = 105,
        ray_embedding: int = 32,
    ) -> None:
        super().__init__()
        self.shapes = dict(shapes)
        self.chunk_size = chunk_size
        if chunk_size:
            total = sum(s.numel() for s in self.shapes.values())
            self.used_chunks = math.ceil(total / chunk_size)
            if self.used_chunks > chunks:
                raise ValueError(f"{chunks} chunks of {chunk_size} values cannot hold {total} target parameters")
            self.ray_embedding = nn.Linear(num_tasks, ray_embedding, bias=False)
            self.chunk_embeddings = nn.Parameter(torch.empty(chunks, chunk_embedding))
            self.ray_mlp = _mlp(ray_embedding + chunk_embedding, hidden)
            self.chunk_head = nn.Linear(hidden, chunk_size, bias=False)
            for weight in (self.ray_embedding.weight, self.chunk_embeddings, self.chunk_head.weight):
                nn.init.normal_(weight, mean=0.0, std=INIT_STD)
        else:
            self.ray_mlp = _mlp(num_tasks, hidden)
            self.heads = nn.ModuleDict({parameter_key(n): nn.Linear(hidden, s.numel()) for n, s in self.shapes.items()})

    def forward(self, ray: Tensor) -> dict[str, Tensor]:
        if not self.chunk_size:
            features = self.ray_mlp(ray)
            return {n: self.heads[parameter_key(n)](features).view(s) for n, s in self.shapes.items()}
        chunk_embeddings = self.chunk_embeddings[: self.used_chunks]
        embedded = self.ray_embedding(ray).expand(len(chunk_embeddings), -1)
        features = self.ray_mlp(torch.cat([embedded, chunk_embeddings], dim=1))
        flat = self.chunk_head(features).flatten()
        out, position = {}, 0
        for name, shape in self.shapes.items():
            out[name] = flat[position : position + shape.numel()].view(shape)
            position += shape.numel()
        return out


class PHNNet(ConditionedNet):
    """The hypernetwork and the parameter-free target; ``forward(x, ray)`` = target(hyper(ray), x)."""

    conditioning = "hypernetwork"
    vmaps_over_rays = True

    def __init__(
        self,
        target: MultiTaskNet,
        num_tasks: int,
        hidden: int,
        chunk_size: int,
        chunk_embedding: int,
        chunks: int = 105,
    ) -> None:
        super().__init__()
        use_batch_statistics(target)
        self.target = FunctionalTarget(target)
        self.target.take_initial()  # the hypernetwork produces every parameter
        self.hyper = HyperNetwork(num_tasks, self.target.shapes, hidden, chunk_size, chunk_embedding, chunks)

    def forward(self, x: Tensor, ray: Tensor) -> dict[str, Tensor]:
        return self.target(self.hyper(ray.to(x.dtype)), x)

    def at_ray(self, ray: Tensor) -> Callable[[Tensor], dict[str, Tensor]]:
        """The target with the hypernetwork's output for this ray, computed once."""
        cache: dict[torch.dtype, dict[str, Tensor]] = {}

        def model(x: Tensor) -> dict[str, Tensor]:
            if x.dtype not in cache:
                cache[x.dtype] = self.hyper(ray.to(x.dtype))
            return self.target(cache[x.dtype], x)

        return model

    def inference_parameters(self) -> int:
        return self.target.numel()


@dataclasses.dataclass(frozen=True)
class PHNHparams:
    """``alpha``: Dirichlet concentration of the training rays (0.2 on segmentation, 1 elsewhere);
    ``hidden``: the ray MLP width; ``chunk_size`` (values per chunk, 0 = one head per tensor),
    ``chunks`` (the number of chunk embeddings, fixed at 105 in the official ``ResnetHyper`` and
    ``SegNetHyper``; ``chunks * chunk_size`` must reach the target's size) and ``chunk_embedding``."""

    alpha: float = 1.0
    hidden: int = 100
    chunk_size: int = 0
    chunks: int = 105
    chunk_embedding: int = 64

    def __post_init__(self) -> None:
        if self.alpha <= 0:
            raise ConfigError(f"method.alpha must be > 0, got {self.alpha}")
        if self.chunk_size < 0 or self.hidden < 1 or self.chunks < 1:
            raise ConfigError("method.chunk_size must be >= 0, method.hidden >= 1 and method.chunks >= 1")


@METHODS.register("phn-ls")
class PHNLS(Method[PHNHparams]):
    """PHN-LS: a hypernetwork maps the ray to the target's parameters; loss = ray . losses."""

    kind = "front"

    def __init__(self, hparams: PHNHparams, spec: DatasetSpec, *, device: torch.device = torch.device("cpu")) -> None:
        super().__init__(hparams, spec, device=device)
        self.sampler = RaySampler("dirichlet", self.num_tasks, 1, p=hparams.alpha)

    def build(self, make_backbone: Callable[..., MultiTaskNet]) -> PHNNet:
        h = self.hparams
        target = make_backbone()
        numel = sum(p.numel() for p in target.parameters())
        if not h.chunk_size and numel * h.hidden > UNCHUNKED_LIMIT:
            raise ConfigError(
                f"phn without chunks would need {numel * h.hidden / 1e6:.0f}M hypernetwork parameters for a "
                f"{numel / 1e6:.1f}M-parameter backbone; set method.chunk_size (the official code uses 110000 "
                "for ResNet-18 and 480000 for SegNet)"
            )
        if h.chunk_size and h.chunks * h.chunk_size < numel:
            raise ConfigError(
                f"phn: method.chunks={h.chunks} chunks of method.chunk_size={h.chunk_size} values hold "
                f"{h.chunks * h.chunk_size}, fewer than the backbone's {numel} parameters; set method.chunks >= "
                f"{math.ceil(numel / h.chunk_size)} or a larger method.chunk_size"
            )
        return PHNNet(target, self.num_tasks, h.hidden, h.chunk_size, h.chunk_embedding, h.chunks)

    def train_rays(self, progress: float, generator: torch.Generator) -> Tensor:
        return self.sampler.sample(progress, generator)

    def describe(self) -> MethodInfo:
        h = self.hparams
        return {"models": 1, "chunk_size": h.chunk_size, "chunks": h.chunks, "ray_dirichlet_alpha": h.alpha}


@METHODS.register("phn-epo")
class PHNEPO(PHNLS):
    """PHN-EPO: the hypernetwork trained along the Exact Pareto Optimal direction for each ray."""

    def __init__(self, hparams: PHNHparams, spec: DatasetSpec, *, device: torch.device = torch.device("cpu")) -> None:
        super().__init__(hparams, spec, device=device)
        self.moves: Counter[str] = Counter()

    def backward(self, losses: Tensor, rays: Tensor, cnet: ConditionedNet) -> Tensor:
        if not isinstance(cnet, PHNNet):
            raise TypeError(f"phn-epo trains the PHNNet its build() makes, got {type(cnet).__name__}")
        total = losses.new_zeros(())
        params = list(cnet.hyper.parameters())
        for task_losses, ray in zip(losses, rays, strict=True):
            jacobian = task_jacobian(task_losses, params).detach().double()
            alpha, move = epo_weights(
                task_losses.detach().double().cpu().numpy(), (jacobian @ jacobian.T).cpu().numpy(), ray.cpu().numpy()
            )
            self.moves[move] += 1
            weights = torch.as_tensor(alpha * self.num_tasks, dtype=losses.dtype, device=losses.device)
            total = total + (weights * task_losses).sum()
        total.backward()
        return total.detach()

    def state_dict(self) -> dict[str, Any]:
        return {"moves": dict(self.moves)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.moves = Counter(state["moves"])

    def describe(self) -> MethodInfo:
        """PHN-LS's facts and how many steps took each EPO move (:func:`methods.epo.epo_weights`)."""
        return {
            **super().describe(),
            "epo_balance_moves": self.moves["balance"],
            "epo_dominance_moves": self.moves["dominance"],
            "epo_fallback_moves": self.moves["fallback"],
        }
