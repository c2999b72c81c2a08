"""The ways a preference ray enters a model, shared by the methods (design.md, "Where the preference
ray enters"): not at all (:class:`UnconditionedNet`), through the input (:class:`RayChannelsNet`),
or through the parameters (:class:`FunctionalTarget`, a backbone run with parameters computed from
the ray by ``torch.func.functional_call``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn
from torch.func import functional_call

from bench.core.spec import ConditionedNet, MultiTaskNet


def parameter_key(name: str) -> str:
    """A dotted parameter name as a ModuleDict/ParameterDict key (which may not contain dots)."""
    return name.replace(".", "__")


class UnconditionedNet(ConditionedNet):
    """One backbone that ignores the ray (single-point MTL methods).

    In training mode it keeps the encoder output of the last forward in ``features`` so that a
    method can differentiate through the shared representation (MGDA-UB, torchjd's ``mtl_backward``).
    """

    conditioning = "unconditioned"

    def __init__(self, net: MultiTaskNet) -> None:
        super().__init__()
        self.net = net
        self.features: Tensor | None = None

    def forward(self, x: Tensor, ray: Tensor) -> dict[str, Tensor]:
        z = self.net.encoder(x)
        self.features = z if torch.is_grad_enabled() else None
        return {name: head(z) for name, head in self.net.heads.items()}

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.net.encoder.parameters())

    def task_parameters(self) -> list[list[nn.Parameter]]:
        """The head parameters of each objective, in objective order."""
        return [list(head.parameters()) for head in self.net.heads.values()]


class RayChannelsNet(ConditionedNet):
    """The ray appended to the input (COSMOS, Ruchte and Grabocka 2021, Sec. 4; official ``Upsampler``):
    T features for vectors; for images the T channels ``ray_map(ray)`` [T, H, W] (COSMOS's learned
    upsampler), or T constant channels without a ``ray_map``. The backbone must be built with
    ``extra_inputs = T``."""

    conditioning = "input-channels"
    vmaps_over_rays = True

    def __init__(self, net: MultiTaskNet, ray_map: nn.Module | None = None) -> None:
        super().__init__()
        self.net = net
        self.ray_map = ray_map
        if ray_map is not None:
            self.conditioning = "input-channels-upsampled"

    def ray_input(self, ray: Tensor) -> Tensor:
        """What one sample gets appended under ``ray``: [T], or [T, H, W] from ``ray_map``."""
        return ray if self.ray_map is None else self.ray_map(ray)

    def with_ray_input(self, x: Tensor, extra: Tensor) -> dict[str, Tensor]:
        """The backbone on ``x`` with ``extra`` (from :meth:`ray_input`) appended to every sample."""
        extra = extra.to(x.dtype)
        if extra.ndim == 1:
            extra = extra.view(-1, *([1] * (x.ndim - 2)))
        return self.net(torch.cat([x, extra.expand(x.shape[0], *extra.shape[:1], *x.shape[2:])], dim=1))

    def forward(self, x: Tensor, ray: Tensor) -> dict[str, Tensor]:
        return self.with_ray_input(x, self.ray_input(ray))

    def at_ray(self, ray: Tensor) -> Callable[[Tensor], dict[str, Tensor]]:
        """The model at ``ray``, with the upsampled ray channels computed once."""
        extra = self.ray_input(ray)
        return lambda x: self.with_ray_input(x, extra)


class FunctionalTarget(nn.Module):
    """A backbone whose parameters are removed so that it only runs on parameters it is given.

    The removed tensors (their initial values, in ``named_parameters`` order) are handed once to
    the caller by :meth:`take_initial`, to turn into its own parameters. Buffers (BatchNorm running
    statistics) stay in the module, so they are shared across rays, moved by ``.to`` and saved.
    """

    def __init__(self, net: MultiTaskNet) -> None:
        super().__init__()
        self._initial: dict[str, Tensor] | None = {name: p.detach() for name, p in net.named_parameters()}
        self.shapes: dict[str, torch.Size] = {name: t.shape for name, t in self._initial.items()}
        for module in net.modules():
            for name, value in list(module._parameters.items()):
                if value is not None:  # an absent bias stays None, as the module's forward expects
                    del module._parameters[name]
        self.net = net

    def take_initial(self) -> dict[str, Tensor]:
        """The backbone's initial parameter values (once: they are then forgotten)."""
        if self._initial is None:
            raise RuntimeError("the initial parameters were already taken")
        initial, self._initial = self._initial, None
        return initial

    def numel(self) -> int:
        return sum(shape.numel() for shape in self.shapes.values())

    def forward(self, params: Mapping[str, Tensor], x: Tensor) -> dict[str, Tensor]:
        return functional_call(self.net, dict(params), (x,))

    def is_shared(self, name: str) -> bool:
        """Whether parameter ``name`` belongs to the shared encoder (not a task head)."""
        return name.startswith("encoder.")


def tracked_batchnorm(net: nn.Module) -> str | None:
    """The class name of a BatchNorm layer of ``net`` that tracks running statistics (which vmap
    cannot update), or None."""
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            return type(module).__name__
    return None


def ray_batching_problem(cnet: ConditionedNet) -> str | None:
    """Why ``cnet`` cannot run a step's rays under one ``vmap`` (``train.ray_batching = vmap``), or None."""
    if not cnet.vmaps_over_rays:
        model = f"{type(cnet).__name__}, conditioning {cnet.conditioning!r}"
        return f"its model ({model}) does not compute outputs from the ray alone"
    if name := tracked_batchnorm(cnet):
        return f"its backbone has {name} layers, whose running statistics vmap cannot update"
    return None
