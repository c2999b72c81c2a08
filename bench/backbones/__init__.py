"""Shared encoders with one head per objective; each module registers its factories on import, which
:mod:`bench.core.registry` does when a backbone is first built.

``create_backbone(name, spec, **kw)`` returns a fresh :class:`bench.core.spec.MultiTaskNet`. Every
factory accepts ``extra_inputs`` (more input channels for images, more features for vectors),
which input-conditioned methods such as COSMOS use for the ray, and those with pretrained
weights accept ``weights`` (a state-dict path, see :mod:`bench.backbones.weights`).
"""

from __future__ import annotations

from typing import Any

from bench.backbones.weights import resolve_weights
from bench.core.registry import BACKBONES
from bench.core.spec import DatasetSpec, MultiTaskNet


def create_backbone(name: str, spec: DatasetSpec, **kwargs: Any) -> MultiTaskNet:
    """Build backbone ``name`` for ``spec``'s input shape and objectives."""
    return BACKBONES.get(name)(spec, **kwargs)


__all__ = ["create_backbone", "resolve_weights"]
