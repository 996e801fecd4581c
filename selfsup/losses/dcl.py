"""Decoupled contrastive loss (Yeh et al. 2022, "Decoupled Contrastive Learning", eq. 6-7).

NT-Xent with the positive pair taken out of the denominator. For 2N embeddings (two views
of N samples), with s_ij = cos(z_i, z_j):

    L_DC(i)  = -s(i, pair(i))/tau + log sum_{k not in {i, pair(i)}} exp(s_ik/tau)
    L_DCW(i) = -w(i) s(i, pair(i))/tau + log sum_{k not in {i, pair(i)}} exp(s_ik/tau)
    w(i)     = 2 - exp(s(i, pair(i))/sigma) / mean_j exp(s(j, pair(j))/sigma)

The negatives of an anchor are the 2(N-1) other views of the batch. DCLW's weight (mean
1 over the batch) stresses the positive pairs that are still far apart; sigma = 0.5.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from selfsup.losses.distributed import gather, rank
from selfsup.losses.precision import float32


def _decoupled(z1, z2, temperature, sigma, gather_distributed):
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    n = len(z1)
    if gather_distributed:
        all1, all2, offset = gather(z1), gather(z2), rank() * n
    else:
        all1, all2, offset = z1, z2, 0
    total = len(all1)
    local = torch.arange(n, device=z1.device) + offset
    positive_all = (all1 * all2).sum(dim=1)  # cos of every positive pair in the global batch
    positive = positive_all[local]
    weight = 1.0
    if sigma is not None:  # exp(s/sigma) / mean(exp(s/sigma)) = total * softmax(s/sigma)
        weight = 2 - total * torch.softmax(positive_all / sigma, dim=0)[local]
    queries = torch.cat([z1, z2])
    logits = queries @ torch.cat([all1, all2]).T / temperature  # (2n, 2T)
    rows = torch.arange(2 * n, device=z1.device)
    logits[rows, torch.cat([local, local + total])] = float("-inf")  # self
    logits[rows, torch.cat([local + total, local])] = float("-inf")  # positive
    negative = torch.logsumexp(logits, dim=1)
    positive_term = (weight * positive / temperature).repeat(2)
    return (negative - positive_term).mean()


@float32
def dcl_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1,
             gather_distributed: bool = False) -> torch.Tensor:
    """Mean L_DC over both views of the local batch; with ``gather_distributed`` the
    negatives come from every process's batch."""
    return _decoupled(z1, z2, temperature, None, gather_distributed)


@float32
def dclw_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1, sigma: float = 0.5,
              gather_distributed: bool = False) -> torch.Tensor:
    """Mean L_DCW over both views; the weights' mean is taken over the (gathered) batch."""
    return _decoupled(z1, z2, temperature, sigma, gather_distributed)
