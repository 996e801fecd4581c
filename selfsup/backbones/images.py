"""Convolutional backbones for images (the Vision Transformers are in ``vit.py``)."""

from __future__ import annotations

import torch
from torch import nn

from selfsup.backbones.external import TorchvisionModel, channels, in_channels_changes, small_stem_changes
from selfsup.backbones.registry import register


class SmallCNN(nn.Module):
    def __init__(self, channels=(32, 64, 128, 256), in_channels: int = 3):
        super().__init__()
        layers, previous = [], in_channels
        for i, width in enumerate(channels):
            layers += [nn.Conv2d(previous, width, 3, stride=1 if i == 0 else 2, padding=1, bias=False),
                       nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            previous = width
        self.features = nn.Sequential(*layers)
        self.dim = previous

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))


class TorchvisionResNet(TorchvisionModel):
    """torchvision's ResNet without its classifier (``fc`` is ``Identity``); with
    ``small_stem`` the 7x7 stride-2 conv and the max-pool become one 3x3 stride-1 conv; for
    images of C != 3 channels the first conv takes C."""

    def __init__(self, depth: int, small_stem: bool, in_channels: int = 3):
        import torchvision

        architecture = f"resnet{depth}"
        net = getattr(torchvision.models, architecture)(weights=None)
        changes = in_channels_changes(net, in_channels) if in_channels != 3 else []
        changes += small_stem_changes(net, architecture) if small_stem else []
        dim = net.fc.in_features
        net.fc = nn.Identity()
        super().__init__(net, dim, architecture, classifier="fc", changes=changes)


@register("image")
def smallcnn(input_shape=None, **_) -> nn.Module:
    return SmallCNN(in_channels=channels(input_shape))


@register("image")
def resnet18(small_stem: bool = True, input_shape=None, **_) -> nn.Module:
    return TorchvisionResNet(18, small_stem, channels(input_shape))


@register("image")
def resnet50(small_stem: bool = True, input_shape=None, **_) -> nn.Module:
    return TorchvisionResNet(50, small_stem, channels(input_shape))
