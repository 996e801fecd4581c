"""Label-free measures of an embedding, cheap enough to watch during training.

- Alignment and uniformity (Wang & Isola 2020, "Understanding Contrastive Representation
  Learning through Alignment and Uniformity on the Hypersphere"), on L2-normalised
  embeddings f: alignment = E ||f(x) - f(x+)||^alpha over positive pairs (alpha = 2),
  uniformity = log E exp(-t ||f(x) - f(y)||^2) over all pairs (t = 2). Lower is better
  for both; a collapsed embedding has alignment 0 and uniformity 0 (its maximum).
- The per-dimension standard deviation of L2-normalised embeddings: about 1/sqrt(D) when
  the embedding spreads over the sphere, 0 when it collapses to a point (as in SimSiam's
  collapse analysis, Chen & He 2021).
- RankMe (selfsup.evaluate.protocols.rankme): effective rank; 1 for a collapsed embedding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from selfsup.evaluate.protocols import rankme


def alignment(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 2.0) -> float:
    """Mean ||f(x) - f(x+)||^alpha over pairs of rows (two views of the same samples)."""
    z1, z2 = F.normalize(z1.float(), dim=1), F.normalize(z2.float(), dim=1)
    return float((z1 - z2).norm(dim=1).pow(alpha).mean())


def uniformity(z: torch.Tensor, t: float = 2.0) -> float:
    """log of the mean Gaussian potential exp(-t ||f(x) - f(y)||^2) over distinct pairs."""
    z = F.normalize(z.float(), dim=1)
    squared = torch.pdist(z).pow(2)
    return float(torch.logsumexp(-t * squared, dim=0) - math.log(len(squared)))


def embedding_std(z: torch.Tensor) -> float:
    """Mean over dimensions of the std of the L2-normalised embeddings."""
    return float(F.normalize(z.float(), dim=1).std(dim=0).mean())


def label_free_monitors(z: torch.Tensor, z_other_view: torch.Tensor | None = None) -> dict:
    """RankMe, uniformity, normalised std (and alignment when a second view is given)."""
    result = {"rankme": rankme(z), "uniformity": uniformity(z), "embedding_std": embedding_std(z),
              "embedding_std_floor": 0.0, "embedding_std_healthy": 1 / math.sqrt(z.shape[1])}
    if z_other_view is not None:
        result["alignment"] = alignment(z, z_other_view)
    return result
