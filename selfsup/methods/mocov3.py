"""MoCo v3: Chen, Xie, He. "An Empirical Study of Training Self-Supervised Vision
Transformers", ICCV 2021.

MoCo without the queue: the keys are the other samples of the batch. The query encoder is
backbone + projector + predictor; the momentum encoder (backbone + projector, no predictor)
is an EMA of it and gets no gradient. Both views serve as queries and as keys:

    ctr(q, k) = 2 tau * CE(q k^T / tau, labels = diagonal)      (q, k L2-normalised)
    L = ctr(q1, k2) + ctr(q2, k1)
    theta_k <- m theta_k + (1 - m) theta_q,  m = 1 - (1 - m0)(cos(pi t / T) + 1) / 2

The paper (and its code, moco-v3 main_moco.py and CONFIG.md) has one setting per kind of
backbone, and the backbone in use picks it (``paper_settings``, ``VARIANTS``):

- ResNet: projector 2 layers, predictor 2 layers (no BatchNorm on its output), tau = 1.0,
  LARS (lr 0.6 x B/256, weight decay 1e-6: the code's defaults, its 100-epoch run; the
  300- and 1000-epoch runs use lr 0.3 and weight decay 1.5e-6), 10 warm-up epochs of 100,
  crops down to 0.2 of the area;
- ViT: projector 3 layers, predictor 2 layers with BatchNorm on its output, tau = 0.2,
  AdamW (lr 1.5e-4 x B/256, weight decay 0.1), 40 warm-up epochs of 300, crops down to 0.08.

Every MLP has BatchNorm on its hidden layers, and the projector on its output (without
affine parameters). Both use m0 = 0.99 and BYOL's augmentations; the paper's MLPs are 4096
wide, we default to 2048 for small images. ViTs get a [CLS] token, whose output is the
embedding, as in the paper (its fixed random patch projection is not done here).
"""

from __future__ import annotations

import torch
from torch import nn

from selfsup.backbones import is_vit
from selfsup.backbones.vit import ViT
from selfsup.heads import MLP
from selfsup.losses import batch_info_nce
from selfsup.methods.base import Method, OptimizerDefaults, step_output
from selfsup.methods.byol import cosine_momentum
from selfsup.methods.ema import ema_update, frozen_copy
from selfsup.methods.registry import register


VARIANTS = {  # the paper's settings by kind of backbone
    "resnet": dict(optimizer=OptimizerDefaults("lars", lr=0.6, weight_decay=1e-6), warmup_fraction=10 / 100,
                   crop_min_scale=0.2, temperature=1.0, projector_layers=2, predictor_output_bn=False),
    "vit": dict(optimizer=OptimizerDefaults("adamw", lr=1.5e-4, weight_decay=0.1), warmup_fraction=40 / 300,
                crop_min_scale=None, temperature=0.2, projector_layers=3, predictor_output_bn=True),
}


def variant(backbone) -> dict:
    """The paper's setting for ``backbone`` (a name or a module): its ViT one or its ResNet one."""
    return VARIANTS["vit" if is_vit(backbone) else "resnet"]


def output_bn(mlp: nn.Module, dim: int) -> nn.Module:
    return nn.Sequential(mlp, nn.BatchNorm1d(dim, affine=False))


@register
class MoCoV3(Method):
    name = "mocov3"
    paper = "Chen, Xie, He, An Empirical Study of Training Self-Supervised Vision Transformers"
    year = 2021
    recipe = "byol"
    needs = "2 views + EMA key encoder"
    optimizer = VARIANTS["resnet"]["optimizer"]  # on a ViT: VARIANTS["vit"]'s (paper_settings)
    crop_min_scale = VARIANTS["resnet"]["crop_min_scale"]

    @classmethod
    def paper_settings(cls, backbone: str, small_images: bool = False) -> dict:
        settings = variant(backbone)
        return {**{name: settings[name] for name in ("optimizer", "warmup_fraction", "crop_min_scale")}, "options": {}}

    def __init__(self, backbone: nn.Module, projection_dim: int = 256, hidden_dim: int = 2048,
                 temperature: float | None = None, base_momentum: float = 0.99,
                 gather_distributed: bool = False):
        """``temperature`` none: the paper's for the backbone (1.0 ResNet, 0.2 ViT)."""
        settings = variant(backbone)
        if isinstance(backbone, ViT):
            backbone.use_class_token()
        super().__init__(backbone)
        self.projector = output_bn(MLP(backbone.dim, hidden_dim, projection_dim, layers=settings["projector_layers"]),
                                   projection_dim)
        predictor = MLP(projection_dim, hidden_dim, projection_dim)
        self.predictor = output_bn(predictor, projection_dim) if settings["predictor_output_bn"] else predictor
        self.momentum_backbone = frozen_copy(backbone)
        self.momentum_projector = frozen_copy(self.projector)
        self.temperature = settings["temperature"] if temperature is None else temperature
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
