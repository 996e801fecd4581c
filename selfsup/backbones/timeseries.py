"""Backbones for time series: standardised (B, C, T) -> (B, D) embeddings, the mean over
time of per-step features (the maximum with ``pool = "max"``, as TS2Vec's instance
representation); ``sequence(x)`` gives those (B, D, T) features, which masked
reconstruction and TS2Vec need.

- ``resnet1d``: Wang, Yan, Oates 2017, "Time Series Classification from Scratch with Deep
  Neural Networks": three residual blocks of 1-D convolutions (kernels 8, 5, 3; 64-128-128
  channels, batch norm, ReLU), no down-sampling, global average pooling over time;
  ``resnet1d_small`` halves the widths (32-64-64), about 4x cheaper on a CPU.
- ``dilated_cnn``: the encoder of TS2Vec (Yue et al. 2022), as its code's ``TSEncoder``:
  each step's C values are projected to ``hidden_dims`` = 64 (a linear layer), then
  ``depth`` = 10 residual blocks of width 64 and a last one to ``output_dims`` = 320, block
  i (from 0) being GELU, kernel-3 convolution with dilation 2^i, GELU, the same again, plus
  its input (through a 1x1 convolution where the widths differ, and in the last block);
  no normalisation (with timestamp masking, running statistics would be learnt on
  half-hidden inputs and used on whole ones); dropout 0.1 on the output while training.
  The widths are options (``--backbone-option hidden_dims=32`` etc.): the reference's
  sizes cost about 2.7x the time of 6 blocks to 128 on a CPU.
- ``series_transformer``: Zerveas et al. 2021, "A Transformer-based Framework for
  Multivariate Time Series Representation Learning": each step's C values are projected
  to a token, learned positional embeddings are added, Transformer blocks mix the steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.backbones.registry import register


class SequenceBackbone(nn.Module):
    channels: int  # C of the input, which masked reconstruction predicts back
    pool: str = "mean"  # over time, for the (B, D) embedding: "mean" or "max"

    def sequence(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def pooled(self, features: torch.Tensor) -> torch.Tensor:
        """(B, D, T) per-step features -> (B, D), pooled over time as ``forward`` pools."""
        return features.amax(dim=-1) if self.pool == "max" else features.mean(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pooled(self.sequence(x))


class ResidualBlock1d(nn.Module):
    def __init__(self, cin: int, cout: int, kernels=(8, 5, 3), dilation: int = 1):
        super().__init__()
        layers, previous = [], cin
        for i, k in enumerate(kernels):
            layers += [nn.Conv1d(previous, cout, k, padding="same", dilation=dilation, bias=False),
                       nn.BatchNorm1d(cout)]
            if i < len(kernels) - 1:
                layers.append(nn.ReLU(inplace=True))
            previous = cout
        self.body = nn.Sequential(*layers)
        self.shortcut = nn.Identity() if cin == cout else nn.Sequential(
            nn.Conv1d(cin, cout, 1, bias=False), nn.BatchNorm1d(cout))

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


class ResNet1d(SequenceBackbone):
    def __init__(self, channels: int, widths=(64, 128, 128)):
        super().__init__()
        blocks, previous = [], channels
        for width in widths:
            blocks.append(ResidualBlock1d(previous, width))
            previous = width
        self.blocks = nn.Sequential(*blocks)
        self.dim = previous
        self.channels = channels

    def sequence(self, x):
        return self.blocks(x)


class DilatedBlock(nn.Module):
    """TS2Vec's ``ConvBlock``: GELU -> conv -> GELU -> conv (kernel 3, dilation ``dilation``,
    the length kept), plus the input, through a 1x1 convolution when ``project``."""

    def __init__(self, cin: int, cout: int, dilation: int, project: bool):
        super().__init__()
        self.conv1 = nn.Conv1d(cin, cout, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(cout, cout, 3, padding=dilation, dilation=dilation)
        self.projector = nn.Conv1d(cin, cout, 1) if project else None

    def forward(self, x):
        residual = x if self.projector is None else self.projector(x)
        return self.conv2(F.gelu(self.conv1(F.gelu(x)))) + residual


class DilatedCNN(SequenceBackbone):
    def __init__(self, channels: int, hidden_dims: int = 64, output_dims: int = 320, depth: int = 10,
                 dropout: float = 0.1):
        super().__init__()
        self.input = nn.Linear(channels, hidden_dims)
        self.channels = channels
        widths = [hidden_dims] * (depth + 1) + [output_dims]  # in and out of block i: widths[i], widths[i + 1]
        self.blocks = nn.Sequential(*[DilatedBlock(widths[i], widths[i + 1], 2 ** i,
                                                   project=widths[i] != widths[i + 1] or i == depth)
                                      for i in range(depth + 1)])
        self.dropout = nn.Dropout(dropout)
        self.dim = output_dims

    def sequence(self, x, hidden: torch.Tensor | None = None, kept: torch.Tensor | None = None):
        """``hidden``: (B, T) booleans, steps whose projected input is set to 0 (TS2Vec's
        timestamp masking). ``kept``: (B, D, T) booleans, the output's entries the dropout
        keeps while training, for a caller that draws them from its own generator (the
        dropout's own draw comes from the global one)."""
        projected = self.input(x.transpose(1, 2)).transpose(1, 2).contiguous()
        if hidden is not None:
            projected = projected.masked_fill(hidden[:, None, :], 0.0)
        out = self.blocks(projected)
        if kept is None or not self.training or self.dropout.p == 0:
            return self.dropout(out)
        return out * kept / (1 - self.dropout.p)


class SeriesTransformer(SequenceBackbone):
    def __init__(self, channels: int, length: int, dim: int = 64, depth: int = 3, heads: int = 4):
        super().__init__()
        self.project = nn.Linear(channels, dim)
        self.channels = channels
        self.position = nn.Parameter(torch.randn(1, length, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.1,
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.dim = dim

    def sequence(self, x):
        tokens = self.project(x.transpose(1, 2)) + self.position[:, :x.shape[-1]]
        return self.norm(self.blocks(tokens)).transpose(1, 2)


@register("timeseries")
def resnet1d(input_shape, **_) -> nn.Module:
    return ResNet1d(input_shape[0])


@register("timeseries")
def resnet1d_small(input_shape, **_) -> nn.Module:
    return ResNet1d(input_shape[0], widths=(32, 64, 64))


@register("timeseries")
def dilated_cnn(input_shape, hidden_dims: int = 64, output_dims: int = 320, depth: int = 10, **_) -> nn.Module:
    return DilatedCNN(input_shape[0], hidden_dims, output_dims, depth)


@register("timeseries")
def series_transformer(input_shape, **_) -> nn.Module:
    return SeriesTransformer(input_shape[0], input_shape[1])
