"""Self-supervised methods, one file each, and a registry: ``create("byol", backbone)``."""

from __future__ import annotations

# Importing a method's module registers it; this order is the order `selfsup methods` lists.
from selfsup.methods import (simclr, byol, simsiam, barlowtwins, vicreg, wmse, moco, mocov3,  # noqa: F401
                             nnclr, dcl, swav, dino, mae, ijepa, rotnet, supcon, scarf, masked_series,
                             ts2vec)
from selfsup.methods.base import Method, OptimizerDefaults
from selfsup.methods.registry import METHODS, create, register

globals().update({cls.__name__: cls for cls in METHODS.values()})  # from selfsup.methods import SimCLR

__all__ = ["METHODS", "Method", "OptimizerDefaults", "create", "register",
           *(cls.__name__ for cls in METHODS.values())]
