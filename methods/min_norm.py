"""The min-norm element of the convex hull of task gradients (Sener and Koltun, NeurIPS 2018, Sec. 3.2).

``min_norm_weights(gram)`` returns the simplex weights alpha minimising ``|| sum_k alpha_k g_k ||^2``
given the Gram matrix ``G_ij = g_i . g_j``: the closed form of the paper's Algorithm 1 for two
tasks, else its Frank-Wolfe solver (Algorithm 2) with exact line search, started from the best
pair as in the reference implementation (intel-isl/MultiObjectiveOptimization ``min_norm_solvers``).
Frank-Wolfe converges sublinearly, so its answer is then polished by a few primal active-set steps,
which end at the exact minimiser (to round-off).
"""

from __future__ import annotations

import torch
from torch import Tensor


def line_search(aa: Tensor, ab: Tensor, bb: Tensor) -> Tensor:
    """gamma in [0, 1] minimising ``|| gamma a + (1 - gamma) b ||^2`` from the three inner products
    (Algorithm 1: ``clip(((b - a) . b) / ||a - b||^2, 0, 1)``)."""
    denominator = aa - 2 * ab + bb
    if denominator <= 0:  # a == b: every gamma gives the same point
        return aa.new_tensor(0.5)
    return ((bb - ab) / denominator).clamp(0.0, 1.0)


def best_pair(gram: Tensor) -> Tensor:
    """The min-norm point over every edge of the simplex (Algorithm 1 on each pair i < j, all at
    once); ties go to the first pair in (i, j) order."""
    num = gram.shape[0]
    diag = gram.diagonal()
    aa, bb = diag[:, None].expand(num, num), diag[None, :].expand(num, num)
    denominator = aa - 2 * gram + bb
    gamma = torch.where(denominator > 0, ((bb - gram) / denominator.where(denominator > 0, 1.0)).clamp(0, 1), 0.5)
    values = gamma**2 * aa + 2 * gamma * (1 - gamma) * gram + (1 - gamma) ** 2 * bb
    upper = torch.ones(num, num, dtype=torch.bool, device=gram.device).triu(1)
    flat = int(torch.argmin(values.masked_fill(~upper, float("inf"))))
    i, j = divmod(flat, num)
    weights = gram.new_zeros(num)
    weights[i], weights[j] = gamma[i, j], 1 - gamma[i, j]
    return weights


def min_norm_weights(gram: Tensor, max_iters: int = 1000, tol: float = 1e-10) -> Tensor:
    """Simplex weights of the min-norm point of the convex hull of the gradients with Gram ``gram``."""
    gram = gram.double()
    num = gram.shape[0]
    if num == 1:
        return gram.new_ones(1)
    weights = best_pair(gram)
    if num == 2:
        return weights
    for _ in range(max_iters):
        grad = gram @ weights
        t = int(torch.argmin(grad))
        vertex = gram.new_zeros(num)
        vertex[t] = 1.0
        gamma = line_search(weights @ grad, grad[t], gram[t, t])
        step = (1 - gamma) * (vertex - weights)
        weights = weights + step
        if step.abs().sum() < tol:
            break
    return active_set_polish(gram, weights)


def face_minimiser(gram: Tensor, support: list[int]) -> Tensor:
    """argmin of a.G a over {a : sum a = 1, a_j = 0 off ``support``} (the KKT linear system,
    solved by least squares so that a singular Gram matrix is handled)."""
    size = len(support)
    system = gram.new_zeros(size + 1, size + 1)
    system[:size, :size] = gram[support][:, support]
    system[:size, size] = system[size, :size] = 1.0
    rhs = gram.new_zeros(size + 1, 1)
    rhs[size] = 1.0
    solution = torch.linalg.lstsq(system, rhs, driver="gelsd").solution.flatten()[:size]
    weights = gram.new_zeros(gram.shape[0])
    weights[support] = solution
    return weights


def active_set_polish(gram: Tensor, weights: Tensor, max_iters: int = 100) -> Tensor:
    """Primal active-set iterations (Nocedal and Wright, Alg. 16.3) from the feasible ``weights``:
    move to the minimiser on the current face, dropping a task at the first zero crossing and
    adding the task that most violates ``(G a)_j >= a.G a``. Exact in finitely many steps."""
    scale = gram.diagonal().max().clamp_min(1e-300)
    support = [int(i) for i in (weights > 0).nonzero().flatten()]
    x = weights.clone()
    for _ in range(max_iters):
        target = face_minimiser(gram, support)
        direction = target - x
        negative = [i for i in support if target[i] < 0]
        if negative:
            steps = torch.stack([x[i] / (x[i] - target[i]) for i in negative])
            blocking = negative[int(torch.argmin(steps))]
            x = (x + steps.min().clamp(0, 1) * direction).clamp_min(0)
            x[blocking] = 0.0
            x = x / x.sum()
            support.remove(blocking)
            continue
        x = target
        grad = gram @ x
        j = int(torch.argmin(grad))
        if grad[j] >= x @ grad - 1e-12 * scale or j in support:
            return x
        support.append(j)
    return x


def gradient_normalizers(grads: Tensor, losses: Tensor, kind: str) -> Tensor:
    """Per-task scale the gradients are divided by before solving (reference ``gradient_normalizers``):
    ``l2``: the gradient norm; ``loss``: the loss; ``loss+``: loss times norm; ``none``: 1."""
    norms = grads.norm(dim=1)
    if kind == "l2":
        return norms
    if kind == "loss":
        return losses.detach()
    if kind == "loss+":
        return losses.detach() * norms
    if kind == "none":
        return torch.ones_like(norms)
    raise ValueError(f"unknown gradient normalisation {kind!r}; valid: l2, loss, loss+, none")
