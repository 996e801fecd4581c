"""VICReg's loss (Bardes, Ponce, LeCun 2022, eq. 1-6) on two batches of embeddings Z, Z'
(n samples, d dimensions):

    s(Z, Z') = mean over samples and dimensions of (z - z')^2          invariance
    v(Z)     = 1/d sum_j max(0, gamma - sqrt(Var(z^j) + eps))          variance
    c(Z)     = 1/d sum_{i != j} C(Z)_ij^2,
               C(Z) = 1/(n-1) sum_b (z_b - mean)(z_b - mean)^T          covariance
    L = lambda s(Z, Z') + mu [v(Z) + v(Z')] / 2 + nu [c(Z) + c(Z')]

with gamma = 1, eps = 1e-4, lambda = mu = 25, nu = 1. The invariance term is the mean
squared error over all n x d entries, as in the paper's pseudo-code (algorithm 1) and
code, for which the coefficients were tuned (eq. 5 writes the sum over dimensions). The
two views' variance terms are averaged, as in the authors' code (``main_vicreg.py``:
``std_loss = mean(relu(1 - std_x)) / 2 + mean(relu(1 - std_y)) / 2``), for which mu = 25
was tuned; eq. 6 writes their sum, which doubles the weight. The covariance terms are
summed there and here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from selfsup.losses.distributed import gather
from selfsup.losses.precision import float32


def invariance(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(z1, z2)


def variance(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """Hinge on the standard deviation of every dimension over the batch: zero once each
    dimension's std is at least gamma."""
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(gamma - std).mean()


def covariance(z: torch.Tensor) -> torch.Tensor:
    """Sum of the squared off-diagonal covariances, divided by the dimension d."""
    n, d = z.shape
    centred = z - z.mean(dim=0)
    cov = centred.T @ centred / (n - 1)
    return (cov.pow(2).sum() - cov.diagonal().pow(2).sum()) / d


@float32
def vicreg_loss(z1: torch.Tensor, z2: torch.Tensor, invariance_weight: float = 25.0,
                variance_weight: float = 25.0, covariance_weight: float = 1.0,
                gather_distributed: bool = False) -> torch.Tensor:
    """With ``gather_distributed`` every term is computed on all processes' batches."""
    if gather_distributed:
        z1, z2 = gather(z1), gather(z2)
    return (invariance_weight * invariance(z1, z2)
            + variance_weight * (variance(z1) + variance(z2)) / 2
            + covariance_weight * (covariance(z1) + covariance(z2)))
