import dataclasses
import math
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from bench.core.errors import ConfigError
from bench.core.rays import (
    RaySampler,
    annealing_rays,
    dirichlet_rays,
    eval_grid,
    interior_rays,
    sample_gamma_log,
    simplex_lattice,
)
from bench.train.config import resolve
from bench.train.loop import training_progress


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
    # few percent of training, as it does for T = 2 (lambda_1 leaves [0.2, 0.8] as early). This only
    # checks that the interior is reached: how long it is trained is measured, against its closed
    # form, by test_nyuv2_window_schedules_interior_fractions.
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


# NYUv2's window-3 schedules (issue 25): how often a step trains a ray inside the simplex, every
# weight >= INTERIOR. PaMaL's front interior is the members' mixtures, trained only by such rays.
INTERIOR = 0.05


def nyuv2_steps() -> int:
    """Optimizer steps of a NYUv2 run at the protocol's settings: 700 train samples (the official
    700 / 95 cut) / batch 2 = 350 steps per epoch, 200 epochs -> 70,000."""
    from bench.core.registry import DATASETS
    from bench.data.nyuv2 import LAYOUT

    defaults = DATASETS.get("nyuv2").train_defaults
    return math.ceil(LAYOUT.train_fraction[0] / defaults["train.batch_size"]) * defaults["train.epochs"]


def annealing_interior_progress(window_eps: float, mul: float, weight: float) -> float:
    """The last progress t at which the window-3 annealing rays, the permutations of
    (1 - 2 eps, eps, eps) ** (mul t) renormalised, keep every weight >= ``weight``: with
    r = (eps / (1 - 2 eps)) ** (mul t) the smallest weight is r / (1 + 2 r), so
    t* = ln((1 - 2 w) / w) / (mul ln((1 - 2 eps) / eps))."""
    return math.log((1 - 2 * weight) / weight) / (mul * math.log((1 - 2 * window_eps) / window_eps))


def dirichlet_interior_probability(p: int, weight: Fraction) -> Fraction:
    """P(every coordinate of a Dirichlet(p, p, p) ray >= w), exactly, for an integer p and w < 1/3:
    1 - 3 P(X1 < w) + 3 P(X1 < w, X2 < w) (three coordinates cannot all be below w). X1 ~ Beta(p, 2p);
    (X1, X2) has density C x^(p-1) y^(p-1) (1 - x - y)^(p-1), C = (3p - 1)! / ((p - 1)!^3), whose
    expansion integrates term by term over [0, w]^2."""
    f = math.factorial
    beta = Fraction(f(3 * p - 1), f(p - 1) * f(2 * p - 1))
    one = sum(beta * math.comb(2 * p - 1, k) * (-1) ** k * weight ** (p + k) / (p + k) for k in range(2 * p))
    joint = Fraction(f(3 * p - 1), f(p - 1) ** 3)
    two = Fraction(0)
    for i in range(p):
        for j in range(p - i):
            multinomial = Fraction(f(p - 1), f(i) * f(j) * f(p - 1 - i - j))
            two += multinomial * (-1) ** (i + j) * weight ** (p + i) / (p + i) * weight ** (p + j) / (p + j)
    return 1 - 3 * one + 3 * joint * two


def test_dirichlet_interior_closed_form_at_p_one_is_the_uniform_simplex():
    # Dirichlet(1, 1, 1) is uniform on the simplex: the inner triangle of side 1 - 3w has area (1 - 3w)^2
    assert dirichlet_interior_probability(1, Fraction(1, 20)) == Fraction(17, 20) ** 2


