"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al. 2020).

For 2N embeddings (two views of N samples), with s_ij = cos(z_i, z_j) / tau:

    l(i, j) = -log( exp(s_ij) / sum_{k != i} exp(s_ik) ),
    L = 1/(2N) * sum_i l(i, pair(i))

every other sample of the (gathered) batch, from either view, is a negative.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from selfsup.losses.distributed import gather, rank
from selfsup.losses.precision import float32


@float32
def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5,
            gather_distributed: bool = False) -> torch.Tensor:
    """Mean NT-Xent over both views of the local batch. With ``gather_distributed`` the
    negatives come from all processes' batches; the result then equals the loss of the
    concatenated global batch averaged over ranks."""
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    n = z1.shape[0]
    if gather_distributed:
        all1, all2, offset = gather(z1), gather(z2), rank() * n
    else:
        all1, all2, offset = z1, z2, 0
    total = all1.shape[0]
    candidates = torch.cat([all1, all2])  # (2T, d): view 1 of every sample, then view 2
    queries = torch.cat([z1, z2])  # (2n, d)
    logits = queries @ candidates.T / temperature
    local = torch.arange(n, device=z1.device) + offset
    self_index = torch.cat([local, local + total])
    positive = torch.cat([local + total, local])
    logits[torch.arange(2 * n, device=z1.device), self_index] = float("-inf")
    return F.cross_entropy(logits, positive)
