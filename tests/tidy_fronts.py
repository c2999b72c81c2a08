"""Hand-made tidy fronts tables (one row per label, seed and ray: ``ray_<task>``, ``<task>_<metric>``)
for the tests of the attainment and preference figures."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from bench.core.spec import DatasetSpec

Errors = Callable[[float, int], tuple[float, ...]]
"""(lambda_1, seed) -> one error per task (1 - accuracy)."""


def rows(label: str, spec: DatasetSpec, rays: Sequence[float], seeds: Sequence[int], errors: Errors) -> list[dict]:
    """Rows of ``label``: at each lambda_1 in ``rays`` (the other tasks share 1 - lambda_1) and seed,
    accuracy = 1 - error and loss = 2 * error per task."""
    tasks = spec.objective_names
    out = []
    for seed in seeds:
        for k, lam in enumerate(rays):
            weights = [lam] + [(1 - lam) / (len(tasks) - 1)] * (len(tasks) - 1)
            err = errors(lam, seed)
            row: dict = {"label": label, "seed": seed, "ray_index": k}
            row |= {f"ray_{t}": w for t, w in zip(tasks, weights, strict=True)}
            for t, e in zip(tasks, err, strict=True):
                row[f"{t}_accuracy"] = 1.0 - e
                row[f"{t}_loss"] = 2.0 * e
            out.append(row)
    return out


GRID = list(np.linspace(0.0, 1.0, 11))


def realistic(spec: DatasetSpec, seeds: Sequence[int] = (0, 1, 2)) -> pd.DataFrame:
    """A MultiMNIST-like table: four Pareto-front methods over 11 rays (one collapsed onto a single
    point, one with a bumpy mapping), linear scalarization with poor single-task ends, and six single
    models in a tight cluster."""
    rng = np.random.default_rng(7)
    noise = {s: rng.normal(0, 1, 64) for s in seeds}

    def front(a: float, b: float, bend: float, spread: float) -> Errors:
        def errors(lam: float, seed: int) -> tuple[float, float]:
            jitter = spread * noise[seed][int(round(lam * 10))]
            t = lam + 0.03 * noise[seed][20]
            e1 = a + 0.06 * (1 - t) ** 2 + bend * (1 - t) + jitter
            e2 = b + 0.06 * t**2 + bend * t + 0.7 * jitter
            return float(e1), float(e2)

        return errors

    def collapsed(lam: float, seed: int) -> tuple[float, float]:
        return 0.085 + 0.002 * noise[seed][30], 0.105 + 0.002 * noise[seed][31]

    def bumpy(lam: float, seed: int) -> tuple[float, float]:
        e1, e2 = front(0.062, 0.083, 0.01, 0.0015)(lam, seed)
        return e1 + 0.012 * np.sin(9 * lam), e2 - 0.008 * np.sin(9 * lam)

    def ls(lam: float, seed: int) -> tuple[float, float]:
        e1, e2 = front(0.058, 0.078, 0.012, 0.002)(lam, seed)
        return e1 + (0.3 if lam == 0 else 0.0), e2 + (0.35 if lam == 1 else 0.0)

    table = []
    table += rows("palora", spec, GRID, seeds, front(0.055, 0.075, 0.012, 0.0015))
    table += rows("pamal", spec, GRID, seeds, front(0.058, 0.079, 0.015, 0.002))
    table += rows("phn-ls", spec, GRID, seeds, bumpy)
    table += rows("cosmos", spec, GRID, seeds, collapsed)
    table += rows("ls", spec, GRID, seeds, ls)
    for n, name in enumerate(["mean", "mgda", "pcgrad", "cagrad", "upgrad", "nash-mtl"]):
        centre = (0.066 + 0.002 * (n % 3), 0.087 + 0.0015 * (n // 2))

        def single(lam: float, seed: int, centre: tuple[float, float] = centre, n: int = n) -> tuple[float, float]:
            return centre[0] + 0.0012 * noise[seed][40 + n], centre[1] + 0.0012 * noise[seed][50 + n]

        table += rows(name, spec, [0.5], seeds, single)
    return pd.DataFrame(table)
