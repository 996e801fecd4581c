"""VICReg: Bardes, Ponce, LeCun. "VICReg: Variance-Invariance-Covariance Regularization
for Self-Supervised Learning", ICLR 2022.

Two views go through the same backbone and expander (3 layers, Linear-BN-ReLU twice then
Linear); on the embeddings Z, Z' (n x d):

    L = lambda s(Z, Z') + mu [v(Z) + v(Z')] / 2 + nu [c(Z) + c(Z')]
    s: mean squared distance between the views                       (invariance)
    v(Z) = 1/d sum_j max(0, 1 - sqrt(Var(z^j) + 1e-4))                (variance)
    c(Z) = 1/d sum_{i != j} Cov(Z)_ij^2                               (covariance)

with lambda = mu = 25, nu = 1; the two variance terms are averaged as in the authors' code
(main_vicreg.py), for which mu was tuned. The paper's expander is 8192 wide; we default to
2048 for small images. LARS, lr 0.2 x B/256, weight decay 1e-6, BYOL's augmentations.
"""

from __future__ import annotations

from torch import nn

from selfsup.heads import MLP
from selfsup.losses import vicreg_loss
from selfsup.methods.base import Method, OptimizerDefaults, step_output
from selfsup.methods.registry import register


@register
class VICReg(Method):
    name = "vicreg"
    paper = "Bardes, Ponce, LeCun, VICReg: Variance-Invariance-Covariance Regularization"
    year = 2022
    recipe = "byol"
    needs = "2 views"
    optimizer = OptimizerDefaults("lars", lr=0.2, weight_decay=1e-6)

    def __init__(self, backbone: nn.Module, projection_dim: int = 2048, hidden_dim: int = 2048,
                 invariance_weight: float = 25.0, variance_weight: float = 25.0,
                 covariance_weight: float = 1.0, gather_distributed: bool = False):
        super().__init__(backbone)
        self.expander = MLP(backbone.dim, hidden_dim, projection_dim, layers=3)
        self.weights = (invariance_weight, variance_weight, covariance_weight)
        self.gather_distributed = gather_distributed

    def training_step(self, views):
        h1, h2 = (self.backbone(v) for v in views)
        z1, z2 = self.expander(h1), self.expander(h2)
        loss = vicreg_loss(z1, z2, *self.weights, gather_distributed=self.gather_distributed)
        return step_output(loss, h1, paired=h2)
