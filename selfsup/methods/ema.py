"""The momentum (EMA) encoder of MoCo and its descendants: after each optimizer step the
target follows the online network, xi <- m * xi + (1 - m) * theta, and gets no gradient."""

from __future__ import annotations

import copy

import torch
from torch import nn


def frozen_copy(network: nn.Module) -> nn.Module:
    """A copy of ``network`` that starts equal to it and is never trained by the optimizer."""
    return copy.deepcopy(network).requires_grad_(False)


@torch.no_grad()
def ema_update(online: nn.Module, target: nn.Module, momentum: float) -> None:
    """Move ``target``'s parameters (and float buffers, e.g. BatchNorm running statistics)
    towards ``online``'s; integer buffers (BatchNorm's step count) are copied."""
    for o, t in zip(online.parameters(), target.parameters()):
        t.lerp_(o, 1 - momentum)
    for o, t in zip(online.buffers(), target.buffers()):
        if t.dtype.is_floating_point:
            t.lerp_(o, 1 - momentum)
        else:
            t.copy_(o)
