"""A first-in first-out queue of feature vectors: MoCo's dictionary of keys and NNCLR's
support set. Its contents and write position are buffers, so they are saved in the
state_dict (and a resumed run continues with the same queue) and follow the model's device."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FeatureQueue(nn.Module):
    def __init__(self, size: int, dim: int):
        super().__init__()
        if size < 1:
            raise ValueError(f"queue size must be at least 1, got {size}")
        # random unit vectors until real features have replaced them, as in MoCo
        self.register_buffer("features", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("pointer", torch.zeros(1, dtype=torch.long))

    @property
    def size(self) -> int:
        return self.features.shape[0]

    @torch.no_grad()
    def push(self, features: torch.Tensor) -> None:
        """Overwrite the oldest entries with ``features`` (B, dim), wrapping around the end."""
        features = features.detach()[-self.size:]
        index = (self.pointer + torch.arange(len(features), device=self.pointer.device)) % self.size
        self.features[index] = features.to(self.features.dtype)
        self.pointer.copy_((self.pointer + len(features)) % self.size)
