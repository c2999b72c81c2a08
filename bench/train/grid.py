"""The grid of a sweep spec (TOML): which runs it asks for, resolved to their configs and run ids.

``[grid]`` names the methods, datasets, seeds and ``variants`` (extra settings, one axis); ``[set]``
holds settings for every run and ``[per_method.<name>]`` settings for one method's runs, with an
optional ``variants`` list of its own in place of the grid's. A run's settings are ``[set]`` <
``[per_method.<name>]`` < its variant. The sweep (:mod:`bench.sweep.spec`) adds where the runs go;
the analysis reads a grid to know which runs a spec asks for (``bench report --spec``, ``bench tune``).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.core.errors import ConfigError
from bench.train.config import RunConfig, read_toml, resolve

GRID_KEYS = ("methods", "datasets", "seeds", "variants")
Settings = Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Grid:
    path: Path
    methods: tuple[str, ...]
    datasets: tuple[str, ...]
    seeds: tuple[int, ...]
    variants: tuple[Settings, ...]
    settings: Settings
    per_method: Mapping[str, Settings] = dataclasses.field(default_factory=dict)
    """``[per_method.<name>]``: settings for that method's runs only."""
    method_variants: Mapping[str, tuple[Settings, ...]] = dataclasses.field(default_factory=dict)
    """``[per_method.<name>] variants``: that method's variants, in place of the grid's."""

    def variants_of(self, method: str) -> tuple[Settings, ...]:
        return self.method_variants.get(method, self.variants)

    def config(self, method: str, dataset: str, seed: int, variant: Settings) -> RunConfig:
        """One run of the grid, resolved."""
        try:
            own = self.per_method.get(method, {})
            return resolve(method, dataset, seed, overrides={**self.settings, **own, **variant})
        except ConfigError as err:
            raise ConfigError(f"{self.path}: {method} on {dataset}: {err}") from None

    def entries(self) -> list[tuple[Settings, RunConfig]]:
        """Every run of the grid with its variant, resolved (dataset-major, then method, variant, seed)."""
        return [
            (variant, self.config(method, dataset, seed, variant))
            for dataset, method in itertools.product(self.datasets, self.methods)
            for variant in self.variants_of(method)
            for seed in self.seeds
        ]

    def configs(self) -> list[RunConfig]:
        return [config for _, config in self.entries()]

    def only(self, methods: list[str]) -> Grid:
        """The same grid for ``methods`` alone, in the grid's order (their runs keep their run ids)."""
        unknown = [m for m in methods if m not in self.methods]
        if unknown:
            names = ", ".join(map(repr, unknown))
            raise ConfigError(f"{self.path}: no method {names} in this grid; its methods: {', '.join(self.methods)}")
        return dataclasses.replace(self, methods=tuple(m for m in self.methods if m in methods))


def check_keys(table: Mapping[str, Any], valid: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(valid))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(valid)}")


def string_list(grid: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = grid.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: [grid] {key} must be a non-empty list of names, got {value!r}")
    if twice := sorted({v for v in value if value.count(v) > 1}):
        raise ConfigError(f"{where}: [grid] {key} lists {', '.join(twice)} more than once")
    return tuple(value)


def settings_list(value: Any, where: str) -> tuple[Settings, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, Mapping) for v in value):
        raise ConfigError(f"{where} must be a list of tables of settings, got {value!r}")
    return tuple(dict(v) for v in value)


def read_grid(path: Path, table: Mapping[str, Any]) -> Grid:
    """The grid of spec ``table`` (read from ``path``), validated; other tables are left to the caller."""
    for name in ("set", "per_method"):
        if not isinstance(table.get(name, {}), Mapping):
            raise ConfigError(f"{path}: [{name}] must be a table of settings, got {name} = {table[name]!r}")
    grid = table.get("grid")
    if not isinstance(grid, Mapping):
        raise ConfigError(f"{path}: a [grid] table with methods, datasets and seeds is required")
    check_keys(grid, GRID_KEYS, f"{path} [grid]")
    seeds = grid.get("seeds", [0])
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        raise ConfigError(f"{path}: [grid] seeds must be a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{path}: [grid] seeds lists a seed more than once: {seeds}")
    methods = string_list(grid, "methods", str(path))
    per_method: dict[str, Settings] = {}
    method_variants: dict[str, tuple[Settings, ...]] = {}
    for name, values in table.get("per_method", {}).items():
        if not isinstance(values, Mapping):
            raise ConfigError(f"{path}: [per_method.{name}] must be a table of settings")
        per_method[name] = {k: v for k, v in values.items() if k != "variants"}
        if "variants" in values:
            method_variants[name] = settings_list(values["variants"], f"{path}: [per_method.{name}] variants")
    if stray := sorted(set(per_method) - set(methods)):
        raise ConfigError(
            f"{path}: [per_method] names {', '.join(stray)}, not in [grid] methods ({', '.join(methods)})"
        )
    return Grid(
        path=path,
        methods=methods,
        datasets=string_list(grid, "datasets", str(path)),
        seeds=tuple(seeds),
        variants=settings_list(grid.get("variants", [{}]), f"{path}: [grid] variants"),
        settings=dict(table.get("set", {})),
        per_method=per_method,
        method_variants=method_variants,
    )


def load_grid(path: Path) -> Grid:
    """The grid of the sweep spec at ``path``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep spec {path} not found; examples are in slurm/*.toml")
    return read_grid(path, read_toml(path))
