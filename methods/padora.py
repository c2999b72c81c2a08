"""PaDoRA: PaLoRA with Hugging Face PEFT adapters, plain LoRA or weight-decomposed (DoRA).

Official code: nik-dim/palora ``src/callbacks/methods/padora.py`` (``PaDoRA``, ``PaDoRA_GB``) and
``configs/experiment/*/method/padora.yaml``. ``PaDoRA.configure_model`` wraps the model with
``peft.get_peft_model`` and one ``LoraConfig(r, lora_alpha, lora_dropout=0, use_dora=peft == "dora")``
adapter per task on every Conv2d and Linear, all active at once; ``on_before_forward`` makes the
ray the only conditioning: adapter k's scaling becomes ``s_k = (alpha / r) * ray_k``.

With Delta_k = B_k A_k (peft layout: A_k is r x (in*kh*kw), a convolution with the layer's kernel,
stride and padding; B_k is out x r, a 1x1 convolution; A_k kaiming-uniform(a=sqrt 5), B_k = 0) a
layer's weight for a ray is

- ``lora`` (every official config): ``W(ray) = W + sum_k s_k Delta_k`` (LoRA, Hu et al. 2022, Eq. 3);
- ``dora``: peft adds ``(c_k - 1) W x + c_k s_k Delta_k x`` per adapter, with the magnitude m_k
  (one per output row, initialised to ``||W||_c``) over the detached norm
  ``c_k = m_k / ||W + s_k Delta_k||_c`` (DoRA, Liu et al. ICML 2024, Eq. 5 and Sec. 4.3), i.e.
  ``W(ray) = W + sum_k [c_k (W + s_k Delta_k) - W]``. The magnitudes do not see the ray: a task at
  ray 0 still rescales the rows by ``m_k / ||W||_c``. This is peft 0.13's forward (``DoraLinearLayer``,
  ``DoraConv2dLayer``); peft >= 0.14 feeds each DoRA adapter the output of the adapters before it.

Each step: ``sum_r sum_k ray_rk L_rk`` (``PaDoRA.get_weighted_loss``) or, with ``inner_method = "gb"``,
each loss divided by its shared-gradient norm + 1e-3 (``PaDoRA_GB``; the shared parameters are the
encoder's, adapters included, as peft puts them inside it). ``PaDoRA.configure_param_groups`` is
commented out, so every parameter trains at the base learning rate although the configs say
``reweight_lr: true``; ``reweight_lr = true`` here gives PaLoRA's adapter rate ``lr * T``.

Differences from the official code, none of which changes the function computed: the adapters are
merged into the weights and applied with ``torch.func.functional_call`` (the official layers add
them to activations); a window of several rays per step is allowed (the official one sets one
scalar scaling per adapter and so takes exactly one ray per step).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor, nn

from bench.core.registry import METHODS
from bench.core.spec import ConditionedNet, MethodInfo, MultiTaskNet
from methods.adapted import AdaptedNet, adapter_param_groups, check_scaling
from methods.palora import LowRankAdapters
from methods.windowed import WindowedFrontMethod, WindowHparams


class PeftAdapters(LowRankAdapters):
    """T peft LoRA adapters of one Linear or Conv2d (``peft.tuners.lora.layer.Linear`` / ``Conv2d``):
    A [T, r, in*kh*kw], B [T, out, r], and with DoRA the magnitudes [T, out]. ``delta(ray)`` is
    PaLoRA's ``s sum_k ray_k B_k A_k``; only the layout differs (peft's, not loralib's)."""

    def __init__(self, layer: nn.Linear | nn.Conv2d, num_tasks: int, rank: int, alpha: float, dora: bool) -> None:
        nn.Module.__init__(self)  # LowRankAdapters.__init__ would build loralib's convolution layout
        weight = layer.weight
        self.weight_shape = tuple(weight.shape)
        self.scaling = alpha / rank
        self.A = nn.Parameter(weight.new_empty(num_tasks, rank, weight[0].numel()))
        self.B = nn.Parameter(weight.new_zeros(num_tasks, weight.shape[0], rank))
        with torch.no_grad():
            for k in range(num_tasks):
                nn.init.kaiming_uniform_(self.A[k], a=math.sqrt(5))
        self.magnitude: nn.Parameter | None = None
        if dora:  # peft ``dora_init`` with B = 0: the row norms of W, one copy per task
            norms = weight.detach().flatten(1).norm(dim=1)
            self.magnitude = nn.Parameter(norms.expand(num_tasks, -1).clone())

    def dora_weight(self, weight: Tensor, ray: Tensor) -> Tensor:
        """``W + sum_k [c_k (W + s_k B_k A_k) - W]`` with ``c_k = m_k / ||W + s_k B_k A_k||_c`` detached."""
        if self.magnitude is None:
            raise RuntimeError("dora_weight needs adapters built with dora=True")
        base = weight.flatten(1)  # [out, in*kh*kw]
        scales = (ray.to(base.dtype) * self.scaling).view(-1, 1, 1)
        directions = base + scales * torch.bmm(self.B, self.A)  # [T, out, in*kh*kw]
        factors = self.magnitude / torch.linalg.vector_norm(directions.detach(), dim=2)  # [T, out]
        return (base + (factors.unsqueeze(2) * directions - base).sum(0)).view(self.weight_shape)

    def weight_at(self, weight: Tensor, ray: Tensor) -> Tensor:
        """The layer's weight for ``ray`` (module docstring)."""
        if self.magnitude is not None:
            return self.dora_weight(weight, ray)
        return weight + self.delta(ray)


