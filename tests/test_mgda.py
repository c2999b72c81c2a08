"""MGDA's min-norm solver (known values, torchjd cross-check, exact optimality) and both variants."""

import itertools

import pytest
import torch
from torchjd.aggregation import MGDAWeighting

from bench.core.errors import ConfigError
from bench.train.config import apply_overrides
from bench.train.loop import compute_losses
from methods.gradients import task_jacobian
from methods.mgda import MGDA, MGDAUB, MGDAHparams
from methods.min_norm import gradient_normalizers, line_search, min_norm_weights
from tests.support import build_method, random_batch, tiny_spec


def closed_form(g1: torch.Tensor, g2: torch.Tensor) -> float:
    """spec/methods.md: the weight of g1 is clip(((g2 - g1) . g2) / ||g1 - g2||^2, 0, 1)."""
    return float((((g2 - g1) @ g2) / ((g1 - g2) @ (g1 - g2))).clamp(0, 1))


def brute_force(gram: torch.Tensor) -> torch.Tensor:
    """Exact min-norm weights by enumerating every support (independent of the solver)."""
    num, best, best_value = gram.shape[0], None, None
    for size in range(1, num + 1):
        for support in itertools.combinations(range(num), size):
            sub = gram[list(support)][:, list(support)]
            weights = torch.linalg.solve(sub, torch.ones(size, dtype=gram.dtype))
            weights = weights / weights.sum()
            if (weights < 0).any():
                continue
            full = torch.zeros(num, dtype=gram.dtype)
            full[list(support)] = weights
            value = full @ gram @ full
            if best_value is None or value < best_value:
                best, best_value = full, value
    return best


@pytest.mark.parametrize(
    "g1, g2, expected",
    [
        ([1.0, 0.0], [0.0, 1.0], 0.5),  # orthogonal, equal norms: the midpoint
        ([2.0, 0.0], [0.0, 1.0], 0.2),  # the shorter gradient gets more weight: (1)/(4+1)
        ([1.0, 0.0], [3.0, 0.0], 1.0),  # same direction: the shorter vertex
        ([1.0, 1.0], [1.0, -1.0], 0.5),
    ],
)
def test_two_task_weight_matches_the_closed_form(g1, g2, expected):
    g1, g2 = torch.tensor(g1, dtype=torch.float64), torch.tensor(g2, dtype=torch.float64)
    jacobian = torch.stack([g1, g2])
    weights = min_norm_weights(jacobian @ jacobian.T)
    assert weights[0].item() == pytest.approx(expected, abs=1e-12)
    assert weights[0].item() == pytest.approx(closed_form(g1, g2), abs=1e-12)
    assert weights.sum().item() == pytest.approx(1.0, abs=1e-12)


def test_line_search_is_the_minimiser_of_the_segment():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
    gamma = line_search(a @ a, a @ b, b @ b)
    grid = torch.linspace(0, 1, 10001, dtype=torch.float64)
    norms = ((grid[:, None] * a + (1 - grid[:, None]) * b) ** 2).sum(1)
    assert abs(gamma.item() - grid[norms.argmin()].item()) < 2e-4


def fixed_jacobians(seed: int) -> list[torch.Tensor]:
    """Two random tasks; three orthogonal gradients of different norms; three where the shortest
    gradient is the answer. torchjd's Frank-Wolfe is exact on these (no slow zig-zag)."""
    g = torch.Generator().manual_seed(seed)
    two = torch.randn(2, 20, generator=g, dtype=torch.float64)
    basis = torch.linalg.qr(torch.randn(20, 3, generator=g, dtype=torch.float64)).Q.T
    orthogonal = basis * torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64)
    short = 0.1 * basis[0]
    vertex = torch.stack([short, short + basis[1], short + 2 * basis[2]])
    return [two, orthogonal, vertex]


