"""Self-supervised methods, one file each, and a registry: ``create("byol", backbone)``."""

from __future__ import annotations

from torch import nn

from selfsup.methods.barlowtwins import BarlowTwins
from selfsup.methods.base import Method, OptimizerDefaults
from selfsup.methods.byol import BYOL
from selfsup.methods.dcl import DCL, DCLW
from selfsup.methods.dino import DINO
from selfsup.methods.ijepa import IJEPA
from selfsup.methods.mae import MAE
from selfsup.methods.masked_series import MaskedSeries
from selfsup.methods.moco import MoCo
from selfsup.methods.mocov3 import MoCoV3
from selfsup.methods.nnclr import NNCLR
from selfsup.methods.rotnet import RotNet
from selfsup.methods.scarf import SCARF
from selfsup.methods.simclr import SimCLR
from selfsup.methods.simsiam import SimSiam
from selfsup.methods.supcon import SupCon
from selfsup.methods.swav import SwAV
from selfsup.methods.ts2vec import TS2Vec
from selfsup.methods.vicreg import VICReg
from selfsup.methods.wmse import WMSE

METHODS: dict[str, type[Method]] = {
    cls.name: cls
    for cls in (SimCLR, BYOL, SimSiam, BarlowTwins, VICReg, WMSE, MoCo, MoCoV3, NNCLR, DCL, DCLW,
                SwAV, DINO, MAE, IJEPA, RotNet, SupCon, SCARF, MaskedSeries, TS2Vec)
}


def create(name: str, backbone: nn.Module, **options) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(METHODS)}")
    return METHODS[name](backbone, **options)


__all__ = ["BYOL", "BarlowTwins", "DCL", "DCLW", "DINO", "IJEPA", "MAE", "METHODS", "Method",
           "MaskedSeries", "MoCo", "MoCoV3", "NNCLR", "OptimizerDefaults", "RotNet", "SCARF", "SimCLR", "SimSiam", "SupCon", "SwAV", "TS2Vec",
           "VICReg", "WMSE", "create"]
