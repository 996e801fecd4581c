"""W-MSE's whitening loss (Ermolov, Siarohin, Sangineto, Sebe 2021, "Whitening for
Self-Supervised Representation Learning", sec. 3-4).

The embeddings of a view are whitened within sub-batches: with mu and Sigma the mean and
(unbiased) covariance of a sub-batch V of embeddings and Sigma = L L^T its Cholesky
factorisation, W = L^-1 and Whiten(v) = W (v - mu), so the whitened sub-batch has zero
mean and identity covariance and cannot collapse. The loss pulls the whitened embeddings
of positives together with the MSE of their L2-normalised vectors,

    L = 2/(d(d-1)) sum_{i<j} mean_b || z_i,b/|z_i,b| - z_j,b/|z_j,b| ||^2,

over every pair of the d views (d = 2: "W-MSE 2", d = 4: "W-MSE 4"). The batch is split
at random into sub-batches of ``whiten_size`` samples (the paper's w_size, 128 for a 64-d
embedding; it must exceed the embedding size for Sigma to be invertible), each view of a
sub-batch is whitened on its own, and the split is drawn ``iterations`` times.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from selfsup.losses.distributed import gather
from selfsup.losses.precision import float32


def whiten(z: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """(N, D) -> (N, D) with zero mean and identity covariance: (z - mu) L^-T, L L^T = Sigma.
    ``eps`` shrinks Sigma towards the identity, (1 - eps) Sigma + eps I."""
    centred = z - z.mean(dim=0)
    covariance = centred.T @ centred / (len(z) - 1)
    if eps:
        covariance = (1 - eps) * covariance + eps * torch.eye(z.shape[1], dtype=z.dtype, device=z.device)
    factor = torch.linalg.cholesky(covariance)
    return torch.linalg.solve_triangular(factor, centred.T, upper=False).T


@float32
def wmse_loss(views: list[torch.Tensor], whiten_size: int = 128, generator: torch.Generator | None = None,
              iterations: int = 1, eps: float = 0.0, gather_distributed: bool = False) -> torch.Tensor:
    """W-MSE of the (N, D) embeddings of d >= 2 views of the same N samples. The sub-batch
    split is a permutation drawn from ``generator``; N not divisible by ``whiten_size``
    gives some sub-batches one sample more. With ``gather_distributed`` every process
    computes the loss of the global batch (same split, drawn from the same generator)."""
    if gather_distributed:
        views = [gather(v) for v in views]
    n, dim = views[0].shape
    size = min(whiten_size, n)
    if size <= dim:
        raise ValueError(f"W-MSE whitens sub-batches of {size} samples, which must exceed the "
                         f"embedding size {dim}: use a larger batch or a smaller projection_dim")
    pairs = [(i, j) for i in range(len(views)) for j in range(i + 1, len(views))]
    total = views[0].new_zeros(())
    for _ in range(iterations):
        order = torch.randperm(n, generator=generator).to(views[0].device)
        whitened = [torch.empty_like(v) for v in views]
        for chunk in order.tensor_split(n // size):
            for v, w in zip(views, whitened):
                w[chunk] = whiten(v[chunk], eps)
        for i, j in pairs:
            a, b = F.normalize(whitened[i], dim=1), F.normalize(whitened[j], dim=1)
            total = total + (a - b).pow(2).sum(dim=1).mean()
    return total / (iterations * len(pairs))
