"""DINO's self-distillation loss (Caron et al. 2021, "Emerging Properties in
Self-Supervised Vision Transformers", eq. 2-4 and algorithm 1).

The teacher's K outputs g_t(x) for a global view x are centred and sharpened, the
student's are softened:

    P_t(x) = softmax((g_t(x) - c) / tau_t),   P_s(x') = softmax(g_s(x') / tau_s)
    L = mean over pairs (x global, x' any view, x' != x) of  - sum_k P_t(x)_k log P_s(x')_k

with tau_s = 0.1 and tau_t from 0.04 up to 0.07. The centre c is an exponential moving
average of the teacher outputs' batch mean, c <- m c + (1 - m) mean_b g_t(x_b), m = 0.9:
centring keeps one dimension from dominating, sharpening keeps the output from being
uniform, and together they avoid collapse.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F

from selfsup.losses.distributed import is_distributed
from selfsup.losses.precision import float32


@float32
def dino_loss(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], center: torch.Tensor,
              student_temperature: float = 0.1, teacher_temperature: float = 0.04) -> torch.Tensor:
    """``student``: (B, K) outputs for every view, the teacher's views first and in the same
    order; ``teacher``: (B, K) outputs for the global views; ``center``: (1, K) or (K,).
    Pairs where student and teacher see the same view are skipped. No gradient reaches the
    teacher or the centre."""
    if not 1 <= len(teacher) <= len(student) or len(student) < 2:
        raise ValueError(f"expected at least 2 student views and 1 to {len(student)} teacher views, "
                         f"got {len(student)} and {len(teacher)}")
    targets = [F.softmax((t.detach() - center.detach()) / teacher_temperature, dim=-1) for t in teacher]
    log_predictions = [F.log_softmax(s / student_temperature, dim=-1) for s in student]
    terms = [-(target * log_predictions[v]).sum(dim=-1).mean()
             for i, target in enumerate(targets) for v in range(len(student)) if v != i]
    return sum(terms) / len(terms)


@torch.no_grad()
def updated_center(center: torch.Tensor, teacher: torch.Tensor, momentum: float = 0.9,
                   gather_distributed: bool = False) -> torch.Tensor:
    """``momentum * center + (1 - momentum) * mean(teacher)``, the mean over the rows of the
    (N, K) teacher outputs; with ``gather_distributed`` over every process's rows."""
    teacher = teacher.detach().float()
    total = teacher.sum(dim=0).reshape(center.shape)
    count = torch.tensor(float(len(teacher)), device=teacher.device)
    if gather_distributed and is_distributed():
        dist.all_reduce(total)
        dist.all_reduce(count)
    return (momentum * center + (1 - momentum) * total / count).to(center.dtype)
