"""Self-supervised methods, one file each, and a registry: ``create("byol", backbone)``."""

from __future__ import annotations

from torch import nn

from selfsup.methods.base import Method, OptimizerDefaults
from selfsup.methods.byol import BYOL
from selfsup.methods.simclr import SimCLR

METHODS: dict[str, type[Method]] = {cls.name: cls for cls in (SimCLR, BYOL)}


def create(name: str, backbone: nn.Module, **options) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(METHODS)}")
    return METHODS[name](backbone, **options)


__all__ = ["BYOL", "METHODS", "Method", "OptimizerDefaults", "SimCLR", "create"]
