"""Running a network on multi-crop views (SwAV, DINO): views of different sizes cannot
share one batch, so consecutive views of the same size are concatenated and run together
(one forward for the global crops, one for the local crops), as the papers' code does;
their BatchNorm statistics are those of all the views of that size."""

from __future__ import annotations

import torch
from torch import nn


def forward_multicrop(network: nn.Module, views: list[torch.Tensor]) -> torch.Tensor:
    """``network`` on every view; the outputs concatenated in view order, (sum of B_v, D)."""
    outputs, start = [], 0
    for end in range(1, len(views) + 1):
        if end == len(views) or views[end].shape[1:] != views[start].shape[1:]:
            outputs.append(network(torch.cat(views[start:end])))
            start = end
    return torch.cat(outputs)
