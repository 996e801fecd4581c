"""Losses as plain functions on embeddings; usable from any PyTorch loop."""

from selfsup.losses.barlow_twins import barlow_twins_loss
from selfsup.losses.byol import normalized_mse
from selfsup.losses.contrastive import nt_xent
from selfsup.losses.dcl import dcl_loss, dclw_loss
from selfsup.losses.distributed import gather
from selfsup.losses.infonce import batch_info_nce, info_nce
from selfsup.losses.simsiam import negative_cosine
from selfsup.losses.vicreg import vicreg_loss

__all__ = ["barlow_twins_loss", "batch_info_nce", "dcl_loss", "dclw_loss", "gather", "info_nce",
           "negative_cosine", "normalized_mse", "nt_xent", "vicreg_loss"]
