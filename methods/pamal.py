"""PaMaL: Pareto Manifold Learning (Dimitriadis, Frossard, Fleuret, ICML 2023; arXiv 2210.09759).

T full copies theta_1..theta_T of every parameter; for a ray the network runs with the convex
combination ``theta(ray) = sum_k ray_k theta_k`` (paper Eq. 4; official ``SubspaceConv`` /
``SubspaceLinear`` / ``SubspaceBatchNorm2d`` in nik-dim/pamal). BatchNorm affine parameters are
combined too; running statistics are shared. Each step draws a window of rays, loss
``sum_r sum_k ray_rk L_rk`` (the multi-forward training of Sec. 3.2).

Choices:
- The copies are stacked as one tensor [T, *shape] per parameter and the combination is applied with
  ``torch.func.functional_call`` (one weighted sum per tensor), instead of module surgery.
- Regulariser (``reg_coefficient``, off by default as on MultiMNIST; which one: ``regulariser``):
  for each task k, with the window's rays sorted by ray_k descending, the differences d of task k's
  loss between neighbours give ``log(sum exp(relu(s * d)) / (window - 1))``, summed over tasks.
  ``"paper"`` (s = -1, the default): a loss that decreases as its weight shrinks is penalised, Sec.
  3.2's intent. ``"official"`` (s = +1): nik-dim/pamal's ``multi_forward_ensemble_trainer.py``, the
  code behind the published numbers on UTKFace, Cityscapes and Census (divisor ``num - 1``, the
  window; temperature 1 in every config); it penalises the increases, i.e. the expected order.
  ``"none"``: no penalty whatever ``reg_coefficient`` says, as nik-dim/palora's trainer, where the
  lines adding it are commented out. A penalty is only added while ``reg_coefficient * penalty`` is
  below the loss, as officially. (Equal ray_k values, which Dirichlet windows never draw, keep both
  losses here; the official dict keyed by ray_k keeps the later one.)
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from bench.backbones.weights import official_rebuild
from bench.core.conditioning import FunctionalTarget, parameter_key
from bench.core.errors import ConfigError
from bench.core.registry import METHODS
from bench.core.spec import ConditionedNet, MethodInfo, MultiTaskNet
from methods.windowed import WindowedFrontMethod, WindowHparams

Regulariser = Literal["official", "paper", "none"]
"""Which order regulariser ``reg_coefficient`` scales (see the module docstring)."""
REGULARISERS: tuple[str, ...] = typing.get_args(Regulariser)


class PaMaLNet(ConditionedNet):
    """T stacked copies of every backbone parameter; ``forward(x, ray)`` runs their ray-weighted sum."""

    conditioning = "parameter-interpolation"
    vmaps_over_rays = True

    def __init__(self, members: list[MultiTaskNet]) -> None:
        super().__init__()
        member_params = [dict(m.named_parameters()) for m in members[1:]]
        self.target = FunctionalTarget(members[0])
        first = self.target.take_initial()
        self.names = list(self.target.shapes)
        self.members = nn.ParameterDict(
            {
                parameter_key(name): nn.Parameter(
                    torch.stack([first[name]] + [p[name].detach() for p in member_params])
                )
                for name in self.names
            }
        )

    def combined(self, ray: Tensor) -> dict[str, Tensor]:
        """theta(ray) = sum_k ray_k theta_k for every parameter."""
        out = {}
        for name in self.names:
            stacked = self.members[parameter_key(name)]
            out[name] = torch.tensordot(ray.to(stacked.dtype), stacked, dims=1)
        return out

    def member(self, k: int) -> dict[str, Tensor]:
        return {name: self.members[parameter_key(name)][k] for name in self.names}

    def forward(self, x: Tensor, ray: Tensor) -> dict[str, Tensor]:
        return self.target(self.combined(ray), x)

    def at_ray(self, ray: Tensor) -> Callable[[Tensor], dict[str, Tensor]]:
        """The target with this ray's weighted sum of the members, summed once."""
        params = self.combined(ray)
        return lambda x: self.target(params, x)

    def inference_parameters(self) -> int:
        return self.target.numel()

    def shared_parameters(self) -> list[nn.Parameter]:
        return [self.members[parameter_key(n)] for n in self.names if self.target.is_shared(n)]


