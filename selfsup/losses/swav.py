"""SwAV's swapped prediction (Caron et al. 2020, "Unsupervised Learning of Visual Features
by Contrasting Cluster Assignments", eq. 1-3 and sec. 3.1).

Each view t of a sample has prototype scores z_t . c_k (unit vectors z_t and prototypes
c_1..c_K). Codes Q (K x B, one column per sample) are the entropic optimal transport of
the batch onto the prototypes with equal shares,

    max_Q  Tr(Q^T C^T Z) + eps H(Q)   s.t.  Q 1_B = 1_K / K,  Q^T 1_K = 1_B / B,

whose solution diag(u) exp(C^T Z / eps) diag(v) the Sinkhorn-Knopp iterations find (row
then column rescaling; eps = 0.05, 3 iterations). Columns are then scaled to sum to 1.
The code of one view is predicted from every other view t,

    l(z_t, q_s) = - sum_k q_s^k log softmax_k(z_t . c / tau),   tau = 0.1,

averaged over the V - 1 other views and over the views s that codes are computed for
(the two global crops).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F

from selfsup.losses.distributed import is_distributed
from selfsup.losses.precision import float32


def _summed(x: torch.Tensor, gather_distributed: bool) -> torch.Tensor:
    """``x`` summed over all processes (in place) when gathering, else ``x``."""
    if gather_distributed and is_distributed():
        dist.all_reduce(x)
    return x


@torch.no_grad()
@float32
def sinkhorn(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3,
             gather_distributed: bool = False) -> torch.Tensor:
    """Codes (B, K) for prototype scores (B, K): each row (one sample's code) sums to 1, each
    prototype gets about B/K of the batch (exactly so as ``iterations`` grows). With
    ``gather_distributed`` the sums run over every process's rows, so the codes equal those
    of the concatenated batch."""
    scores = scores.detach().to(torch.promote_types(scores.dtype, torch.float32))
    largest = scores.max()  # a common shift keeps exp finite and cancels in the normalisation
    if gather_distributed and is_distributed():
        dist.all_reduce(largest, op=dist.ReduceOp.MAX)
    q = torch.exp((scores - largest) / epsilon).T  # (K, B): the paper's notation
    prototypes = q.shape[0]
    samples = _summed(torch.tensor(float(q.shape[1]), dtype=q.dtype, device=q.device), gather_distributed)
    q /= _summed(q.sum(), gather_distributed)
    for _ in range(iterations):
        q /= _summed(q.sum(dim=1, keepdim=True), gather_distributed) * prototypes  # rows: 1/K
        q /= q.sum(dim=0, keepdim=True) * samples  # columns: 1/B (each column is local)
    return (q * samples).T


@float32
def swav_loss(scores: Sequence[torch.Tensor], codes: Sequence[torch.Tensor],
              temperature: float = 0.1) -> torch.Tensor:
    """``scores``: one (B, K) tensor of prototype scores per view; ``codes``: the (B, K)
    codes of the first ``len(codes)`` views. Mean over the code views s and the views
    t != s of the cross-entropy between q_s and softmax(scores_t / tau); codes are targets
    and carry no gradient."""
    if len(scores) < 2 or not 1 <= len(codes) <= len(scores):
        raise ValueError(f"expected at least 2 views and 1 to {len(scores)} codes, "
                         f"got {len(scores)} views and {len(codes)} codes")
    log_probabilities = [F.log_softmax(s / temperature, dim=1) for s in scores]
    total = 0.0
    for s, q in enumerate(codes):
        others = [-(q.detach() * log_p).sum(dim=1).mean()
                  for t, log_p in enumerate(log_probabilities) if t != s]
        total = total + sum(others) / len(others)
    return total / len(codes)
