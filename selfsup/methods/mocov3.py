"""MoCo v3: Chen, Xie, He. "An Empirical Study of Training Self-Supervised Vision
Transformers", ICCV 2021.

MoCo without the queue: the keys are the other samples of the batch. The query encoder is
backbone + projector + predictor; the momentum encoder (backbone + projector, no predictor)
is an EMA of it and gets no gradient. Both views serve as queries and as keys:

    ctr(q, k) = 2 tau * CE(q k^T / tau, labels = diagonal)      (q, k L2-normalised)
    L = ctr(q1, k2) + ctr(q2, k1)
    theta_k <- m theta_k + (1 - m) theta_q,  m = 1 - (1 - m0)(cos(pi t / T) + 1) / 2

Projector: 3 layers with BatchNorm on every layer (the output's without affine
parameters), predictor: 2 layers; the paper's ResNet setting is 4096 wide and 256-d, LARS
(lr 0.6 x B/256, weight decay 1e-6), m0 = 0.99 and BYOL's augmentations. We default to
2048-wide MLPs for small images and tau = 0.2 (the paper's ViT value; its ResNet-50 runs
use 1.0 with 4096-sample batches).
"""

from __future__ import annotations

import torch
from torch import nn

from selfsup.heads import MLP
from selfsup.losses import batch_info_nce
from selfsup.methods.base import Method, OptimizerDefaults, step_output
from selfsup.methods.byol import cosine_momentum
from selfsup.methods.ema import ema_update, frozen_copy
from selfsup.methods.registry import register


@register
class MoCoV3(Method):
    name = "mocov3"
    paper = "Chen, Xie, He, An Empirical Study of Training Self-Supervised Vision Transformers"
    year = 2021
    recipe = "byol"
    needs = "2 views + EMA key encoder"
    optimizer = OptimizerDefaults("lars", lr=0.6, weight_decay=1e-6)

    def __init__(self, backbone: nn.Module, projection_dim: int = 256, hidden_dim: int = 2048,
                 temperature: float = 0.2, base_momentum: float = 0.99,
                 gather_distributed: bool = False):
        super().__init__(backbone)
        self.projector = nn.Sequential(MLP(backbone.dim, hidden_dim, projection_dim, layers=3),
                                       nn.BatchNorm1d(projection_dim, affine=False))
        self.predictor = MLP(projection_dim, hidden_dim, projection_dim)
        self.momentum_backbone = frozen_copy(backbone)
        self.momentum_projector = frozen_copy(self.projector)
        self.temperature = temperature
        self.base_momentum = self.momentum = base_momentum
        self.gather_distributed = gather_distributed

    def contrast(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return 2 * self.temperature * batch_info_nce(q, k, self.temperature, self.gather_distributed)

    def training_step(self, views):
        h1, h2 = (self.backbone(v) for v in views)
        q1, q2 = (self.predictor(self.projector(h)) for h in (h1, h2))
        with torch.no_grad():
            k1, k2 = (self.momentum_projector(self.momentum_backbone(v)) for v in views)
        loss = self.contrast(q1, k2) + self.contrast(q2, k1)
        return step_output(loss, h1, {"momentum": self.momentum}, paired=h2)

    def after_optimizer_step(self, progress: float) -> None:
        self.momentum = cosine_momentum(self.base_momentum, progress)
        ema_update(self.backbone, self.momentum_backbone, self.momentum)
        ema_update(self.projector, self.momentum_projector, self.momentum)
