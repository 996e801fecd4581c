"""Masked reconstruction for time series: Zerveas, Jayaraman, Patel, Bhamidipaty, Eickhoff.
"A Transformer-based Framework for Multivariate Time Series Representation Learning", KDD
2021, sec. 3.2.

For every channel independently, a binary mask M of the series' length hides a fraction
r = 0.15 of the steps in runs of mean length l_m = 3: the mask alternates between hidden
runs of length ~ Geometric(1/l_m) and visible runs of length ~ Geometric(r / ((1 - r) l_m)),
a two-state Markov chain. Hidden values are set to 0 (the channel mean after
standardisation), the backbone's per-step features go through a linear layer back to C
values, and the loss is the mean squared error over the hidden values only:

    L = 1/|M| sum_{(c, t) in M} (x^_{c,t} - x_{c,t})^2

Works with any series backbone that gives per-step features (``backbone.sequence``); the
paper's is a Transformer encoder (``series_transformer``), trained with Adam at lr 1e-3.
"""

from __future__ import annotations

import torch
from torch import nn

from selfsup.methods.base import Method, OptimizerDefaults, step_output
from selfsup.methods.masking import global_rows, step_generator
from selfsup.methods.registry import register


def geometric_masks(batch: int, channels: int, length: int, ratio: float, mean_span: float,
                    generator: torch.Generator) -> torch.Tensor:
    """(batch, channels, length) booleans, True where a value is hidden. Under data
    parallelism each process draws the global batch's masks and keeps its rows."""
    to_visible = 1 / mean_span  # probability that a hidden run ends at the next step
    to_hidden = to_visible * ratio / (1 - ratio)  # keeps the hidden fraction at ``ratio``
    start, total = global_rows(batch)
    uniforms = torch.rand(total, channels, length, generator=generator)[start:start + batch]
    state = (torch.rand(total, channels, generator=generator) < ratio)[start:start + batch]  # stationary start
    hidden = torch.empty(batch, channels, length, dtype=torch.bool)
    for t in range(length):  # a Markov chain: one step at a time, all series at once
        hidden[..., t] = state
        state = torch.where(state, uniforms[..., t] >= to_visible, uniforms[..., t] < to_hidden)
    return hidden


@register
class MaskedSeries(Method):
    name = "masked_series"
    paper = "Zerveas et al., A Transformer-based Framework for Multivariate Time Series Representation Learning"
    year = 2021
    recipe = "masked_series"
    needs = "1 view, masked (time series)"
    default_backbone = "resnet1d_small"
    optimizer = OptimizerDefaults("adamw", lr=1e-3, weight_decay=1e-4)

    def __init__(self, backbone: nn.Module, ratio: float = 0.15, mean_span: float = 3.0,
                 seed: int | None = None):
        super().__init__(backbone)
        if not hasattr(backbone, "sequence"):
            raise ValueError("masked_series needs a series backbone with per-step features "
                             "(resnet1d, resnet1d_small, dilated_cnn, series_transformer)")
        if not 0 < ratio < 1 or mean_span < 1:
            raise ValueError(f"ratio={ratio}, mean_span={mean_span}: expected 0 < ratio < 1, mean_span >= 1")
        self.ratio, self.mean_span = ratio, mean_span
        self.decoder = nn.Linear(backbone.dim, backbone.channels)
        # masks come from (seed, step), both saved with the weights, as MAE's: resume replays them
        seed = int(torch.randint(2**62, ())) if seed is None else seed
        self.register_buffer("mask_seed", torch.tensor(seed))
        self.register_buffer("mask_step", torch.tensor(0))

    def reconstruct(self, x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        return self.reconstruct_with_features(x, hidden)[0]

    def reconstruct_with_features(self, x: torch.Tensor, hidden: torch.Tensor):
        """(the reconstruction (B, C, T), the per-step features (B, D, T))."""
        features = self.backbone.sequence(x.masked_fill(hidden, 0.0))
        return self.decoder(features.transpose(1, 2)).transpose(1, 2), features

    def training_step(self, views):
        x = views[0]
        generator = step_generator(int(self.mask_seed), int(self.mask_step))
        self.mask_step += 1
        hidden = geometric_masks(*x.shape, self.ratio, self.mean_span, generator).to(x.device)
        reconstruction, features = self.reconstruct_with_features(x, hidden)
        error = (reconstruction - x).pow(2)
        return step_output(error[hidden].mean(), self.backbone.pooled(features),
                           {"hidden_fraction": float(hidden.float().mean())})
