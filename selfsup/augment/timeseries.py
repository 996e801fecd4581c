"""Batched augmentations and view recipes for time series (standardised (B, C, T)).

The ops are those surveyed by Iwana & Uchida 2021 ("An empirical survey of data
augmentation for time series classification with neural networks") and used by
contrastive time-series methods (TS-TCC, Eldele et al. 2021: jitter, scaling,
permutation):

- jitter: x + N(0, sigma^2) at every step;
- scaling: x * s, s ~ N(1, sigma^2) per sample and channel;
- magnitude warping: x * w(t), w a smooth curve through knots ~ N(1, sigma^2);
- time warping: x(tau(t)), tau the normalised cumulative sum of a smooth positive speed
  curve through knots ~ N(1, sigma^2), i.e. parts of the series sped up or slowed down;
- window slicing (cropping, Le Guennec et al. 2016): a random window of a fraction in
  ``crop_scale`` of the length, stretched back to T steps;
- permutation: the series cut into ``segments`` equal pieces, shuffled;
- masking: random spans of ``mask_length`` steps set to 0 (the channel mean).

Each op with a probability runs on a random subset of the batch. Time warping and slicing
read the series at fractional positions with one batched linear interpolation.

Recipes: the two-view methods get two views of slice -> time warp -> magnitude warp ->
scaling -> jitter -> masking; ``masked_series`` (masked reconstruction) gets one view with
only scaling and jitter, since the masking is its pretext task; ``ts2vec`` gets the series
as it is (its contexts are crops and timestamp masks drawn by the method).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from selfsup.augment.float_ops import FloatRecipe, rand_rows, randn_rows
from selfsup.augment.registry import register


def read_at(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """x (B, C, T) read at fractional step positions (B, T') by linear interpolation."""
    t = x.shape[-1]
    positions = positions.clamp(0, t - 1)
    left = positions.floor().long().clamp_(max=t - 2) if t > 1 else positions.floor().long()
    weight = (positions - left).unsqueeze(1)
    index = left.unsqueeze(1).expand(-1, x.shape[1], -1)
    right = (index + 1).clamp_(max=t - 1)
    return x.gather(2, index) * (1 - weight) + x.gather(2, right) * weight


def smooth_curves(generator, n: int, length: int, knots: int, sigma: float, channels: int = 1) -> torch.Tensor:
    """(n, channels, length) curves through ``knots`` random points ~ N(1, sigma^2)."""
    points = 1 + sigma * randn_rows(generator, n, channels, knots)
    return F.interpolate(points, size=length, mode="linear", align_corners=True)


def applied(generator, n: int, p: float, device) -> torch.Tensor:
    """(n, 1, 1) booleans: which samples an op with probability ``p`` changes."""
    return (rand_rows(generator, n) < p).to(device)[:, None, None]


def jitter(x, generator, sigma: float):
    return x + sigma * randn_rows(generator, *x.shape).to(x.device, x.dtype)


def scaling(x, generator, sigma: float):
    return x * (1 + sigma * randn_rows(generator, x.shape[0], x.shape[1], 1)).to(x.device, x.dtype)


def magnitude_warp(x, generator, sigma: float, knots: int = 4, p: float = 1.0):
    curves = smooth_curves(generator, x.shape[0], x.shape[-1], knots, sigma, x.shape[1]).to(x.device, x.dtype)
    return torch.where(applied(generator, len(x), p, x.device), x * curves, x)


def time_warp(x, generator, sigma: float, knots: int = 4, p: float = 1.0):
    n, _, t = x.shape
    speed = smooth_curves(generator, n, t, knots, sigma).squeeze(1).clamp_(min=0.1)
    clock = speed.cumsum(dim=1)
    clock = (clock - clock[:, :1]) / (clock[:, -1:] - clock[:, :1]).clamp_min(1e-6) * (t - 1)
    warped = read_at(x, clock.to(x.device, x.dtype))
    return torch.where(applied(generator, n, p, x.device), warped, x)


def window_slice(x, generator, crop_scale=(0.5, 1.0)):
    n, _, t = x.shape
    low, high = crop_scale
    width = (low + (high - low) * rand_rows(generator, n)) * (t - 1)
    start = rand_rows(generator, n) * ((t - 1) - width)
    positions = start[:, None] + torch.linspace(0, 1, t)[None] * width[:, None]
    return read_at(x, positions.to(x.device, x.dtype))


def permute_segments(x, generator, segments: int = 4, p: float = 1.0):
    n, c, t = x.shape
    segments = max(1, min(segments, t))
    bounds = torch.linspace(0, t, segments + 1).round().long()  # segment k: steps bounds[k]..bounds[k+1]-1
    lengths = bounds[1:] - bounds[:-1]
    order = rand_rows(generator, n, segments).argsort(dim=1)  # each sample's shuffled segment ids
    ends = lengths[order].cumsum(dim=1)  # where each shuffled segment ends in the output
    step = torch.arange(t).expand(n, -1).contiguous()
    slot = torch.searchsorted(ends, step, right=True)  # output step -> rank in the shuffled order
    start = ends.gather(1, slot) - lengths[order].gather(1, slot)
    index = bounds[order.gather(1, slot)] + step - start
    shuffled = x.gather(2, index.to(x.device)[:, None].expand(-1, c, -1))
    return torch.where(applied(generator, n, p, x.device), shuffled, x)


def mask_spans(x, generator, rate: float, mask_length: int = 5):
    """About ``rate`` of the steps zeroed, in spans of ``mask_length`` steps."""
    n, _, t = x.shape
    spans = max(1, -(-t // mask_length))
    hidden = (rand_rows(generator, n, spans) < rate).repeat_interleave(mask_length, dim=1)[:, :t]
    return x * (~hidden).to(x.device)[:, None]


@dataclass(frozen=True)
class SeriesView:
    crop_scale: tuple[float, float] | None = (0.5, 1.0)
    time_warp_p: float = 0.5
    magnitude_warp_p: float = 0.5
    warp_sigma: float = 0.2
    scaling: float = 0.1
    jitter: float = 0.03
    permute_p: float = 0.0
    mask: float = 0.0

    def __call__(self, x: torch.Tensor, generator) -> torch.Tensor:
        if self.crop_scale is not None:
            x = window_slice(x, generator, self.crop_scale)
        if self.time_warp_p:
            x = time_warp(x, generator, self.warp_sigma, p=self.time_warp_p)
        if self.magnitude_warp_p:
            x = magnitude_warp(x, generator, self.warp_sigma, p=self.magnitude_warp_p)
        if self.permute_p:
            x = permute_segments(x, generator, p=self.permute_p)
        x = scaling(x, generator, self.scaling) if self.scaling else x
        x = jitter(x, generator, self.jitter) if self.jitter else x
        return mask_spans(x, generator, self.mask) if self.mask else x


@register("timeseries", "simclr", "byol", "mocov2", "supcon")
def contrastive(crop_scale=(0.5, 1.0)) -> FloatRecipe:
    view = SeriesView(crop_scale=tuple(crop_scale), mask=0.1)
    return FloatRecipe("contrastive", (view, view))


@register("timeseries")
def masked_series(crop_scale=None) -> FloatRecipe:
    return FloatRecipe("masked_series", (SeriesView(crop_scale=None, time_warp_p=0.0, magnitude_warp_p=0.0),))


@register("timeseries", "ts2vec")
def raw(crop_scale=None) -> FloatRecipe:
    """One view, the standardised series as it is (TS2Vec crops and masks it itself)."""
    return FloatRecipe("raw", (SeriesView(crop_scale=None, time_warp_p=0.0, magnitude_warp_p=0.0, scaling=0.0,
                                          jitter=0.0),))
