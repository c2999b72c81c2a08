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
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torchjd.aggregation as agg
from torch import Tensor
from torchjd.autojac import jac_to_grad, mtl_backward

from bench.conditioning import UnconditionedNet
from bench.errors import ConfigError
from bench.registry import METHODS
from bench.spec import ConditionedNet, NoHparams
from methods.single_point import SinglePointMethod


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


class JacobianAggregation(SinglePointMethod):
    """One unconditioned model; its shared parameters step along a torchjd aggregation of the Jacobian."""

    make_aggregator: ClassVar[Callable[[Any, int], agg.Aggregator]]

    def __init__(self, hparams: Any, spec: Any) -> None:
        super().__init__(hparams, spec)
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
            jac_to_grad(shared, self.aggregator)
        return losses[0].mean().detach()

    def state_dict(self) -> dict[str, Any]:
        """The aggregator itself (pickled into the checkpoint): Nash-MTL keeps its last weights and
        step counter, and a resumed run must continue from them."""
        return {"aggregator": self.aggregator}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.aggregator = state["aggregator"]

    def describe(self) -> dict[str, Any]:
        return {"models": 1, "aggregator": repr(self.aggregator), "jacobian_of": "shared parameters"}


def register_aggregator(
    name: str, summary: str, make: Callable[[Any, int], agg.Aggregator], hparams: type = NoHparams
) -> type[JacobianAggregation]:
    """Register a :class:`JacobianAggregation` named ``name`` built by ``make(hparams, num_tasks)``."""
    cls = type(
        f"JacobianAggregation_{name.replace('-', '_')}",
        (JacobianAggregation,),
        {"__doc__": summary, "Hparams": hparams, "make_aggregator": staticmethod(make), "__module__": __name__},
    )
    return METHODS.register(name)(cls)


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
)
register_aggregator(
    "imtl-g",
    "IMTL-G: equal projections of the update on every task gradient (Liu et al. 2021).",
    lambda h, t: agg.IMTLG(),
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
