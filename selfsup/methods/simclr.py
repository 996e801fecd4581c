"""SimCLR: Chen, Kornblith, Norouzi, Hinton. "A Simple Framework for Contrastive Learning
of Visual Representations", ICML 2020.

Two augmented views of each image go through the backbone f and a projection MLP g
(Linear-BN-ReLU-Linear); z = g(f(x)). The NT-Xent loss pulls the two views of a sample
together and pushes away the other 2(N-1) views of the batch:

    l(i, j) = -log exp(cos(z_i, z_j)/tau) / sum_{k != i} exp(cos(z_i, z_k)/tau)

The paper trains with LARS (lr 0.3 x B/256, weight decay 1e-6), a linear warm-up then
cosine decay, and tau 0.1 on ImageNet / 0.5 on CIFAR-10 (our default, for small images).
On CIFAR-sized images (32 px or less) the optimizer is the authors' CIFAR-10 setting (the
CIFAR-10 command of their code's README, google-research/simclr: LARS, lr 1.0 x B/256,
weight decay 1e-4): at 20 epochs of smallcnn on 10k CIFAR-10 images it gave kNN 0.456
against 0.423 with the ImageNet setting (BENCHMARKS.md, "Parity with Lightly").
"""

from __future__ import annotations

from torch import nn

from selfsup.heads import MLP
from selfsup.losses import nt_xent
from selfsup.methods.base import Method, OptimizerDefaults, step_output
from selfsup.methods.registry import register


@register
class SimCLR(Method):
    name = "simclr"
    paper = "Chen et al., A Simple Framework for Contrastive Learning of Visual Representations"
    year = 2020
    recipe = "simclr"
    needs = "2 views"
    optimizer = OptimizerDefaults("lars", lr=0.3, weight_decay=1e-6)
    small_image_settings = dict(optimizer=OptimizerDefaults("lars", lr=1.0, weight_decay=1e-4))

    def __init__(self, backbone: nn.Module, projection_dim: int = 128, hidden_dim: int | None = None,
                 temperature: float = 0.5, gather_distributed: bool = False):
        super().__init__(backbone)
        self.projector = MLP(backbone.dim, hidden_dim or backbone.dim, projection_dim)
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    def loss(self, z1, z2):
        return nt_xent(z1, z2, self.temperature, self.gather_distributed)

    def training_step(self, views):
        h1, h2 = (self.backbone(v) for v in views)
        return step_output(self.loss(self.projector(h1), self.projector(h2)), h1, paired=h2)
