"""SimSiam: Chen & He. "Exploring Simple Siamese Representation Learning", CVPR 2021.

Both views go through the same encoder f (backbone + projection MLP) and a prediction MLP
h; each prediction p = h(f(x)) regresses the other view's projection z = f(x'), which is
held constant (stop-gradient). No negatives, no momentum encoder:

    D(p, z) = - p/|p| . z/|z|
    L = D(p1, stopgrad(z2)) / 2 + D(p2, stopgrad(z1)) / 2

The stop-gradient is what prevents collapse (paper, sec. 4.1). Projector: 3 layers of
width 2048 with BatchNorm on every layer, the output's included; predictor: a 2048-512-2048
bottleneck with BatchNorm on its hidden layer only. The paper trains with SGD (momentum 0.9,
lr 0.05 x B/256, weight decay 1e-4, cosine decay without warm-up) and MoCo v2's symmetric
augmentation (the ``mocov2`` recipe: crop 0.2-1, jitter 0.4/0.4/0.4/0.1); the predictor's lr is not decayed (``fix_predictor_lr``, the code's
``--fix-pred-lr``, sec. 4.4: "it is beneficial for the predictor to adapt to the latest
representations").
"""

from __future__ import annotations

from torch import nn

from selfsup.heads import MLP
from selfsup.losses import negative_cosine
from selfsup.methods.base import Method, OptimizerDefaults, step_output
from selfsup.methods.registry import register


@register
class SimSiam(Method):
    name = "simsiam"
    paper = "Chen & He, Exploring Simple Siamese Representation Learning"
    year = 2021
    recipe = "mocov2"
    needs = "2 views"
    optimizer = OptimizerDefaults("sgd", lr=0.05, weight_decay=1e-4)
    warmup_fraction = 0.0

    def __init__(self, backbone: nn.Module, projection_dim: int = 2048, hidden_dim: int = 2048,
                 predictor_hidden_dim: int = 512, fix_predictor_lr: bool = True):
        super().__init__(backbone)
        self.fix_predictor_lr = fix_predictor_lr
        self.projector = nn.Sequential(MLP(backbone.dim, hidden_dim, projection_dim, layers=3),
                                       nn.BatchNorm1d(projection_dim, affine=False))
        self.predictor = MLP(projection_dim, predictor_hidden_dim, projection_dim)

    def fixed_lr_parameters(self):
        return list(self.predictor.parameters()) if self.fix_predictor_lr else []

    def training_step(self, views):
        h1, h2 = (self.backbone(v) for v in views)
        z1, z2 = self.projector(h1), self.projector(h2)
        p1, p2 = self.predictor(z1), self.predictor(z2)
        loss = negative_cosine(p1, z2) / 2 + negative_cosine(p2, z1) / 2
        return step_output(loss, h1, paired=h2)
