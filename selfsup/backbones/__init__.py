"""Backbones: map a batch of images to a (B, D) embedding; ``backbone.dim`` is D. Image
backbones take images of C channels (``input_shape`` (C, H, W), default 3): the built-ins'
first layer takes C, timm's models get ``in_chans=C``, torchvision's refuse C != 3.

- ``smallcnn``: four 3x3 conv blocks (32-64-128-256 channels, BatchNorm, ReLU, stride 2
  from the second on), global average pooling; suited to 8-32 px images on a CPU.
- ``resnet18`` / ``resnet50``: torchvision ResNets without the classifier; with
  ``small_stem`` the 7x7 stride-2 stem and max-pool become one 3x3 stride-1 conv, the
  usual change for 32-96 px images (as in the SimCLR CIFAR-10 experiments).
- ``vit_mini`` / ``vit_tiny`` / ``vit_small``: timm Vision Transformers with random weights
  (``vit_mini``, 4 blocks of width 128, is for small images), patch size 4 up to 64 px and
  16 above, mean of the patch tokens; they also give patch tokens
  (``tokens(x)``) and are what MAE and I-JEPA need (see ``selfsup.backbones.vit``).

Any ``timm/NAME`` (``timm.list_models()``) or ``torchvision/NAME`` (a torchvision
classification model) is built by its library with random weights and its own
architecture, its keyword arguments as ``options``; ``wrap(module)`` makes a user's module
that maps a batch to (B, D) a backbone (``selfsup.backbones.external``).

Tables and time series have their own (``selfsup.backbones.tables``, ``.timeseries``); they
are built for an ``input_shape``, (F,) features or (C, T) channels and steps. Every backbone
is built by name with the same keywords: ``create(name, small_stem=, image_size=,
input_shape=, options=)`` (``selfsup.backbones.registry``).
"""

from __future__ import annotations

# Importing a module registers its backbones; this order is the order they are listed in.
from selfsup.backbones import images, vit, tables, timeseries  # noqa: F401
from selfsup.backbones.external import Wrapped, is_external, weights_module, wrap
from selfsup.backbones.registry import (MODALITY, builder_options, check_builder_options, create,
                                        default_small_stem, known, modality, register)
from selfsup.backbones.vit import is_vit

__all__ = ["MODALITY", "Wrapped", "builder_options", "check_builder_options", "create", "default_small_stem", "is_external", "is_vit", "known", "modality",
           "register", "weights_module", "wrap"]
