"""Augmentation recipes: the list of views a method needs, each view a chain of batched ops.

``simclr``: Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual
Representations", appendix A: random resized crop (scale 0.08-1) with flip, colour jitter
of strength s (brightness/contrast/saturation 0.8 s, hue 0.2 s) with p=0.8, grayscale
p=0.2, Gaussian blur p=0.5 (sigma 0.1-2, kernel 10% of the side). s = 1 on ImageNet, and
0.5 for images of 32 px or less, the paper's CIFAR-10 setting (appendix B.9), where it
also drops the blur.

``mocov2``: Chen et al. 2020, "Improved Baselines with Momentum Contrastive Learning" (its
code's ``augmentation``), which SimSiam (Chen & He 2021, appendix A) uses as well: SimCLR's
view with a crop of scale 0.2-1 and jitter (0.4, 0.4, 0.4, 0.1), i.e. s = 0.5, at every size.

``supcon``: Khosla et al. 2020, "Supervised Contrastive Learning", its code's CIFAR views
(main_supcon.py): crop of scale 0.2-1, jitter (0.4, 0.4, 0.4, 0.1) with p=0.8, grayscale
p=0.2, no blur, for images of 32 px or less; above, SimCLR's ImageNet view ("SimAugment",
one of the paper's ImageNet augmentations; its best, AutoAugment, is not offered here).

Every one of these takes ``crop_scale``, ``jitter_strength`` and ``blur`` as options:
``create("simclr", 32, jitter_strength=1.0)``.

``byol``: Grill et al. 2020, "Bootstrap Your Own Latent", table 6: the same crop and flip,
jitter (0.4, 0.4, 0.2, 0.1) with p=0.8, grayscale p=0.2, and asymmetric views: blur
p=1.0 / 0.1 and solarisation p=0 / 0.2.

Multi-crop (Caron et al. 2020, "Unsupervised Learning of Visual Features by Contrasting
Cluster Assignments", sec. 3.2): ``multicrop`` turns any recipe's views into the global
crops and adds N local crops, smaller boxes resampled to 3/7 of the global side (96 px
for 224). ``create(name, size, local_crops=N)`` does it for any recipe.

``swav``: SwAV's 2 global + 6 local crops (area 0.14-1 and 0.05-0.14), each made like a
SimCLR view (jitter strength 1, grayscale 0.2, blur p=0.5).

``dino``: Caron et al. 2021, "Emerging Properties in Self-Supervised Vision
Transformers", appendix: BYOL's two global views (area 0.4-1; blur p=1.0, then blur p=0.1
and solarisation p=0.2) and 8 local crops (area 0.05-0.4) with BYOL's jitter and blur
p=0.5, as in the paper's code.

``mae``: He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners", appendix
A.1: one view, random resized crop (area 0.2-1) and flip, no colour changes; the masking is
the augmentation. ``ijepa``: Assran et al. 2023 (I-JEPA), the paper's code: one view,
random resized crop (area 0.3-1), no flip, no colour changes. ``rotnet``: Gidaris et al.
2018: one view, a mild random resized crop (area 0.5-1) and flip; the method rotates it.

Images whose channels are not RGB (C != 3: multispectral bands, stacks of planes) get the
same crops, flips, blur and solarisation, but colour jitter becomes brightness and contrast
per channel with the recipe's strengths (``ops.channel_jitter``, same probability), and
there is no grayscale: saturation, hue and luma assume RGB. A warning says so once.

Blur is off by default for images of 32 px or less, as in the SimCLR CIFAR-10 setup: at
that size a 3-tap kernel mostly erases the object.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, replace

import torch

import selfsup.augment.ops as ops
from selfsup.augment.registry import BY_MODALITY, register


@dataclass(frozen=True)
class ViewSpec:
    """How to make one view of a batch of uint8 images (saturation, hue and grayscale
    apply to RGB images only)."""

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


_WARNED_CHANNELS: set[int] = set()


def warn_not_rgb(channels: int) -> None:
    """Once per channel count: the colour ops are replaced for C != 3 images."""
    if channels not in _WARNED_CHANNELS:
        _WARNED_CHANNELS.add(channels)
        warnings.warn(f"images have {channels} channels, not RGB: colour jitter is brightness and contrast per "
                      f"channel, and there is no grayscale", stacklevel=3)


def make_view(images: torch.Tensor, spec: ViewSpec, generator: torch.Generator, mean, std) -> torch.Tensor:
    x = ops.random_resized_crop(images, spec.size, generator, spec.crop_scale, flip_p=spec.flip_p)
    return colour_view(x, spec, generator, mean, std)


def finish_view(cropped: torch.Tensor, spec: ViewSpec, generator: torch.Generator, mean, std) -> torch.Tensor:
    """A view whose crop was made already (uint8 (B, C, size, size), from the full image by
    the streaming source): the flip, then what ``make_view`` does after its crop."""
    x = cropped.float().div_(255)
    flip = ops.bernoulli(generator, len(x), spec.flip_p).to(x.device)
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return colour_view(x, spec, generator, mean, std)


def colour_view(x: torch.Tensor, spec: ViewSpec, generator: torch.Generator, mean, std) -> torch.Tensor:
    if x.shape[1] == 3:
        x = ops.color_jitter(x, generator, spec.jitter_p, spec.brightness, spec.contrast, spec.saturation,
                             spec.hue, spec.grayscale_p)
    elif spec.jitter_p > 0:
        warn_not_rgb(x.shape[1])
        x = ops.channel_jitter(x, generator, spec.jitter_p, spec.brightness, spec.contrast)
    if spec.blur_p > 0:
        x = ops.gaussian_blur(x, generator, spec.blur_p)
    if spec.solarize_p > 0:
        x = ops.solarize(x, generator, spec.solarize_p)
    return ops.normalize_(x, mean, std)  # x is this view's own tensor


@dataclass(frozen=True)
class Recipe:
    name: str
    views: tuple[ViewSpec, ...]

    def __call__(self, images: torch.Tensor, generator: torch.Generator, mean, std) -> list[torch.Tensor]:
        if images.dtype == torch.uint8 and len(self.views) > 1:  # convert once, not once a view
            images = images.float().div_(255)
        return [make_view(images, spec, generator, mean, std) for spec in self.views]

    def finish(self, cropped: list[torch.Tensor], generator: torch.Generator, mean, std) -> list[torch.Tensor]:
        """The views from crops made already, one uint8 batch per view (``finish_view``)."""
        return [finish_view(x, spec, generator, mean, std) for x, spec in zip(cropped, self.views)]


def small(size: int) -> bool:
    """Whether ``size`` px is a CIFAR-sized image, for which the papers change their views."""
    return size <= 32


def simclr_view(size: int, crop_scale, jitter_strength: float, blur: bool) -> ViewSpec:
    """SimCLR's view with colour distortion of strength ``jitter_strength``."""
    s = jitter_strength
    return ViewSpec(size, tuple(crop_scale), brightness=0.8 * s, contrast=0.8 * s, saturation=0.8 * s,
                    hue=0.2 * s, blur_p=0.5 if blur else 0.0)


