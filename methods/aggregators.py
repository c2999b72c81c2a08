"""Gradient-aggregation MTL baselines from torchjd (Rey, Quinton et al., "Jacobian Descent for
Multi-Objective Optimization", arXiv 2406.16232; https://github.com/TorchJD/torchjd).

Each step: the Jacobian of the T task losses w.r.t. the shared encoder parameters
(``torchjd.autojac.mtl_backward``, differentiating through the encoder output once per task, with
each head's own gradient going to its head), then the aggregator turns the Jacobian into one update
(``torchjd.autojac.jac_to_grad``). One thin adapter per aggregator; hyperparameters are the library's.

Aggregators (paper each cites): ``mean`` (equal weights), ``pcgrad`` (Yu et al. 2020, gradient
surgery), ``cagrad`` (Liu et al. 2021, conflict-averse, c = 0.4), ``nash-mtl`` (Navon et al. 2022,
bargaining), ``imtl-g`` (Liu et al. 2021, impartial MTL, gradient part), ``aligned-mtl`` (Senushkin
et al. 2023, condition-number alignment), ``upgrad`` and ``dualproj`` (Rey et al. 2024, projections
onto the dual cone of the gradients).
Randomness: PCGrad draws its projection order from torch's global generator (seeded by the run).

Head gradients: torchjd gives each head the gradient of its own loss. The official Nash-MTL and
IMTL-G back-propagate the weighted loss ``sum_k w_k L_k`` (nik-dim/pamal ``src/methods/weight_methods.py``
``NashMTL.backward``, ``IMTLG.get_weighted_loss``; nik-dim/palora ``base_trainer.py`` ``training_step``),
so head k gets ``w_k grad L_k``; for these two ``head_weights`` scales the heads' gradients alike
(Nash-MTL: the weights before the shared-gradient clipping, which the official code applies to the
shared parameters only). PCGrad and CAGrad give the heads their own gradients officially too.
"""

from __future__ import annotations

import dataclasses
import types
import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import torch
import torchjd.aggregation as agg
from torch import Tensor
from torchjd.autojac import jac_to_grad, mtl_backward

from bench.core.conditioning import UnconditionedNet
from bench.core.errors import ConfigError
from bench.core.registry import METHODS
from bench.core.spec import ConditionedNet, DatasetSpec, MethodInfo, NoHparams
from methods.single_point import SinglePointMethod

H = TypeVar("H")


@dataclasses.dataclass(frozen=True)
class CAGradHparams:
    """``c``: radius of the ball around the mean gradient (torchjd's and the paper's c = 0.4)."""

    c: float = 0.4

    def __post_init__(self) -> None:
        if self.c < 0:
            raise ConfigError(f"method.c must be >= 0, got {self.c}")


@dataclasses.dataclass(frozen=True)
class NashMTLHparams:
    """Nash-MTL (torchjd defaults): clip ``||J^T w||`` to ``max_norm`` (0: off), re-solve every
    ``update_weights_every`` steps, ``optim_niter`` iterations of the concave-convex procedure."""

    max_norm: float = 1.0
    update_weights_every: int = 1
    optim_niter: int = 20


class JacobianAggregation(SinglePointMethod[H]):
    """One unconditioned model; its shared parameters step along a torchjd aggregation of the Jacobian."""

    make_aggregator: ClassVar[Callable[[Any, int], agg.Aggregator]]
    head_weights: ClassVar[Callable[[agg.Aggregator, Tensor], Tensor] | None] = None
    """``(aggregator, weights jac_to_grad returned) -> w``: head k's gradient is multiplied by ``w_k``
    (the official weighted-loss backward); None: each head keeps its own loss's gradient."""

    def __init__(self, hparams: H, spec: DatasetSpec, *, device: torch.device = torch.device("cpu")) -> None:
        super().__init__(hparams, spec, device=device)
        self.aggregator = type(self).make_aggregator(hparams, self.num_tasks)

    def backward(self, losses: Tensor, rays: Tensor, cnet: ConditionedNet) -> Tensor:
        if not isinstance(cnet, UnconditionedNet) or cnet.features is None:
            raise RuntimeError("Jacobian aggregation needs the encoder output of a training forward pass")
        shared = cnet.shared_parameters()
        # The task losses are rows of one stacked tensor, so their graphs share the stacking node.
        mtl_backward(
            list(losses[0]),
            features=cnet.features,
            tasks_params=cnet.task_parameters(),
            shared_params=shared,
            retain_graph=True,
        )
        with warnings.catch_warnings():  # cvxpy's note that Nash-MTL's problem is not DPP-cacheable
            warnings.filterwarnings("ignore", message="You are solving a parameterized problem that is not DPP")
            weights: Tensor | None = jac_to_grad(shared, self.aggregator)  # None unless a weighted aggregator
        head_weights = type(self).head_weights
        if head_weights is not None:
            if weights is None:
                raise TypeError(f"{self.aggregator!r} returns no weights to scale the heads' gradients with")
            scale = head_weights(self.aggregator, weights)
            for k, params in enumerate(cnet.task_parameters()):
                for p in params:
                    if p.grad is not None:
                        p.grad.mul_(scale[k].to(p.grad))
        return losses[0].mean().detach()

    def state_dict(self) -> dict[str, Any]:
        """The aggregator itself (pickled into the checkpoint): Nash-MTL keeps its last weights and
        step counter, and a resumed run must continue from them."""
        return {"aggregator": self.aggregator}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.aggregator = state["aggregator"]

    def describe(self) -> MethodInfo:
        return {"models": 1, "aggregator": repr(self.aggregator), "jacobian_of": "shared parameters"}


