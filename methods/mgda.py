"""MGDA and MGDA-UB: multiple gradient descent (Sener and Koltun, NeurIPS 2018; arXiv 1810.04650).

Each step finds the min-norm element alpha of the convex hull of the per-task gradients (Sec. 3.2,
:func:`methods.min_norm.min_norm_weights`) and back-propagates ``T * sum_k alpha_k L_k``: the
official PaLoRA code (nik-dim/palora ``src/callbacks/methods/mgda.py``, ``sol * num_tasks``), which
produced the MGDA numbers the PaLoRA paper compares against. The paper's weights sum to 1
(intel-isl/MultiObjectiveOptimization); the factor T is not invisible to Adam, whose eps makes a
rescaled step differ where gradients are near zero (``tests/test_lockstep_palora.py``).
- ``mgda``: gradients w.r.t. every shared (encoder) parameter.
- ``mgda-ub``: gradients w.r.t. the shared representation, the encoder's output (Sec. 3.3, the
  upper bound): T cheap backward passes through the heads, one through the encoder.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

from torch import Tensor

from bench.core.conditioning import UnconditionedNet
from bench.core.errors import ConfigError
from bench.core.registry import METHODS
from bench.core.spec import ConditionedNet, MethodInfo
from methods.gradients import task_jacobian
from methods.min_norm import gradient_normalizers, min_norm_weights
from methods.single_point import SinglePointMethod


@dataclasses.dataclass(frozen=True)
class MGDAHparams:
    """``normalize``: per-task gradient scaling before the solver (l2, loss, loss+, none);
    ``max_iters``: Frank-Wolfe iterations for T > 2 (the reference uses 250)."""

    normalize: Literal["l2", "loss", "loss+", "none"] = "none"
    max_iters: int = 250

    def __post_init__(self) -> None:
        if self.max_iters < 1:
            raise ConfigError(f"method.max_iters must be >= 1, got {self.max_iters}")


@METHODS.register("mgda")
class MGDA(SinglePointMethod[MGDAHparams]):
    """MGDA: min-norm convex combination of the per-task gradients of the shared parameters."""

    gradients_of: ClassVar[str] = "shared parameters"

    def differentiate_through(self, cnet: UnconditionedNet) -> list[Tensor]:
        return list(cnet.shared_parameters())

    def weights(self, task_losses: Tensor, cnet: UnconditionedNet) -> Tensor:
        """The solver's simplex weights for this step (gradients are constants)."""
        jacobian = task_jacobian(task_losses, self.differentiate_through(cnet)).detach()
        jacobian = (
            jacobian / gradient_normalizers(jacobian, task_losses, self.hparams.normalize).clamp_min(1e-12)[:, None]
        )
        return min_norm_weights(jacobian.double() @ jacobian.double().T, self.hparams.max_iters).to(task_losses.dtype)

    def backward(self, losses: Tensor, rays: Tensor, cnet: ConditionedNet) -> Tensor:
        if not isinstance(cnet, UnconditionedNet):
            raise TypeError(
                f"{type(self).__name__} trains the UnconditionedNet its build() makes, got {type(cnet).__name__}"
            )
        task_losses = losses[0]
        loss = (self.num_tasks * self.weights(task_losses, cnet) * task_losses).sum()
        loss.backward()
        return loss.detach()

    def describe(self) -> MethodInfo:
        return {"models": 1, "gradients_of": self.gradients_of, "normalize": self.hparams.normalize}


@METHODS.register("mgda-ub")
class MGDAUB(MGDA):
    """MGDA-UB: min-norm weights from the gradients w.r.t. the shared representation (encoder output)."""

    gradients_of: ClassVar[str] = "shared representation"

    def differentiate_through(self, cnet: UnconditionedNet) -> list[Tensor]:
        if cnet.features is None:
            raise RuntimeError("mgda-ub needs the encoder output of a training forward pass")
        return [cnet.features]
