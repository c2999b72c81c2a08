import math

import pytest
import torch

from bench.errors import ConfigError
from bench.rays import RaySampler, annealing_rays, dirichlet_rays, eval_grid, sample_gamma_log, simplex_lattice


def on_simplex(rays: torch.Tensor) -> bool:
    return bool((rays >= 0).all() and torch.allclose(rays.sum(1), torch.ones(len(rays)), atol=1e-6))


def test_eval_grid_sizes_and_values():
    two = eval_grid(2)
    assert two.shape == (11, 2) and on_simplex(two)
    assert torch.allclose(two[:, 0], torch.linspace(0, 1, 11))
    three = eval_grid(3)
    assert three.shape == (66, 3) and on_simplex(three)
    assert len({tuple(r) for r in three.tolist()}) == 66
    many = eval_grid(7)
    assert many.shape == (8, 7) and on_simplex(many)
    assert torch.allclose(many[-1], torch.full((7,), 1 / 7))


def test_simplex_lattice_counts():
    assert simplex_lattice(3, 2).shape == (6, 3)
    assert simplex_lattice(4, 3).shape == (math.comb(6, 3), 4)


def test_annealing_follows_the_formula():
    eps, mul = 0.01, 5.0
    for t in (0.0, 0.3, 1.0):
        rays = annealing_rays(2, 2, t, mul, eps)
        first = torch.tensor([eps, 1 - eps])
        expected = first ** (mul * t) / (first ** (mul * t) + first.flip(0) ** (mul * t))
        assert torch.allclose(rays[:, 0], expected, atol=1e-6)
        assert on_simplex(rays)
    # t = 0: uniform; t = 1: the known value 0.01^5 / (0.01^5 + 0.99^5)
    assert torch.allclose(annealing_rays(2, 3, 0.0, mul, eps), torch.full((3, 2), 0.5))
    assert annealing_rays(2, 2, 1.0, mul, eps)[0, 0].item() == pytest.approx(0.01**5 / (0.01**5 + 0.99**5), rel=1e-4)


def test_annealing_three_tasks_uses_the_lattice():
    rays = RaySampler("annealing", 3, 6).sample(0.5, torch.Generator())
    assert rays.shape == (6, 3) and on_simplex(rays)


def test_annealing_needs_two_rays():
    with pytest.raises(ConfigError, match="at least 2"):
        RaySampler("annealing", 2, 1)


def test_unknown_sampler_lists_valid_ones():
    with pytest.raises(ConfigError, match="annealing_dirichlet"):
        RaySampler("uniform", 2, 2)


@pytest.mark.parametrize("alpha", [0.3, 1.0, 4.0])
def test_gamma_sampler_mean_and_variance(alpha):
    g = torch.Generator().manual_seed(0)
    samples = sample_gamma_log(torch.full((40000,), alpha), g).exp()
    assert samples.mean().item() == pytest.approx(alpha, rel=0.03)
    assert samples.var().item() == pytest.approx(alpha, rel=0.06)


def test_dirichlet_moments_and_reproducibility():
    g = torch.Generator().manual_seed(1)
    rays = dirichlet_rays(2, 40000, 1.0, g)
    assert on_simplex(rays)
    # Dirichlet(1, 1): lambda_1 ~ Uniform(0, 1): mean 1/2, variance 1/12
    assert rays[:, 0].mean().item() == pytest.approx(0.5, abs=0.01)
    assert rays[:, 0].var().item() == pytest.approx(1 / 12, rel=0.04)
    again = dirichlet_rays(2, 40000, 1.0, torch.Generator().manual_seed(1))
    assert torch.equal(rays, again)


def test_annealing_dirichlet_ends_at_the_vertices():
    sampler = RaySampler("annealing_dirichlet", 3, 2000, p=1.0)
    g = torch.Generator().manual_seed(2)
    start, end = sampler.sample(0.0, g), sampler.sample(1.0, g)
    assert on_simplex(start) and on_simplex(end)
    assert (end.max(1).values > 0.99).float().mean() > 0.95  # concentration 0.001: nearly one-hot
    assert (start.max(1).values > 0.99).float().mean() < 0.05
