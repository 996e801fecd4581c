"""Losses as plain functions on embeddings; usable from any PyTorch loop."""

from selfsup.losses.byol import normalized_mse
from selfsup.losses.contrastive import nt_xent
from selfsup.losses.distributed import gather

__all__ = ["gather", "normalized_mse", "nt_xent"]
