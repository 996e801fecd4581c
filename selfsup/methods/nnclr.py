"""NNCLR: Dwibedi, Aytar, Tompson, Sermanet, Zisserman. "With a Little Help from My Friends:
Nearest-Neighbor Contrastive Learning of Visual Representations", ICCV 2021.

SimCLR's contrastive loss, with the positive of a sample replaced by the nearest neighbour
of its projection in a support set Q: a FIFO queue of projections from earlier batches.
With z = g(f(x)) the projection and p = h(z) the prediction (cosine similarities):

    NN(z, Q) = argmax_{q in Q} cos(z, q)
    L_i = -log exp(NN(z1_i, Q) . p2_i / tau) / sum_k exp(NN(z1_i, Q) . p2_k / tau)
    L = (L(z1 -> p2) + L(z2 -> p1)) / 2,   tau = 0.1;  then Q <- enqueue(z1)

The neighbour is a constant (no gradient flows into the support set); the negatives are the
other predictions of the batch. Projector: 3 layers with BatchNorm on each, the output's
included; predictor: 2 layers (BYOL's). The paper uses 2048/4096-wide MLPs, a 256-d output,
a 98304-entry support set, LARS (lr 0.3 x B/256, weight decay 1e-6) and BYOL's
augmentations; for small datasets we default to 2048-wide MLPs and a 4096-entry support set.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.heads import MLP
from selfsup.losses import batch_info_nce, gather
from selfsup.methods.base import Method, OptimizerDefaults, step_output
from selfsup.methods.queue import FeatureQueue
from selfsup.methods.registry import register


@torch.no_grad()
def nearest_neighbour(z: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """For each row of ``z`` the row of ``support`` with the highest cosine similarity."""
    similarity = F.normalize(z, dim=1) @ F.normalize(support, dim=1).to(z.dtype).T
    return support[similarity.argmax(dim=1)]


@register
class NNCLR(Method):
    name = "nnclr"
    paper = "Dwibedi et al., With a Little Help from My Friends: Nearest-Neighbor Contrastive Learning"
    year = 2021
    recipe = "byol"
    needs = "2 views + support queue"
    optimizer = OptimizerDefaults("lars", lr=0.3, weight_decay=1e-6)

    def __init__(self, backbone: nn.Module, projection_dim: int = 256, hidden_dim: int = 2048,
                 queue_size: int = 4096, temperature: float = 0.1, gather_distributed: bool = False):
        super().__init__(backbone)
        self.projector = nn.Sequential(MLP(backbone.dim, hidden_dim, projection_dim, layers=3),
                                       nn.BatchNorm1d(projection_dim))
        self.predictor = MLP(projection_dim, hidden_dim, projection_dim)
        self.support = FeatureQueue(queue_size, projection_dim)
        self.temperature = temperature
        self.gather_distributed = gather_distributed
        self.pending_projections: torch.Tensor | None = None

    def training_step(self, views):
        h1, h2 = (self.backbone(v) for v in views)
        z1, z2 = self.projector(h1), self.projector(h2)
        p1, p2 = self.predictor(z1), self.predictor(z2)
        nn1, nn2 = (nearest_neighbour(z, self.support.features) for z in (z1, z2))
        loss = (batch_info_nce(nn1, p2, self.temperature, self.gather_distributed)
                + batch_info_nce(nn2, p1, self.temperature, self.gather_distributed)) / 2
        self.pending_projections = F.normalize(z1.detach(), dim=1)
        return step_output(loss, h1, paired=h2)

    def after_optimizer_step(self, progress: float) -> None:
        if self.pending_projections is not None:
            z = self.pending_projections
            self.support.push(gather(z) if self.gather_distributed else z)
            self.pending_projections = None
