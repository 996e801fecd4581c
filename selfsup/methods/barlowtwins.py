"""Barlow Twins: Zbontar, Jing, Misra, LeCun, Deny. "Barlow Twins: Self-Supervised Learning
via Redundancy Reduction", ICML 2021.

Two views go through the same backbone and projector; the D x D cross-correlation C of
their batch-standardised embeddings is pushed towards the identity:

    C_ij = 1/N sum_b zn1_bi zn2_bj        (zn: each dimension standardised over the batch)
    L = sum_i (1 - C_ii)^2 + lambda * sum_i sum_{j != i} C_ij^2,   lambda = 0.0051

The paper's projector is 3 layers of 8192 (Linear-BN-ReLU twice, then Linear); we default
to 2048 for small images and keep lambda = 0.0051 (the paper finds the loss insensitive to
it). LARS, lr 0.2 x B/256, weight decay 1.5e-6 and BYOL's augmentations; the paper gives
biases and BatchNorm parameters a separate lr of 0.0048 x B/256, which the shared optimizer
(one lr for all groups) does not.
"""

from __future__ import annotations

from torch import nn

from selfsup.heads import MLP
from selfsup.losses import barlow_twins_loss
from selfsup.methods.base import Method, OptimizerDefaults, step_output
from selfsup.methods.registry import register


@register
class BarlowTwins(Method):
    name = "barlowtwins"
    paper = "Zbontar et al., Barlow Twins: Self-Supervised Learning via Redundancy Reduction"
    year = 2021
    recipe = "byol"
    needs = "2 views"
    optimizer = OptimizerDefaults("lars", lr=0.2, weight_decay=1.5e-6)

    def __init__(self, backbone: nn.Module, projection_dim: int = 2048, hidden_dim: int = 2048,
                 off_diagonal_weight: float = 0.0051, gather_distributed: bool = False):
        super().__init__(backbone)
        self.projector = MLP(backbone.dim, hidden_dim, projection_dim, layers=3)
        self.off_diagonal_weight = off_diagonal_weight
        self.gather_distributed = gather_distributed

    def training_step(self, views):
        h1, h2 = (self.backbone(v) for v in views)
        z1, z2 = self.projector(h1), self.projector(h2)
        loss = barlow_twins_loss(z1, z2, self.off_diagonal_weight, self.gather_distributed)
        return step_output(loss, h1, paired=h2)