def register_aggregator(
    name: str,
    summary: str,
    make: Callable[[Any, int], agg.Aggregator],
    hparams: type = NoHparams,
    head_weights: Callable[[agg.Aggregator, Tensor], Tensor] | None = None,
) -> type[JacobianAggregation]:
    """Register ``JacobianAggregation[hparams]`` named ``name``, built by ``make(hparams, num_tasks)``."""
    namespace = {
        "__doc__": summary,
        "make_aggregator": staticmethod(make),
        "head_weights": staticmethod(head_weights) if head_weights else None,
        "__module__": __name__,
    }
    generic: Any = JacobianAggregation  # subscripted with a class known at run time only
    cls = types.new_class(
        f"JacobianAggregation_{name.replace('-', '_')}",
        (generic[hparams],),
        exec_body=lambda ns: ns.update(namespace),
    )
    return METHODS.register(name)(cls)


def weighting_output(aggregator: agg.Aggregator, weights: Tensor) -> Tensor:
    """The weights the aggregator combined the Jacobian's rows with (IMTL-G's, summing to 1)."""
    return weights


def nash_mtl_alpha(aggregator: agg.Aggregator, weights: Tensor) -> Tensor:
    """Nash-MTL's alpha before the max-norm clipping (the official weighted loss uses it unclipped)."""
    if not isinstance(aggregator, agg.NashMTL):
        raise TypeError(f"nash_mtl_alpha reads a NashMTL aggregator, got {type(aggregator).__name__}")
    return torch.as_tensor(aggregator.weighting.prvs_alpha, dtype=weights.dtype, device=weights.device)


register_aggregator("mean", "Equal weighting: the mean of the task gradients.", lambda h, t: agg.Mean())
register_aggregator(
    "pcgrad", "PCGrad: project away conflicting gradient components (Yu et al. 2020).", lambda h, t: agg.PCGrad()
)
register_aggregator(
    "cagrad",
    "CAGrad: conflict-averse gradient descent (Liu et al. 2021).",
    lambda h, t: agg.CAGrad(c=h.c),
    CAGradHparams,
)
register_aggregator(
    "nash-mtl",
    "Nash-MTL: the Nash bargaining solution over task gradients (Navon et al. 2022).",
    lambda h, t: agg.NashMTL(
        n_tasks=t, max_norm=h.max_norm, update_weights_every=h.update_weights_every, optim_niter=h.optim_niter
    ),
    NashMTLHparams,
    head_weights=nash_mtl_alpha,
)
register_aggregator(
    "imtl-g",
    "IMTL-G: equal projections of the update on every task gradient (Liu et al. 2021).",
    lambda h, t: agg.IMTLG(),
    head_weights=weighting_output,
)
register_aggregator(
    "aligned-mtl",
    "Aligned-MTL: align the gradients' principal components (Senushkin et al. 2023).",
    lambda h, t: agg.AlignedMTL(),
)
register_aggregator(
    "upgrad",
    "UPGrad: average of the gradients projected onto the dual cone (Rey et al. 2024).",
    lambda h, t: agg.UPGrad(),
)
register_aggregator(
    "dualproj",
    "DualProj: the mean gradient projected onto the dual cone (Rey et al. 2024).",
    lambda h, t: agg.DualProj(),
)
