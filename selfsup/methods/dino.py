"""DINO: Caron, Touvron, Misra, Jégou, Mairal, Bojanowski, Joulin. "Emerging Properties in
Self-Supervised Vision Transformers", ICCV 2021.

Self-distillation with no labels. A student g_s (backbone + DINO head) sees all views of
a sample, 2 global and N local crops; a teacher g_t, an exponential moving average of the
student that gets no gradient, sees the 2 global crops only. The student matches the
teacher's centred, sharpened distribution over K outputs (algorithm 1, eq. 3):

    L = mean_{x in {x1_g, x2_g}} mean_{x' in views, x' != x}  H(P_t(x), P_s(x'))
    P_t(x) = softmax((g_t(x) - c) / tau_t),   P_s(x') = softmax(g_s(x') / tau_s)
    c <- 0.9 c + 0.1 mean_batch g_t(x)                      (after each step's loss)
    teacher <- m teacher + (1 - m) student,   m = 1 - (1 - m_base)(cos(pi k / K) + 1) / 2

with tau_s = 0.1 and tau_t rising linearly from 0.04 to 0.07 over the first 30% of
training (the paper's warm-up is 30 epochs), then constant. The head is a 3-layer MLP
(hidden 2048, GELU) to a 256-d bottleneck, L2-normalised, then a weight-normalised linear
layer without bias whose weight norm is fixed to 1. The centre is a buffer, so it is
checkpointed; with ``gather_distributed`` its batch mean spans all processes.

The paper uses m_base = 0.996, K = 65536 and AdamW (lr 0.0005 x B/256, 10 warm-up epochs),
and so do we, as options, in the rest of its code's (main_dino.py) training:

- the weight decay rises from 0.04 (the run's ``weight_decay``) to ``weight_decay_end`` =
  0.4 along a cosine over training: wd(t) = end + (start - end)(1 + cos(pi t / T)) / 2;
- every student parameter's gradient is clipped to norm ``clip_grad`` = 3.0 on its own
  (per parameter, not the global norm; 0 turns it off);
- the last layer of the head gets no update in the first ``freeze_last_layer`` = 1 epochs;
- on a ViT the embedding, and the head's input, is the output of a [CLS] token
  (``class_token``; other backbones have none).

For small data and short runs we default to m_base = 0.99 and K = 4096.
"""

from __future__ import annotations

import torch
from torch import nn

from selfsup.backbones.vit import ViT
from selfsup.heads import DINOHead
from selfsup.losses import dino_loss, updated_center
from selfsup.methods.base import Method, OptimizerDefaults, step_output
from selfsup.methods.byol import cosine_momentum
from selfsup.methods.ema import ema_update, frozen_copy
from selfsup.methods.multicrop import forward_multicrop
from selfsup.methods.optim import cosine_schedule
from selfsup.methods.registry import register


def teacher_temperature_at(progress: float, start: float = 0.04, end: float = 0.07,
                           warmup: float = 0.3) -> float:
    """Linear from ``start`` to ``end`` over the first ``warmup`` fraction of training."""
    if warmup <= 0 or progress >= warmup:
        return end
    return start + (end - start) * progress / warmup


@register
class DINO(Method):
    name = "dino"
    paper = "Caron et al., Emerging Properties in Self-Supervised Vision Transformers"
    year = 2021
    recipe = "dino"
    needs = "multi-crop + EMA teacher"
    optimizer = OptimizerDefaults("adamw", lr=0.0005, weight_decay=0.04)

    def __init__(self, backbone: nn.Module, out_dim: int = 4096, hidden_dim: int = 2048,
                 bottleneck_dim: int = 256, temperature: float = 0.1, teacher_temperature: float = 0.07,
                 warmup_teacher_temperature: float = 0.04, teacher_temperature_warmup: float = 0.3,
                 center_momentum: float = 0.9, base_momentum: float = 0.99, weight_decay_end: float = 0.4,
                 clip_grad: float = 3.0, freeze_last_layer: int = 1, class_token: bool = True,
                 gather_distributed: bool = False):
        if class_token and isinstance(backbone, ViT):
            backbone.use_class_token()
        super().__init__(backbone)
        self.head = DINOHead(backbone.dim, out_dim, hidden_dim, bottleneck_dim)
        self.teacher_backbone = frozen_copy(backbone)
        self.teacher_head = frozen_copy(self.head)
        self.temperature = temperature
        self.teacher_temperatures = (warmup_teacher_temperature, teacher_temperature,
                                     teacher_temperature_warmup)
        self.center_momentum, self.base_momentum = center_momentum, base_momentum
        self.weight_decay_end, self.clip_grad, self.freeze_last_layer = weight_decay_end, clip_grad, freeze_last_layer
        self.gather_distributed = gather_distributed
        self.register_buffer("center", torch.zeros(1, out_dim))
        # the progress of the last optimizer step; a buffer, so a resumed run's schedules go on
        self.register_buffer("progress", torch.zeros((), dtype=torch.float64))

    @property
    def teacher_temperature(self) -> float:
        return teacher_temperature_at(float(self.progress), *self.teacher_temperatures)

    @property
    def momentum(self) -> float:
        return cosine_momentum(self.base_momentum, float(self.progress))

    def training_step(self, views):
        features = forward_multicrop(self.backbone, views)
        student = self.head(features).chunk(len(views))
        with torch.no_grad():
            teacher = self.teacher_head(forward_multicrop(self.teacher_backbone, views[:2]))
        temperature = self.teacher_temperature
        loss = dino_loss(student, teacher.chunk(2), self.center, self.temperature, temperature)
        self.center.copy_(updated_center(self.center, teacher, self.center_momentum, self.gather_distributed))
        first, second = features.split([len(v) for v in views])[:2]
        return step_output(loss, first, {"teacher_temperature": temperature, "momentum": self.momentum},
                           paired=second)

    def weight_decay_at(self, progress: float, weight_decay: float) -> float:
        return cosine_schedule(weight_decay, self.weight_decay_end, progress)

    @torch.no_grad()
    def before_optimizer_step(self, progress: float, epoch: int) -> None:
        if self.clip_grad > 0:
            for p in [*self.backbone.parameters(), *self.head.parameters()]:
                if p.grad is not None:  # DINO's utils.clip_gradients: each parameter on its own
                    p.grad.mul_((self.clip_grad / (p.grad.norm() + 1e-6)).clamp(max=1.0))
        if epoch < self.freeze_last_layer:
            self.head.last_layer.weight.grad = None  # no step at all, as cancel_gradients_last_layer

    def after_optimizer_step(self, progress: float) -> None:
        self.progress.fill_(progress)
        ema_update(self.backbone, self.teacher_backbone, self.momentum)
        ema_update(self.head, self.teacher_head, self.momentum)