@register("image")
def simclr(size: int, crop_scale=(0.08, 1.0), jitter_strength: float | None = None,
           blur: bool | None = None) -> Recipe:
    jitter_strength = (0.5 if small(size) else 1.0) if jitter_strength is None else jitter_strength
    view = simclr_view(size, crop_scale, jitter_strength, not small(size) if blur is None else blur)
    return Recipe("simclr", (view, view))


@register("image")
def mocov2(size: int, crop_scale=(0.2, 1.0), jitter_strength: float = 0.5, blur: bool | None = None) -> Recipe:
    view = simclr_view(size, crop_scale, jitter_strength, not small(size) if blur is None else blur)
    return Recipe("mocov2", (view, view))


@register("image")
def supcon(size: int, crop_scale=None, jitter_strength: float | None = None, blur: bool | None = None) -> Recipe:
    if crop_scale is None:
        crop_scale = (0.2, 1.0) if small(size) else (0.08, 1.0)
    jitter_strength = (0.5 if small(size) else 1.0) if jitter_strength is None else jitter_strength
    view = simclr_view(size, crop_scale, jitter_strength, not small(size) if blur is None else blur)
    return Recipe("supcon", (view, view))


@register("image")
def byol(size: int, crop_scale=(0.08, 1.0), blur: bool | None = None) -> Recipe:
    blur = not small(size) if blur is None else blur
    view = ViewSpec(size, crop_scale, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)
    return Recipe("byol", (replace(view, blur_p=1.0 if blur else 0.0),
                           replace(view, blur_p=0.1 if blur else 0.0, solarize_p=0.2)))


