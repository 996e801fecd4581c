"""Backbones: map a batch of images to a (B, D) embedding; ``backbone.dim`` is D.

- ``smallcnn``: four 3x3 conv blocks (32-64-128-256 channels, BatchNorm, ReLU, stride 2
  from the second on), global average pooling; suited to 8-32 px images on a CPU.
- ``resnet18`` / ``resnet50``: torchvision ResNets without the classifier; with
  ``small_stem`` the 7x7 stride-2 stem and max-pool become one 3x3 stride-1 conv, the
  usual change for 32-96 px images (as in the SimCLR CIFAR-10 experiments).
- ``vit_mini`` / ``vit_tiny`` / ``vit_small``: timm Vision Transformers with random weights
  (``vit_mini``, 4 blocks of width 128, is for small images), patch size 4 up to 64 px and
  16 above, mean of the patch tokens; they also give patch tokens
  (``tokens(x)``) and are what MAE and I-JEPA need (see ``selfsup.backbones.vit``).

Tables and time series have their own (``selfsup.backbones.tables``, ``.timeseries``); they
are built for an ``input_shape``, (F,) features or (C, T) channels and steps.
"""

from __future__ import annotations

import torch
from torch import nn

from selfsup.backbones.tables import TABLE_BACKBONES
from selfsup.backbones.timeseries import SERIES_BACKBONES


class SmallCNN(nn.Module):
    def __init__(self, channels=(32, 64, 128, 256)):
        super().__init__()
        layers, previous = [], 3
        for i, width in enumerate(channels):
            layers += [nn.Conv2d(previous, width, 3, stride=1 if i == 0 else 2, padding=1, bias=False),
                       nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            previous = width
        self.features = nn.Sequential(*layers)
        self.dim = previous

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))


class TorchvisionResNet(nn.Module):
    def __init__(self, depth: int, small_stem: bool):
        super().__init__()
        import torchvision

        net = getattr(torchvision.models, f"resnet{depth}")(weights=None)
        if small_stem:
            net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        self.dim = net.fc.in_features
        net.fc = nn.Identity()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def vision_transformer(name: str, image_size: int) -> nn.Module:
    from selfsup.backbones.vit import SIZES, ViT  # timm takes a while to import

    return ViT(*SIZES[name], image_size=image_size)


BACKBONES = {
    "smallcnn": lambda small_stem, image_size: SmallCNN(),
    "resnet18": lambda small_stem, image_size: TorchvisionResNet(18, small_stem),
    "resnet50": lambda small_stem, image_size: TorchvisionResNet(50, small_stem),
    "vit_mini": lambda small_stem, image_size: vision_transformer("vit_mini", image_size),
    "vit_tiny": lambda small_stem, image_size: vision_transformer("vit_tiny", image_size),
    "vit_small": lambda small_stem, image_size: vision_transformer("vit_small", image_size),
}


SHAPED_BACKBONES = {**TABLE_BACKBONES, **SERIES_BACKBONES}  # built for an input shape
MODALITY = {**{name: "image" for name in BACKBONES}, **{name: "table" for name in TABLE_BACKBONES},
            **{name: "timeseries" for name in SERIES_BACKBONES}}


def default_backbone(image_size: int | None, modality: str = "image") -> str:
    """``smallcnn`` for images up to 64 px, ``resnet18`` above; ``mlp`` for tables,
    ``resnet1d_small`` for time series."""
    if modality != "image":
        return {"table": "mlp", "timeseries": "resnet1d_small"}[modality]
    return "smallcnn" if image_size <= 64 else "resnet18"


def create(name: str, small_stem: bool = True, image_size: int = 224, input_shape=None) -> nn.Module:
    """``small_stem`` concerns the ResNets; ``image_size`` the ViTs, whose patch grid and
    positional embeddings are fixed by it (the CNNs take any size); ``input_shape`` the
    table and series backbones."""
    if name in SHAPED_BACKBONES:
        if not input_shape:
            raise ValueError(f"backbone {name!r} needs the input shape of the data")
        return SHAPED_BACKBONES[name](list(input_shape))
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; available: {', '.join(MODALITY)}")
    return BACKBONES[name](small_stem, image_size)
