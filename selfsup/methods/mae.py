"""MAE: He, Chen, Xie, Li, Dollar, Girshick. "Masked Autoencoders Are Scalable Vision
Learners", CVPR 2022.

Each image is cut into N patches; a random 75% of them (a fresh permutation per sample)
are masked. The ViT encoder sees only the visible 25%, with their positional embeddings.
A lightweight decoder gets the encoded visible tokens plus one shared mask token at every
masked position (each with its positional embedding) and predicts the pixels of the
masked patches:

    L = sum_i m_i || y_i - t_i ||^2 / (P sum_i m_i),   t_i = (x_i - mean x_i) / std x_i

with m_i = 1 for masked patches and P values per patch (norm_pix_loss; see
``selfsup.losses.mae``). Only the encoder is kept; its representation is the mean of the
patch tokens of the whole image.

The paper's decoder is 8 blocks of width 512 for ViT-B/L/H at 224 px; for small images we
default to 4 blocks of width 128. Optimizer: AdamW, lr 1.5e-4 x B/256, weight decay 0.05
(the paper also sets Adam's beta2 = 0.95, which our shared optimizer factory does not).
Augmentation: random resized crop (scale 0.2-1) and flip, nothing else.
"""

from __future__ import annotations

import torch
from torch import nn

from selfsup.backbones.vit import TokenPredictor, require_vit
from selfsup.losses.mae import masked_patch_mse, patchify
from selfsup.methods.base import Method, OptimizerDefaults, step_output
from selfsup.methods.masking import random_visible, step_generator
from selfsup.methods.registry import register


@register
class MAE(Method):
    name = "mae"
    paper = "He et al., Masked Autoencoders Are Scalable Vision Learners"
    year = 2022
    recipe = "mae"
    needs = "ViT backbone"
    optimizer = OptimizerDefaults("adamw", lr=1.5e-4, weight_decay=0.05)
    default_backbone = "vit_mini"

    def __init__(self, backbone: nn.Module, mask_ratio: float = 0.75, decoder_dim: int = 128,
                 decoder_depth: int = 4, decoder_heads: int = 4, normalize_target: bool = True,
                 seed: int | None = None):
        super().__init__(require_vit(backbone, "MAE"))
        if not 0 < mask_ratio < 1:
            raise ValueError(f"mask_ratio={mask_ratio}: expected in (0, 1)")
        self.visible = max(1, int(backbone.num_patches * (1 - mask_ratio)))
        if self.visible >= backbone.num_patches:
            raise ValueError(f"mask_ratio={mask_ratio} masks no patch of {backbone.num_patches}")
        pixels = backbone.patch_size ** 2 * backbone.in_channels
        self.decoder = TokenPredictor(backbone.dim, pixels, backbone.grid_size, decoder_dim,
                                      decoder_depth, decoder_heads)
        self.normalize_target = normalize_target
        # masks come from (seed, step); the seed is drawn like the weights, from the seed the
        # model is built under, and both are saved with the weights so a resumed run replays
        seed = int(torch.randint(2**62, ())) if seed is None else seed
        self.register_buffer("mask_seed", torch.tensor(seed))
        self.register_buffer("mask_step", torch.tensor(0))

    def sample_visible(self, n: int) -> torch.Tensor:
        """(n, visible) indices of the patches the encoder sees; advances the step count."""
        generator = step_generator(int(self.mask_seed), int(self.mask_step))
        self.mask_step += 1
        return random_visible(generator, n, self.backbone.num_patches, self.visible)

    def predict(self, images: torch.Tensor, visible: torch.Tensor):
        """Encode the ``visible`` patches only and predict the pixels of the others.

        Returns (prediction (B, N, P) with zeros at the visible patches, mask (B, N): 1 where
        a patch was masked)."""
        prediction, mask, _ = self.predict_from_visible(images, visible)
        return prediction, mask

    def predict_from_visible(self, images: torch.Tensor, visible: torch.Tensor):
        """``predict``'s two results and the encoded visible tokens (B, K, D)."""
        n, patches = len(images), self.backbone.num_patches
        mask = torch.ones(n, patches, device=images.device).scatter_(1, visible, 0.0)
        masked = mask.nonzero()[:, 1].reshape(n, patches - visible.shape[1])
        latent = self.backbone.tokens(images, visible)
        predicted = self.decoder(latent, visible, masked)
        prediction = predicted.new_zeros(n, patches, predicted.shape[-1])
        prediction = prediction.scatter(1, masked[..., None].expand_as(predicted), predicted)
        return prediction, mask, latent

    def reconstruction_loss(self, images: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        return self.reconstruction(images, visible)[0]

    def reconstruction(self, images: torch.Tensor, visible: torch.Tensor):
        """(the loss, the encoded visible tokens (B, K, D))."""
        prediction, mask, latent = self.predict_from_visible(images, visible)
        target = patchify(images, self.backbone.patch_size)
        return masked_patch_mse(prediction, target, mask, self.normalize_target), latent

    def training_step(self, views):
        images = views[0]
        visible = self.sample_visible(len(images)).to(images.device)
        loss, latent = self.reconstruction(images, visible)
        return step_output(loss, latent.mean(dim=1))  # the visible tokens, pooled as the backbone pools