@pytest.mark.slow
def test_nyuv2_window_schedules_interior_fractions():
    """Over a NYUv2 run (70,000 steps of 3 rays), the share of rays with every weight >= 0.05:
    - annealing (the preset; mul 5, eps 0.01): 0.12606, the steps with t <= t* = 0.12608, all three
      rays at once (they are symmetric); after that the three rays sit near the vertices;
    - Dirichlet(7) (nik-dim/pamal's PaMaL windows, `method.sampler = "dirichlet"`, p 7): 0.99990
      (exact 0.999898), every step with at least one interior ray;
    - Dirichlet(1) (PaDoRA's official p with the dirichlet sampler): 0.7225 = 0.85^2."""
    steps = nyuv2_steps()
    assert steps == 70_000

    annealing = RaySampler("annealing", 3, 3, mul=5.0, eps=0.01)
    rays = torch.stack([annealing.sample(training_progress(s, steps), torch.Generator()) for s in range(steps)])
    inside = (rays >= INTERIOR).all(dim=2)  # [steps, 3]
    t_star = annealing_interior_progress(0.01, 5.0, INTERIOR)
    assert t_star == pytest.approx(0.126080, abs=1e-6)
    # training_progress(s) = (s + 2) / N: the steps s <= t* N - 2 are inside
    expected = (math.floor(t_star * steps) - 1) / steps
    assert inside.float().mean().item() == pytest.approx(expected, abs=1e-7)
    assert inside.float().mean().item() == pytest.approx(0.12606, abs=1e-5)
    assert torch.equal(inside.all(dim=1), inside.any(dim=1))  # the three rays enter and leave together
    assert not inside[math.floor(t_star * steps) - 1 :].any()  # never again after t*

    # Dirichlet draws ignore progress and are independent, so a run's rays are 3 N draws of one law
    sampler = RaySampler("dirichlet", 3, 3, p=7.0)
    assert torch.equal(
        sampler.sample(0.9, torch.Generator().manual_seed(5)),
        dirichlet_rays(3, 3, 7.0, torch.Generator().manual_seed(5)),
    )
    for p, exact, tolerance in ((7, 0.999898, 1e-4), (1, 0.7225, 4e-3)):  # about 4.5 and 4 binomial sd
        closed = dirichlet_interior_probability(p, Fraction(1, 20))
        assert float(closed) == pytest.approx(exact, abs=1e-6)
        draws = dirichlet_rays(3, 3 * steps, float(p), torch.Generator().manual_seed(p))
        inside = (draws >= INTERIOR).all(dim=1).view(steps, 3)
        assert inside.float().mean().item() == pytest.approx(float(closed), abs=tolerance)
        step_share = 1 - (1 - float(closed)) ** 3  # steps with at least one interior ray
        assert inside.any(dim=1).float().mean().item() == pytest.approx(step_share, abs=tolerance)


SAMPLER_SWEEP = Path(__file__).resolve().parents[1] / "slurm" / "nyuv2-ablation-sampler.toml"


@pytest.mark.parametrize("method", ["pamal", "padora"])
def test_nyuv2_presets_anneal_and_dirichlet_seven_is_a_named_variant(method: str):
    """The NYUv2 presets keep nik-dim/palora's annealing sampler (configs/experiment/nyuv2/nyuv2.yaml);
    Dirichlet(7) windows are the second variant of slurm/nyuv2-ablation-sampler.toml."""
    from bench.core.registry import DATASETS, METHODS
    from bench.sweep.spec import load_spec

    preset = resolve(method, "nyuv2").hparams
    assert (preset.sampler, preset.window, preset.mul, preset.eps) == ("annealing", 3, 5.0, 0.01)
    assert preset.p == (7.0 if method == "pamal" else 1.0)  # pamal.yaml p 7; padora.yaml p 1
    variants = {
        (c.hparams.sampler, c.hparams.p, c.hparams.window)
        for c in load_spec(SAMPLER_SWEEP).configs()
        if c.method == method and c.dataset == "nyuv2"
    }
    assert variants == {("annealing", preset.p, 3), ("dirichlet", 7.0, 3)}
    dirichlet = resolve(method, "nyuv2", assignments=["method.sampler=dirichlet", "method.p=7"]).hparams
    assert dataclasses.replace(preset, sampler="dirichlet", p=7.0) == dirichlet  # nothing else changes
    learner = METHODS.get(method)(dirichlet, DATASETS.get("nyuv2"))
    rays = learner.train_rays(0.5, torch.Generator().manual_seed(3))
    assert torch.equal(rays, dirichlet_rays(3, 3, 7.0, torch.Generator().manual_seed(3)))
    if method == "pamal":  # the preset already carries p = 7: the sampler alone switches
        assert resolve(method, "nyuv2", assignments=["method.sampler=dirichlet"]).hparams == dirichlet