def multicrop(recipe: Recipe, local_crops: int, local_view: ViewSpec | None = None,
              local_size: int | None = None, local_scale=(0.05, 0.4)) -> Recipe:
    """``recipe``'s views, now the global crops, followed by ``local_crops`` local crops:
    boxes of area fraction ``local_scale`` resampled to ``local_size`` px (default 3/7 of
    the first view's side), each made like ``local_view`` (default the first view) apart
    from size and scale. All views come back in one list, globals first."""
    if local_crops < 0:
        raise ValueError(f"local_crops must be >= 0, got {local_crops}")
    side = recipe.views[0].size
    local_size = max(1, round(side * 3 / 7)) if local_size is None else local_size
    local = replace(local_view or recipe.views[0], size=local_size, crop_scale=tuple(local_scale))
    return replace(recipe, views=recipe.views + (local,) * local_crops)


@register("image")
def swav(size: int, crop_scale=(0.14, 1.0), local_crops: int = 6, local_size: int | None = None,
         local_scale=(0.05, 0.14), blur: bool | None = None) -> Recipe:
    global_views = replace(simclr(size, crop_scale, jitter_strength=1.0, blur=blur), name="swav")
    return multicrop(global_views, local_crops, local_size=local_size, local_scale=local_scale)


@register("image")
def dino(size: int, crop_scale=(0.4, 1.0), local_crops: int = 8, local_size: int | None = None,
         local_scale=(0.05, 0.4), blur: bool | None = None) -> Recipe:
    blur = not small(size) if blur is None else blur
    global_views = replace(byol(size, crop_scale, blur), name="dino")
    local_view = replace(global_views.views[0], blur_p=0.5 if blur else 0.0, solarize_p=0.0)
    return multicrop(global_views, local_crops, local_view, local_size, local_scale)


def single_view(name: str, size: int, crop_scale, flip_p: float = 0.5) -> Recipe:
    """One view: crop and flip, no colour jitter, grayscale, blur or solarisation."""
    return Recipe(name, (ViewSpec(size, tuple(crop_scale), flip_p=flip_p, jitter_p=0.0,
                                  grayscale_p=0.0),))


@register("image")
def mae(size: int, crop_scale=(0.2, 1.0)) -> Recipe:
    return single_view("mae", size, crop_scale)


@register("image")
def ijepa(size: int, crop_scale=(0.3, 1.0)) -> Recipe:
    return single_view("ijepa", size, crop_scale, flip_p=0.0)


@register("image")
def rotnet(size: int, crop_scale=(0.5, 1.0)) -> Recipe:
    return single_view("rotnet", size, crop_scale)


RECIPES = BY_MODALITY["image"]  # filled by @register above


def create(name: str, size: int, local_crops: int | None = None, **options) -> Recipe:
    """Recipe ``name`` for images of ``size`` px; ``local_crops`` adds that many local crops
    to any recipe (or sets how many ``swav`` and ``dino`` make)."""
    if name not in RECIPES:
        raise ValueError(f"unknown augmentation recipe {name!r}; available: {', '.join(RECIPES)}")
    makes_local_crops = "local_crops" in inspect.signature(RECIPES[name]).parameters  # swav, dino
    if makes_local_crops and local_crops is not None:
        options["local_crops"] = local_crops
    recipe = RECIPES[name](size, **options)
    if not makes_local_crops and local_crops:
        recipe = multicrop(recipe, local_crops)
    return recipe
