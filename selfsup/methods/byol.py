"""BYOL: Grill et al. "Bootstrap Your Own Latent: A New Approach to Self-Supervised
Learning", NeurIPS 2020.

An online network (backbone f_theta, projector g_theta, predictor q_theta) predicts the
projection of the other view made by a target network (f_xi, g_xi) that is an exponential
moving average of the online one and gets no gradient:

    L = || q(z_1)/|q(z_1)| - z'_2/|z'_2| ||^2 + (the same with the views swapped)
    xi <- tau * xi + (1 - tau) * theta,   tau = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2

with k the current step and K the total (tau rises from tau_base to 1). The paper uses
4096-wide MLPs with a 256-d output, tau_base = 0.996 and LARS (lr 0.2 x B/256, weight decay
1.5e-6) for 300-1000 ImageNet epochs. For small images and short runs we default to
1024-wide MLPs, tau_base = 0.99 and lr 1.0 x B/256 (the usual CIFAR setting): on digits,
30 epochs, lr 1.0 gained +0.033 kNN top-1 over random weights where lr 0.2 gained +0.008.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from selfsup.heads import MLP
from selfsup.losses import normalized_mse
from selfsup.methods.base import Method, OptimizerDefaults, step_output
from selfsup.methods.ema import ema_update, frozen_copy
from selfsup.methods.registry import register


def cosine_momentum(base: float, progress: float) -> float:
    return 1 - (1 - base) * (math.cos(math.pi * progress) + 1) / 2


@register
class BYOL(Method):
    name = "byol"
    paper = "Grill et al., Bootstrap Your Own Latent"
    year = 2020
    recipe = "byol"
    needs = "2 views + EMA target"
    optimizer = OptimizerDefaults("lars", lr=1.0, weight_decay=1.5e-6)

    def __init__(self, backbone: nn.Module, projection_dim: int = 256, hidden_dim: int = 1024,
                 base_momentum: float = 0.99):
        super().__init__(backbone)
        self.projector = MLP(backbone.dim, hidden_dim, projection_dim)
        self.predictor = MLP(projection_dim, hidden_dim, projection_dim)
        self.target_backbone = frozen_copy(backbone)
        self.target_projector = frozen_copy(self.projector)
        self.base_momentum = base_momentum
        self.momentum = base_momentum

    def training_step(self, views):
        v1, v2 = views
        h1, h2 = self.backbone(v1), self.backbone(v2)
        q1, q2 = (self.predictor(self.projector(h)) for h in (h1, h2))
        with torch.no_grad():
            t1, t2 = (self.target_projector(self.target_backbone(v)) for v in (v1, v2))
        loss = normalized_mse(q1, t2) + normalized_mse(q2, t1)
        return step_output(loss, h1, {"momentum": self.momentum}, paired=h2)

    def after_optimizer_step(self, progress: float) -> None:
        self.momentum = cosine_momentum(self.base_momentum, progress)
        ema_update(self.backbone, self.target_backbone, self.momentum)
        ema_update(self.projector, self.target_projector, self.momentum)
