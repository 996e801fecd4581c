"""SCARF: Bahri, Jiang, Tay, Metzler. "SCARF: Self-Supervised Contrastive Learning using
Random Feature Corruption", ICLR 2022.

Each row x is paired with a corrupted copy x~ (a fraction c = 0.6 of its features
replaced by draws from their empirical marginals; ``selfsup.augment.tables``). Both go
through the encoder f and a pretraining head g, z = g(f(x)), and InfoNCE with the batch
as negatives pulls each anchor to its own corrupted copy:

    L = -1/N sum_i log exp(cos(z_i, z~_i)/tau) / sum_k exp(cos(z_i, z~_k)/tau)

The paper uses a 4-layer ReLU MLP of width 256 for f, a 2-layer head, tau = 1 and Adam
with lr 1e-3 at batch size 128 (2e-3 per 256 samples here).
"""

from __future__ import annotations

from torch import nn

from selfsup.heads import MLP
from selfsup.losses.infonce import batch_info_nce
from selfsup.methods.base import Method, OptimizerDefaults, step_output
from selfsup.methods.registry import register


@register
class SCARF(Method):
    name = "scarf"
    paper = "Bahri et al., SCARF: Self-Supervised Contrastive Learning using Random Feature Corruption"
    year = 2022
    recipe = "scarf"
    needs = "anchor + corrupted row (tables)"
    default_backbone = "mlp"
    optimizer = OptimizerDefaults("adamw", lr=2e-3, weight_decay=1e-5)

    def __init__(self, backbone: nn.Module, projection_dim: int = 128, temperature: float = 1.0,
                 gather_distributed: bool = False):
        super().__init__(backbone)
        self.head = MLP(backbone.dim, backbone.dim, projection_dim)
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    def training_step(self, views):
        h1, h2 = (self.backbone(v) for v in views)
        loss = batch_info_nce(self.head(h1), self.head(h2), self.temperature, self.gather_distributed)
        return step_output(loss, h1, paired=h2)
