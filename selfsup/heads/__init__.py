"""Heads: small MLPs put on top of a backbone (projectors and predictors)."""

from __future__ import annotations

from torch import nn


class MLP(nn.Sequential):
    """``Linear -> BatchNorm -> ReLU`` repeated ``layers - 1`` times, then a ``Linear``.

    This is the projection head of SimCLR (2 layers) and the projector and predictor of
    BYOL (2 layers, hidden 4096, output 256 in the paper)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, layers: int = 2):
        blocks, previous = [], in_dim
        for _ in range(layers - 1):
            blocks += [nn.Linear(previous, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim),
                       nn.ReLU(inplace=True)]
            previous = hidden_dim
        blocks.append(nn.Linear(previous, out_dim))
        super().__init__(*blocks)
