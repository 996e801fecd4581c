"""Heads: the modules methods put on top of a backbone, usable in any PyTorch loop:
projectors and predictors (``MLP``), DINO's head (``DINOHead``), SwAV's prototypes
(``Prototypes``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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


class DINOHead(nn.Module):
    """DINO's head (Caron et al. 2021): a 3-layer MLP (GELU) to a bottleneck, L2-normalised,
    then K outputs from a weight-normalised linear layer whose rows have norm 1."""

    def __init__(self, in_dim: int, out_dim: int = 4096, hidden_dim: int = 2048, bottleneck_dim: int = 256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, hidden_dim),
                                 nn.GELU(), nn.Linear(hidden_dim, bottleneck_dim))
        for layer in self.mlp[::2]:  # the paper's initialisation
            nn.init.trunc_normal_(layer.weight, std=0.02)
            nn.init.zeros_(layer.bias)
        # weight normalisation with its gain fixed to 1 is the direction of this weight
        self.last_layer = nn.Linear(bottleneck_dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(self.mlp(x), dim=-1)
        return F.linear(x, F.normalize(self.last_layer.weight, dim=1))


class Prototypes(nn.Module):
    """SwAV's K prototypes (Caron et al. 2020): unit vectors C; ``scores(z)`` = z C^T for
    L2-normalised z. ``normalize_()`` puts them back on the sphere (before every step), and
    ``frozen=True`` gives them a zero gradient (not none: DDP must see the parameter used)."""

    def __init__(self, dim: int, count: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(count, dim))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)  # nn.Linear's initialisation

    @torch.no_grad()
    def normalize_(self) -> None:
        self.weight.copy_(F.normalize(self.weight, dim=1))

    def scores(self, z: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        weight = self.weight.detach() + 0 * self.weight if frozen else self.weight
        return z @ weight.T
