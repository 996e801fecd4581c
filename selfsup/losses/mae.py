"""MAE's reconstruction loss (He et al. 2022, "Masked Autoencoders Are Scalable Vision
Learners", sec. 3 and the norm_pix_loss variant of table 1c): the images are cut into
p x p patches x_i, each flattened to p*p*C values; with mask m_i = 1 for a masked patch,

    t_i = (x_i - mean(x_i)) / sqrt(var(x_i) + eps)          per-patch normalised target
    L   = sum_i m_i * mean_j (y_ij - t_ij)^2 / sum_i m_i      over all samples' patches

so only the masked patches count and each patch's brightness and contrast are removed
from what has to be predicted. var is the unbiased variance and eps = 1e-6, as in the
paper's code.
"""

from __future__ import annotations

import torch

from selfsup.losses.precision import float32


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, H/p * W/p, p*p*C): patches row-major over the grid (the order of a
    ViT's tokens), each flattened row by row with the channels last."""
    b, c, h, w = images.shape
    p = patch_size
    x = images.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def normalize_patches(patches: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True)
    return (patches - mean) / (var + eps).sqrt()


@float32
def masked_patch_mse(prediction: torch.Tensor, patches: torch.Tensor, mask: torch.Tensor,
                     normalize_target: bool = True) -> torch.Tensor:
    """Mean squared error over the masked patches (``mask`` 1/True) only.

    prediction, patches: (B, N, P) predicted and true pixels per patch; mask: (B, N).
    The target carries no gradient."""
    target = patches.detach()
    if normalize_target:
        target = normalize_patches(target)
    per_patch = (prediction - target).pow(2).mean(dim=-1)
    mask = mask.to(per_patch.dtype)
    return (per_patch * mask).sum() / mask.sum()
