"""PaLoRA: Pareto Low-Rank Adapters (Dimitriadis, Frossard, Fleuret, ICLR 2025, arXiv 2407.08056).

Every Linear and Conv2d of the encoder and heads gets T rank-r adapters (A_k, B_k). For a ray
lambda the layer uses the merged weight ``W(lambda) = W + s * sum_k lambda_k B_k A_k`` with
``s = alpha / r`` (paper Eq. 3; official ``PaLinear`` / ``PaConvLoRA`` in nik-dim/palora
``src/callbacks/methods/ll/palora_modules.py``). A convolution's update uses loralib's layout:
A_k is (r*kh) x (in*kw), B_k is (out*kh) x (r*kw), and B_k A_k is reshaped to the kernel's shape.

Differences from the official code, none of which changes the function computed:
- Linear layers are merged too (one matmul per ray instead of extra adapter activations: the
  official linear layer computes ``W x + s sum_k lambda_k B_k A_k x``, which is the same map).
- The merged weights are applied with ``torch.func.functional_call``; the backbone is untouched.
- Where a preset says window 1 with the deterministic ``annealing`` sampler (which needs >= 2
  rays), we use window 2 (spec/methods.md).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.backbones.weights import official_rebuild
from bench.core.errors import ConfigError
from bench.core.registry import METHODS
from bench.core.spec import ConditionedNet, DatasetSpec, MethodInfo, MultiTaskNet
from methods.adapted import AdaptedNet, adapted_layers, adapter_param_groups, check_scaling
from methods.windowed import WindowedFrontMethod, WindowHparams


class LowRankAdapters(nn.Module):
    """T rank-r adapters for one Linear or Conv2d weight; ``delta(ray)`` is ``s * sum_k ray_k B_k A_k``."""

    def __init__(self, layer: nn.Linear | nn.Conv2d, num_tasks: int, rank: int, alpha: float) -> None:
        super().__init__()
        weight = layer.weight
        if isinstance(layer, nn.Conv2d):
            out_ch, in_ch, kh, kw = weight.shape
            a_shape, b_shape = (rank * kh, in_ch * kw), (out_ch * kh, rank * kw)
        else:
            a_shape, b_shape = (rank, weight.shape[1]), (weight.shape[0], rank)
        self.weight_shape = tuple(weight.shape)
        self.scaling = alpha / rank
        self.A = nn.Parameter(weight.new_empty(num_tasks, *a_shape))
        self.B = nn.Parameter(weight.new_zeros(num_tasks, *b_shape))
        with torch.no_grad():
            for k in range(num_tasks):
                nn.init.kaiming_uniform_(self.A[k], a=math.sqrt(5))

    def weight_at(self, weight: Tensor, ray: Tensor) -> Tensor:
        """The layer's weight for ``ray``: ``W + delta(ray)`` (paper Eq. 3)."""
        return weight + self.delta(ray)

    def delta(self, ray: Tensor) -> Tensor:
        """The weight update for ``ray``: one (out, T*r') @ (T*r', in) matmul, reshaped to the weight."""
        num_tasks, out_rows, inner = self.B.shape
        weighted_b = (self.B * (ray.to(self.B.dtype) * self.scaling).view(num_tasks, 1, 1)).permute(1, 0, 2)
        update = weighted_b.reshape(out_rows, num_tasks * inner) @ self.A.reshape(num_tasks * inner, -1)
        return update.view(self.weight_shape)

    def activations(self, x: Tensor, ray: Tensor) -> Tensor:
        """A Linear adapter's output added to ``W x + b``: ``s sum_k ray_k B_k A_k x``, through the
        rank-r activations (the official ``PaLinear.forward``; all tasks in two matmuls)."""
        num_tasks, rank, _ = self.A.shape
        low = x @ self.A.reshape(num_tasks * rank, -1).T  # [..., T*r]
        low = low * (ray.to(low.dtype) * self.scaling).repeat_interleave(rank)
        return low @ self.B.permute(0, 2, 1).reshape(num_tasks * rank, -1)  # B_k^T stacked: [T*r, out]


AdapterPath = Literal["merged", "activations"]


