"""BYOL's regression loss (Grill et al. 2020, eq. 2): the mean squared error between the
L2-normalised prediction q and target z', which equals 2 - 2 * cos(q, z')."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from selfsup.losses.precision import float32


@float32
def normalized_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``|| q/|q| - z/|z| ||^2``; the target carries no gradient."""
    prediction = F.normalize(prediction, dim=-1)
    target = F.normalize(target.detach(), dim=-1)
    return (2 - 2 * (prediction * target).sum(dim=-1)).mean()
