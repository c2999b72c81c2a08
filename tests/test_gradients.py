"""The per-task gradient norms of the gradient-balanced loss (PaLoRA ``gb``, PaMaL ``gradnorm``) equal the
row norms of the full task Jacobian, which they avoid building."""

from __future__ import annotations

import torch

from methods.gradients import task_gradient_norms, task_jacobian


def test_gradient_norms_equal_the_jacobian_row_norms():
    torch.manual_seed(0)
    weight, bias, unused = torch.randn(5, 4, requires_grad=True), torch.randn(5, requires_grad=True), torch.randn(3)
    unused.requires_grad_(True)
    x = torch.randn(8, 4)
    out = x @ weight.T + bias
    losses = torch.stack([out[:, :2].square().mean(), out[:, 2:].abs().mean(), bias.sum()])  # 3rd: bias only
    inputs = [weight, bias, unused]  # one input no loss reaches: a zero block of the Jacobian
    norms = task_gradient_norms(losses, inputs)
    expected = task_jacobian(losses, inputs).norm(dim=1)
    torch.testing.assert_close(norms, expected, rtol=1e-6, atol=0.0)
    assert norms[2].item() == torch.tensor(5.0).sqrt().item()  # d(sum b)/db = 1 in 5 places
    assert not norms.requires_grad and out.grad_fn is not None  # constants; the graph is kept
    losses.sum().backward()  # still usable for the step's backward
    assert weight.grad is not None
