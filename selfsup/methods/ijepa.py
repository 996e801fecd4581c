"""I-JEPA: Assran, Duval, Misra, Bojanowski, Vincent, Rabbat, LeCun, Ballas.
"Self-Supervised Learning from Images with a Joint-Embedding Predictive Architecture",
CVPR 2023.

From one image, sample M = 4 target blocks (scale 0.15-0.2 of the patches, aspect ratio
0.75-1.5, possibly overlapping) and one context block (scale 0.85-1, square) from which
the target patches are removed, as the paper's code samples them
(``selfsup.methods.masking.multi_block``: block sizes per batch, scale and aspect from one
draw, sides below the grid's, contexts of more than ``min_context`` patches cut to the
batch's smallest). The context encoder f_theta (the backbone) encodes the
context patches only; the target encoder f_xi, an EMA of it that gets no gradient, encodes
the whole image. A narrow ViT predictor g_phi reads the context tokens and, for each block
B_i, mask tokens carrying B_i's positional embeddings, and predicts the target
representations there:

    L = 1/M sum_i 1/|B_i| sum_{j in B_i} || g_phi(f_theta(x_context), pos_j) - LN(f_xi(x))_j ||^2
    xi <- tau xi + (1 - tau) theta,   tau = 1 - (1 - tau_base)(1 - k/K)

with tau rising linearly from tau_base = 0.996 to 1 over the K steps, as in the paper (not
BYOL's cosine). The loss is averaged over features as well (``selfsup.losses.ijepa``).
No hand-crafted augmentation beyond a random resized crop.

The paper's predictor for ViT-H is 12 blocks of width 384; we default to 4 blocks of half
the encoder's width. Optimizer: AdamW, lr 1e-3 at batch 2048 (1.25e-4 x B/256), weight
decay 0.04; the paper also ramps weight decay to 0.4 and warms lr up from 1e-4, which our
shared schedule does not.
"""

from __future__ import annotations

import torch
from torch import nn

from selfsup.backbones.vit import TokenPredictor, gather_tokens, require_vit
from selfsup.losses.ijepa import jepa_loss
from selfsup.methods.base import Method, OptimizerDefaults, step_output
from selfsup.methods.ema import ema_update, frozen_copy
from selfsup.methods.masking import multi_block, step_generator
from selfsup.methods.registry import register


def linear_momentum(base: float, progress: float) -> float:
    return 1 - (1 - base) * (1 - progress)


@register
class IJEPA(Method):
    name = "ijepa"
    paper = "Assran et al., Self-Supervised Learning from Images with a Joint-Embedding Predictive Architecture"
    year = 2023
    recipe = "ijepa"
    needs = "ViT backbone + EMA target"
    optimizer = OptimizerDefaults("adamw", lr=1.25e-4, weight_decay=0.04)
    default_backbone = "vit_mini"

    def __init__(self, backbone: nn.Module, predictor_dim: int | None = None, predictor_depth: int = 4,
                 num_targets: int = 4, target_scale=(0.15, 0.2), target_aspect=(0.75, 1.5),
                 context_scale=(0.85, 1.0), min_context: int = 4, base_momentum: float = 0.996,
                 seed: int | None = None):
        super().__init__(require_vit(backbone, "I-JEPA"))
        width = predictor_dim or backbone.dim // 2
        self.predictor = TokenPredictor(backbone.dim, backbone.dim, backbone.grid_size, width,
                                        predictor_depth, heads=max(1, width // 32))
        self.target_encoder = frozen_copy(backbone)
        self.masks = dict(num_targets=num_targets, target_scale=target_scale,
                          target_aspect=target_aspect, context_scale=context_scale,
                          min_context=min_context)
        self.base_momentum = self.momentum = base_momentum
        # masks come from (seed, step); see selfsup.methods.mae
        seed = int(torch.randint(2**62, ())) if seed is None else seed
        self.register_buffer("mask_seed", torch.tensor(seed))
        self.register_buffer("mask_step", torch.tensor(0))

    def sample_masks(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Context (n, K) and target (n, M, T) patch indices; advances the step count."""
        generator = step_generator(int(self.mask_seed), int(self.mask_step))
        self.mask_step += 1
        return multi_block(generator, n, self.backbone.grid_size, **self.masks)

    def prediction_loss(self, images: torch.Tensor, context: torch.Tensor,
                        targets: torch.Tensor) -> torch.Tensor:
        return self.prediction(images, context, targets)[0]

    def prediction(self, images: torch.Tensor, context: torch.Tensor, targets: torch.Tensor):
        """(the loss, the encoded context tokens (B, K, D))."""
        n, blocks, size = targets.shape
        with torch.no_grad():
            target = gather_tokens(self.target_encoder.tokens(images), targets.flatten(1))
        encoded = self.backbone.tokens(images, context)
        # one predictor pass per (sample, block): the context is repeated for each block
        predicted = self.predictor(encoded.repeat_interleave(blocks, dim=0),
                                   context.repeat_interleave(blocks, dim=0), targets.flatten(0, 1))
        return jepa_loss(predicted.reshape(n, blocks * size, -1), target), encoded

    def training_step(self, views):
        images = views[0]
        context, targets = (m.to(images.device) for m in self.sample_masks(len(images)))
        loss, encoded = self.prediction(images, context, targets)
        return step_output(loss, encoded.mean(dim=1),  # the context tokens, pooled as the backbone pools
                           {"momentum": self.momentum, "context_patches": float(context.shape[1])})

    def after_optimizer_step(self, progress: float) -> None:
        self.momentum = linear_momentum(self.base_momentum, progress)
        ema_update(self.backbone, self.target_encoder, self.momentum)
