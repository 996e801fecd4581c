"""I-JEPA's loss (Assran et al. 2023, "Self-Supervised Learning from Images with a
Joint-Embedding Predictive Architecture", eq. 1): for M target blocks B_i the predictor's
outputs s^_y(j) are regressed onto the target encoder's patch representations s_y(j),
layer-normalised over the features (as in the paper's code) and without gradient:

    L = 1/M sum_i 1/|B_i| sum_{j in B_i} || s^_y(j) - LN(s_y(j)) ||^2 / D

averaged here over blocks, patches and the D features (a mean squared error; the sum over
features of the paper differs by the constant D). The released code uses a smooth-L1
distance instead; we keep the paper's L2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from selfsup.losses.precision import float32


@float32
def jepa_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between predicted and layer-normalised target representations,
    both (..., D); the target carries no gradient."""
    target = F.layer_norm(target.detach(), target.shape[-1:])
    return F.mse_loss(prediction, target)
