"""SupCon, the supervised contrastive loss of Khosla et al. 2020 (the L_out form, eq. 2).

For 2N views (two of each of N samples) with labels y and s_ij = cos(z_i, z_j) / tau, let
A(i) be every view but i and P(i) the views in A(i) with the label of i (always including
the other view of i itself):

    L = tau / tau_base * 1/(2N) * sum_i  -1/|P(i)| * sum_{p in P(i)} log( exp(s_ip) / sum_{a in A(i)} exp(s_ia) )

The average over positives sits outside the log, the form the paper finds trains best.
The factor tau / tau_base (tau_base = 0.07) is the authors' code's (SupContrast
``losses.py``), for which their learning rates were chosen; the paper's eq. 2 leaves it out
(``base_temperature=temperature`` gives that form). With one view pair per label and
tau_base = tau this is NT-Xent.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from selfsup.losses.distributed import gather, rank
from selfsup.losses.precision import float32


@float32
def supcon_loss(z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1,
                base_temperature: float = 0.07, gather_distributed: bool = False) -> torch.Tensor:
    """Mean L_out over both views of the local batch. With ``gather_distributed`` the
    candidates (and their labels) come from all processes; the result then equals the loss
    of the concatenated global batch averaged over ranks."""
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    n = z1.shape[0]
    if gather_distributed:
        all1, all2, all_labels, offset = gather(z1), gather(z2), gather(labels), rank() * n
    else:
        all1, all2, all_labels, offset = z1, z2, labels, 0
    total = all1.shape[0]
    candidates = torch.cat([all1, all2])  # (2T, d): view 1 of every sample, then view 2
    candidate_labels = torch.cat([all_labels, all_labels])
    queries = torch.cat([z1, z2])  # (2n, d)
    query_labels = torch.cat([labels, labels])
    local = torch.arange(n, device=z1.device) + offset
    self_index = torch.cat([local, local + total])
    is_self = torch.zeros(2 * n, 2 * total, dtype=torch.bool, device=z1.device)
    is_self[torch.arange(2 * n, device=z1.device), self_index] = True
    logits = (queries @ candidates.T / temperature).masked_fill(is_self, float("-inf"))
    log_prob = logits.log_softmax(dim=1).masked_fill(is_self, 0.0)
    positive = (query_labels[:, None] == candidate_labels[None, :]) & ~is_self
    per_anchor = -(log_prob * positive).sum(dim=1) / positive.sum(dim=1)
    return temperature / base_temperature * per_anchor.mean()
