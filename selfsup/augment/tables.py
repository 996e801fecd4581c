"""Batched augmentations and view recipes for tables (standardised (B, F) features).

SCARF corruption (Bahri et al. 2022, "SCARF: Self-Supervised Contrastive Learning using
Random Feature Corruption", sec. 2): for each sample pick a random subset of the features,
a fraction c of them (c = 0.6 in the paper), and replace each picked value x_ij by a draw
from that feature's empirical marginal:

    x~_ij = x_ij            if m_ij = 0
    x~_ij = x_rj, r ~ U(batch) if m_ij = 1,   m_ij ~ Bernoulli(c)

The paper draws from the marginal over the whole training set; we draw from the batch, an
unbiased sample of it, so the op stays one gather on the batch's device. Masking sets
features to their mean (0 after standardisation), noise adds N(0, sigma^2) in units of
each feature's std.

Recipes: ``scarf`` is the paper's pair, the clean anchor and one corrupted view; the
two-view methods (SimCLR, BYOL, VICReg, ...) get two independently corrupted views with a
little noise (``contrastive``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from selfsup.augment.float_ops import FloatRecipe, rand_rows, randn_rows
from selfsup.augment.registry import register


def corrupt_features(x: torch.Tensor, generator, rate: float) -> torch.Tensor:
    """SCARF: each value replaced, with probability ``rate``, by the same feature of a
    random sample of the batch."""
    n, features = x.shape
    picked = rand_rows(generator, n, features).to(x.device) < rate
    donors = (rand_rows(generator, n, features) * n).long().clamp_(max=n - 1).to(x.device)
    return torch.where(picked, x.gather(0, donors), x)


def mask_features(x: torch.Tensor, generator, rate: float) -> torch.Tensor:
    """Each standardised value set to 0 (its feature's mean) with probability ``rate``."""
    keep = rand_rows(generator, *x.shape).to(x.device) >= rate
    return x * keep


def gaussian_noise(x: torch.Tensor, generator, sigma: float) -> torch.Tensor:
    return x + sigma * randn_rows(generator, *x.shape).to(x.device, x.dtype)


@dataclass(frozen=True)
class TableView:
    corruption: float = 0.0
    mask: float = 0.0
    noise: float = 0.0

    def __call__(self, x: torch.Tensor, generator) -> torch.Tensor:
        x = corrupt_features(x, generator, self.corruption) if self.corruption else x
        x = mask_features(x, generator, self.mask) if self.mask else x
        return gaussian_noise(x, generator, self.noise) if self.noise else x


@register("table")
def scarf(corruption: float = 0.6) -> FloatRecipe:
    return FloatRecipe("scarf", (TableView(), TableView(corruption=corruption)))


@register("table", "simclr", "byol", "mocov2", "supcon")
def contrastive(corruption: float = 0.3, noise: float = 0.1) -> FloatRecipe:
    view = TableView(corruption=corruption, noise=noise)
    return FloatRecipe("contrastive", (view, view))
