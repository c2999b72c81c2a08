"""Name -> object registries, filled at the definition site (``@METHODS.register("palora")``).

Modelled on timm's ``register_model``: registration happens where a thing is defined, lookups are
by exact name, and a miss lists every valid name. Names, descriptions and the defining modules are
read from the plug-in modules' source by :mod:`bench.core.catalog` before anything is imported;
:meth:`Registry.get` imports an entry's module the first time the entry is built.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Callable
from types import FrameType
from typing import Generic, TypeVar

import bench.core.catalog
from bench.core.catalog import Entry
from bench.core.cli import summary
from bench.core.errors import ConfigError, did_you_mean

T = TypeVar("T")


def _registering_module() -> str:
    """The module that called into this one (the frame nearest the caller outside ``bench.core.registry``)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    return frame.f_globals.get("__name__", "") if frame is not None else ""


class Registry(Generic[T]):
    """A mapping from exact names to objects with a one-line description each.

    ``catalog`` (name -> (module, description), or a function that reads them, called on first
    use) lists the entries that exist before their modules are imported; an entry is imported on its
    first :meth:`get`. A registry whose catalogue is read by a function (``METHODS``, ``DATASETS``,
    ``BACKBONES``) refuses a registration by a module of its kind's package that the catalogue did
    not read (:func:`bench.core.catalog.check_registration`).
    """

    def __init__(self, kind: str, catalog: dict[str, Entry] | Callable[[], dict[str, Entry]] | None = None) -> None:
        self.kind = kind
        self._source = catalog
        self._read: dict[str, Entry] | None = None
        self._items: dict[str, T] = {}
        self._descriptions: dict[str, str] = {}
        self._modules: dict[str, str] = {}

    @property
    def _catalog(self) -> dict[str, Entry]:
        if self._read is None:
            source = self._source
            self._read = dict(source() if callable(source) else source or {})
        return self._read

    def add(self, name: str, obj: T, description: str) -> T:
        """Register ``obj`` under ``name``; the description is the first paragraph of ``description``."""
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        module = _registering_module()
        if callable(self._source):
            bench.core.catalog.check_registration(self.kind, name, module, self._catalog)
        self._items[name] = obj
        self._descriptions[name] = summary(description)
        self._modules[name] = module
        return obj

    def register(self, name: str, description: str | None = None) -> Callable[[T], T]:
        """Decorator: register the decorated object under ``name`` (description defaults to its docstring)."""

        def decorate(obj: T) -> T:
            return self.add(name, obj, description or (obj.__doc__ or ""))

        return decorate

    def check(self, name: str) -> None:
        """Raise the error :meth:`get` raises for an unknown ``name``, without importing anything."""
        if name not in self:
            hint = did_you_mean(name, self.names())
            raise ConfigError(f"unknown {self.kind} {name!r}{hint}; valid {self.kind}s: {', '.join(self.names())}")

    def get(self, name: str) -> T:
        """The object registered as ``name``, importing its module on first use; a miss lists the valid names."""
        self.check(name)
        if name not in self._items:
            module = self._catalog[name][0]
            importlib.import_module(module)
            if name not in self._items:
                raise RuntimeError(
                    f"bench/core/catalog.py says {module} registers {self.kind} {name!r}, but importing it did not"
                )
        return self._items[name]

    def module(self, name: str) -> str:
        """The module that registers ``name`` (without importing it); empty for an entry put in by hand."""
        self.check(name)
        return self._modules.get(name) or self._catalog.get(name, ("", ""))[0]

    def names(self) -> list[str]:
        return sorted(self._catalog.keys() | self._items.keys())

    def describe(self) -> list[tuple[str, str]]:
        """(name, description) of every entry, without importing any."""
        described = {name: entry[1] for name, entry in self._catalog.items()} | self._descriptions
        return [(name, described[name]) for name in self.names()]

    def registered(self) -> dict[str, Entry]:
        """(module, description) of each entry registered so far, as :mod:`bench.core.catalog` should list it."""
        return {name: (self._modules[name], self._descriptions[name]) for name in sorted(self._modules)}

    def __contains__(self, name: object) -> bool:
        return name in self._catalog or name in self._items


METHODS: Registry = Registry("method", lambda: bench.core.catalog.entries("method"))
DATASETS: Registry = Registry("dataset", lambda: bench.core.catalog.entries("dataset"))
BACKBONES: Registry = Registry("backbone", lambda: bench.core.catalog.entries("backbone"))


def register_dataset(spec):  # noqa: ANN001, ANN201 - a DatasetSpec; typed loosely to avoid an import cycle
    """Register a DatasetSpec under its own name and description."""
    return DATASETS.add(spec.name, spec, spec.description)


PLUGIN_PACKAGES = tuple(bench.core.catalog.PACKAGES.values())
"""The packages whose modules register methods, datasets and backbones."""


def load_all() -> None:
    """Import every module of the plugin packages, so every entry is registered (catalogued or not)."""
    for package in PLUGIN_PACKAGES:
        path = importlib.import_module(package).__path__
        for module in pkgutil.iter_modules(path):
            importlib.import_module(f"{package}.{module.name}")
