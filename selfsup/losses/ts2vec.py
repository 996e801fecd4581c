"""TS2Vec's hierarchical contrastive loss (Yue et al., "TS2Vec: Towards Universal
Representation of Time Series", AAAI 2022, sec. 3.2-3.3).

``z1``, ``z2``: (B, T, D) per-step representations of the same T steps seen in two
contexts. At every level of a max-pooling pyramid over time (kernel 2, until one step is
left) two InfoNCE terms on raw dot products (no normalisation, no temperature) are
averaged with weight ``alpha``:

- instance-wise, at each step t: r_{i,t} must find r'_{i,t} among the other 2B - 1
  representations of step t (both views, all series of the batch);
- temporal, in each series i: r_{i,t} must find r'_{i,t} among the other 2T - 1
  representations of series i (both views, all steps).

    L = 1/L_levels sum_levels [alpha l_inst + (1 - alpha) l_temp]

with the last, single-step level contributing its instance term only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from selfsup.losses.distributed import gather, rank
from selfsup.losses.precision import float32


def paired_cross_entropy(anchors1: torch.Tensor, anchors2: torch.Tensor, candidates1: torch.Tensor,
                         candidates2: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """Within every group g (dim 0): anchor i of view 1 (``anchors1[g, i]``, candidate
    ``offset + i``) must pick ``candidates2[g, offset + i]`` among all 2M candidates but
    itself, and symmetrically for view 2. Anchors (G, n, D), candidates (G, M, D)."""
    n, m = anchors1.shape[1], candidates1.shape[1]
    candidates = torch.cat([candidates1, candidates2], dim=1).transpose(1, 2)  # (G, D, 2M)
    own = torch.arange(n, device=anchors1.device) + offset
    losses = []
    for anchors, self_index, target in ((anchors1, own, own + m), (anchors2, own + m, own)):
        itself = torch.zeros(n, 2 * m, dtype=torch.bool, device=anchors.device)
        itself[torch.arange(n), self_index] = True
        logits = (anchors @ candidates).masked_fill(itself, float("-inf"))  # (G, n, 2M)
        losses.append(F.cross_entropy(logits.flatten(0, 1), target.repeat(logits.shape[0])))
    return (losses[0] + losses[1]) / 2


def instance_contrastive_loss(z1, z2, gather_distributed: bool = False) -> torch.Tensor:
    """Per step, the other series of the (global, with ``gather_distributed``) batch are the negatives."""
    a1, a2 = z1.transpose(0, 1), z2.transpose(0, 1)  # (T, B, D): groups are steps
    if not gather_distributed:
        return paired_cross_entropy(a1, a2, a1, a2)
    c1, c2 = gather(z1).transpose(0, 1), gather(z2).transpose(0, 1)
    return paired_cross_entropy(a1, a2, c1, c2, offset=rank() * z1.shape[0])


def temporal_contrastive_loss(z1, z2) -> torch.Tensor:
    """Per series, its other steps are the negatives (no other series involved)."""
    return paired_cross_entropy(z1, z2, z1, z2)


@float32
def hierarchical_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 0.5,
                                  gather_distributed: bool = False) -> torch.Tensor:
    """TS2Vec's loss on (B, T, D) representations of the same steps in two contexts."""
    total, levels = 0.0, 0
    while True:
        total = total + alpha * instance_contrastive_loss(z1, z2, gather_distributed)
        levels += 1
        if z1.shape[1] == 1:
            return total / levels
        total = total + (1 - alpha) * temporal_contrastive_loss(z1, z2)
        z1, z2 = (F.max_pool1d(z.transpose(1, 2), kernel_size=2).transpose(1, 2) for z in (z1, z2))
