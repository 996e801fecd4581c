"""Augmentation recipes: the list of views a method needs, each view a chain of batched ops.

``simclr``: Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual
Representations", appendix A: random resized crop (scale 0.08-1) with flip, colour jitter
(strength s=1: brightness/contrast/saturation 0.8, hue 0.2) with p=0.8, grayscale p=0.2,
Gaussian blur p=0.5 (sigma 0.1-2, kernel 10% of the side; the paper drops it for CIFAR).

``byol``: Grill et al. 2020, "Bootstrap Your Own Latent", table 6: the same crop and flip,
jitter (0.4, 0.4, 0.2, 0.1) with p=0.8, grayscale p=0.2, and asymmetric views: blur
p=1.0 / 0.1 and solarisation p=0 / 0.2.

Blur is off by default for images of 32 px or less, as in the SimCLR CIFAR-10 setup: at
that size a 3-tap kernel mostly erases the object.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from selfsup.augment import ops


@dataclass(frozen=True)
class ViewSpec:
    """How to make one view of a batch of uint8 images."""

    size: int
    crop_scale: tuple[float, float] = (0.08, 1.0)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: float = 0.0
    solarize_p: float = 0.0


def make_view(images: torch.Tensor, spec: ViewSpec, generator: torch.Generator, mean, std) -> torch.Tensor:
    x = ops.random_resized_crop(images, spec.size, generator, spec.crop_scale, flip_p=spec.flip_p)
    matrix, offset = ops.color_matrices(generator, x.shape[0], spec.jitter_p, spec.brightness,
                                        spec.contrast, spec.saturation, spec.hue, spec.grayscale_p)
    x = ops.apply_color(x, matrix, offset)
    if spec.blur_p > 0:
        x = ops.gaussian_blur(x, generator, spec.blur_p)
    if spec.solarize_p > 0:
        x = ops.solarize(x, generator, spec.solarize_p)
    return ops.normalize(x, mean, std)


@dataclass(frozen=True)
class Recipe:
    name: str
    views: tuple[ViewSpec, ...]

    def __call__(self, images: torch.Tensor, generator: torch.Generator, mean, std) -> list[torch.Tensor]:
        return [make_view(images, spec, generator, mean, std) for spec in self.views]


def simclr(size: int, crop_scale=(0.08, 1.0), blur: bool | None = None) -> Recipe:
    blur = size > 32 if blur is None else blur
    view = ViewSpec(size, crop_scale, brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2,
                    blur_p=0.5 if blur else 0.0)
    return Recipe("simclr", (view, view))


def byol(size: int, crop_scale=(0.08, 1.0), blur: bool | None = None) -> Recipe:
    blur = size > 32 if blur is None else blur
    view = ViewSpec(size, crop_scale, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)
    return Recipe("byol", (replace(view, blur_p=1.0 if blur else 0.0),
                           replace(view, blur_p=0.1 if blur else 0.0, solarize_p=0.2)))


RECIPES = {"simclr": simclr, "byol": byol}


def create(name: str, size: int, **options) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown augmentation recipe {name!r}; available: {', '.join(RECIPES)}")
    return RECIPES[name](size, **options)
