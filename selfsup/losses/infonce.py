"""InfoNCE (van den Oord et al. 2018) as the MoCo family and NNCLR use it: cosine
similarities divided by a temperature tau, and a cross-entropy that picks the positive.

``info_nce`` is MoCo's form (He et al. 2020, eq. 1), with negatives from a queue K:

    L_q = -log exp(q.k+/tau) / (exp(q.k+/tau) + sum_{k- in K} exp(q.k-/tau))

``batch_info_nce`` takes the negatives from the batch itself: anchor i's positive is
candidate i and every other candidate is a negative, as in MoCo v3 (Chen, Xie, He 2021,
algorithm 1, where the loss is then scaled by 2 tau) and NNCLR (Dwibedi et al. 2021, eq. 2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from selfsup.losses.distributed import gather, rank
from selfsup.losses.precision import float32


@float32
def info_nce(query: torch.Tensor, key: torch.Tensor, negatives: torch.Tensor,
             temperature: float = 0.2) -> torch.Tensor:
    """Mean over the batch; query/key are (N, d), negatives (K, d); all are L2-normalised."""
    query, key, negatives = (F.normalize(x, dim=1) for x in (query, key, negatives))
    positive = (query * key).sum(dim=1, keepdim=True)  # (N, 1)
    negative = query @ negatives.to(query.dtype).T  # (N, K)
    logits = torch.cat([positive, negative], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(query), dtype=torch.long, device=query.device))


@float32
def batch_info_nce(anchors: torch.Tensor, candidates: torch.Tensor, temperature: float = 0.2,
                   gather_distributed: bool = False) -> torch.Tensor:
    """Mean over the local anchors. With ``gather_distributed`` the candidates come from
    every process's batch (anchor i of rank r has its positive at r * N + i)."""
    anchors, candidates = F.normalize(anchors, dim=1), F.normalize(candidates, dim=1)
    n, offset = len(anchors), 0
    if gather_distributed:
        candidates, offset = gather(candidates), rank() * n
    logits = anchors @ candidates.T / temperature
    return F.cross_entropy(logits, torch.arange(n, device=anchors.device) + offset)