@pytest.mark.parametrize("seed", range(5))
def test_weights_equal_torchjd_mgda_on_fixed_jacobians(seed):
    for jacobian in fixed_jacobians(seed):
        gram = jacobian @ jacobian.T
        ours = min_norm_weights(gram)
        theirs = MGDAWeighting(epsilon=1e-12, max_iters=100_000)(gram)
        assert torch.allclose(ours, theirs, atol=1e-6), (ours, theirs)
    orthogonal_weights = min_norm_weights(fixed_jacobians(seed)[1] @ fixed_jacobians(seed)[1].T)
    # orthogonal gradients: alpha_k proportional to 1 / ||g_k||^2 = (1, 1/4, 1/9) / (49/36)
    assert torch.allclose(orthogonal_weights, torch.tensor([36, 9, 4], dtype=torch.float64) / 49, atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_weights_agree_with_torchjd_on_random_jacobians(seed):
    """Generic case: torchjd's Frank-Wolfe only approaches the optimum, ours is exact (next test)."""
    jacobian = torch.randn(3, 20, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    gram = jacobian @ jacobian.T
    theirs = MGDAWeighting(epsilon=1e-12, max_iters=100_000)(gram)
    assert torch.allclose(min_norm_weights(gram), theirs, atol=1e-4)


@pytest.mark.parametrize("seed", range(20))
def test_weights_are_the_exact_minimiser_for_many_tasks(seed):
    g = torch.Generator().manual_seed(seed)
    num_tasks = 3 + seed % 5
    jacobian = torch.randn(num_tasks, 12, generator=g, dtype=torch.float64)
    gram = jacobian @ jacobian.T
    weights = min_norm_weights(gram)
    assert (weights >= 0).all() and weights.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert torch.allclose(weights, brute_force(gram), atol=1e-9)


def test_gradient_normalizers():
    grads = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    losses = torch.tensor([2.0, 0.5])
    assert gradient_normalizers(grads, losses, "l2").tolist() == [5.0, 2.0]
    assert gradient_normalizers(grads, losses, "loss").tolist() == [2.0, 0.5]
    assert gradient_normalizers(grads, losses, "loss+").tolist() == [10.0, 1.0]
    assert gradient_normalizers(grads, losses, "none").tolist() == [1.0, 1.0]


def setup(cls, num_tasks=2, **hparams):
    spec = tiny_spec(num_tasks)
    method, cnet = build_method(cls, spec, **hparams)
    x, targets = random_batch(spec, 16)
    losses = compute_losses(cnet, x, targets, method.train_rays(0.5, torch.Generator()), spec.objectives)
    return method, cnet, losses


@pytest.mark.parametrize("cls", [MGDA, MGDAUB])
def test_step_applies_the_min_norm_weights(cls):
    """The update equals T sum_k alpha_k grad L_k (official ``sol * num_tasks``), alpha from the
    two-task closed form."""
    method, cnet, losses = setup(cls)
    inputs = method.differentiate_through(cnet)
    jacobian = task_jacobian(losses[0], inputs).detach()
    alpha = closed_form(jacobian[0].double(), jacobian[1].double())
    params = list(cnet.parameters())
    per_task = [torch.autograd.grad(losses[0, k], params, retain_graph=True) for k in range(2)]
    method.backward(losses, method.train_rays(0.5, torch.Generator()), cnet)
    for i, p in enumerate(params):
        expected = 2 * (alpha * per_task[0][i] + (1 - alpha) * per_task[1][i])
        assert torch.allclose(p.grad, expected, atol=1e-6)


def test_mgda_ub_differentiates_the_representation_and_mgda_the_encoder():
    _, cnet, _ = setup(MGDAUB)
    assert [t.shape for t in MGDAUB.differentiate_through(None, cnet)] == [torch.Size([16, 50])]
    assert len(MGDA.differentiate_through(None, cnet)) == len(list(cnet.net.encoder.parameters()))


def test_unknown_normalisation_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="valid: l2, loss, loss\\+, none"):
        apply_overrides(MGDAHparams(), "method", {"normalize": "max"})
