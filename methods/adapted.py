"""The shared part of PaLoRA and PaDoRA: a backbone whose every Linear and Conv2d carries T per-task
adapters, run with the ray's merged weights ``W(ray) = adapters.weight_at(W, ray)`` through
``torch.func.functional_call`` (the backbone module itself is never modified).

The adapter modules differ (loralib's layout in :class:`methods.palora.LowRankAdapters`, peft's
and DoRA's in :class:`methods.padora.PeftAdapters`); everything else, including the parameter
groups of the official ``configure_param_groups``, is here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, cast

from torch import Tensor, nn
from torch.func import functional_call

from bench.core.conditioning import parameter_key
from bench.core.errors import ConfigError
from bench.core.spec import ConditionedNet, MultiTaskNet

AdaptedLayer = nn.Linear | nn.Conv2d


class LayerAdapters(Protocol):
    """T adapters of one layer: ``weight_at(W, ray)`` is the layer's weight for the ray."""

    def weight_at(self, weight: Tensor, ray: Tensor) -> Tensor: ...


def adapted_layers(net: nn.Module) -> list[tuple[str, AdaptedLayer]]:
    """Every Linear and Conv2d of ``net`` (the layers both official adapters wrap), by module name."""
    return [(name, m) for name, m in net.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def check_scaling(rank: int, alpha: float) -> None:
    """The hyperparameters of ``scaling = alpha / rank``: a rank >= 1 and alpha > 0 (alpha 0 would
    switch the adapters off)."""
    if rank < 1:
        raise ConfigError(f"method.rank must be >= 1, got {rank}")
    if not alpha > 0:
        raise ConfigError(f"method.alpha must be > 0 (the adapters' scaling is alpha / rank), got {alpha}")


def check_rank(rank: int, layers: list[tuple[str, AdaptedLayer]]) -> None:
    """Refuse a rank no layer can use: a rank-r update of an (out x fan-in) weight has rank at most
    min(out, fan-in), so a rank above the largest such bound only allocates zeros' worth of memory."""
    if rank < 1:
        raise ConfigError(f"method.rank must be >= 1, got {rank}")
    if not layers:
        raise ConfigError("the backbone has no Linear or Conv2d layer to adapt")
    widest = max(min(m.weight.shape[0], m.weight[0].numel()) for _, m in layers)
    if rank > widest:
        raise ConfigError(
            f"method.rank={rank} is larger than any layer can use: the widest layer's update has rank at most "
            f"{widest} (min of its output size and fan-in); choose method.rank in 1..{widest}"
        )


class AdaptedNet(ConditionedNet):
    """The backbone plus one :class:`LayerAdapters` per Linear and Conv2d (made by ``make_adapters``);
    ``forward(x, ray)`` runs the backbone with every adapted weight replaced by its value at ``ray``."""

    conditioning = "merged-weights"
    vmaps_over_rays = True

    def __init__(self, net: MultiTaskNet, rank: int, make_adapters: Callable[[AdaptedLayer], nn.Module]) -> None:
        super().__init__()
        layers = adapted_layers(net)
        check_rank(rank, layers)  # before anything is allocated
        self.net = net
        self.adapted = {f"{name}.weight": parameter_key(name) for name, _ in layers}
        """Merged weights: backbone parameter name -> adapter key."""
        self.adapters = nn.ModuleDict({parameter_key(name): make_adapters(m) for name, m in layers})

    def adapter(self, key: str) -> LayerAdapters:
        """The adapters of one layer, ``adapters[key]`` (a module ``make_adapters`` made)."""
        return cast(LayerAdapters, self.adapters[key])

    def merged_weights(self, ray: Tensor) -> dict[str, Tensor]:
        weights = dict(self.net.named_parameters())
        return {name: self.adapter(key).weight_at(weights[name], ray) for name, key in self.adapted.items()}

    def forward(self, x: Tensor, ray: Tensor) -> dict[str, Tensor]:
        return functional_call(self.net, self.merged_weights(ray), (x,))

    def at_ray(self, ray: Tensor) -> Callable[[Tensor], dict[str, Tensor]]:
        """The backbone with this ray's weights, merged once (the evaluation's model)."""
        weights = self.merged_weights(ray)
        return lambda x: functional_call(self.net, weights, (x,))

    def inference_parameters(self) -> int:
        """After merging for a chosen ray, the backbone's size: the adapters fold into its weights."""
        return sum(p.numel() for p in self.net.parameters())

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.net.parameters())

    def shared_parameters(self) -> list[nn.Parameter]:
        """The encoder's parameters and its layers' adapters: the official ``shared_parameters``
        (``SharedBottom.encoder.parameters()``, SegNet's non-``pred`` parameters) taken after the
        adapters were put inside the encoder's layers (``lorafy_model`` / ``get_peft_model``)."""
        encoder = [a for key, a in self.adapters.items() if key.split("__", 1)[0] == "encoder"]
        return list(self.net.encoder.parameters()) + [p for a in encoder for p in a.parameters()]


def adapter_param_groups(cnet: ConditionedNet, lr: float, adapter_lr: float) -> list[dict[str, Any]]:
    """The backbone at ``lr``, the adapters at ``adapter_lr``, and the method's own parameters
    (``cnet.method_parameters``, when there are any) at ``lr``."""
    if not isinstance(cnet, AdaptedNet):
        raise TypeError(f"adapter parameter groups need the AdaptedNet a build() makes, got {type(cnet).__name__}")
    groups = [
        {"params": cnet.backbone_parameters(), "lr": lr, "name": "backbone"},
        {"params": list(cnet.adapters.parameters()), "lr": adapter_lr, "name": "adapters"},
    ]
    if len(cnet.method_parameters):
        groups.append({"params": list(cnet.method_parameters.parameters()), "lr": lr, "name": "method"})
    return groups
