"""Name -> object registries, filled at the definition site (``@METHODS.register("palora")``).

Modelled on timm's ``register_model``: registration happens where a thing is defined, lookups are
by exact name, and a miss lists every valid name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

from bench.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from exact names to objects with a one-line description each."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._descriptions: dict[str, str] = {}

    def add(self, name: str, obj: T, description: str) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = obj
        self._descriptions[name] = description.strip().splitlines()[0] if description else ""
        return obj

    def register(self, name: str, description: str | None = None) -> Callable[[T], T]:
        """Decorator: register the decorated object under ``name`` (description defaults to its docstring)."""

        def decorate(obj: T) -> T:
            return self.add(name, obj, description or (obj.__doc__ or ""))

        return decorate

    def get(self, name: str) -> T:
        if name not in self._items:
            raise ConfigError(f"unknown {self.kind} {name!r}; valid {self.kind}s: {', '.join(self.names())}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def describe(self) -> list[tuple[str, str]]:
        return [(name, self._descriptions[name]) for name in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._items


METHODS: Registry = Registry("method")
DATASETS: Registry = Registry("dataset")
BACKBONES: Registry = Registry("backbone")


def register_dataset(spec):  # noqa: ANN001, ANN201 - a DatasetSpec; typed loosely to avoid an import cycle
    """Register a DatasetSpec under its own name and description."""
    return DATASETS.add(spec.name, spec, spec.description)


_PLUGIN_PACKAGES = ("methods", "bench.data", "bench.backbones")


def load_all() -> None:
    """Import every package whose modules register methods, datasets and backbones."""
    for package in _PLUGIN_PACKAGES:
        importlib.import_module(package)
