"""Barlow Twins' redundancy-reduction loss (Zbontar et al. 2021, eq. 1-2).

Each embedding dimension is standardised over the batch (zero mean, unit variance, as a
BatchNorm without affine parameters does); C is the D x D cross-correlation of the two
views,

    C_ij = 1/N sum_b zn1_bi zn2_bj,
    L = sum_i (1 - C_ii)^2 + lambda * sum_i sum_{j != i} C_ij^2

The first term makes the views invariant, the second decorrelates the dimensions. The
paper uses D = 8192 and lambda = 0.0051.
"""

from __future__ import annotations

import torch

from selfsup.losses.distributed import gather
from selfsup.losses.precision import float32


def standardize(z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """(z - mean) / sqrt(var + eps) along the batch, with the biased variance (BatchNorm's)."""
    return (z - z.mean(dim=0)) / torch.sqrt(z.var(dim=0, unbiased=False) + eps)


def cross_correlation(z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    return standardize(z1, eps).T @ standardize(z2, eps) / z1.shape[0]


@float32
def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, off_diagonal_weight: float = 0.0051,
                      gather_distributed: bool = False, eps: float = 1e-5) -> torch.Tensor:
    """With ``gather_distributed`` the statistics and C come from every process's batch, so
    each rank computes the loss of the global batch (its gradient reaches each rank's part)."""
    if gather_distributed:
        z1, z2 = gather(z1), gather(z2)
    c = cross_correlation(z1, z2, eps)
    diagonal = c.diagonal()
    on_diagonal = (1 - diagonal).pow(2).sum()
    off_diagonal = c.pow(2).sum() - diagonal.pow(2).sum()
    return on_diagonal + off_diagonal_weight * off_diagonal
