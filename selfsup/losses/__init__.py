"""Losses as plain functions on embeddings; usable from any PyTorch loop."""

from selfsup.losses.barlow_twins import barlow_twins_loss
from selfsup.losses.byol import normalized_mse
from selfsup.losses.contrastive import nt_xent
from selfsup.losses.dcl import dcl_loss, dclw_loss
from selfsup.losses.dino import dino_loss, updated_center
from selfsup.losses.distributed import gather
from selfsup.losses.ijepa import jepa_loss
from selfsup.losses.infonce import batch_info_nce, info_nce
from selfsup.losses.mae import masked_patch_mse, patchify
from selfsup.losses.simsiam import negative_cosine
from selfsup.losses.supcon import supcon_loss
from selfsup.losses.swav import sinkhorn, swav_loss
from selfsup.losses.ts2vec import hierarchical_contrastive_loss
from selfsup.losses.vicreg import vicreg_loss
from selfsup.losses.wmse import whiten, wmse_loss

__all__ = ["barlow_twins_loss", "batch_info_nce", "dcl_loss", "dclw_loss", "dino_loss", "gather",
           "hierarchical_contrastive_loss",
           "info_nce", "jepa_loss", "masked_patch_mse", "negative_cosine", "normalized_mse",
           "nt_xent", "patchify", "sinkhorn", "supcon_loss", "swav_loss", "updated_center", "vicreg_loss",
           "whiten", "wmse_loss"]
