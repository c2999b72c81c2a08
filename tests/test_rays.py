import math

import pytest
import torch

from bench.errors import ConfigError
from bench.loop import training_progress
from bench.rays import (
    RaySampler,
    annealing_rays,
    dirichlet_rays,
    eval_grid,
    interior_rays,
    sample_gamma_log,
    simplex_lattice,
)


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


def test_annealing_three_tasks_uses_the_lattice_moved_inside():
    rays = RaySampler("annealing", 3, 6).sample(0.5, torch.Generator())
    assert rays.shape == (6, 3) and on_simplex(rays)
    eps = 0.01
    base = interior_rays(3, 6, eps)  # {0, 1/2, 1} lattice -> eps + (1 - 3 eps) * lattice
    assert torch.allclose(base[0], torch.tensor([1 - 2 * eps, eps, eps]))
    assert torch.allclose(base[1], torch.tensor([0.5 - eps / 2, 0.5 - eps / 2, eps]))
    assert base.min() >= eps - 1e-7 and on_simplex(base)
    # the closed form at t = 1 for the vertex ray
    top = (1 - 2 * eps) ** 5
    assert annealing_rays(3, 6, 1.0, 5.0, eps)[0, 0].item() == pytest.approx(top / (top + 2 * eps**5), rel=1e-5)


@pytest.mark.parametrize("window", [3, 6])
def test_three_task_annealing_moves_and_reaches_the_interior(window):
    """With the {0, 1/2, 1} lattice every power left the rays unchanged and no ray had all weights
    > 0; the schedule must move the rays and pass through the interior of the simplex."""
    total = 200
    draws = [
        RaySampler("annealing", 3, window).sample(training_progress(step, total), torch.Generator())
        for step in range(total)
    ]
    assert not torch.allclose(draws[0], draws[-1], atol=0.05)
    stacked = torch.cat(draws)
    interior = (stacked >= 0.2).all(dim=1)
    # early rays sit near the uniform ray; with eps = 0.01 the power spreads them within the first
    # few percent of training, as it does for T = 2 (lambda_1 leaves [0.2, 0.8] as early)
    assert interior[:window].all() and interior.float().mean() > 0.02
    near_vertex = stacked.max(dim=1).values > 0.9
    assert near_vertex.any()  # late rays near the vertices (window 3) or edges' ends
    assert (annealing_rays(3, window, 1.0, 5.0, 0.01) > 0).all()
    lattice = simplex_lattice(3, 1 if window == 3 else 2)
    assert torch.equal(lattice.pow(5.0 * 0.5) / lattice.pow(5.0 * 0.5).sum(1, keepdim=True), lattice)  # the old no-op


def test_training_progress_follows_the_official_trainer():
    """nik-dim/palora base_trainer.py: the step counter is ticked before t = (counter + 1) / N."""
    assert training_progress(0, 10) == pytest.approx(0.2)
    assert training_progress(8, 10) == 1.0 and training_progress(9, 10) == 1.0


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
