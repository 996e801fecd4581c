"""Backbones for tables: standardised (B, F) features -> (B, D) embeddings.

- ``mlp``: Linear-Norm-ReLU blocks (batch norm by default, ``norm="layer"`` for layer
  norm), as the encoders of SCARF (Bahri et al. 2022: 4 layers of 256) and VIME.
- ``ft_transformer``: Gorishniy et al. 2021, "Revisiting Deep Learning Models for Tabular
  Data": each feature j becomes a token x_j * W_j + b_j (its own learned embedding), a
  [CLS] token is prepended, pre-norm Transformer blocks mix them, and the [CLS] output is
  the embedding.
"""

from __future__ import annotations

import torch
from torch import nn

from selfsup.backbones.registry import register


class TableMLP(nn.Module):
    def __init__(self, features: int, width: int = 256, depth: int = 3, norm: str = "batch"):
        super().__init__()
        layers, previous = [], features
        for _ in range(depth):
            layers += [nn.Linear(previous, width), nn.BatchNorm1d(width) if norm == "batch" else nn.LayerNorm(width),
                       nn.ReLU(inplace=True)]
            previous = width
        self.net = nn.Sequential(*layers)
        self.dim = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FTTransformer(nn.Module):
    def __init__(self, features: int, dim: int = 64, depth: int = 2, heads: int = 4):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(features, dim) / dim ** 0.5)
        self.bias = nn.Parameter(torch.zeros(features, dim))
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.unsqueeze(-1) * self.weight + self.bias  # (B, F, D): feature j as x_j W_j + b_j
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1)
        return self.norm(self.blocks(tokens)[:, 0])


@register("table")
def mlp(input_shape, **_) -> nn.Module:
    return TableMLP(input_shape[0])


@register("table")
def mlp_layernorm(input_shape, **_) -> nn.Module:
    return TableMLP(input_shape[0], norm="layer")


@register("table")
def ft_transformer(input_shape, **_) -> nn.Module:
    return FTTransformer(input_shape[0])
