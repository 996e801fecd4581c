"""Gathering embeddings across processes, with gradients flowing back to each rank."""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every rank along dim 0 (rank order); identity in 1 process.
    Gradients of the gathered tensor reach the rank that produced each part."""
    if not is_distributed():
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat([_ContiguousGradient.apply(part) for part in all_gather(x)], dim=0)


class _ContiguousGradient(torch.autograd.Function):
    """Identity whose backward makes the gradient contiguous: all_gather's backward
    exchanges the gradient parts between processes, and gloo sends a non-contiguous part
    (e.g. the gradient of a transposed gathered tensor) as if it were contiguous."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, gradient):
        return gradient.contiguous()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0