class PaDoRANet(AdaptedNet):
    """The backbone plus one peft adapter per task on every Conv2d and Linear; ``forward(x, ray)``
    runs the backbone with each layer's weight for the ray (:meth:`PeftAdapters.weight_at`)."""

    def __init__(self, net: MultiTaskNet, num_tasks: int, rank: int, alpha: float, dora: bool) -> None:
        super().__init__(net, rank, lambda layer: PeftAdapters(layer, num_tasks, rank, alpha, dora))


@dataclasses.dataclass(frozen=True)
class PaDoRAHparams(WindowHparams):
    """PaDoRA hyperparameters (official MultiMNIST preset as defaults, the ray window as PaLoRA's)."""

    rank: int = 1
    alpha: float = 1.0
    """peft ``lora_alpha``; the scaling is alpha / rank (official configs: ``lora_alpha: ${method.rank}``)."""
    peft: Literal["lora", "dora"] = "lora"
    """``lora`` (every official config) or ``dora`` (``LoraConfig(use_dora=True)``)."""
    reweight_lr: bool = False
    """Adapters at ``lr * T``; off as in the official PaDoRA, whose ``configure_param_groups`` is commented out."""
    inner_method: Literal["gb", "ls"] = "ls"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_scaling(self.rank, self.alpha)


@METHODS.register("padora")
class PaDoRA(WindowedFrontMethod[PaDoRAHparams]):
    """PaDoRA: per-task peft LoRA or DoRA adapters on every layer, each scaled by its ray weight."""

    def build(self, make_backbone: Callable[[], MultiTaskNet]) -> PaDoRANet:
        """The backbone keeps its own init: peft wraps the layers, it does not rebuild them as PaLoRA's
        ``lorafy_model`` does."""
        hp = self.hparams
        return PaDoRANet(make_backbone(), self.num_tasks, hp.rank, hp.alpha, dora=hp.peft == "dora")

    def param_groups(self, cnet: ConditionedNet, lr: float) -> list[dict[str, Any]]:
        """Every parameter at ``lr`` (official); adapters at ``lr * T`` with ``reweight_lr``."""
        return adapter_param_groups(cnet, lr, lr * self.num_tasks if self.hparams.reweight_lr else lr)

    def describe(self) -> MethodInfo:
        return {**super().describe(), "models": 1, "peft": self.hparams.peft}