class PaLoRANet(AdaptedNet):
    """The backbone plus :class:`LowRankAdapters`; ``forward(x, ray)`` runs the backbone with merged
    weights (``adapter_path = "merged"``), or with Linear adapters applied to activations as the
    official ``PaLinear`` does and convolutions merged as its ``PaConvLoRA`` does (``"activations"``)."""

    def __init__(
        self, net: MultiTaskNet, num_tasks: int, rank: int, alpha: float, adapter_path: AdapterPath = "merged"
    ) -> None:
        super().__init__(net, rank, lambda layer: LowRankAdapters(layer, num_tasks, rank, alpha))
        self.on_activations: dict[str, str] = {}
        """Linear layers whose adapters act on activations: module name -> adapter key."""
        if adapter_path == "activations":  # forward registers hooks per call: kept out of vmap
            for name, module in adapted_layers(net):
                if isinstance(module, nn.Linear):
                    self.on_activations[name] = self.adapted.pop(f"{name}.weight")
            self.conditioning, self.vmaps_over_rays = "linear-activations+conv-merged", False

    def adapter(self, key: str) -> LowRankAdapters:
        """The adapters of one layer, ``adapters[key]`` (every one a :class:`LowRankAdapters`)."""
        return cast(LowRankAdapters, self.adapters[key])

    def _linear_adapter_hook(self, key: str, ray: Tensor) -> Callable[[nn.Module, tuple[Tensor, ...], Tensor], Tensor]:
        def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
            return output + self.adapter(key).activations(inputs[0], ray)

        return hook

    def forward(self, x: Tensor, ray: Tensor) -> dict[str, Tensor]:
        """The backbone with merged weights; on the activations path the Linear adapters are forward
        hooks holding this call's ray, registered for the call and removed after it."""
        handles = [
            self.net.get_submodule(name).register_forward_hook(self._linear_adapter_hook(key, ray))
            for name, key in self.on_activations.items()
        ]
        try:
            return super().forward(x, ray)
        finally:
            for handle in handles:
                handle.remove()

    def at_ray(self, ray: Tensor) -> Callable[[Tensor], dict[str, Tensor]]:
        """The backbone with this ray's merged weights, merged once (the evaluation's model)."""
        if self.on_activations:  # the Linear adapters read the ray at every call
            return ConditionedNet.at_ray(self, ray)
        return super().at_ray(ray)


@dataclasses.dataclass(frozen=True)
class PaLoRAHparams(WindowHparams):
    """PaLoRA hyperparameters (official MultiMNIST preset as defaults; the ray window's in
    :class:`methods.windowed.WindowHparams`)."""

    rank: int = 1
    """Rank r of each task's adapter pair, A_k [r, in] and B_k [out, r] (official ``rank``)."""
    alpha: float = 1.0
    """The adapters are scaled by s = alpha / rank (official ``lora_alpha``)."""
    reweight_lr: bool = True
    """Adapters at lr * T, the backbone at lr (official ``configure_param_groups`` with ``reweight_lr``)."""
    inner_method: Literal["gb", "ls"] = "ls"
    reg_coefficient: float = 0.0
    """Weight of the cosine similarity between the tasks' adapters added to the loss (0: off)."""
    adapter_path: AdapterPath = "merged"
    """``merged``: every layer runs with W + s sum_k ray_k B_k A_k (one small matmul per layer and ray);
    ``activations``: Linear layers add s sum_k ray_k B_k (A_k x) as the official code does (same outputs)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_scaling(self.rank, self.alpha)


def cosine_penalty(cnet: PaLoRANet) -> Tensor:
    """Mean cosine similarity between the adapters of tasks 0 and 1 over every A and B
    (official ``PaLoRA.compute_cosine_loss``)."""
    terms = []
    for key in cnet.adapters:
        adapters = cnet.adapter(key)
        for p in (adapters.A, adapters.B):
            terms.append(F.cosine_similarity(p[0].flatten(), p[1].flatten(), dim=0))
    return torch.stack(terms).mean()


@METHODS.register("palora")
class PaLoRA(WindowedFrontMethod[PaLoRAHparams]):
    """PaLoRA: per-task low-rank adapters on every layer, theta(ray) = theta_0 + s sum_k ray_k B_k A_k."""

    def __init__(
        self, hparams: PaLoRAHparams, spec: DatasetSpec, *, device: torch.device = torch.device("cpu")
    ) -> None:
        if hparams.reg_coefficient and spec.num_tasks < 2:
            raise ConfigError("method.reg_coefficient needs at least 2 tasks")
        super().__init__(hparams, spec, device=device)

    def build(self, make_backbone: Callable[[], MultiTaskNet]) -> PaLoRANet:
        hp = self.hparams
        # The official lorafy_model rebuilds every layer: PyTorch's default init (bench/backbones/weights.py).
        return PaLoRANet(official_rebuild(make_backbone()), self.num_tasks, hp.rank, hp.alpha, hp.adapter_path)

    def regularised(self, loss: Tensor, losses: Tensor, rays: Tensor, cnet: ConditionedNet) -> Tensor:
        """Plus ``reg_coefficient`` times the adapters' cosine similarity (official ``PaLoRA``)."""
        if not self.hparams.reg_coefficient:
            return loss
        if not isinstance(cnet, PaLoRANet):
            raise TypeError(f"palora's regulariser needs the PaLoRANet its build() makes, got {type(cnet).__name__}")
        return loss + self.hparams.reg_coefficient * cosine_penalty(cnet)

    def param_groups(self, cnet: ConditionedNet, lr: float) -> list[dict[str, Any]]:
        """Backbone at ``lr``; adapters at ``lr * T`` when ``reweight_lr`` (official ``configure_param_groups``)."""
        return adapter_param_groups(cnet, lr, lr * self.num_tasks if self.hparams.reweight_lr else lr)

    def describe(self) -> MethodInfo:
        return {**super().describe(), "models": 1}