@dataclasses.dataclass(frozen=True)
class PaMaLHparams(WindowHparams):
    """PaMaL hyperparameters: the PaLoRA MultiMNIST preset (window 4, annealing sampler); the
    inner method is ``ls``, ``gradnorm`` (PaMaL's name) or ``gb`` (PaLoRA's) for gradient balancing."""

    window: int = 4
    reg_coefficient: float = 0.0
    regulariser: Regulariser = "paper"
    """The order penalty ``reg_coefficient`` scales: ``paper`` (Sec. 3.2, relu(-diff)), ``official``
    (nik-dim/pamal, relu(diff)) or ``none`` (nik-dim/palora: no penalty at all)."""
    reinit: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reg_coefficient < 0:
            raise ConfigError(f"method.reg_coefficient must be >= 0, got {self.reg_coefficient}")
        if self.regulariser not in REGULARISERS:  # the parser checks this; this guards direct construction
            raise ConfigError(f"unknown method.regulariser {self.regulariser!r}; valid: {', '.join(REGULARISERS)}")


def order_penalty(losses: Tensor, rays: Tensor, regulariser: Regulariser = "paper") -> Tensor:
    """sum_k log( sum_i exp(relu(s * (L_k(i+1) - L_k(i)))) / (W - 1) ), rays sorted by ray_k
    descending; s = -1 for ``paper`` (zero when every task's loss grows as its weight shrinks),
    s = +1 for ``official`` (zero when none grows); ``none`` is 0 (see the module docstring)."""
    if regulariser not in REGULARISERS:
        raise ConfigError(f"unknown regulariser {regulariser!r}; valid: {', '.join(REGULARISERS)}")
    total = losses.new_zeros(())
    if regulariser == "none":
        return total
    sign = 1.0 if regulariser == "official" else -1.0
    window = losses.shape[0]
    for k in range(losses.shape[1]):
        order = torch.argsort(rays[:, k], descending=True, stable=True)
        violations = torch.relu(sign * losses[order, k].diff())
        total = total + torch.log(torch.exp(violations).sum() / (window - 1))
    return total


@METHODS.register("pamal")
class PaMaL(WindowedFrontMethod[PaMaLHparams]):
    """PaMaL: T weight copies, theta(ray) = sum_k ray_k theta_k, trained on windows of rays."""

    def build(self, make_backbone: Callable[..., MultiTaskNet]) -> PaMaLNet:
        first = make_backbone()
        others = [make_backbone() for _ in range(self.num_tasks - 1)]
        if self.hparams.reinit:  # official _create_new_ resets every member: PyTorch's default init
            first, *others = (official_rebuild(m) for m in (first, *others))
        else:  # every copy starts from the same initialisation (official deepcopy of the backbone)
            for other in others:
                other.load_state_dict(first.state_dict())
        return PaMaLNet([first, *others])

    def regularised(self, loss: Tensor, losses: Tensor, rays: Tensor, cnet: ConditionedNet) -> Tensor:
        """Plus ``reg_coefficient`` times :func:`order_penalty` (``regulariser``), while that is below
        the loss; ``regulariser = "none"`` adds nothing."""
        h = self.hparams
        if h.regulariser == "none" or not h.reg_coefficient or losses.shape[0] < 2:
            return loss
        penalty = h.reg_coefficient * order_penalty(losses, rays, h.regulariser)
        return loss + penalty if penalty < loss else loss

    def describe(self) -> MethodInfo:
        return {**super().describe(), "memory_models": self.num_tasks}
