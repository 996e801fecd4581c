"""RotNet: Gidaris, Singh, Komodakis. "Unsupervised Representation Learning by Predicting
Image Rotations", ICLR 2018.

Every image x is rotated by each of the four angles 90 r degrees, r in {0, 1, 2, 3}, and a
classifier on the backbone's embedding predicts r:

    L = -1/(4B) sum_b sum_r log softmax(c(f(rot(x_b, 90 r))))_r

All four rotations of an image are in the same batch, which the paper found better than
one random rotation per image. The paper classifies with the upper layers of its network
on CIFAR-10 (a NIN); on top of our backbones we use a linear classifier (or an MLP with
``hidden_dim``). Optimizer: SGD with momentum 0.9, lr 0.1, weight decay 5e-4 (the paper's
CIFAR setting, batch 128 images), no warm-up; the paper divides the lr by 5 at fixed
epochs, where we decay it by a cosine. Augmentation: random resized crop and flip only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.heads import MLP
from selfsup.methods.base import Method, OptimizerDefaults, step_output
from selfsup.methods.registry import register


def rotations(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, H, H) -> (4B, C, H, H) images rotated counter-clockwise by 0, 90, 180 and 270
    degrees (all of the batch by 0 first, then by 90, ...) and their labels r = 0..3."""
    rotated = torch.cat([torch.rot90(images, r, dims=(2, 3)) for r in range(4)])
    labels = torch.arange(4, device=images.device).repeat_interleave(len(images))
    return rotated, labels


@register
class RotNet(Method):
    name = "rotnet"
    paper = "Gidaris, Singh, Komodakis, Unsupervised Representation Learning by Predicting Image Rotations"
    year = 2018
    recipe = "rotnet"
    needs = "4 rotations of 1 view"
    optimizer = OptimizerDefaults("sgd", lr=0.1, weight_decay=5e-4)
    warmup_fraction = 0.0  # the paper's schedule has no warm-up

    def __init__(self, backbone: nn.Module, hidden_dim: int = 0):
        super().__init__(backbone)
        self.classifier = MLP(backbone.dim, hidden_dim, 4) if hidden_dim else nn.Linear(backbone.dim, 4)

    def training_step(self, views):
        images = views[0]
        if images.shape[-1] != images.shape[-2]:
            raise ValueError(f"RotNet needs square images to rotate, got {tuple(images.shape[-2:])}")
        rotated, labels = rotations(images)
        features = self.backbone(rotated)  # the unrotated batch first
        logits = self.classifier(features)
        loss = F.cross_entropy(logits, labels)
        accuracy = (logits.argmax(dim=1) == labels).float().mean()
        return step_output(loss, features[:len(images)], {"rotation_accuracy": float(accuracy)})
