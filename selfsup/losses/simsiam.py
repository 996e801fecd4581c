"""SimSiam's loss (Chen & He 2021, eq. 1): the negative cosine similarity between a
prediction p and a projection z that is treated as a constant (stop-gradient):

    D(p, z) = - p/|p| . z/|z|,    used as  L = D(p1, stopgrad(z2))/2 + D(p2, stopgrad(z1))/2
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from selfsup.losses.precision import float32


@float32
def negative_cosine(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-cos(p, z)``; the target carries no gradient. In [-1, 1]."""
    return -F.cosine_similarity(prediction, target.detach(), dim=-1).mean()
